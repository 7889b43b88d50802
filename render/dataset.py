"""Synthetic datasets on disk: sharded uint8 arrays + structured labels, and a reader yielding tensors.

    DIR/manifest.json                  written last: its presence means the dataset is complete
    DIR/shards/NNNNNN/frames.npy       uint8 (n, Hf, Wf, 3)  full frame at working resolution
                      frame_masks.npy  uint8 (n, Hf, Wf)     1 where the cube is visible
                      crops.npy        uint8 (n, C, C, 3)    zoomed crop around the cube
                      crop_masks.npy   uint8 (n, C, C)
                      labels.npy       structured array (LABEL_DTYPE)
                      params.json      every scene parameter drawn, per sample

`.npy` rather than `.npz`: np.save output is byte-stable (zip archives carry timestamps), so the same
seed gives the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.io import UserError, atomic_write_json, code_version, sha256_of_json, to_json
from core.objects import ObjectSpec, spec_from_dict

FORMAT = "sim2real-synthetic/1"
IMAGE_FILES = ("frames.npy", "frame_masks.npy", "crops.npy", "crop_masks.npy")
LABEL_DTYPE = np.dtype([
    ("R", "f8", (3, 3)), ("t_m", "f8", (3,)), ("K_full", "f8", (3, 3)), ("K_frame", "f8", (3, 3)),
    ("K_crop", "f8", (3, 3)), ("center_full_px", "f8", (2,)), ("bbox_full_px", "f8", (4,)),
    ("crop_box_full_px", "f8", (3,)), ("visib_fract", "f8"),
])


def shard_name(k: int) -> str:
    return f"{k:06d}"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def shard_sha256(shard_dir: Path) -> str:
    """Hash of a shard's files (names and contents), in a fixed order."""
    h = hashlib.sha256()
    for name in IMAGE_FILES + ("labels.npy", "params.json"):
        h.update(name.encode())
        h.update(file_sha256(shard_dir / name).encode())
    return h.hexdigest()


def write_shard(shard_dir: Path, frames, frame_masks, crops, crop_masks, labels: np.ndarray,
                params: list[dict[str, Any]]) -> str:
    """Write one shard into a temp folder beside it, then rename into place. Returns its sha256."""
    tmp = shard_dir.with_name(f".{shard_dir.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, arr in zip(IMAGE_FILES, (frames, frame_masks, crops, crop_masks)):
        np.save(tmp / name, np.ascontiguousarray(arr, dtype=np.uint8))
    np.save(tmp / "labels.npy", labels)
    (tmp / "params.json").write_text(to_json(params) + "\n")
    digest = shard_sha256(tmp)
    shutil.rmtree(shard_dir, ignore_errors=True)
    os.replace(tmp, shard_dir)
    return digest


def labels_array(label_dicts: list[dict[str, Any]]) -> np.ndarray:
    arr = np.zeros(len(label_dicts), LABEL_DTYPE)
    for i, d in enumerate(label_dicts):
        for k in LABEL_DTYPE.names:
            arr[i][k] = d[k]
    return arr


def is_dataset(path: str | os.PathLike) -> bool:
    return (Path(path) / "manifest.json").is_file()


class SyntheticDataset:
    """Reads a complete dataset. Arrays are loaded (all shards concatenated) on first access.
    A map-style dataset (len + getitem), usable with torch's DataLoader; torch is imported lazily so that
    render workers stay light."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        mpath = self.root / "manifest.json"
        if not mpath.is_file():
            if (self.root / "generate.json").is_file():
                raise UserError(f"{self.root}: dataset is incomplete (an interrupted `generate`; rerun it to resume)")
            raise UserError(f"{self.root}: not a sim2real dataset (no manifest.json)")
        try:
            self.manifest = json.loads(mpath.read_text())
        except json.JSONDecodeError as e:
            raise UserError(f"{mpath}: not valid JSON ({e})") from None
        if self.manifest.get("format") != FORMAT:
            raise UserError(f"{mpath}: format: expected {FORMAT!r}, got {self.manifest.get('format')!r}")
        self.spec: ObjectSpec = spec_from_dict(self.manifest["object"], str(mpath))
        self.spec.name = self.manifest.get("object_name", self.spec.name)
        self._cache: dict[str, Any] = {}

    def __len__(self) -> int:
        return int(self.manifest["n"])

    def _shard_dirs(self) -> list[Path]:
        return [self.root / "shards" / s["name"] for s in self.manifest["shards"]]

    def _load(self, name: str) -> np.ndarray:
        if name not in self._cache:
            parts = []
            for d in self._shard_dirs():
                if not (d / name).is_file():
                    raise UserError(f"{d / name}: missing shard file")
                parts.append(np.load(d / name))
            self._cache[name] = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return self._cache[name]

    frames = property(lambda self: self._load("frames.npy"))
    frame_masks = property(lambda self: self._load("frame_masks.npy"))
    crops = property(lambda self: self._load("crops.npy"))
    crop_masks = property(lambda self: self._load("crop_masks.npy"))
    labels = property(lambda self: self._load("labels.npy"))

    @property
    def params(self) -> list[dict[str, Any]]:
        if "params" not in self._cache:
            out: list[dict[str, Any]] = []
            for d in self._shard_dirs():
                out.extend(json.loads((d / "params.json").read_text()))
            self._cache["params"] = out
        return self._cache["params"]

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch
        lab = self.labels[i]
        item = {
            "frame": torch.from_numpy(np.ascontiguousarray(self.frames[i])).permute(2, 0, 1),
            "crop": torch.from_numpy(np.ascontiguousarray(self.crops[i])).permute(2, 0, 1),
            "crop_mask": torch.from_numpy(np.ascontiguousarray(self.crop_masks[i])),
            "index": torch.tensor(i),
        }
        for k in LABEL_DTYPE.names:
            item[k] = torch.as_tensor(np.asarray(lab[k]), dtype=torch.float32)
        return item


def write_derived(src: SyntheticDataset, out_dir: str | os.PathLike,
                  frames_fn: Callable[[np.ndarray], np.ndarray] | None,
                  crops_fn: Callable[[np.ndarray], np.ndarray] | None,
                  manifest_extra: dict[str, Any]) -> Path:
    """A new dataset with byte-identical labels/params/masks and images replaced shard by shard
    (e.g. refined by SimGAN). The manifest (src's, plus `manifest_extra` and `derived_from`) is written last."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not is_dataset(out) and not (out / "derive.json").is_file():
        raise UserError(f"{out}: exists and is not a sim2real dataset; choose an empty or new folder")
    (out / "shards").mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").unlink(missing_ok=True)
    atomic_write_json(out / "derive.json", {"src": str(src.root), **manifest_extra})
    shards = []
    for s, d in zip(src.manifest["shards"], src._shard_dirs()):
        frames = np.load(d / "frames.npy")
        crops = np.load(d / "crops.npy")
        frames = frames_fn(frames) if frames_fn else frames
        crops = crops_fn(crops) if crops_fn else crops
        digest = write_shard(out / "shards" / s["name"], frames, np.load(d / "frame_masks.npy"), crops,
                             np.load(d / "crop_masks.npy"), np.load(d / "labels.npy"),
                             json.loads((d / "params.json").read_text()))
        shards.append({"name": s["name"], "n": s["n"], "sha256": digest})
    manifest = dict(src.manifest)
    manifest.update(manifest_extra)
    manifest.update({"shards": shards, "derived_from": {"path": str(src.root),
                                                        "content_hash": src.manifest["content_hash"]},
                     "code_version": code_version()})
    manifest["content_hash"] = sha256_of_json([s["sha256"] for s in shards])
    atomic_write_json(out / "manifest.json", manifest)
    (out / "derive.json").unlink(missing_ok=True)
    return out
