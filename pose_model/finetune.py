"""The practitioner's baseline: fine-tune a sim-trained model on the TUNE session's labelled photos.

    from eval.real_dataset import real_to_dataset          # (eval is a layer above: the caller builds the data)
    data = real_to_dataset(real_root, tune_scene_ids, spec, "runs/finetune_s0/data")
    ckpt = finetune("runs/dr_s0/model.pt", data, "runs/finetune_s0", real_root)

The dataset's own record of the scenes it was built from (manifest real_source.scene_ids) is checked against
the real set's sessions before anything is trained: every scene must belong to the tune session (a UserError
names the others), so a report-session image is never trained on. Training starts from the checkpoint's weights
with its model sizes, a lower learning rate and the oracle pipeline's image randomization.
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


def finetune(ckpt: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike,
             real_root: str | os.PathLike, session: str = TUNE_SESSION, epochs: int = 15, lr: float = 2e-4,
             batch_size: int = 16, seed: int = 0, device: str = "auto", progress: bool = False,
             train_localizer: bool = False, freeze_bn: bool = False, train_classifier: bool = False,
             train_rotation: bool = False) -> Path:
    """Fine-tune `ckpt` on `data`, a dataset of labelled real photos (eval.real_dataset.real_to_dataset) →
    OUT/model.pt. Refused (UserError) unless every scene the dataset was built from belongs to `session` of
    `real_root`. Defaults were chosen inside the ArUco set's tune session (fine-tuned on scenes 1–2, scored
    on its scene 3): training the localizer or the classifier on a few scenes made scene 3 worse. train_localizer=False keeps the sim-trained localizer as it is (its loss weight is 0);
    freeze_bn keeps every batch-norm layer's statistics; train_classifier=False drops the marker classification's
    loss (a few scenes hold few orientations: it learns "always this face"); train_rotation=False (the default) drops the
    rotation and keypoint losses too, so only the centre and depth are fitted to the photos: measured inside the
    tune session (simgan+dr seed 0, fitted on scenes 1–2, scored on scene 3, 32 photos): no fine-tune te 28.1 mm /
    re 33.9° / AR 0.270; fitting rotation too 15.8 mm / 66.1° / 0.147 (lr 5e-5: 16.3 / 48.4 / 0.236; 5 epochs:
    28.3 / 48.0 / 0.270) — two scenes hold few orientations; without rotation 22.9 mm / 33.6° / 0.298."""
    from pose_model.config import make_config
    from pose_model.model import load_checkpoint
    from pose_model.train import train
    man = read_json(Path(data) / "manifest.json", "manifest")
    src = man.get("real_source") or {}
    if "scene_ids" not in src:
        raise UserError(f"{data}/manifest.json: real_source.scene_ids: missing (expected a dataset of real photos "
                        f"from eval.real_dataset.real_to_dataset)")
    check_tune_scenes(real_root, src["scene_ids"], session)
    ck = load_checkpoint(ckpt)
    c = ck["config"]
    sizes = {k: c[k] for k in ("crop_px", "crop_factor", "loc_width", "reg_width", "reg_hidden", "refine_iters",
                               "resize_crop", "head", "jitter_scale", "jitter_shift") if k in c}
    cfg = make_config(c.get("profile", "default"), **{**sizes, "data": str(data), "out": str(out),
                      "pipeline": "oracle", "seed": seed, "device": device, "epochs": epochs, "lr": lr, "loc_lr": lr,
                      "batch_size": batch_size, "init_from": str(ckpt), "val_frac": 0.1,
                      "resume": (Path(out) / "model.pt").is_file(), "freeze_bn": freeze_bn,
                      **({} if train_classifier else {"w_cls": 0.0}),
                      **({} if train_rotation else {"w_rot": 0.0, "w_kp": 0.0, "w_cls": 0.0}),
                      **({} if train_localizer else {"w_loc": 0.0})})
    return train(cfg, progress=progress)

