"""Pose-model throughput on CPU: training img/s, the share of each step spent loading / making crops /
randomizing images / in the model, and inference ms per 640×480 image.

    python3 perf/train_throughput.py [--data DIR] [--profile default] [--pipeline none|dr]
                                           [--threads 1] [--steps 20] [--device cpu]
                                           [--precision fp32,bf16] [--memory-format contiguous,channels_last]
                                           [--repeats 3]

Without --data it uses random images of the dataset contract's shapes (160×120 frames, 128² rendered
crops), which time the same work. Not a test: numbers depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.device import autocast_context, bf16_supported  # noqa: E402
from core.objects import load_object_spec  # noqa: E402
from pose_model.config import make_config  # noqa: E402
from pose_model.data import PoseData, crops_from_rendered, jittered_boxes, to_float  # noqa: E402
from pose_model.model import ModelMeta, PoseModel  # noqa: E402
from pose_model.pipelines import make_pipeline  # noqa: E402


def fake_data(n: int, spec, hw=(120, 160), crop=128) -> PoseData:
    g = torch.Generator().manual_seed(0)
    K = torch.tensor([[610.0, 0, 320], [0, 610, 240], [0, 0, 1]]).expand(n, 3, 3).clone()
    t = torch.stack([torch.rand(n, generator=g) * 0.2 - 0.1, torch.rand(n, generator=g) * 0.2 - 0.1,
                     torch.rand(n, generator=g) * 0.25 + 0.2], -1)
    uv = (K @ t[..., None])[..., 0]
    centre = uv[:, :2] / uv[:, 2:]
    side = 2 * 610 * 0.045 / t[:, 2]
    box = torch.stack([centre[:, 0] + 0.5 - side / 2, centre[:, 1] + 0.5 - side / 2, side], -1)
    return PoseData(frames=torch.randint(0, 255, (n, *hw, 3), dtype=torch.uint8, generator=g),
                    crops=torch.randint(0, 255, (n, crop, crop, 3), dtype=torch.uint8, generator=g),
                    R=torch.eye(3).expand(n, 3, 3).clone(), t=t, K_full=K, centre=centre, crop_box=box)


MEMORY_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def time_training(cfg, meta, spec, data: PoseData, pipeline: str, precision: str, steps: int, dev: torch.device,
                  memory_format: str = "contiguous"):
    """(ms per stage, total s) of `steps` training steps (after 2 warm-up steps) of a fresh model."""
    model = PoseModel(meta, torch.as_tensor(spec.symmetries, dtype=torch.float32)).to(dev).train()
    model = model.to(memory_format=MEMORY_FORMATS[memory_format])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    pipe = make_pipeline(pipeline, None, 0, dev)
    gen = torch.Generator().manual_seed(0)
    B = cfg.batch_size
    tm = {"load": 0.0, "crop": 0.0, "randomize": 0.0, "localizer": 0.0, "regressor": 0.0}

    def tick(key, t0):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t1 = time.perf_counter()
        tm[key] += t1 - t0
        return t1

    rng = np.random.default_rng(0)
    for step in range(steps + 2):
        if step == 2:
            tm = dict.fromkeys(tm, 0.0)
            t_start = time.perf_counter()
        b = torch.as_tensor(rng.choice(len(data), B, replace=False))
        t0 = time.perf_counter()
        nl = max(1, int(round(B * cfg.loc_batch_frac)))
        frames = to_float(data.frames[b[:nl]], dev)
        crops_r = to_float(data.crops[b], dev)
        cb, K, R, t, c = (x[b].to(dev) for x in (data.crop_box, data.K_full, data.R, data.t, data.centre))
        t0 = tick("load", t0)
        box = jittered_boxes(c, cb[:, 2] * cfg.crop_factor, cfg.jitter_scale, cfg.jitter_shift, gen)
        crops = crops_from_rendered(crops_r, cb, box, cfg.crop_px)
        R_allo, off, code, Kc = model.reg_targets(R, t, K, box)
        kp = model.kp_targets(R, t, Kc)
        t0 = tick("crop", t0)
        frames, crops = pipe.augment(frames, None), pipe.augment(crops, None)
        t0 = tick("randomize", t0)
        with autocast_context(dev, precision):
            out_l = model.localizer(frames)
        l_loc = model.loc_loss(out_l, c[:nl], cb[:nl, 2])
        opt.zero_grad()
        l_loc.backward()
        t0 = tick("localizer", t0)
        with autocast_context(dev, precision):
            out_r = model.regressor(crops)
        l_reg, _ = model.reg_loss(out_r, R_allo, off, code, (1, 5, 3, 5), kp)
        l_reg.mean().backward()
        opt.step()
        tick("regressor", t0)
    return tm, time.perf_counter() - t_start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--pipeline", default="none", choices=["none", "dr"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32,bf16", help="comma-separated: each is timed, ratios vs the first")
    ap.add_argument("--memory-format", default="contiguous,channels_last",
                    help="comma-separated: contiguous (NCHW weights) and/or channels_last (NHWC: what training "
                    "uses on a CPU)")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    bad = set(a.memory_format.split(",")) - set(MEMORY_FORMATS)
    if bad:
        ap.error(f"--memory-format {','.join(sorted(bad))}: expected {' or '.join(MEMORY_FORMATS)}")
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    cfg = make_config(a.profile, data=a.data or "-", out="-", device=a.device)
    if a.data:
        from render.dataset import SyntheticDataset
        ds = SyntheticDataset(a.data)
        data, spec, hw = PoseData.from_dataset(ds, 2048), ds.spec, tuple(ds.manifest["frame_hw"])
    else:
        spec = load_object_spec("aruco-cube")
        data, hw = fake_data(1024, spec), (120, 160)
    meta = ModelMeta(hw, (480, 640), cfg.crop_px, cfg.crop_factor, max(spec.size_m), cfg.loc_width, cfg.reg_width,
                     cfg.reg_hidden)
    B = cfg.batch_size
    variants = [(p, mf) for p in a.precision.split(",") for mf in a.memory_format.split(",")]
    runs = {v: [] for v in variants}
    for _ in range(a.repeats):  # interleaved, so a change in the machine's load hits every variant alike
        for p, mf in variants:
            runs[(p, mf)].append(time_training(cfg, meta, spec, data, a.pipeline, p, a.steps, dev, mf))
    print(f"profile {a.profile}, pipeline {a.pipeline}, batch {B}, crop {cfg.crop_px}px, frame {hw[1]}x{hw[0]}, "
          f"{a.threads} thread(s), device {dev}, data: {a.data or 'random tensors'}, {a.repeats} repeat(s) of "
          f"{a.steps} steps: medians")
    ref = None
    for (p, mf), rs in runs.items():
        rs.sort(key=lambda r: r[1])
        tm, total = rs[len(rs) // 2]
        ips = a.steps * B / total
        ref = ref or ips
        print(f"\nprecision {p} (native bf16 here: {bf16_supported(dev)}), weights {mf}\n"
              "| stage | share of step time | ms / batch |\n|---|---|---|")
        for k, v in tm.items():
            print(f"| {k} | {100 * v / total:.1f} % | {1000 * v / a.steps:.1f} |")
        print(f"training: {ips:.0f} img/s (regressor crops; the localizer sees {cfg.loc_batch_frac:.0%} of each "
              f"batch), {ips / ref:.2f}× the {' '.join(variants[0])} run")
    model = PoseModel(meta, torch.as_tensor(spec.symmetries, dtype=torch.float32)).to(dev).eval()

    from pose_model.predict import PoseEstimator
    est = PoseEstimator(model, spec, dev, cfg.refine_iters)
    img = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    Kr = np.array([[610.0, 0, 320], [0, 610, 240], [0, 0, 1]])
    for _ in range(3):
        est.predict(img, Kr)
    t0 = time.perf_counter()
    n = 30
    for _ in range(n):
        est.predict(img, Kr)
    print(f"inference: {1000 * (time.perf_counter() - t0) / n:.1f} ms / 640x480 image "
          f"(localizer + {1 + cfg.refine_iters} regressor passes)")


if __name__ == "__main__":
    main()
