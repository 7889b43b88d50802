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

The manifest has one versioned schema (FORMAT, MANIFEST_KEYS) and one reader, `read_manifest`, which every
consumer goes through: a missing or unknown key is a UserError naming the file and the key. Each shard entry
records the size and sha256 of each of its files; `SyntheticDataset` checks the sizes when it opens a dataset
and the hashes as it loads the files (a dataset whose shards disagree with its manifest is refused).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.io import UserError, atomic_write_json, code_version, sha256_of_json, to_json
from core.objects import ObjectSpec, spec_from_dict

FORMAT = "sim2real-synthetic/2"   # /2: per-file sizes and hashes in each shard entry
IMAGE_FILES = ("frames.npy", "frame_masks.npy", "crops.npy", "crop_masks.npy")
SHARD_FILES = IMAGE_FILES + ("labels.npy", "params.json")
SHARD_NAME = re.compile(r"^[0-9]{6}$")   # shard folder names: nothing else (no `../`) is ever joined to a path
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# the manifest's schema: key -> required? (writers: render/generate.py, render/dataset.write_derived,
# eval/real_dataset.py)
MANIFEST_KEYS: dict[str, bool] = {
    "format": True, "object_name": True, "object": True, "scene": True, "randomization": True, "seed": True,
    "n": True, "shard_size": True, "frame_hw": True, "crop_px": True, "crop_scale": True, "full_hw": True,
    "K_full": True, "shards": True, "code_version": True, "content_hash": True,
    "cameras": False, "config": False, "config_hash": False, "render_seconds_this_run": False,
    "derived_from": False, "refined_by": False, "real_source": False,
}
RANDOMIZATION_KEYS: dict[str, bool] = {"level": True, "space": False, "ranges": False, "pool_q_nominal": False}
LEVELS = ("nominal", "dr", "widest", "adr-pool", "real")
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


def shard_entry(shard_dir: Path) -> dict[str, Any]:
    """{"sha256": hash of the shard's files (names and contents, fixed order), "files": {name: {bytes, sha256}}}."""
    h = hashlib.sha256()
    files = {}
    for name in SHARD_FILES:
        digest = file_sha256(shard_dir / name)
        files[name] = {"bytes": (shard_dir / name).stat().st_size, "sha256": digest}
        h.update(name.encode())
        h.update(digest.encode())
    return {"sha256": h.hexdigest(), "files": files}


def write_shard(shard_dir: Path, frames, frame_masks, crops, crop_masks, labels: np.ndarray,
                params: list[dict[str, Any]]) -> dict[str, Any]:
    """Write one shard into a temp folder beside it, then rename into place. Returns its `shard_entry`."""
    tmp = shard_dir.with_name(f".{shard_dir.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for name, arr in zip(IMAGE_FILES, (frames, frame_masks, crops, crop_masks)):
            np.save(tmp / name, np.ascontiguousarray(arr, dtype=np.uint8))
        np.save(tmp / "labels.npy", labels)
        (tmp / "params.json").write_text(to_json(params) + "\n")
        entry = shard_entry(tmp)
        shutil.rmtree(shard_dir, ignore_errors=True)
        os.replace(tmp, shard_dir)
    except BaseException:  # a full disk or an interrupt leaves no partial shard behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return entry


def remove_stale_temps(shards_dir: Path) -> None:
    """Drop the temp shard folders of a killed run (`.NNNNNN.tmpPID`); call only while holding the lock."""
    if shards_dir.is_dir():
        for p in shards_dir.iterdir():
            if p.name.startswith(".") and ".tmp" in p.name:
                shutil.rmtree(p, ignore_errors=True)


def labels_array(label_dicts: list[dict[str, Any]]) -> np.ndarray:
    arr = np.zeros(len(label_dicts), LABEL_DTYPE)
    for i, d in enumerate(label_dicts):
        for k in LABEL_DTYPE.names:
            arr[i][k] = d[k]
    return arr


def is_dataset(path: str | os.PathLike) -> bool:
    return (Path(path) / "manifest.json").is_file()


def load_npy_bytes(data: bytes | bytearray, path: Path) -> np.ndarray:
    """The array of a .npy held in memory, without copying it (a bytearray gives a writable array); no pickles.
    A truncated or foreign file is a UserError naming it."""
    try:
        head = io.BytesIO(bytes(memoryview(data)[:1 << 16]))  # the header is far shorter than 64 KiB
        version = np.lib.format.read_magic(head)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f".npy format version {version} (np.save writes 1.0 or 2.0)")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(head)
        if dtype.hasobject:
            raise ValueError("object arrays are not allowed")
        count = int(np.prod(shape, dtype=np.int64))
        if len(data) - head.tell() != count * dtype.itemsize:
            raise ValueError(f"{len(data) - head.tell()} data bytes, expected {count * dtype.itemsize}")
        arr = np.frombuffer(data, dtype, count=count, offset=head.tell())
        return arr.reshape(shape, order="F" if fortran else "C")
    except (ValueError, EOFError, OSError) as e:
        raise UserError(f"{path}: not a readable .npy array ({str(e).splitlines()[0][:100]})") from None


def _want(cond: bool, mpath: Path, key: str, expected: str, got: Any = None) -> None:
    if not cond:
        raise UserError(f"{mpath}: {key}: expected {expected}" + ("" if got is None else f", got {str(got)[:60]!r}"))


def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """The one reader of a synthetic dataset's manifest.json: validated against the schema (MANIFEST_KEYS,
    RANDOMIZATION_KEYS, shard entries); every problem is a UserError naming the file and the key."""
    mpath = Path(root) / "manifest.json"
    if not mpath.is_file():
        raise UserError(f"{Path(root)}: not a sim2real dataset (no manifest.json)")
    try:
        m = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{mpath}: not valid JSON ({str(e)[:80]})") from None
    _want(isinstance(m, dict), mpath, "(top level)", "a JSON object", type(m).__name__)
    _want(m.get("format") == FORMAT, mpath, "format",
          f"{FORMAT!r} (regenerate datasets made by an older sim2real)", m.get("format"))
    for k in m:
        _want(k in MANIFEST_KEYS, mpath, k, "no such key (unknown to format " + FORMAT + ")")
    for k, required in MANIFEST_KEYS.items():
        _want(not required or k in m, mpath, k, "this key (missing)")
    isint = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    _want(isinstance(m["object_name"], str) and bool(m["object_name"]), mpath, "object_name", "a name", m["object_name"])
    _want(isinstance(m["object"], dict), mpath, "object", "a mapping (the object spec)", m["object"])
    _want(isint(m["n"]) and m["n"] > 0, mpath, "n", "a positive integer", m["n"])
    _want(isint(m["crop_px"]) and m["crop_px"] > 0, mpath, "crop_px", "a positive integer", m["crop_px"])
    for k in ("frame_hw", "full_hw"):
        _want(isinstance(m[k], list) and len(m[k]) == 2 and all(isint(v) and v > 0 for v in m[k]), mpath, k,
              "[height, width] in px", m[k])
    r = m["randomization"]
    _want(isinstance(r, dict), mpath, "randomization", "a mapping", r)
    for k in r:
        _want(k in RANDOMIZATION_KEYS, mpath, f"randomization.{k}", "no such key")
    _want(r.get("level") in LEVELS, mpath, "randomization.level", f"one of {', '.join(LEVELS)}", r.get("level"))
    _want("space" not in r or isinstance(r["space"], dict), mpath, "randomization.space", "a mapping")
    if m.get("refined_by") is not None:
        _want(isinstance(m["refined_by"], dict), mpath, "refined_by", "a mapping", m["refined_by"])
    shards = m["shards"]
    _want(isinstance(shards, list) and len(shards) > 0, mpath, "shards", "a non-empty list")
    total = 0
    for i, s in enumerate(shards):
        key = f"shards[{i}]"
        _want(isinstance(s, dict) and set(s) == {"name", "n", "sha256", "files"}, mpath, key,
              "{name, n, sha256, files}", s)
        _want(isinstance(s["name"], str) and bool(SHARD_NAME.match(s["name"])), mpath, f"{key}.name",
              "a six-digit shard name", s["name"])
        _want(isint(s["n"]) and s["n"] > 0, mpath, f"{key}.n", "a positive integer", s["n"])
        _want(isinstance(s["sha256"], str) and bool(_HEX64.match(s["sha256"])), mpath, f"{key}.sha256",
              "64 hex digits")
        f = s["files"]
        _want(isinstance(f, dict) and set(f) == set(SHARD_FILES), mpath, f"{key}.files",
              f"an entry for each of {', '.join(SHARD_FILES)}")
        for name, e in f.items():
            _want(isinstance(e, dict) and set(e) == {"bytes", "sha256"} and isint(e["bytes"]) and e["bytes"] >= 0
                  and isinstance(e["sha256"], str) and bool(_HEX64.match(e["sha256"])), mpath,
                  f"{key}.files.{name}", "{bytes, sha256}")
        total += s["n"]
    _want(total == m["n"], mpath, "n", f"the sum of the shards' n ({total})", m["n"])
    return m


class SyntheticDataset:
    """Reads a complete dataset. Arrays are loaded (all shards concatenated) on first access.
    A map-style dataset (len + getitem), usable with torch's DataLoader; torch is imported lazily so that
    render workers stay light."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not (self.root / "manifest.json").is_file() and (self.root / "generate.json").is_file():
            raise UserError(f"{self.root}: dataset is incomplete (an interrupted `generate`; rerun it to resume)")
        self.manifest = read_manifest(self.root)
        self.spec: ObjectSpec = spec_from_dict(self.manifest["object"], f"{self.root / 'manifest.json'}: object")
        self.spec.name = self.manifest["object_name"]
        self._cache: dict[str, Any] = {}
        self._check_sizes()

    def _check_sizes(self) -> None:
        """Cheap check at open: every shard file is there with the size the manifest records (a concurrent or
        interrupted writer shows up here); the hashes are checked as the files are loaded."""
        for s, d in zip(self.manifest["shards"], self._shard_dirs()):
            for name, f in s["files"].items():
                p = d / name
                if not p.is_file():
                    raise UserError(f"{p}: missing shard file (the dataset is damaged; regenerate it)")
                if p.stat().st_size != f["bytes"]:
                    raise UserError(f"{p}: {p.stat().st_size} bytes, the manifest records {f['bytes']} "
                                    f"(the dataset is damaged or was written by two runs; regenerate it)")

    def _read_verified(self, shard: dict[str, Any], d: Path, name: str) -> bytearray:
        p = d / name
        data = bytearray(p.stat().st_size)  # read straight into a writable buffer: the arrays view it
        with open(p, "rb") as f:
            f.readinto(data)
        if hashlib.sha256(data).hexdigest() != shard["files"][name]["sha256"]:
            raise UserError(f"{p}: sha256 differs from the manifest's (the dataset is damaged or was written "
                            f"by two runs; regenerate it)")
        return data

    def __len__(self) -> int:
        return int(self.manifest["n"])

    def _shard_dirs(self) -> list[Path]:
        return [self.root / "shards" / s["name"] for s in self.manifest["shards"]]

    def _load(self, name: str) -> np.ndarray:
        if name not in self._cache:
            parts = []
            for s, d in zip(self.manifest["shards"], self._shard_dirs()):
                parts.append(load_npy_bytes(self._read_verified(s, d, name), d / name))
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
            for s, d in zip(self.manifest["shards"], self._shard_dirs()):
                try:
                    out.extend(json.loads(self._read_verified(s, d, "params.json")))
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    raise UserError(f"{d / 'params.json'}: not valid JSON ({e})") from None
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
    (e.g. refined by SimGAN). The manifest (src's, plus `manifest_extra` and `derived_from`) is written last.
    Everything is staged in a temp folder beside out_dir and renamed into place: a failure leaves nothing."""
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_dataset(out))):
        raise UserError(f"{out}: exists and is not a sim2real dataset; choose an empty or new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        shards = []
        for s, d in zip(src.manifest["shards"], src._shard_dirs()):
            arr = {name: load_npy_bytes(src._read_verified(s, d, name), d / name)
                   for name in IMAGE_FILES + ("labels.npy",)}
            frames = frames_fn(arr["frames.npy"]) if frames_fn else arr["frames.npy"]
            crops = crops_fn(arr["crops.npy"]) if crops_fn else arr["crops.npy"]
            entry = write_shard(tmp / "shards" / s["name"], frames, arr["frame_masks.npy"], crops,
                                arr["crop_masks.npy"], arr["labels.npy"],
                                json.loads(src._read_verified(s, d, "params.json")))
            shards.append({"name": s["name"], "n": s["n"], **entry})
        manifest = dict(src.manifest)
        manifest.update(manifest_extra)
        manifest.update({"shards": shards, "derived_from": {"path": str(src.root),
                                                            "content_hash": src.manifest["content_hash"]},
                         "code_version": code_version()})
        manifest["content_hash"] = sha256_of_json([s["sha256"] for s in shards])
        atomic_write_json(tmp / "manifest.json", manifest)
        read_manifest(tmp)  # what we write, we can read back
        if out.exists():  # an earlier dataset (or an empty folder) gives way to the new one
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
