"""Where the rig fusion's noise model comes from, and what fusion does, on one session (the TUNE session: `data`).

    python perf/rig_fusion.py --real DIR --sessions data --model runs/image-dr_s0/model.pt [--model ...]

For each model: predictions on the session's photos (or --pred CSVs), then
- the single-view errors split across / along the viewing ray, robust σ of the views within 50 mm (so that
  localizer failures do not set the spread): across, per axis = median distance / 1.177 (2-D Gaussian); along,
  1.4826 × the median absolute deviation,
- the rig's own error: the labelled views of one instant mapped into the world frame, pairwise (σ per view ≈
  median pairwise distance / 2.18 for an isotropic 3-D Gaussian),
- single-view vs fused medians (te, re, ADD(-S) < 0.1 d) with the shipped FuseConfig and any --variants.
Settings are chosen here, on the tune session; the report session is only scored by the benchmark.
"""
from __future__ import annotations

import argparse
import itertools
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np


def rig_agreement_mm_deg(images, instants) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise distances (mm) and angles (deg) between the labelled views of one instant, in the world frame."""
    from eval.fuse import rotation_angle_deg, to_world
    g = defaultdict(list)
    for im, k in zip(images, instants):
        if im.labelled and im.R_w2c is not None:
            g[k].append(to_world(im.gts[0].R, im.gts[0].t_mm, im.R_w2c, im.t_w2c_mm))
    d, a = [], []
    for v in g.values():
        for (Ra, ta), (Rb, tb) in itertools.combinations(v, 2):
            d.append(np.linalg.norm(ta - tb))
            a.append(rotation_angle_deg(Ra, Rb))
    return np.array(d), np.array(a)


def ray_errors_mm(rows, images) -> tuple[np.ndarray, np.ndarray]:
    """Per labelled image: the position error across the viewing ray (norm) and along it (signed)."""
    by = {(r["scene_id"], r["im_id"]): r for r in rows}
    across, along = [], []
    for im in images:
        r = by.get((im.scene_id, im.im_id))
        if r is None or not im.labelled:
            continue
        gt = im.gts[0].t_mm
        e = np.asarray(r["t_mm"]) - gt
        d = gt / np.linalg.norm(gt)
        along.append(float(e @ d))
        across.append(float(np.linalg.norm(e - (e @ d) * d)))
    return np.array(across), np.array(along)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", required=True, help="BOP root with cam_R_w2c extrinsics and capture instants")
    ap.add_argument("--sessions", default="data")
    ap.add_argument("--model", action="append", default=[], help="checkpoint(s) to predict with")
    ap.add_argument("--pred", action="append", default=[], help="or existing results CSVs of those scenes")
    ap.add_argument("--variants", default="", help="FuseConfig overrides to compare, e.g. 'rig_mm=3,along_mm=20;gate_deg=40'")
    a = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    from core.bop import load_bop_scenes, read_capture_instants, read_results_csv, read_scene_groups
    from eval.fuse import FuseConfig, fuse_predictions
    from eval.score import score_predictions, spec_for_real
    from pose_model.predict import predict_bop
    root = Path(a.real)
    groups = read_scene_groups(root)
    ids = [s for name in a.sessions.split(",") for s in groups[name]]
    spec = spec_for_real(root)
    images = load_bop_scenes(root, ids)
    d, ang = rig_agreement_mm_deg(images, read_capture_instants(root, [(i.scene_id, i.im_id) for i in images]))
    print(f"rig: {len(d)} pairs of labelled views of one instant: distance median {np.median(d):.1f} mm "
          f"(σ per view ≈ {np.median(d) / 2.18:.1f} mm), angle median {np.median(ang):.2f}°")
    csvs = list(a.pred)
    for m in a.model:
        out = Path("/tmp") / f"rig_fusion_{abs(hash((m, a.sessions)))}.csv"
        predict_bop(m, root, out, scene_ids=ids, device="cpu")
        csvs.append(str(out))
    cfgs = [("shipped", FuseConfig())]
    for v in filter(None, a.variants.split(";")):  # 'k=v,k=v;k=v': variants separated by ';'
        cfgs.append((v, replace(FuseConfig(), **{k: float(x) for k, x in (kv.split("=") for kv in v.split(","))})))
    for name, csv in zip(a.pred + a.model, csvs):
        rows = read_results_csv(csv)
        across, along = ray_errors_mm(rows, images)
        ok = np.hypot(across, along) < 50
        print(f"\n{name}: {ok.sum()}/{len(ok)} labelled views within 50 mm; robust σ across "
              f"{np.median(across[ok]) / 1.177:.1f} mm (per axis), along {1.4826 * np.median(np.abs(along[ok] - np.median(along[ok]))):.1f} mm "
              f"(median bias {np.median(along[ok]):+.1f} mm)")
        m0, _ = score_predictions(rows, root, spec, scene_ids=ids, n_boot=20)
        print(f"  single view{'':<23} te {m0['te_mm_median']:6.1f} mm  re {m0['re_deg_median']:5.1f}°  "
              f"ADD<0.1d {m0['acc_add_01d']:.3f}  AR {m0['ar']:.3f}")
        for cname, cfg in cfgs:
            fused, counts = fuse_predictions(rows, root, spec.symmetries, spec.obj_id, ids, cfg)
            m1, _ = score_predictions(fused, root, spec, scene_ids=ids, n_boot=20)
            print(f"  fused {cname:<28} te {m1['te_mm_median']:6.1f} mm  re {m1['re_deg_median']:5.1f}°  "
                  f"ADD<0.1d {m1['acc_add_01d']:.3f}  AR {m1['ar']:.3f}   instants fused {counts['instants_fused']}/"
                  f"{counts['instants_multi_view']}, outlier views replaced {counts['outlier_views_replaced']}")


if __name__ == "__main__":
    main()
