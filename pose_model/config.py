"""Training configuration: one plain dataclass, three size profiles."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from core.io import UserError
from core.profiles import PROFILE_NAMES as PROFILES, pick_profile
from pose_model.registry import HEADS, PIPELINES, pipeline_spec


@dataclass
class TrainConfig:
    data: str = ""
    out: str = ""
    pipeline: str = "none"
    profile: str = "default"
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    init_from: str | None = None      # start from this checkpoint's weights (fine-tuning; its model sizes win)
    freeze_bn: bool = False           # keep every batch-norm layer's statistics (fine-tuning on a few photos)
    mix_data: str | None = None       # co-training: every epoch adds as many samples of this dataset's train split
                                      # as --data's train split has, drawn afresh (the fine-tune's synthetic anchor)
    regressor_from: str | None = None  # take the crop regressor of this checkpoint, frozen, and train the localizer
                                      # only. It must be the regressor this run would train (same data, seed and
                                      # regressor settings — hybrid-dr's is image-dr's): the benchmark trains it once
    space: str | None = None          # parameter space YAML (dr/adr); None = the one in the dataset's manifest
    loc_data: str | None = None       # the localizer's frames from this dataset (same camera and object); None: --data.
                                      # The two nets train apart (own losses, own weights), so each may see other data
    # ---- sizes and optimisation (filled from the profile; explicit values win) ----
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3                  # the crop regressor's peak learning rate (3e-3 left it on the "average of the
                                      # 24 symmetric answers" plateau for 10+ epochs under render-time DR; measured)
    loc_lr: float = 3e-3              # the localizer's (at 1e-3 it trailed: 11 px vs 8.7 px centre error)
    weight_decay: float = 1e-4
    warmup_frac: float = 0.03
    max_samples: int | None = None    # use only the first N samples of the dataset (tests, quick runs)
    val_frac: float = 0.1
    val_max: int = 1000               # validate on at most this many held-out samples
    val_every: int = 4                # validate every Nth epoch and at the last (the weights do not depend on it;
                                      # one pass through the whole pose task ≈ 1.6 s: every epoch was ≈ 30 % of a
                                      # default training)
    num_threads: int | None = 1       # torch CPU threads (None: torch's default). 1: on a shared CPU, more threads
                                      # spin and slow everyone down (measured 20× slower inference at 2 threads under load)
    # ---- model ----
    crop_px: int = 80                 # regressor input side. 80 (was 64): the photos' cube (53–59 px) at ≈ its own
                                      # resolution; tune session, render-dr + image-dr seeds 0–2 against 64: te −4.9
                                      # mm [−9.4, −0.1], AR +0.038 [+0.009, +0.068]; training ≈ 1.3–1.5× longer
    loc_width: int = 16
    loc_batch_frac: float = 0.5       # the localizer trains on this fraction of each batch (its task is easier)
    reg_width: int = 32
    reg_hidden: int = 256
    kp_head: str = "fc"               # keypoints for PnP: "fc" (regressed with the pose) or "dense" (cells vote)
    crop_factor: float = 0.75         # regressor crop side / localizer size (the rendered crop's side)
    # ---- crop jitter, modelled on the localizer's errors ----
    jitter_scale: float = 0.15        # side × U(1 − s, 1 + s)
    jitter_shift: float = 0.08        # centre + U(−s, s) · side, per axis
    refine_iters: int = 2             # at test time: re-crop around the current estimate this many times (2: chosen
                                      # on the tune session: 10.6° → 8.8°, te flat; 3 no better)
    resize_crop: bool = True          # … re-sizing the crop from the estimate too (False: re-centre only, as before)
    hypotheses: int = 3               # at test time: localizer peaks looked at, the best one refined
                                      # (PoseModel.infer); 3: chosen on the tune session (8 models: te lower or
                                      # equal in 7; 5 = 3)
    sym_split: bool = False           # True: rotation modulo the shape's 24 symmetries + a classifier (PoseModel)
    head: str = "pnp-rot"             # the reported pose: "pnp-rot" (PnP rotation, direct translation: best on the
                                      # tune session and synthetic val), "pnp" (keypoints + PnP), "direct" or
                                      # "pnp-mean" (PnP's rotation, the mean of both translations; README, "Depth")
    # ---- loss weights ----
    w_rot: float = 1.0
    w_centre: float = 5.0
    w_depth: float = 3.0
    w_loc: float = 1.0
    w_cls: float = 1.0                # which shape symmetry (the markers' classification), cross-entropy
    w_kp: float = 5.0                 # keypoints (mean L1 per keypoint, crop units, like the centre's)
    w_keep: float = 0.0               # with init_from: pull the regressor's rotation and keypoints toward the init
                                      # model's own outputs on the same crops (learning without forgetting, Li &
                                      # Hoiem 2016; no labels), so a fine-tune that fits depth keeps its rotation
    # ---- ADR (pipeline adr) ----
    adr_success_deg: float = 15.0     # boundary sample "solved": rotation error below this …
    adr_success_depth: float = 0.10   # … and relative depth error below this
    render_backend: str = "process"   # ADR's render workers: "process" (spawned) or "ray" (actors; --executor ray)
    precision: str = "bf16"           # training forward: "bf16" (autocast where the device has native bf16, output
                                      # layers in fp32) or "fp32". Inference is always fp32. bf16: training 1.26–1.42×
                                      # faster on this CPU, no resolved change on the tune session (README,
                                      # "Training precision and length")
    log_every: int = 20

    def check(self) -> None:
        spec = pipeline_spec(self.pipeline)
        pick_profile(PROFILE_SIZES, self.profile)
        if self.epochs < 1:
            raise UserError(f"--epochs {self.epochs}: expected a positive integer")
        if self.head not in HEADS:
            raise UserError(f"--head {self.head}: expected one of {', '.join(HEADS)}")
        if self.render_backend not in ("process", "ray"):
            raise UserError(f"render_backend {self.render_backend}: expected process or ray")
        if self.val_every < 1:
            raise UserError(f"--val-every {self.val_every}: expected a positive integer")
        if self.hypotheses < 1:
            raise UserError(f"--hypotheses {self.hypotheses}: expected a positive integer")
        if self.crop_px % 16:
            raise UserError(f"crop_px {self.crop_px}: expected a multiple of 16")
        if self.precision not in ("fp32", "bf16"):
            raise UserError(f"--precision {self.precision}: expected fp32 or bf16")
        if self.kp_head not in ("fc", "dense"):
            raise UserError(f"--kp-head {self.kp_head}: expected fc or dense")
        if not self.data:
            raise UserError("--data: a synthetic dataset directory is required")
        if spec.loc_dataset and not self.loc_data:
            raise UserError(f"--pipeline {self.pipeline}: --loc-data is required (a {spec.loc_dataset!r} dataset "
                            f"for the localizer's frames)")
        if self.mix_data and self.pipeline == "adr":
            raise UserError("mix_data: not with --pipeline adr (its training set is ADR's rolling render buffer)")
        if self.regressor_from and (self.pipeline == "adr" or self.init_from or self.w_loc == 0):
            raise UserError("--regressor-from: not with --pipeline adr, init_from or a frozen localizer")
        if self.loc_data and self.pipeline == "adr":
            raise UserError("--loc-data: not with --pipeline adr (its localizer trains on ADR's own renders)")
        if self.w_keep > 0 and not self.init_from:
            raise UserError(f"w_keep {self.w_keep}: keeps the init model's outputs, so it needs init_from")
        if not self.out:
            raise UserError("--out: an output directory is required")


PROFILE_SIZES: dict[str, dict[str, Any]] = {
    # CI / smoke: tiny nets, a handful of samples, well under a minute on one core
    "quick": dict(epochs=2, batch_size=16, max_samples=64, val_max=32, loc_width=8, reg_width=8,
                  reg_hidden=32, log_every=1, loc_batch_frac=1.0,
                  hypotheses=1),  # one localizer peak: tiny nets, and scoring stays fast in CI
    # 2-core CPU: ≈10k samples × 10 epochs, sized for ≤ 15 minutes on an idle 2-core machine
    "default": dict(),
    # GPU: wider nets, bigger crops, longer
    "full": dict(epochs=60, batch_size=128, crop_px=96, loc_width=32, reg_width=64, reg_hidden=512, lr=1e-3,
                 loc_batch_frac=1.0, num_threads=None),
}


def make_config(profile: str = "default", **overrides: Any) -> TrainConfig:
    """The profile's sizes, then every override that is not None."""
    cfg = replace(TrainConfig(profile=profile), **pick_profile(PROFILE_SIZES, profile))
    names = {f.name for f in fields(TrainConfig)}
    bad = set(overrides) - names
    if bad:
        raise UserError(f"unknown training option(s): {', '.join(sorted(bad))}")
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    cfg.check()
    return cfg
