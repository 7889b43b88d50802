"""Render throughput: the generator against a bare getCameraImage loop at the same image sizes, in the
same run, and the generator's scaling from 1 to 2 worker processes.

    python -m perf.render_throughput [--n 256] [--repeats 3]

The bare loop renders the same two images per sample (full frame at working resolution + the zoomed
crop) of an already built scene, with nothing else: it is the ceiling for one process.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from core.objects import load_object_spec
from randomizer.space import load_space
from render.generate import GenerateConfig, generate_dataset
from render.scene import DEFAULT_CAMERA, SceneRenderer, SceneSpec, gl_projection_matrix, gl_view_matrix, look_at, pb


def bare_loop_img_per_s(n: int, frame_wh=(160, 120), crop_px=128) -> float:
    """Samples/s of two getCameraImage calls per sample on a built scene (the TinyRenderer ceiling)."""
    space = load_space()
    r = SceneRenderer(load_object_spec("aruco-cube"), SceneSpec(), DEFAULT_CAMERA, space, frame_wh, crop_px)
    r.render_scene((0, 0), 1, space.ranges("dr", "render"))  # leaves a built scene (table, cube, distractors)
    cam = np.array([0.25, 0.05, 0.06])
    R = look_at(cam, np.zeros(3), 0.0)
    view = gl_view_matrix(R, -R @ cam)
    K = DEFAULT_CAMERA.K
    pf = gl_projection_matrix(K * [[0.25], [0.25], [1]], *frame_wh)
    pc = gl_projection_matrix(np.array([[610 * 2, 0, 64], [0, 610 * 2, 64], [0, 0, 1.0]]), crop_px, crop_px)
    t0 = time.perf_counter()
    for _ in range(n):
        pb.getCameraImage(*frame_wh, view, pf, renderer=pb.ER_TINY_RENDERER, physicsClientId=r.client)
        pb.getCameraImage(crop_px, crop_px, view, pc, renderer=pb.ER_TINY_RENDERER, physicsClientId=r.client)
    dt = time.perf_counter() - t0
    r.close()
    return n / dt


def generator_img_per_s(n: int, workers: int, randomization: str = "dr") -> float:
    out = Path(tempfile.mkdtemp(prefix="sim2real-bench-")) / "ds"
    cfg = GenerateConfig(n=n, shard_size=32, randomization=randomization, seed=1)
    t0 = time.perf_counter()
    generate_dataset(cfg, out, workers=workers, progress=False)
    dt = time.perf_counter() - t0
    shutil.rmtree(out.parent, ignore_errors=True)
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=256, help="samples per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rows = {"bare getCameraImage loop (1 process)": [], "generator, 1 worker": [], "generator, 2 workers": []}
    for _ in range(args.repeats):
        rows["bare getCameraImage loop (1 process)"].append(bare_loop_img_per_s(args.n))
        rows["generator, 1 worker"].append(generator_img_per_s(args.n, 1))
        rows["generator, 2 workers"].append(generator_img_per_s(args.n, 2))
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"samples/s (frame 160×120 + crop 128×128 per sample), median of {args.repeats} × {args.n} samples")
    print(f"{'':40s} {'median':>8s}  runs")
    for k, v in rows.items():
        print(f"{k:40s} {med[k]:8.1f}  {' '.join(f'{x:.1f}' for x in v)}")
    bare = med["bare getCameraImage loop (1 process)"]
    print(f"generator per worker / bare loop : {med['generator, 1 worker'] / bare:.2f}  (target ≥ 0.80)")
    print(f"2 workers / 1 worker             : {med['generator, 2 workers'] / med['generator, 1 worker']:.2f}  (target ≥ 1.70)")


if __name__ == "__main__":
    main()
