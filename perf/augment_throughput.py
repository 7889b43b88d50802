"""Is image-level randomization ever the training bottleneck? (issue 5 target)

Measures, in one process on the CPU with `torch.set_num_threads(THREADS)`:
  - ImageRandomizer throughput (img/s, batch 64) at the `dr` ranges (every op on) and the widest ranges;
  - a small strided CNN's training-step throughput (forward + backward + Adam) at the same input size,
    the size of model the pose pipeline trains (4-5 strided convs, ~1 M parameters).
Prints the median of several repeats per row. Target: augmentation img/s >= model img/s.

    python3 perf/augment_throughput.py [--threads 2] [--sizes 64 128] [--repeats 7] [--device cpu] [--per-op]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import kornia
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from randomizer.image import IMAGE_PARAMS, ImageRandomizer  # noqa: E402
from randomizer.space import load_space  # noqa: E402


def small_cnn() -> nn.Module:
    """5 strided 3x3 convs (32-64-128-256-256) + linear head: ~1.0 M parameters."""
    chans = [3, 32, 64, 128, 256, 256]
    layers: list[nn.Module] = []
    for a, b in zip(chans[:-1], chans[1:]):
        layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10))


def _time_interleaved(fns: dict, batch: int, repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median img/s per function. The functions run round-robin, so load from other processes on a
    shared machine hits every row alike and the ratios stay meaningful."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    rates: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t = time.perf_counter()
            fn()
            rates[k].append(batch / (time.perf_counter() - t))
    return {k: statistics.median(v) for k, v in rates.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--per-op", action="store_true", help="also time each op alone at its widest range")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    space = load_space()
    print(f"device={dev} threads={torch.get_num_threads()} batch={args.batch} repeats={args.repeats} (median img/s)")
    print(f"{'size':>5} {'what':<34} {'img/s':>9}")
    for s in args.sizes:
        x = torch.rand(args.batch, 3, s, s, device=dev)
        fns = {}
        for label, which, jf in [("augment dr ranges (jpeg 25%)", "dr", 0.25),
                                 ("augment widest (jpeg 25%)", "widest", 0.25),
                                 ("augment widest, no jpeg", "widest", 0.0),
                                 ("augment widest, jpeg 100%", "widest", 1.0)]:
            aug = ImageRandomizer(space, space.ranges(which, acts_on="image"), jpeg_fraction=jf, seed=0)
            fns[label] = (lambda aug=aug: (aug(x), sync()))
        model = small_cnn().to(dev)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        y = torch.randn(args.batch, 10, device=dev)

        def train_step(net, opt, loss_fn):
            """One forward + backward + Adam step, synchronised so the timing is honest on CUDA."""
            def step():
                loss = loss_fn(net(x))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sync()
            return step

        step_model = train_step(model, opt, lambda out: nn.functional.mse_loss(out, y))
        n_par = sum(p.numel() for p in model.parameters())
        fns[f"train step small CNN ({n_par / 1e6:.2f} M par)"] = step_model
        try:  # the project's own crop regressor at its default width, when pose_model/ is there
            from pose_model.nets import CropRegressor
            reg = CropRegressor(in_px=s).to(dev)
            opt_r = torch.optim.Adam(reg.parameters(), 1e-3)
            step_reg = train_step(reg, opt_r, lambda out: sum(
                v.float().pow(2).mean() for v in (out.values() if isinstance(out, dict) else [out])))
            n_reg = sum(p.numel() for p in reg.parameters())
            fns[f"train step CropRegressor ({n_reg / 1e6:.2f} M)"] = step_reg
        except ImportError:
            pass
        rows = list(_time_interleaved(fns, args.batch, args.repeats).items())
        for label, r in rows:
            print(f"{s:>5} {label:<34} {r:>9.0f}")
        if args.per_op:
            ops = {}
            for name in IMAGE_PARAMS:
                aug = ImageRandomizer(space, {name: space.params[name].widest}, jpeg_fraction=1.0, seed=0)
                ops[f"  op {name} (widest, all samples)"] = (lambda aug=aug: (aug(x), sync()))
            if dev.type == "cpu":  # the reference the CPU path replaced: kornia's differentiable codec
                q = torch.full((args.batch,), 65.0)
                ops["  op jpeg_quality, kornia codec (ref)"] = \
                    lambda: kornia.enhance.jpeg_codec_differentiable(x, q)
            for label, r in _time_interleaved(ops, args.batch, max(3, args.repeats // 2), warmup=1).items():
                print(f"{s:>5} {label:<34} {r:>9.0f}")
        fastest_model = max(r for label, r in rows if label.startswith("train step"))
        ok = rows[0][1] >= fastest_model
        print(f"{s:>5} target augment(dr) >= fastest train step: {'MET' if ok else 'NOT MET'} "
              f"({rows[0][1] / fastest_model:.2f}x)")


if __name__ == "__main__":
    main()
