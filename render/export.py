"""Export a synthetic dataset to BOP (frames or crops, with their exact K and pose)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from core.io import UserError
from render.dataset import SyntheticDataset


def export_bop(ds: SyntheticDataset, out_dir: str | os.PathLike, images: str = "frames",
               scene_size: int = 1000) -> Path:
    """Write ds as a BOP dataset (test split, `scene_size` images per scene) into out_dir, atomically."""
    if images not in ("frames", "crops"):
        raise UserError(f"--images: expected frames or crops, got {images!r}")
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out}: exists and is not empty; choose a new folder")
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _write(ds, tmp, images, scene_size)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:  # nothing half-written is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write(ds: SyntheticDataset, tmp: Path, images: str, scene_size: int) -> None:
    from core.bop import write_models, write_scene
    write_models(tmp, [ds.spec])
    lab = ds.labels
    arr = ds.frames if images == "frames" else ds.crops
    K_key = "K_frame" if images == "frames" else "K_crop"
    h, w = arr.shape[1:3]
    for s0 in range(0, len(ds), scene_size):
        ims = []
        for i in range(s0, min(len(ds), s0 + scene_size)):
            ims.append({"im_id": i - s0, "K": lab[K_key][i], "width": w, "height": h, "rgb": arr[i],
                        "gts": [(ds.spec.obj_id, lab["R"][i], np.asarray(lab["t_m"][i]) * 1000.0)],
                        "source": f"{ds.root}#{i}"})
        write_scene(tmp, s0 // scene_size + 1, ims, session="synthetic", camera=images)
