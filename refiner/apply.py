"""Apply a trained refiner: to image arrays, or to a whole synthetic dataset (labels untouched).

What gets refined: what the pose model sees — the full frames (the localizer's input) and the crops (the
regressor's), so `simgan` and `simgan+dr` train both stages on refined images (`frames="refine"`, the default).
A refiner trained on content-matched whole-frame windows (`patches="frames"`, see data.py) learned the gap at
the frames' scale; the crops are finer (≈ 4× more pixels per camera pixel) and are refined by the same
fully convolutional R — `refine check` measures label preservation on both. `frames="copy"` keeps the old
behaviour (crops only). The choice is recorded in the output manifest under refined_by.frames.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from core.device import cpu_conv_layout, pick_device
from core.io import UserError, code_version, load_torch_file
from refiner.data import to_tensor, to_uint8
from refiner.model import CKPT_FORMAT, Refiner


def load_refiner(ckpt: str | Path, device: str | torch.device = "cpu") -> tuple[Refiner, dict]:
    """(refiner in eval mode on device, metadata dict without the weights)."""
    ckpt = Path(ckpt)
    if ckpt.is_dir():
        ckpt = ckpt / "refiner.pt"
    st = load_torch_file(ckpt, "refiner checkpoint (from `refine train`)", CKPT_FORMAT)
    device = torch.device(device) if not isinstance(device, torch.device) else device
    R = Refiner(**st["arch"])
    R.load_state_dict(st["state_dict"])
    R = cpu_conv_layout(R.to(device).eval(), device)
    meta = {k: v for k, v in st.items() if k != "state_dict"}
    meta["path"] = str(ckpt.resolve())
    meta["sha256"] = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    return R, meta


def refine_images(R: Refiner, images: np.ndarray, batch: int = 64, progress: bool = False) -> np.ndarray:
    """uint8 (n,H,W,3) → refined uint8 (n,H,W,3) (same shape and dtype)."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise UserError(f"images: expected uint8 (n,H,W,3), got {images.dtype} {images.shape}")
    device = next(R.parameters()).device
    out = np.empty_like(images)
    with torch.inference_mode():
        for i in tqdm(range(0, len(images), batch), desc="refine", unit="batch", leave=False, disable=not progress):
            x = to_tensor(images[i:i + batch], device)
            if device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            out[i:i + batch] = to_uint8(R(x))
    return out


def refine_dataset(ckpt: str | Path, data_dir: str | Path, out_dir: str | Path, device: str = "auto",
                   frames: str = "refine", batch: int = 64) -> Path:
    """Write a refined copy of a synthetic dataset: frames and crops refined (frames copied if frames="copy"),
    labels/params/masks byte-identical; the manifest gets a `refined_by` entry. Returns out_dir."""
    from render.dataset import SyntheticDataset, write_derived

    if frames not in ("copy", "refine"):
        raise UserError(f"--frames {frames}: expected copy or refine")
    dev = pick_device(device)
    R, meta = load_refiner(ckpt, dev)
    src = SyntheticDataset(data_dir)
    crop_px = int(src.manifest.get("crop_px", -1))
    if crop_px != meta["crop_px"]:
        raise UserError(f"{meta['path']}: crop_px: this refiner was trained on {meta['crop_px']}-px crops, "
                        f"but {src.root} has {crop_px}-px crops (train a refiner on a dataset with --crop-px {crop_px})")
    if src.manifest.get("object_name") != meta["synthetic"].get("object_name"):
        raise UserError(f"{meta['path']}: object: refiner trained on {meta['synthetic'].get('object_name')!r}, "
                        f"dataset {src.root} shows {src.manifest.get('object_name')!r}")
    real = meta["real"]
    refined_by = {
        "refiner": meta["path"], "refiner_sha256": meta["sha256"], "method": "simgan",
        "arch": meta["arch"], "crop_px": meta["crop_px"], "patch_px": meta["patch_px"],
        "patches": meta.get("config", {}).get("patches", "crops"),
        "lam": meta["lam"], "lam_cube": meta.get("lam_cube", 0.0), "k_g": meta["k_g"], "k_d": meta["k_d"], "steps": meta["steps_done"],
        "seed": meta["seed"], "profile": meta["profile"], "refiner_code_version": meta["code_version"],
        "apply_code_version": code_version(),
        "crops": "refined", "frames": "refined" if frames == "refine" else "copied",
        "trained_on": {"synthetic": meta["synthetic"],
                       "real_root": real["root"], "real_kind": real["kind"], "real_sessions": real["sessions"],
                       "real_include": real["include"], "real_exclude": real["exclude"],
                       "n_real_files": len(real["files"]), "real_files": real["files"]},
    }
    n_shards = len(src.manifest["shards"])
    bar = tqdm(total=n_shards * (2 if frames == "refine" else 1), desc="refine dataset", unit="shard", leave=False)

    def crops_fn(a: np.ndarray) -> np.ndarray:
        r = refine_images(R, a, batch)
        bar.update(1)
        return r

    def frames_fn(a: np.ndarray) -> np.ndarray:
        r = refine_images(R, a, batch)
        bar.update(1)
        return r

    out = write_derived(src, out_dir, frames_fn if frames == "refine" else None, crops_fn,
                        {"refined_by": refined_by})
    bar.close()
    return Path(out)


def sample_grid(refiner: Refiner, syn_crops: np.ndarray, real_patches: np.ndarray, device) -> np.ndarray:
    """Rows: synthetic image | refined | 4·|difference| | real patch (resized to the image height)."""
    refiner.eval()
    with torch.no_grad():
        x = to_tensor(syn_crops, device)
        y = refiner(x)
    refiner.train()
    ref = to_uint8(y)
    diff = np.clip(np.abs(ref.astype(np.int16) - syn_crops.astype(np.int16)) * 4, 0, 255).astype(np.uint8)
    h, c = syn_crops.shape[1:3]  # crops are square; frames are not
    real = np.stack([cv2.resize(p, (h, h), interpolation=cv2.INTER_NEAREST) for p in real_patches])
    pad = 2
    rows = []
    for i in range(len(syn_crops)):
        cells = [syn_crops[i], ref[i], diff[i], real[i]]
        row = np.full((h + pad, 3 * (c + pad) + h + pad, 3), 255, np.uint8)
        for j, im in enumerate(cells):
            row[:h, j * (c + pad): j * (c + pad) + im.shape[1]] = im
        rows.append(row)
    return np.concatenate(rows)
