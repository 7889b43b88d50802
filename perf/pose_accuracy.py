"""One checkpoint, every inference variant, the same data: what each step (crop re-sizing, PnP head) does alone.

    python perf/pose_accuracy.py --model runs/dr/model.pt --data DATASET [--real aruco-cube --sessions data]

For each (head, resize_crop) it prints the synthetic validation medians (the training run's held-out split)
and, with --real, the medians per chosen session plus the inference time per photo (one CPU thread).
Choose settings on the tune session (`data`); score the report session only for the closing table.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def real_scores(est, real_root, scene_ids, spec) -> dict:
    from core.bop import load_bop_scenes
    from eval.score import score_predictions
    from pose_model.predict import read_rgb
    rows, times = [], []
    for im in load_bop_scenes(real_root, scene_ids):
        rgb = read_rgb(im.rgb_path)
        t0 = time.perf_counter()
        R, t, score = est.predict(rgb, im.K)
        times.append(time.perf_counter() - t0)
        rows.append({"scene_id": im.scene_id, "im_id": im.im_id, "obj_id": spec.obj_id, "score": score, "R": R,
                     "t_mm": t * 1000, "time_s": times[-1]})
    m, _ = score_predictions(rows, real_root, spec, scene_ids=scene_ids, n_boot=50)
    return {"re": m["re_deg_median"], "te": m["te_mm_median"], "add01": m["acc_add_01d"],
            "ms": 1000 * float(np.median(times)), "n": m.get("n_images", len(rows))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", default=None, help="the synthetic dataset the model trained on (its val split)")
    ap.add_argument("--real", default=None, help="real set name or BOP root")
    ap.add_argument("--sessions", default="data", help="comma-separated session names to score "
                    "(or scene ids joined by +, e.g. 3 or 1+2: a held-out part of the tune session)")
    ap.add_argument("--variants", default="direct:0,direct:1,pnp:0,pnp:1",
                    help="head:resize_crop[:hypotheses],… (hypotheses: localizer peaks followed, default 1)")
    ap.add_argument("--refine-iters", type=int, default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    from pose_model.predict import PoseEstimator
    from pose_model.model import load_checkpoint
    from pose_model.train import evaluate
    ck = load_checkpoint(a.model)
    cfg = ck["config"]
    it = cfg.get("refine_iters", 1) if a.refine_iters is None else a.refine_iters
    data = val_idx = None
    if a.data:
        from pose_model.data import PoseData, split_indices
        from render.dataset import SyntheticDataset
        data = PoseData.from_dataset(SyntheticDataset(a.data), cfg.get("max_samples"))
        val_idx = split_indices(len(data), cfg["val_frac"])[1][:cfg["val_max"]]
    real_root = groups = None
    if a.real:
        from core.bop import read_scene_groups
        from core.real_sets import resolve_real
        from eval.score import spec_for_real
        real_root = resolve_real(a.real)
        groups = read_scene_groups(real_root)
        spec = spec_for_real(real_root)
    print(f"model {a.model} (refine_iters {it})")
    for v in a.variants.split(","):
        head, rs, *hyp = v.split(":")
        hyp = int(hyp[0]) if hyp else 1
        est = PoseEstimator.load(a.model, "cpu", refine_iters=it, head=head, resize_crop=bool(int(rs)), hypotheses=hyp)
        line = f"head {head:6s} resize_crop {rs} hypotheses {hyp}:"
        if data is not None:
            r = evaluate(est.model, data, val_idx, torch.device("cpu"), it, resize_crop=bool(int(rs)), head=head)
            line += f"  synth val re {r['val_re_med_deg']:.2f}° te {r['val_te_med_mm']:.2f} mm " \
                    f"(GT crop {r['val_re_med_deg_gtcrop']:.2f}° {r['val_te_med_mm_gtcrop']:.2f} mm, pnp ok {r['val_pnp_ok']:.2f})"
        for s in (a.sessions.split(",") if real_root else []):
            ids = groups[s] if s in groups else [int(x) for x in s.split("+")]
            r = real_scores(est, real_root, ids, spec)
            line += f"  | {s}: re {r['re']:.1f}° te {r['te']:.1f} mm ADD<0.1d {r['add01']:.2f} ({r['ms']:.0f} ms/photo)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
