"""SimGAN refiner training (Shrivastava et al. 2017, Algorithm 1), one readable loop.

    1. pre-train R on self-regularization alone (pretrain_r_steps),
    2. pre-train D on real vs R(synthetic) (pretrain_d_steps),
    3. `steps` iterations of: K_g refiner steps (adversarial + λ·self-reg), K_d discriminator steps
       (real vs refined, half of the refined batch from the history buffer once it is full).
Training data: random P×P windows of the synthetic crops vs scale-matched random P×P patches of the
unlabelled real images (see refiner/data.py). Outputs in cfg.out:
    refiner.pt (weights + everything needed to apply it + the list of real files it saw),
    refiner_card.json (the same without weights), state.pt (resume), log.csv, losses.png,
    grids/step_NNNNNN.png (synthetic | refined | 4·|refined − synthetic| | real).
"""
from __future__ import annotations

import csv
import io
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from core.device import pick_device
from core.profiles import pick_profile
from core.io import (UserError, atomic_savefig, atomic_torch_save, atomic_write_json, atomic_write_png,
                     atomic_write_text, code_version, load_torch_file)
from refiner import data as rdata
from refiner.apply import sample_grid
from refiner.model import CKPT_FORMAT, HistoryBuffer, PatchDiscriminator, Refiner


@dataclass
class RefinerConfig:
    synthetic: str = ""               # synthetic dataset dir
    real: str = ""                    # folder of images, BOP root, or real-set name
    out: str = "runs/refiner"
    profile: str = "default"
    seed: int = 0
    device: str = "auto"
    resume: bool = False
    sessions: tuple[str, ...] = ()    # real sessions the refiner may see (empty = all)
    include: tuple[str, ...] = ()     # fnmatch globs on real paths relative to the root
    exclude: tuple[str, ...] = ()
    # model
    ch: int = 32                      # feature maps (paper: 64; 32 keeps apply at ~60 ms per 128² crop on 1 core)
    n_blocks: int = 4
    num_threads: int | None = None    # torch.set_num_threads on CPU (None: torch's default); 1 is fastest on a busy box
    # data
    patch_px: int = 64
    batch: int = 16
    scale_match: bool = True          # real patches resampled to the synthetic crops' pixel scale
    max_real_images: int = 400        # cap on images held in memory (evenly spaced subset)
    # optimisation
    # λ chosen with refine check (see refiner/README.md): λ ≤ 1 erases the markers/cube, λ = 10 alone loses
    # a third of the ArUco detections, λ = 10 + λ_cube = 30 keeps 99.6 % of them (corner shift 0.12 px)
    lam: float = 10.0                 # self-regularization weight (mean |R(x) − x| per pixel vs mean BCE per patch)
    lam_cube: float = 30.0            # extra self-regularization on the cube's pixels (crop_masks): mean(mask·|R(x) − x|)
    k_g: int = 1
    k_d: int = 1
    lr_r: float = 2e-4
    lr_d: float = 2e-4
    pretrain_r_steps: int = 20        # R starts as the identity (zero-init output conv): little to pre-train
    pretrain_d_steps: int = 100
    steps: int = 500                  # ≈ 620 steps in all: ≤ 15 min on 2 CPU cores at ≤ 1.4 s per step
    buffer_capacity: int = 512
    # logging
    log_every: int = 10
    grid_every: int = 100
    ckpt_every: int = 100
    grid_rows: int = 6
    stop_at: int = 0                  # >0: stop after this global step (state.pt kept; rerun with resume)


PROFILES: dict[str, dict] = {
    # ≤ 1 min on one CPU core: a smoke test of the whole pipeline
    "quick": dict(ch=16, n_blocks=2, patch_px=48, batch=8, pretrain_r_steps=10, pretrain_d_steps=10, steps=60,
                  buffer_capacity=128, log_every=5, grid_every=30, ckpt_every=30),
    # ≈ 10–15 min on the 2-core CPU
    "default": dict(),
    # the paper's width, for a GPU
    "full": dict(ch=64, n_blocks=4, batch=32, pretrain_r_steps=500, pretrain_d_steps=200, steps=3000,
                 buffer_capacity=2048, grid_every=250, ckpt_every=250),
}


def make_config(profile: str = "default", **overrides) -> RefinerConfig:
    """Config of a profile with explicit overrides (None values are ignored)."""
    kw = {**pick_profile(PROFILES, profile), **{k: v for k, v in overrides.items() if v is not None}}
    names = {f.name for f in fields(RefinerConfig)}
    unknown = set(kw) - names
    if unknown:
        raise TypeError(f"unknown RefinerConfig fields: {sorted(unknown)}")
    return RefinerConfig(profile=profile, **kw)


# ---------------------------------------------------------------------------------------------- helpers

def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Mean over patches of the per-patch cross-entropy (the paper sums; the mean keeps λ batch-size free)."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, 1.0 if real else 0.0))


def _plot_losses(rows: list[dict], out_png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if not rows:
        return
    step = [r["step"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    for k in ("loss_reg", "loss_adv", "loss_d"):
        ax[0].plot(step, [r[k] for r in rows], label=k)
    ax[0].set_xlabel("step"); ax[0].set_yscale("log"); ax[0].legend()
    for k in ("d_acc_real", "d_acc_refined"):
        ax[1].plot(step, [r[k] for r in rows], label=k)
    ax[1].set_xlabel("step"); ax[1].set_ylim(0, 1); ax[1].legend()
    fig.tight_layout()
    atomic_savefig(fig, out_png, dpi=90)
    plt.close(fig)


LOG_FIELDS = ["step", "phase", "loss_reg", "loss_adv", "loss_d", "d_acc_real", "d_acc_refined", "buffer", "elapsed_s"]


def _write_log(rows: list[dict], path: Path) -> None:
    s = io.StringIO()
    w = csv.DictWriter(s, fieldnames=LOG_FIELDS)
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.5g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write_text(path, s.getvalue())


def _comparable(cfg: RefinerConfig) -> dict:
    """The config fields a resumed run must share with the original."""
    d = asdict(cfg)
    for k in ("out", "device", "resume", "stop_at", "num_threads"):
        d.pop(k)
    d["sessions"], d["include"], d["exclude"] = list(cfg.sessions), list(cfg.include), list(cfg.exclude)
    return d


# ---------------------------------------------------------------------------------------------- training

def train_refiner(cfg: RefinerConfig, progress: bool = True) -> Path:
    """Train a SimGAN refiner; returns the path of refiner.pt (state.pt when stopped by cfg.stop_at).
    Resumes from cfg.out/state.pt with cfg.resume."""
    from render.dataset import SyntheticDataset

    out = Path(cfg.out)
    final = out / "refiner.pt"
    state_path = out / "state.pt"
    if (final.exists() or state_path.exists()) and not cfg.resume:
        raise UserError(f"{out}: already holds a refiner run; pass --resume to continue it or choose another --out")
    if cfg.resume and final.exists():
        return final  # finished earlier: nothing to do
    device = pick_device(cfg.device)
    if cfg.num_threads and device.type == "cpu":
        torch.set_num_threads(cfg.num_threads)
    ds = SyntheticDataset(cfg.synthetic)
    crops = ds.crops
    if crops.ndim != 4 or crops.shape[3] != 3:
        raise UserError(f"{ds.root}: crops: expected (n,C,C,3) RGB, got shape {crops.shape}")
    crop_px = int(crops.shape[1])
    crop_masks = ds.crop_masks if cfg.lam_cube else None
    if cfg.patch_px > crop_px:
        raise UserError(f"{ds.root}: crops are {crop_px} px, smaller than the refiner's {cfg.patch_px}-px patches")
    real_files, real_source = rdata.list_real_images(cfg.real, cfg.sessions, cfg.include, cfg.exclude)
    if len(real_files) > cfg.max_real_images:  # evenly spaced, deterministic subset
        keep = np.linspace(0, len(real_files) - 1, cfg.max_real_images).round().astype(int)
        real_files = [real_files[i] for i in keep]
        real_source["files"] = [real_source["files"][i] for i in keep]
    real_images = rdata.load_real_images(real_files)
    scales = rdata.crop_scales(ds.labels, crop_px) if cfg.scale_match else None
    cam_w = float(ds.manifest["full_hw"][1])

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    R = Refiner(cfg.ch, cfg.n_blocks).to(device)
    D = PatchDiscriminator().to(device)
    opt_r = torch.optim.Adam(R.parameters(), lr=cfg.lr_r, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(0.5, 0.999))
    buffer = HistoryBuffer(cfg.buffer_capacity, seed=cfg.seed)
    # fixed samples for the grids: same synthetic crops and real patches at every logged step
    grid_rng = np.random.default_rng(cfg.seed + 1)
    grid_syn = crops[np.sort(grid_rng.choice(len(crops), min(cfg.grid_rows, len(crops)), replace=False))]
    grid_real = rdata.sample_real_patches(real_images, len(grid_syn), cfg.patch_px, grid_rng, scales, cam_w)

    step, rows, elapsed0 = 0, [], 0.0
    if cfg.resume and state_path.exists():
        st = load_torch_file(state_path, "refiner training state", None, device)
        if st["config"] != _comparable(cfg):
            diff = sorted(k for k in st["config"] if st["config"][k] != _comparable(cfg).get(k))
            raise UserError(f"{state_path}: --resume: the run was started with different settings ({', '.join(diff)})")
        R.load_state_dict(st["R"]); D.load_state_dict(st["D"])
        opt_r.load_state_dict(st["opt_r"]); opt_d.load_state_dict(st["opt_d"])
        buffer.load_state_dict(st["buffer"], device)
        rng.bit_generator.state = st["rng"]
        torch.set_rng_state(st["torch_rng"])
        step, rows, elapsed0 = st["step"], st["rows"], st["elapsed_s"]

    def syn_batch() -> torch.Tensor:
        return rdata.to_tensor(rdata.sample_synthetic_patches(crops, cfg.batch, cfg.patch_px, rng), device)

    def real_batch() -> torch.Tensor:
        return rdata.to_tensor(rdata.sample_real_patches(real_images, cfg.batch, cfg.patch_px, rng, scales, cam_w), device)

    def d_step(use_buffer: bool) -> tuple[float, float, float]:
        real = real_batch()
        with torch.no_grad():
            fake = R(syn_batch())
        if use_buffer:
            fake = buffer.query(fake)
        lr, lf = D(real), D(fake)
        loss = _bce(lr, True) + _bce(lf, False)
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()
        return loss.item(), (lr > 0).float().mean().item(), (lf < 0).float().mean().item()

    def r_step(adversarial: bool) -> tuple[float, float]:
        if cfg.lam_cube:
            xs, ms = rdata.sample_synthetic_windows(crops, crop_masks, cfg.batch, cfg.patch_px, rng)
            x, m = rdata.to_tensor(xs, device), torch.from_numpy(ms).to(device).float().unsqueeze(1)
        else:
            x, m = syn_batch(), None
        y = R(x)
        loss_reg = (y - x).abs().mean()
        D.requires_grad_(False)  # R's step must not accumulate gradients in D
        loss_adv = _bce(D(y), True) if adversarial else torch.zeros((), device=device)
        loss = loss_adv + cfg.lam * loss_reg
        if m is not None:
            # the cube is what the labels describe, and what a content-biased D most wants erased
            loss = loss + cfg.lam_cube * ((y - x).abs() * m).mean()
        opt_r.zero_grad(set_to_none=True)
        loss.backward()
        opt_r.step()
        D.requires_grad_(True)
        return loss_reg.item(), loss_adv.item()

    n_pr, n_pd = cfg.pretrain_r_steps, cfg.pretrain_d_steps
    total = n_pr + n_pd + cfg.steps
    t0 = time.time() - elapsed0
    (out / "grids").mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=total, initial=step, desc="refiner", unit="step", dynamic_ncols=True, leave=False,
               disable=not progress)
    while step < total and not (cfg.stop_at and step >= cfg.stop_at):
        lreg = ladv = ld = acc_r = acc_f = float("nan")
        if step < n_pr:
            phase = "pretrain_r"
            lreg, _ = r_step(adversarial=False)
        elif step < n_pr + n_pd:
            phase = "pretrain_d"
            ld, acc_r, acc_f = d_step(use_buffer=False)
        else:
            phase = "adversarial"
            for _ in range(cfg.k_g):
                lreg, ladv = r_step(adversarial=True)
            for _ in range(cfg.k_d):
                ld, acc_r, acc_f = d_step(use_buffer=True)
        step += 1
        bar.update(1)
        if step % cfg.log_every == 0 or step == total:
            row = dict(step=step, phase=phase, loss_reg=lreg, loss_adv=ladv, loss_d=ld, d_acc_real=acc_r,
                       d_acc_refined=acc_f, buffer=len(buffer), elapsed_s=round(time.time() - t0, 1))
            rows.append(row)
            bar.set_postfix(phase=phase[:6], reg=f"{lreg:.3f}", adv=f"{ladv:.2f}", d=f"{ld:.2f}",
                            acc=f"{acc_r:.2f}/{acc_f:.2f}")
        if step % cfg.grid_every == 0 or step == total:
            atomic_write_png(out / "grids" / f"step_{step:06d}.png", sample_grid(R, grid_syn, grid_real, device))
        if step % cfg.ckpt_every == 0 or step == total or step == cfg.stop_at:
            _write_log(rows, out / "log.csv")
            atomic_torch_save(dict(config=_comparable(cfg), step=step, rows=rows, elapsed_s=time.time() - t0,
                                   R=R.state_dict(), D=D.state_dict(), opt_r=opt_r.state_dict(),
                                   opt_d=opt_d.state_dict(), buffer=buffer.state_dict(),
                                   rng=rng.bit_generator.state, torch_rng=torch.get_rng_state()), state_path)
    bar.close()
    if step < total:  # stopped early on purpose: resumable
        return state_path
    _plot_losses([r for r in rows if r["phase"] == "adversarial"] or rows, out / "losses.png")
    meta = dict(format=CKPT_FORMAT, arch=dict(ch=cfg.ch, n_blocks=cfg.n_blocks), crop_px=crop_px,
                frame_hw=list(ds.manifest.get("frame_hw", [])), patch_px=cfg.patch_px,
                lam=cfg.lam, lam_cube=cfg.lam_cube, k_g=cfg.k_g, k_d=cfg.k_d, steps_done=step, seed=cfg.seed,
                profile=cfg.profile, config=_comparable(cfg), code_version=code_version(),
                synthetic=dict(path=str(ds.root.resolve()), content_hash=ds.manifest.get("content_hash"),
                               n=len(ds), object_name=ds.manifest.get("object_name")),
                real=real_source, train_time_s=round(time.time() - t0, 1),
                final_log=rows[-1] if rows else None)
    card = {k: v for k, v in meta.items()}
    atomic_write_json(out / "refiner_card.json", card)
    atomic_torch_save(dict(meta, state_dict={k: v.cpu() for k, v in R.state_dict().items()}), final)
    return final
