"""The practitioner's baseline: fine-tune a sim-trained model on the TUNE session's labelled photos.

    from pose_model.finetune import finetune
    ckpt = finetune("runs/dr_s0/model.pt", real_root, scene_ids=[1, 2, 3], out="runs/finetune_s0")

Only scenes of the tune session are accepted (a UserError names any other), and the dataset built from them is
checked again before training: a report-session image must never be trained on. The photos become a dataset in
the synthetic format (eval.real_dataset.real_to_dataset); training starts from the checkpoint's weights with its
model sizes, a lower learning rate and the oracle pipeline's image randomization.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from core.io import UserError, read_json

TUNE_SESSION = "data"


def check_tune_scenes(real_root: str | os.PathLike, scene_ids: Sequence[int], session: str = TUNE_SESSION) -> list[int]:
    """The scene ids, sorted, if every one belongs to `session`; else a UserError naming the others."""
    from core.bop import read_scene_groups
    groups = read_scene_groups(real_root)
    if session not in groups:
        raise UserError(f"{real_root}: no session {session!r} to fine-tune on (sessions: {sorted(groups)})")
    ids = sorted({int(s) for s in scene_ids})
    bad = [s for s in ids if s not in set(groups[session])]
    if not ids or bad:
        raise UserError(f"fine-tune scenes {bad or ids}: expected scenes of the tune session {session!r} "
                        f"({groups[session]}); never train on a report-session image")
    return ids


def finetune(ckpt: str | os.PathLike, real_root: str | os.PathLike, scene_ids: Sequence[int],
             out: str | os.PathLike, epochs: int = 30, lr: float = 5e-4, batch_size: int = 16, seed: int = 0,
             device: str = "auto", session: str = TUNE_SESSION, progress: bool = False,
             train_localizer: bool = True) -> Path:
    """Fine-tune `ckpt` on the labelled photos of `scene_ids` (all in `session`) → OUT/model.pt.
    train_localizer=False keeps the sim-trained localizer's weights (its loss weight is 0)."""
    from eval.real_dataset import real_to_dataset
    from eval.score import spec_for_real
    from pose_model.config import make_config
    from pose_model.train import load_checkpoint, train
    ids = check_tune_scenes(real_root, scene_ids, session)
    ck = load_checkpoint(ckpt)
    out = Path(out)
    data = real_to_dataset(real_root, ids, spec_for_real(real_root), out / f"data_{'-'.join(map(str, ids))}")
    read = read_json(Path(data) / "manifest.json", "manifest")["real_source"]["scene_ids"]
    assert sorted(read) == ids, f"{data}: holds scenes {read}, expected tune-session scenes {ids}"
    c = ck["config"]
    sizes = {k: c[k] for k in ("crop_px", "crop_factor", "loc_width", "reg_width", "reg_hidden", "refine_iters",
                               "resize_crop", "head", "jitter_scale", "jitter_shift") if k in c}
    cfg = make_config(c.get("profile", "default"), **{**sizes, "data": str(data), "out": str(out),
                      "pipeline": "oracle", "seed": seed, "device": device, "epochs": epochs, "lr": lr,
                      "batch_size": batch_size, "max_samples": None, "init_from": str(ckpt), "val_frac": 0.1,
                      "resume": (out / "model.pt").is_file(),
                      **({} if train_localizer else {"w_loc": 0.0})})
    return train(cfg, progress=progress)
