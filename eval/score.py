"""`sim2real score`: any BOP results CSV against a real set's ground truth → metrics, per-image errors, plots.

Rules: only labelled images count (ambiguous / unlabelled frames are excluded and counted); every labelled
image must have a prediction, a missing one is a failure with infinite error (never dropped); several rows
for the same image and object → the highest score wins (BOP single-instance convention); rows for images
outside the scored set are counted as `n_pred_unmatched`. metrics.json writes an infinite value (e.g. the mean
error when a prediction is missing) as `Infinity` (Python json reads it back as inf). Intervals resample
capture instants (the images of one instant together) when the set records them (scene_instants.json).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from core.io import UserError, atomic_write_json, atomic_write_text, code_version, read_json
from core.objects import ObjectSpec, load_object_spec, spec_from_dict
from eval import metrics as M
from core.bop import load_bop_scenes, read_capture_instants, read_models_info, read_scene_groups
from eval.plots import overlay_grid, plot_error_cdfs
from core.real_sets import MANIFEST

PER_IMAGE_COLUMNS = ("scene_id", "im_id", "session", "instant", "obj_id", "predicted", "score", "te_mm", "re_deg",
                     "add_mm", "adds_mm", "mssd_mm", "mspd_px", "width_px", "ar_mssd", "ar_mspd", "ar",
                     "time_s", "approximate")


def spec_for_real(real_root: str | Path) -> ObjectSpec:
    """The object spec recorded by the import (manifest), else the built-in named in models_info.json."""
    root = Path(real_root)
    if (root / MANIFEST).is_file():
        man = read_json(root / MANIFEST)
        if isinstance(man.get("object"), dict):
            keep = ("name", "obj_id", "size_m", "faces", "symmetries")
            return spec_from_dict({k: v for k, v in man["object"].items() if k in keep}, str(root / MANIFEST))
    info = read_models_info(root)
    names = [v.get("name") for v in info.values() if isinstance(v, dict) and v.get("name")]
    if len(names) == 1:
        return load_object_spec(names[0])
    raise UserError(f"{root}: cannot tell which object this set shows (no {MANIFEST}); pass --object")


def _best_predictions(pred_rows: Sequence[dict[str, Any]]) -> dict[tuple[int, int, int], dict[str, Any]]:
    best: dict[tuple[int, int, int], dict[str, Any]] = {}
    for r in pred_rows:
        key = (int(r["scene_id"]), int(r["im_id"]), int(r["obj_id"]))
        if key not in best or float(r["score"]) > float(best[key]["score"]):
            best[key] = r
    return best


def score_predictions(pred_rows: Sequence[dict[str, Any]], real_root: str | Path, spec: ObjectSpec,
                      scene_ids: Sequence[int] | None = None, seed: int = 0,
                      n_boot: int = 1000) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(metrics dict as in metrics.json, per-image rows) for predictions (read_results_csv rows)."""
    real_root = Path(real_root)
    images = load_bop_scenes(real_root, scene_ids)
    labelled = [im for im in images if im.labelled and any(g.obj_id == spec.obj_id for g in im.gts)]
    if not labelled:
        other = sorted({g.obj_id for im in images for g in im.gts})
        raise UserError(f"{real_root}: no labelled image of obj_id {spec.obj_id} ({spec.name}) in the selected "
                        f"scenes" + (f" (ground truth has obj_id {other})" if other else ""))
    best = _best_predictions(pred_rows)
    pts = M.cuboid_surface_points_mm(spec.size_m)
    syms = spec.symmetries
    per_image: list[dict[str, Any]] = []
    used = set()
    for im in labelled:
        gt = next(g for g in im.gts if g.obj_id == spec.obj_id)
        key = (im.scene_id, im.im_id, spec.obj_id)
        p = best.get(key)
        row: dict[str, Any] = {"scene_id": im.scene_id, "im_id": im.im_id, "session": im.session,
                               "obj_id": spec.obj_id, "predicted": p is not None, "approximate": im.approximate,
                               "width_px": im.width}
        if p is None:
            row.update(score=float("nan"), time_s=float("nan"), **{k: float("inf") for k in M.METRIC_COLUMNS})
        else:
            used.add(key)
            R, t = np.asarray(p["R"], float), np.asarray(p["t_mm"], float)
            row.update(score=float(p["score"]), time_s=float(p.get("time_s", -1.0)),
                       te_mm=M.te_mm(t, gt.t_mm), re_deg=M.re_deg(R, gt.R, syms),
                       add_mm=M.add_mm(R, t, gt.R, gt.t_mm, pts), adds_mm=M.adds_mm(R, t, gt.R, gt.t_mm, pts),
                       mssd_mm=M.mssd_mm(R, t, gt.R, gt.t_mm, pts, syms),
                       mspd_px=M.mspd_px(R, t, gt.R, gt.t_mm, im.K, pts, syms))
        per_image.append(row)
    diameter_mm = spec.diameter_m * 1000.0
    symmetric = len(syms) > 1
    instants = read_capture_instants(real_root, [(r["scene_id"], r["im_id"]) for r in per_image])
    cols = M.per_image_columns(per_image, diameter_mm, symmetric)
    for i, (r, inst) in enumerate(zip(per_image, instants)):
        r.update(instant=inst, ar_mssd=float(cols["ar_mssd"][i]), ar_mspd=float(cols["ar_mspd"][i]),
                 ar=float(cols["ar"][i]))
    out = M.summarize(per_image, diameter_mm, seed=seed, n_boot=n_boot, symmetric=symmetric, clusters=instants)
    groups = read_scene_groups(real_root)
    per_session = {}
    for name, sids in groups.items():
        rows = [r for r in per_image if r["scene_id"] in set(sids)]
        if rows:
            per_session[name] = M.summarize(rows, diameter_mm, seed=seed, n_boot=n_boot, symmetric=symmetric,
                                            clusters=[r["instant"] for r in rows])
    out.update({
        "object": spec.name, "obj_id": spec.obj_id, "real_root": str(real_root),
        "scene_ids": sorted({im.scene_id for im in images}),
        "n_images_total": len(images), "n_unlabelled_excluded": len(images) - len(labelled),
        "n_pred_rows": len(pred_rows), "n_pred_unmatched": len(set(best) - used),
        "gt_approximate": any(im.approximate for im in labelled),
        "add_kind": "ADD-S" if symmetric else "ADD", "model_points": int(len(pts)),
        "per_session": per_session, "code_version": code_version(),
    })
    return out, per_image


TABLE_ROWS = (("rotation error median (deg)", "re_deg_median"), ("rotation error mean (deg)", "re_deg_mean"),
              ("translation error median (mm)", "te_mm_median"), ("translation error mean (mm)", "te_mm_mean"),
              ("ADD median (mm)", "add_mm_median"), ("ADD-S median (mm)", "adds_mm_median"),
              ("MSSD median (mm)", "mssd_mm_median"), ("MSPD median (px)", "mspd_px_median"),
              ("AR (MSSD, MSPD; no VSD)", "ar"), ("AR_MSSD", "ar_mssd"), ("AR_MSPD", "ar_mspd"),
              ("acc (5°, 5 mm)", "acc_5deg_5mm"), ("acc (5°, 2 cm)", "acc_5deg_2cm"),
              ("acc (5°, 5 cm)", "acc_5deg_5cm"), ("acc (10°, 2 cm)", "acc_10deg_2cm"),
              ("acc ADD(-S) < 0.1 d", "acc_add_01d"), ("AUC ADD-S 0-0.1 d", "auc_adds_01d"),
              ("AUC ADD 0-10 cm", "auc_add_10cm"), ("AUC ADD-S 0-10 cm", "auc_adds_10cm"))


def format_table(m: dict[str, Any]) -> str:
    lines = [f"images scored: {m['n_images']} (predicted {m['n_predicted']}, missing = failure {m['n_missing']}; "
             f"unlabelled excluded {m.get('n_unlabelled_excluded', 0)})"
             + ("  [ground truth approximate]" if m.get("gt_approximate") else ""),
             f"{'metric':<32}{'value':>10}   95% bootstrap interval "
             f"(resampling {m.get('bootstrap', {}).get('unit', 'image')}s)"]
    for label, key in TABLE_ROWS:
        lo, hi = m[key + "_ci95"]
        lines.append(f"{label:<32}{m[key]:>10.3f}   [{lo:.3f}, {hi:.3f}]")
    for name, s in m.get("per_session", {}).items():
        lines.append(f"session {name}: n={s['n_images']} re med {s['re_deg_median']:.2f}° te med "
                     f"{s['te_mm_median']:.2f} mm AR {s['ar']:.3f} acc(5°,2cm) {s['acc_5deg_2cm']:.3f}")
    return "\n".join(lines)


def write_per_image_csv(path: str | Path, per_image: Sequence[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=PER_IMAGE_COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in per_image:
        # repr: round-trips exactly, so statistics recomputed from this file equal metrics.json
        w.writerow({k: (repr(r[k]) if isinstance(r[k], float) else r[k]) for k in PER_IMAGE_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def _overlay_items(per_image, real_root, spec, pred_rows, scene_ids, n: int = 16) -> list[dict[str, Any]]:
    """n images spread over the error range (sorted by ADD): best to worst, missing ones last."""
    images = {(im.scene_id, im.im_id): im for im in load_bop_scenes(real_root, scene_ids)}
    best = _best_predictions(pred_rows)
    order = sorted(per_image, key=lambda r: r["add_mm"])
    pick = [order[int(round(i))] for i in np.linspace(0, len(order) - 1, min(n, len(order)))]
    items = []
    for r in pick:
        im = images[(r["scene_id"], r["im_id"])]
        gt = next(g for g in im.gts if g.obj_id == spec.obj_id)
        p = best.get((r["scene_id"], r["im_id"], spec.obj_id))
        cap = (f"s{r['scene_id']} #{r['im_id']}\n" + (f"re {r['re_deg']:.1f}deg te {r['te_mm']:.0f}mm"
                                                      if p is not None else "no prediction"))
        items.append({"rgb_path": im.rgb_path, "K": im.K, "R_gt": gt.R, "t_gt_m": gt.t_mm / 1000.0,
                      "R_pred": None if p is None else np.asarray(p["R"]),
                      "t_pred_m": None if p is None else np.asarray(p["t_mm"]) / 1000.0, "caption": cap})
    return items


def write_score_outputs(out_dir: str | Path, metrics: dict[str, Any], per_image: Sequence[dict[str, Any]],
                        real_root: str | Path, spec: ObjectSpec, pred_rows: Sequence[dict[str, Any]],
                        name: str = "predictions") -> dict[str, Path]:
    """metrics.json, per_image.csv, cdf.png, overlays.png under out_dir; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out / "metrics.json", "per_image": out / "per_image.csv", "cdf": out / "cdf.png",
             "overlays": out / "overlays.png"}
    write_per_image_csv(paths["per_image"], per_image)
    plot_error_cdfs({name: per_image}, paths["cdf"], title=f"{spec.name}: {len(per_image)} labelled real images")
    overlay_grid(_overlay_items(per_image, real_root, spec, pred_rows, metrics.get("scene_ids")),
                 spec.corners_m(), paths["overlays"])
    atomic_write_json(paths["metrics"], metrics)  # last: its presence means the outputs are complete
    return paths
