"""`train(cfg) -> Path`: train localizer + crop regressor jointly on a synthetic dataset.

One loop, one optimizer, one progress bar. Every epoch: reseed every random stream from (seed, epoch)
(so `--resume` from an epoch checkpoint continues exactly like an uninterrupted run), train, write the checkpoint
atomically, the curves and the model card; every `val_every` epochs and at the last, first validate end to end on
the held-out split (through the localizer; on ground-truth crops too, as a diagnostic, every GT_CROP_EVERY epochs
and at the last). Validation never touches the weights, so how often it runs does not change the model.

Several processes (`torchrun --nproc_per_node N cli.py train ...`: DDP, NCCL on GPUs, gloo on CPU) train
one model with the same GLOBAL batch as one process: every rank draws the same batch and crop jitter from
the (seed, epoch) streams and computes its contiguous share; DDP averages the gradients. Rank 0
validates and writes; the model card records each rank's parameter checksum (they must agree).
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from core.device import autocast_context, bf16_supported, cpu_conv_layout, pick_device
from core.io import UserError, atomic_savefig, atomic_torch_save, atomic_write_json, atomic_write_text, code_version
from pose_model import geometry as G
from pose_model.config import TrainConfig
from pose_model.data import PoseData, crops_from_rendered, jittered_boxes, split_indices, to_float
from pose_model.model import CKPT_FORMAT, ModelMeta, PoseModel, load_checkpoint, meta_from_dict
from pose_model.pipelines import make_pipeline, warn

CURVE_KEYS = ("epoch", "step", "lr", "train_loss", "train_rot", "train_centre", "train_depth", "train_kp",
              "train_loc", "val_re_med_deg", "val_te_med_mm", "val_acc_5deg_5mm", "val_re_med_deg_direct",
              "val_te_med_mm_direct", "val_pnp_ok", "val_re_med_deg_gtcrop",
              "val_te_med_mm_gtcrop", "val_loc_centre_err_px", "val_loc_size_err", "epoch_time_s", "img_per_s",
              "train_keep")


# the ground-truth-crop diagnostic (a second validation pass) on every 8th epoch and the last: it doubles a validation
GT_CROP_EVERY = 8


def _due(epoch: int, every: int, epochs: int) -> bool:
    """Whether the 0-based `epoch` is one of every `every` epochs or the last of `epochs`."""
    return (epoch + 1) % every == 0 or epoch + 1 == epochs


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay: a pure function of the step (nothing to save for resume)."""
    warm = max(1, int(total * cfg.warmup_frac))
    if step < warm:
        return cfg.lr * (step + 1) / warm
    p = (step - warm) / max(1, total - warm)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def seed_epoch(seed: int, epoch: int) -> tuple[np.random.Generator, torch.Generator]:
    s = seed * 1_000_003 + epoch
    torch.manual_seed(s)
    return np.random.default_rng([seed, epoch]), torch.Generator().manual_seed(s)


def build_model(meta: ModelMeta, syms: np.ndarray, seed: int) -> PoseModel:
    torch.manual_seed(seed)
    return PoseModel(meta, torch.as_tensor(syms, dtype=torch.float32))


def _load_dataset(path: str):
    try:
        from render.dataset import SyntheticDataset
    except ModuleNotFoundError as e:
        raise UserError(f"--data {path}: the renderer's dataset reader is not available ({e})") from None
    return SyntheticDataset(path)


def _companion_dataset(path: str, flag: str, manifest: dict, spec, keys: tuple[str, ...], why: str = ""):
    """A second dataset beside --data (--loc-data, mix_data): loaded with errors that name `flag`, and refused
    unless its object and the manifest `keys` match --data's."""
    try:
        ds = _load_dataset(path)
    except UserError as e:  # name the flag: two dataset folders are in play
        raise UserError(f"{flag}: {e}") from None
    if ds.spec.name != spec.name:
        raise UserError(f"{flag} {path}: object: {ds.spec.name!r}, but --data is of {spec.name!r}")
    for key in keys:
        if list(np.atleast_1d(ds.manifest[key])) != list(np.atleast_1d(manifest[key])):
            raise UserError(f"{flag} {path}: {key}: {ds.manifest[key]}, but --data has {manifest[key]}{why}")
    return ds


# what the crop regressor's training depends on: two runs that agree on these (and on the data and the image
# randomization) train the same regressor, step for step, whatever their localizers do
REGRESSOR_KEYS = ("seed", "epochs", "batch_size", "lr", "weight_decay", "warmup_frac", "max_samples", "val_frac",
                  "crop_px", "reg_width", "reg_hidden", "kp_head", "crop_factor", "jitter_scale", "jitter_shift",
                  "sym_split", "w_rot", "w_centre", "w_depth", "w_kp", "w_cls", "loc_batch_frac", "mix_data",
                  "init_from", "precision", "w_keep")


# what a checkpoint from before the key was recorded was trained with
KEYS_ADDED_LATER = {"kp_head": "fc", "precision": "fp32", "w_keep": 0.0}


def shared_regressor(cfg: TrainConfig, manifest: dict, pipeline) -> dict[str, torch.Tensor]:
    """The regressor weights of cfg.regressor_from, after checking that they are the ones this run would train."""
    path = cfg.regressor_from
    ck = load_checkpoint(path)
    why = "the shared regressor must be the one this run would train"
    if ck.get("dataset_hash") != manifest.get("content_hash"):
        raise UserError(f"--regressor-from {path}: trained on another dataset than --data {cfg.data} ({why})")
    if ck["config"].get("regressor_from"):
        raise UserError(f"--regressor-from {path}: its regressor was itself shared; name the run that trained it")
    theirs = ck["config"]
    for key in REGRESSOR_KEYS:
        if theirs.get(key, KEYS_ADDED_LATER.get(key)) != getattr(cfg, key):
            raise UserError(f"--regressor-from {path}: config.{key} is {theirs.get(key)!r}, this run's is "
                            f"{getattr(cfg, key)!r} ({why})")
    ranges = (ck.get("pipeline_card") or {}).get("image_ranges")
    if ranges != pipeline.card().get("image_ranges"):
        raise UserError(f"--regressor-from {path}: pipeline_card.image_ranges differ from this run's ({why})")
    if ck.get("epoch") != theirs["epochs"] - 1:
        raise UserError(f"--regressor-from {path}: an unfinished run (epoch {ck.get('epoch', -1) + 1} of "
                        f"{theirs['epochs']})")
    return {k[len("regressor."):]: v for k, v in ck["model"].items() if k.startswith("regressor.")}


def load_loc_data(path: str, manifest: dict, spec, max_samples: int | None, val_frac: float):
    """The localizer's own frames (train --loc-data): → (PoseData, train indices). The dataset must be of the same
    object and camera as --data; its validation split is left out like --data's."""
    ds = _companion_dataset(path, "--loc-data", manifest, spec, ("frame_hw", "full_hw"),
                            " (the localizer needs frames of the same camera)")
    loc = PoseData.from_dataset(ds, max_samples)
    if len(loc) < 2:
        raise UserError(f"--loc-data {path}: need at least 2 samples, found {len(loc)}")
    return loc, torch.as_tensor(split_indices(len(loc), val_frac)[0]), ds.manifest.get("content_hash")


def add_mix_data(data: PoseData, path: str, manifest: dict, spec, val_frac: float):
    """--data's samples followed by those of the co-training set `path` (same object, camera and crop size) →
    (combined PoseData, indices of the mix set's train split in it, its content hash)."""
    ds = _companion_dataset(path, "mix_data", manifest, spec, ("frame_hw", "full_hw", "crop_px"))
    mix = PoseData.from_dataset(ds)
    both = PoseData(**{f: torch.cat([getattr(data, f), getattr(mix, f)]) for f in data.__dataclass_fields__})
    return both, len(data) + split_indices(len(mix), val_frac)[0], ds.manifest.get("content_hash")


def space_for(cfg: TrainConfig, ds):
    """(parameter space, where it came from): --space when given, else the space the dataset was rendered with
    (its manifest's randomization.space), else the shipped default (real-photo datasets record none)."""
    from randomizer.space import load_space, space_from_dict
    if cfg.space:
        return load_space(cfg.space), cfg.space
    recorded = ds.manifest["randomization"].get("space")
    if recorded is not None:
        where = f"{ds.root / 'manifest.json'}: randomization.space"
        return space_from_dict({"params": recorded}, where), where  # manifest: ParamSpace.to_dict()
    return load_space(None), "randomizer/default.yaml"


@torch.no_grad()
def evaluate(model: PoseModel, data: PoseData, idx: np.ndarray, device: torch.device, refine_iters: int,
             batch_size: int = 128, resize_crop: bool = True, head: str = "pnp-rot", gt_crop: bool = True) -> dict:
    """End-to-end metrics on synthetic samples (crops cut from the rendered crop, which covers the
    neighbourhood of the cube at high resolution) for `head` and for the direct head on the same crops,
    plus (gt_crop) the ground-truth-crop diagnostic, a second pass as long as the first."""
    model.eval()
    syms = model.syms
    res: dict[str, list] = {k: [] for k in ("re", "te", "re_d", "te_d", "ok", "re_gt", "te_gt", "c_err", "s_err")}
    for i in range(0, len(idx), batch_size):
        b = torch.as_tensor(idx[i:i + batch_size])
        frames = to_float(data.frames[b], device)
        crops = to_float(data.crops[b], device)
        cb, K = data.crop_box[b].to(device), data.K_full[b].to(device)
        R, t, c = data.R[b].to(device), data.t[b].to(device), data.centre[b].to(device)
        src = lambda box, n: crops_from_rendered(crops, cb, box, n)  # noqa: E731
        out = model.infer(frames, src, K, refine_iters, resize_crop=resize_crop, head=head)
        gt_box = G.box_around(c, cb[:, 2] * model.meta.crop_factor)
        out_gt = model.infer(frames, src, K, refine_iters, boxes=gt_box, resize_crop=resize_crop, head=head) \
            if gt_crop else None
        res["re"].append(G.sym_rotation_error_deg(out["R"], R, syms))
        res["te"].append((out["t_m"] - t).norm(dim=-1) * 1000)
        res["re_d"].append(G.sym_rotation_error_deg(out["R_direct"], R, syms))
        res["te_d"].append((out["t_direct"] - t).norm(dim=-1) * 1000)
        res["ok"].append(out["pnp_ok"].float())
        if out_gt is not None:
            res["re_gt"].append(G.sym_rotation_error_deg(out_gt["R"], R, syms))
            res["te_gt"].append((out_gt["t_m"] - t).norm(dim=-1) * 1000)
        res["c_err"].append((out["loc_centre"] - c).norm(dim=-1))
        res["s_err"].append(torch.log(out["loc_side"] / model.meta.crop_factor / cb[:, 2]).abs())
    r = {k: torch.cat(v).cpu().numpy() if v else np.zeros(0) for k, v in res.items()}
    med = lambda a: float(np.median(a)) if len(a) else float("nan")  # noqa: E731
    return {"val_re_med_deg": med(r["re"]), "val_te_med_mm": med(r["te"]),
            "val_acc_5deg_5mm": float(np.mean((r["re"] < 5) & (r["te"] < 5))) if len(r["re"]) else float("nan"),
            "val_re_med_deg_direct": med(r["re_d"]), "val_te_med_mm_direct": med(r["te_d"]),
            "val_pnp_ok": float(np.mean(r["ok"])) if len(r["ok"]) else float("nan"),
            "val_loc_centre_err_px": med(r["c_err"]), "val_loc_size_err": med(r["s_err"]),
            "val_n": int(len(idx)),
            **({"val_re_med_deg_gtcrop": med(r["re_gt"]), "val_te_med_mm_gtcrop": med(r["te_gt"])} if gt_crop else {})}


class JointForward(torch.nn.Module):
    """localizer(frames), regressor(crops) in one forward: the module DDP wraps (it syncs gradients of
    what its forward used)."""

    def __init__(self, model: PoseModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor, crops: torch.Tensor):
        return self.model.localizer(frames), self.model.regressor(crops)


KEEP_KP_WEIGHT = 5.0  # keep_loss: keypoints against rotation, as the default training weighs them (w_kp / w_rot)


def keep_loss(out: dict, teacher: PoseModel, crops: torch.Tensor, device: torch.device,
              precision: str) -> torch.Tensor:
    """(B,) learning without forgetting: the chordal distance between the rotation the regressor reads from each crop
    and the one the `teacher` (the init model, frozen, eval mode) reads from the same crop, plus KEEP_KP_WEIGHT × the
    mean L1 distance (crop units) of their keypoints. Uses no label."""
    with torch.no_grad(), autocast_context(device, precision):
        ref = teacher.regressor(crops)
    d_rot = (G.rot6d_to_matrix(out["rot6d"]) - G.rot6d_to_matrix(ref["rot6d"].float())).square().sum((-1, -2))
    d_kp = (out["kp"] - ref["kp"].float()).abs().sum(-1).mean(-1)
    return d_rot.clamp_min(1e-8).sqrt() + KEEP_KP_WEIGHT * d_kp


def train_step(model: PoseModel, data: PoseData, b: torch.Tensor, cfg: TrainConfig, pipeline, ctx,
               gen: torch.Generator, device: torch.device, rank: int = 0, world: int = 1,
               joint: torch.nn.Module | None = None, loc: tuple[PoseData, torch.Tensor] | None = None,
               teacher: PoseModel | None = None):
    """Forward + losses for one (global) batch, or for this rank's share of it (rank of world).
    loc: the localizer's own (data, train indices) (`--loc-data`): its frames are those train indices picked by
    the batch's indices modulo their count, so they follow the epoch's shuffle and seed.
    teacher: the init model (cfg.w_keep > 0): its rotation and keypoints on the same crops (keep_loss).
    → (loss, parts dict, per-sample ADR success of the share, bool)."""
    nl = max(1, int(round(len(b) * cfg.loc_batch_frac)))
    c_all = data.centre[b].to(device)
    # jitter drawn for the whole global batch, so the shares together see what one process would
    box_all = jittered_boxes(c_all, data.crop_box[b][:, 2].to(device) * cfg.crop_factor, cfg.jitter_scale,
                             cfg.jitter_shift, gen)
    share, lshare = slice(rank * len(b) // world, (rank + 1) * len(b) // world), \
        slice(rank * nl // world, (rank + 1) * nl // world)
    bl, b, box = b[lshare], b[share], box_all[share]
    f_src, bl = (data, bl) if loc is None else (loc[0], loc[1][bl % len(loc[1])])
    frames = pipeline.augment(to_float(f_src.frames[bl], device), ctx)
    if cfg.regressor_from:  # a shared, frozen regressor: the localizer alone, its random streams as in the full run
        pipeline.skip(len(b), cfg.crop_px, cfg.crop_px)
        with autocast_context(device, cfg.precision):
            out_l = model.localizer(frames)
        l_loc = model.loc_loss(out_l, f_src.centre[bl].to(device), f_src.crop_box[bl][:, 2].to(device))
        return cfg.w_loc * l_loc, {"train_loc": l_loc.detach().item()}, torch.zeros(len(b), dtype=torch.bool)
    crops_r = to_float(data.crops[b], device)
    cb, K = data.crop_box[b].to(device), data.K_full[b].to(device)
    R, t = data.R[b].to(device), data.t[b].to(device)
    crops = pipeline.augment(crops_from_rendered(crops_r, cb, box, cfg.crop_px), ctx)
    R_allo, off, code, Kc = model.reg_targets(R, t, K, box)
    kp = model.kp_targets(R, t, Kc)
    with autocast_context(device, cfg.precision):  # the losses below: in fp32 (the nets' outputs are)
        if cfg.w_loc > 0:
            out_l, out_r = (joint or JointForward(model))(frames, crops)
        else:  # a frozen localizer (fine-tuning the regressor only): not run at all
            out_r = model.regressor(crops)
    l_loc = model.loc_loss(out_l, f_src.centre[bl].to(device), f_src.crop_box[bl][:, 2].to(device)) \
        if cfg.w_loc > 0 else torch.zeros((), device=device)
    l_reg, (l_rot, l_c, l_d, l_kp) = model.reg_loss(out_r, R_allo, off, code,
                                                    (cfg.w_rot, cfg.w_centre, cfg.w_depth, cfg.w_kp, cfg.w_cls), kp)
    loss = l_reg.mean() + cfg.w_loc * l_loc
    l_keep = keep_loss(out_r, teacher, crops, device, cfg.precision).mean() if teacher is not None else None
    if l_keep is not None:
        loss = loss + cfg.w_keep * l_keep
    with torch.no_grad():  # the task's success on this batch (ADR's score): rotation and relative depth
        Rp = G.rot6d_to_matrix(out_r["rot6d"]) @ model.sym_choice(out_r).transpose(-1, -2)
        re = G.sym_rotation_error_deg(Rp, R_allo, model.syms)
        dz = (out_r["depth_code"] - code).abs()  # |log z_pred/z_gt|
        success = (re < cfg.adr_success_deg) & (dz < math.log1p(cfg.adr_success_depth))
    parts = {"train_rot": l_rot.detach().mean().item(), "train_centre": l_c.detach().mean().item(),
             "train_depth": l_d.detach().mean().item(), "train_kp": l_kp.detach().mean().item(),
             "train_loc": l_loc.detach().item(), **({} if l_keep is None else {"train_keep": l_keep.detach().item()})}
    return loss, parts, success


def _write_curves(rows: list[dict], out: Path, png: bool = True) -> None:
    lines = [",".join(CURVE_KEYS)]
    for r in rows:
        lines.append(",".join("" if r.get(k) is None else (f"{r[k]:.6g}" if isinstance(r[k], float) else str(r[k]))
                              for k in CURVE_KEYS))
    atomic_write_text(out / "curves.csv", "\n".join(lines) + "\n")
    if not png:
        return
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        ep = [r["epoch"] for r in rows]
        fig, ax = plt.subplots(1, 3, figsize=(13, 3.6))
        for k in ("train_loss", "train_rot", "train_centre", "train_depth", "train_kp", "train_loc"):
            if all(k in r for r in rows):  # a shared, frozen regressor logs no regressor losses
                ax[0].plot(ep, [r[k] for r in rows], label=k)
        ax[0].set_yscale("log"); ax[0].set_title("training losses"); ax[0].legend(fontsize=7)
        val = [r for r in rows if r.get("val_re_med_deg") is not None]  # every val_every epochs
        gt = [r for r in rows if r.get("val_re_med_deg_gtcrop") is not None]  # every GT_CROP_EVERY epochs
        ax[1].plot([r["epoch"] for r in val], [r["val_re_med_deg"] for r in val], "-o", label="end to end")
        ax[1].plot([r["epoch"] for r in gt], [r["val_re_med_deg_gtcrop"] for r in gt], "--o", label="GT crop")
        ax[1].set_title("val median rotation error (deg)"); ax[1].legend(fontsize=7)
        ax[2].plot([r["epoch"] for r in val], [r["val_te_med_mm"] for r in val], "-o", label="end to end")
        ax[2].plot([r["epoch"] for r in gt], [r["val_te_med_mm_gtcrop"] for r in gt], "--o", label="GT crop")
        ax[2].set_title("val median translation error (mm)"); ax[2].legend(fontsize=7)
        for a in ax:
            a.set_xlabel("epoch"); a.grid(alpha=0.3)
        fig.subplots_adjust(left=0.05, right=0.98, bottom=0.14, top=0.9, wspace=0.25)
        atomic_savefig(fig, out / "curves.png", dpi=90)
        plt.close(fig)
    except Exception as e:  # plotting must never lose a training run
        warn(f"curves.png not written: {e}")


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Train; returns the checkpoint path (OUT/model.pt). See the module docstring."""
    cfg.check()
    device = pick_device(cfg.device)
    rank, world, owns_group = _dist_init(device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    if cfg.batch_size % world:
        raise UserError(f"--batch-size {cfg.batch_size}: must be a multiple of the {world} training processes")
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    out = Path(cfg.out)
    ckpt_path = out / "model.pt"
    ds = _load_dataset(cfg.data)
    manifest = ds.manifest
    pipeline = make_pipeline(cfg.pipeline, space_for(cfg, ds), cfg.seed, device)
    pipeline.check_dataset(manifest, cfg.data)
    data = PoseData.from_dataset(ds, cfg.max_samples)
    if len(data) < 2:
        raise UserError(f"--data {cfg.data}: need at least 2 samples, found {len(data)}")
    train_idx, val_idx = split_indices(len(data), cfg.val_frac)
    val_idx = val_idx[:cfg.val_max]
    if hasattr(pipeline, "attach"):
        pipeline.attach(ds.params[:len(data)], train_idx)
    spec = ds.spec
    mix_idx, mix_hash = None, None
    if cfg.mix_data:
        data, mix_idx, mix_hash = add_mix_data(data, cfg.mix_data, manifest, spec, cfg.val_frac)
    loc, loc_hash = None, None
    if cfg.loc_data:
        loc_frames, loc_idx, loc_hash = load_loc_data(cfg.loc_data, manifest, spec, cfg.max_samples, cfg.val_frac)
        loc = (loc_frames, loc_idx)
    meta = ModelMeta(frame_hw=tuple(manifest["frame_hw"]), full_hw=tuple(manifest["full_hw"]), crop_px=cfg.crop_px,
                     crop_factor=cfg.crop_factor, size_m=float(max(spec.size_m)), loc_width=cfg.loc_width,
                     reg_width=cfg.reg_width, reg_hidden=cfg.reg_hidden,
                     size_xyz_m=tuple(float(v) for v in spec.size_m), sym_split=cfg.sym_split, kp_head=cfg.kp_head)
    init = None
    if cfg.init_from and not (cfg.resume and ckpt_path.exists()):
        init = load_checkpoint(cfg.init_from)
        if init["object_name"] != spec.name:
            raise UserError(f"{cfg.init_from}: a model of {init['object_name']!r}, the data are of {spec.name!r}")
        meta = replace(meta_from_dict(init["meta"]), depth_scale=1.0)  # training learns depth; no calibration
    model = build_model(meta, spec.symmetries, cfg.seed).to(device)
    model = cpu_conv_layout(model, device)  # perf/train_throughput.py --memory-format
    if init is not None:
        model.load_state_dict(init["model"])
    teacher = None
    if cfg.w_keep > 0:  # the init model, frozen (read again on resume: the run's weights have moved since)
        src = init or load_checkpoint(cfg.init_from)
        teacher = PoseModel(meta_from_dict(src["meta"]), torch.as_tensor(spec.symmetries, dtype=torch.float32))
        teacher.load_state_dict(src["model"])
        teacher = teacher.to(device).eval().requires_grad_(False)
    if cfg.regressor_from:
        if world > 1:
            raise UserError("--regressor-from: one training process only (it trains the localizer alone)")
        shared = shared_regressor(cfg, manifest, pipeline)
        model.regressor.load_state_dict(shared)
        model.regressor.requires_grad_(False)  # AdamW leaves parameters without gradients untouched
    joint: torch.nn.Module = JointForward(model)
    opt = torch.optim.AdamW([{"params": model.localizer.parameters(), "lr_scale": cfg.loc_lr / cfg.lr},
                             {"params": model.regressor.parameters(), "lr_scale": 1.0}],
                            lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_epoch = len(train_idx) * (2 if mix_idx is not None else 1)
    steps_per_epoch = pipeline.steps_per_epoch(n_epoch, cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    start_epoch, rows, train_time = 0, [], 0.0

    if cfg.resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path, map_location=device)
        if ck.get("dataset_hash") != manifest.get("content_hash") or ck["config"]["pipeline"] != cfg.pipeline \
                or ck.get("loc_dataset_hash") != loc_hash or ck.get("mix_dataset_hash") != mix_hash:
            raise UserError(f"{ckpt_path}: --resume: the checkpoint was trained on another dataset or pipeline")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        pipeline.load_state_dict(ck.get("pipeline_state", {}))
        start_epoch, rows, train_time = ck["epoch"] + 1, ck["history"], ck["train_time_s"]
    elif ckpt_path.exists():  # like `refine train`: never overwrite a run silently
        raise UserError(f"{ckpt_path}: --out already holds a trained model; pass --resume to continue it "
                        f"(or choose another --out)")
    if start_epoch == 0 and init is None and not cfg.regressor_from:
        with torch.no_grad():  # start the depth head at the data's mean depth code
            b = torch.as_tensor(train_idx[:512])
            K, cb, c = data.K_full[b], data.crop_box[b], data.centre[b]
            _, _, code, _ = model.reg_targets(data.R[b], data.t[b], K, G.box_around(c, cb[:, 2] * cfg.crop_factor))
            model.regressor.head.bias[8] = code.mean().to(device)

    if world > 1:  # after the resume/depth-bias init above, which every rank does the same way
        from torch.nn.parallel import DistributedDataParallel as DDP
        joint = DDP(joint, device_ids=[device.index] if device.type == "cuda" else None)
    lead = rank == 0  # validates, writes, shows the progress bar
    precision_used = "bf16" if cfg.precision == "bf16" and bf16_supported(device) else "fp32"
    if lead:
        out.mkdir(parents=True, exist_ok=True)
    if hasattr(pipeline, "bind"):  # ADR: start its render workers (they need the model to score boundaries)
        pipeline.bind(model, data, cfg, manifest)
    try:
        bar = tqdm(total=total, initial=start_epoch * steps_per_epoch, disable=not (progress and lead), unit="step",
                   dynamic_ncols=True, desc=f"train {cfg.pipeline}")
        step = start_epoch * steps_per_epoch
        for epoch in range(start_epoch, cfg.epochs):
            rng, gen = seed_epoch(cfg.seed, epoch)
            pipeline.set_epoch_seed(cfg.seed * 1_000_003 + epoch + 7_919_000 * rank)  # ranks: own image noise
            model.train()
            if cfg.w_loc == 0:  # frozen: its batch-norm statistics stay those it was trained with
                model.localizer.eval().requires_grad_(False)
            if cfg.freeze_bn:  # a few photos per batch: their statistics would replace the learnt ones
                for mod in model.modules():
                    if isinstance(mod, torch.nn.BatchNorm2d):
                        mod.eval()
            t0, n_img, sums, n_b = time.perf_counter(), 0, {}, 0
            epoch_idx = train_idx if mix_idx is None else \
                np.concatenate([train_idx, rng.choice(mix_idx, len(train_idx), replace=len(mix_idx) < len(train_idx))])
            for idx, ctx in pipeline.batches(epoch_idx, cfg.batch_size, rng):
                for g in opt.param_groups:  # one schedule, each module at its own peak
                    g["lr"] = lr_at(step, total, cfg) * g["lr_scale"]
                b = torch.as_tensor(idx)
                loss, parts, success = train_step(model, data, b, cfg, pipeline, ctx, gen, device, rank, world, joint,
                                                  loc, teacher)
                if world > 1:  # ADR's state must move identically on every rank: score the whole global batch
                    success = _all_gather_cat(success)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                pipeline.report(ctx, success)
                step += 1
                n_b += 1
                n_img += len(idx) // world
                parts["train_loss"] = loss.detach().item()
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + v
                if n_b % cfg.log_every == 0 or n_b == steps_per_epoch:
                    ips = n_img / max(1e-9, time.perf_counter() - t0)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{sums['train_loss'] / n_b:.3f}", img_s=f"{ips:.0f}")
                bar.update(1)
            ep_time = time.perf_counter() - t0
            train_time += ep_time
            if world > 1:  # the logged losses: mean over the ranks' shares (the global batch's loss)
                sums = _all_reduce_mean(sums, device)
            row = {"epoch": epoch + 1, "step": step, "lr": lr_at(step - 1, total, cfg),
                   **{k: v / max(1, n_b) for k, v in sums.items()}, "epoch_time_s": ep_time,
                   "img_per_s": n_img * world / max(1e-9, ep_time)}
            if not lead:
                rows.append(row)
                continue
            if _due(epoch, cfg.val_every, cfg.epochs):
                gt_crop = _due(epoch, GT_CROP_EVERY, cfg.epochs)
                row.update(evaluate(model, data, val_idx, device, cfg.refine_iters, resize_crop=cfg.resize_crop,
                                    head=cfg.head, gt_crop=gt_crop))
                gt_note = f"; GT crop {row['val_re_med_deg_gtcrop']:.2f}° {row['val_te_med_mm_gtcrop']:.2f} mm" \
                    if gt_crop else ""
                bar.write(f"epoch {epoch + 1}/{cfg.epochs}: loss {row['train_loss']:.4f}  val re "
                          f"{row['val_re_med_deg']:.2f}° te {row['val_te_med_mm']:.2f} mm (direct "
                          f"{row['val_re_med_deg_direct']:.2f}° {row['val_te_med_mm_direct']:.2f} mm{gt_note})  loc "
                          f"{row['val_loc_centre_err_px']:.1f} px")
            rows.append(row)
            pipeline.end_epoch(out)
            ck = {"format": CKPT_FORMAT, "config": asdict(cfg), "meta": asdict(meta), "object": spec.to_dict(),
                  "object_name": spec.name, "model": model.state_dict(), "optimizer": opt.state_dict(),
                  "pipeline_state": pipeline.state_dict(), "pipeline_card": pipeline.card(), "epoch": epoch,
                  "history": rows, "train_time_s": train_time, "dataset": str(cfg.data),
                  "dataset_hash": manifest.get("content_hash"), "loc_dataset_hash": loc_hash,
                  "mix_dataset_hash": mix_hash,
                  "code_version": code_version(), "seed": cfg.seed, "world_size": world,
                  "precision_used": precision_used}
            atomic_torch_save(ck, ckpt_path)
            # the PNG costs a second or two: every 5 epochs and at the end
            _write_curves(rows, out, png=_due(epoch, 5, cfg.epochs))
            _write_card(ck, manifest, out)
        bar.close()
        if world > 1:
            sums = _all_gather_cat(torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()[None])
            if lead:
                card = json.loads((out / "model_card.json").read_text())
                card["ddp"] = {"world_size": world, "param_checksum_by_rank": [float(x) for x in sums]}
                atomic_write_json(out / "model_card.json", card)
            import torch.distributed as dist
            dist.barrier()
            if owns_group:
                dist.destroy_process_group()
        return ckpt_path
    finally:
        pipeline.close()


def _dist_init(device: torch.device) -> tuple[int, int, bool]:
    """(rank, world size, whether this call started the process group) from torchrun's environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    import torch.distributed as dist
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size(), True


def _all_gather_cat(x: torch.Tensor) -> torch.Tensor:
    """Every rank's x (same shape), concatenated in rank order: the global batch's order."""
    import torch.distributed as dist
    y = x.to(torch.uint8) if x.dtype == torch.bool else x  # gloo has no bool all_gather
    parts = [torch.empty_like(y) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, y.contiguous())
    return torch.cat(parts).to(x.dtype)


def _all_reduce_mean(sums: dict[str, float], device: torch.device) -> dict[str, float]:
    import torch.distributed as dist
    keys = sorted(sums)
    v = torch.tensor([sums[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(v)
    return {k: float(x) / dist.get_world_size() for k, x in zip(keys, v)}


def _write_card(ck: dict, manifest: dict, out: Path) -> None:
    last = next((r for r in reversed(ck["history"]) if "val_re_med_deg" in r), {})  # the latest validated epoch
    atomic_write_json(out / "model_card.json", {
        "format": "sim2real-pose-card/1", "checkpoint": "model.pt", "object_name": ck["object_name"],
        "pipeline": ck["config"]["pipeline"], **ck["pipeline_card"], "config": ck["config"], "meta": ck["meta"],
        "dataset": {"path": ck["dataset"], "content_hash": ck["dataset_hash"], "n": manifest.get("n"),
                    "randomization": _brief_randomization(manifest.get("randomization")), "refined_by": manifest.get("refined_by")},
        "loc_dataset": ({"path": ck["config"]["loc_data"], "content_hash": ck.get("loc_dataset_hash")}
                        if ck["config"].get("loc_data") else None),
        "mix_dataset": ({"path": ck["config"]["mix_data"], "content_hash": ck.get("mix_dataset_hash")}
                        if ck["config"].get("mix_data") else None),
        "epochs_done": ck["epoch"] + 1, "val_metrics": {k: v for k, v in last.items() if k.startswith("val_")},
        "val_epoch": last.get("epoch"),
        "train_time_s": ck["train_time_s"], "seed": ck["seed"], "code_version": ck["code_version"],
        "init_from": ck["config"].get("init_from"), "precision_used": ck.get("precision_used", "fp32")})


def _brief_randomization(r):
    """The dataset's render-time randomization without the whole parameter space (that is in its manifest)."""
    return {k: v for k, v in r.items() if k != "space"} if isinstance(r, dict) else r

