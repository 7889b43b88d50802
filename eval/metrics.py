"""Pose-error metrics (bop_toolkit style): small pure functions, millimetres and degrees in the names.

Conventions: a pose (R, t) maps model points into the camera frame, x_cam = R x + t; translations and
model points in mm. `symmetries` is an (S,3,3) array of rotations g under which the object looks the
same (the GT pose R_gt is then equivalent to R_gt @ g); None means no symmetry. Rotation error, MSSD and
MSPD take the minimum over the symmetries; ADD ignores them and ADD-S handles them implicitly (closest
point). A missing prediction is represented by an infinite error.

Definitions follow bop_toolkit (github.com/thodan/bop_toolkit): `bop_toolkit_lib/pose_error.py` for the
errors (mssd, mspd, add, adi = ADD-S, re, te) and `scripts/eval_bop19_pose.py` + `eval_calc_scores.py` +
`bop_toolkit_lib/pose_matching.py` for the BOP 2019 average recall: an estimate is correct when its error is
STRICTLY below the threshold; MSSD is divided by the object diameter and thresholded at 0.05, 0.10, ..., 0.50;
MSPD is multiplied by 640 / image width and thresholded at 5, 10, ..., 50 px; AR_MSSD and AR_MSPD are the mean
recalls over those thresholds. BOP's AR is the mean of AR_VSD, AR_MSSD and AR_MSPD; VSD needs a depth image
and the real set has none, so `ar` here is the mean of AR_MSSD and AR_MSPD only. With one object instance per
image and one estimate kept per image (highest score), the recall at a threshold is the fraction of images
whose error is below it, so AR = the mean over images of a per-image score (`per_image_columns`).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

_EYE = np.eye(3)[None]


def _syms(symmetries: np.ndarray | None) -> np.ndarray:
    return _EYE if symmetries is None else np.asarray(symmetries, dtype=np.float64).reshape(-1, 3, 3)


def te_mm(t_pred_mm: np.ndarray, t_gt_mm: np.ndarray) -> float:
    """Translation error: Euclidean distance between the predicted and true translation (mm)."""
    return float(np.linalg.norm(np.asarray(t_pred_mm, float).reshape(3) - np.asarray(t_gt_mm, float).reshape(3)))


def rotation_angle_deg(R: np.ndarray) -> float:
    """Angle of a rotation matrix (deg)."""
    return re_deg(R, np.eye(3))


def re_deg(R_pred: np.ndarray, R_gt: np.ndarray, symmetries: np.ndarray | None = None) -> float:
    """Rotation error (deg): angle between R_pred and R_gt g, minimised over the symmetries g.

    Computed as 2·asin(‖R_pred − R_gt g‖_F / (2√2)) — equal to arccos((tr(R_predᵀ R_gt g) − 1)/2) for exact
    rotations, but well conditioned at small angles: with arccos a matrix that is orthonormal only to 1e-5
    (e.g. a calibration file's rotation) already reads as ~0.4°."""
    cand = np.einsum("ij,sjk->sik", np.asarray(R_gt, float), _syms(symmetries))
    d = np.linalg.norm(cand - np.asarray(R_pred, float)[None], axis=(1, 2)).min()
    return float(np.degrees(2.0 * np.arcsin(min(1.0, d / (2.0 * np.sqrt(2.0))))))


def _transform(pts: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    return np.asarray(pts, float) @ np.asarray(R, float).T + np.asarray(t, float).reshape(1, 3)


def add_mm(R_pred, t_pred_mm, R_gt, t_gt_mm, pts_mm: np.ndarray) -> float:
    """ADD (Hinterstoisser 2012): mean distance between model points under the two poses (mm)."""
    return float(np.linalg.norm(_transform(pts_mm, R_pred, t_pred_mm) - _transform(pts_mm, R_gt, t_gt_mm),
                                axis=1).mean())


def adds_mm(R_pred, t_pred_mm, R_gt, t_gt_mm, pts_mm: np.ndarray) -> float:
    """ADD-S (bop_toolkit `adi`): mean over TRUE model points of the distance to the closest PREDICTED model
    point (mm) — ground truth → prediction, as bop_toolkit queries a KD-tree of the estimate with the GT points."""
    a = _transform(pts_mm, R_gt, t_gt_mm)
    b = _transform(pts_mm, R_pred, t_pred_mm)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return float(np.sqrt(np.maximum(d2.min(axis=1), 0.0)).mean())


def mssd_mm(R_pred, t_pred_mm, R_gt, t_gt_mm, pts_mm: np.ndarray, symmetries: np.ndarray | None = None) -> float:
    """MSSD (BOP 2019): max distance between corresponding model points, minimised over symmetries (mm)."""
    a = _transform(pts_mm, R_pred, t_pred_mm)
    best = np.inf
    for g in _syms(symmetries):
        best = min(best, float(np.linalg.norm(a - _transform(pts_mm, np.asarray(R_gt) @ g, t_gt_mm), axis=1).max()))
    return best


def mspd_px(R_pred, t_pred_mm, R_gt, t_gt_mm, K: np.ndarray, pts_mm: np.ndarray,
            symmetries: np.ndarray | None = None) -> float:
    """MSPD (BOP 2019): max distance between projected corresponding model points, min over symmetries (px)."""
    def proj(R, t):
        x = _transform(pts_mm, R, t) @ np.asarray(K, float).T
        return x[:, :2] / x[:, 2:3]
    a = proj(R_pred, t_pred_mm)
    best = np.inf
    for g in _syms(symmetries):
        best = min(best, float(np.linalg.norm(a - proj(np.asarray(R_gt) @ g, t_gt_mm), axis=1).max()))
    return best


def cuboid_surface_points_mm(size_m: Sequence[float], n_per_edge: int = 8) -> np.ndarray:
    """Points on a cuboid's surface (mm), a regular n×n grid per face including edges and corners,
    duplicates removed: the model points of ADD/ADD-S/MSSD/MSPD (BOP uses mesh vertices; a cuboid mesh
    has only 8, too few for ADD-S to mean anything)."""
    h = np.asarray(size_m, float) * 500.0
    g = np.linspace(-1.0, 1.0, n_per_edge)
    pts = []
    for axis in range(3):
        a, b = [i for i in range(3) if i != axis]
        u, v = np.meshgrid(g, g, indexing="ij")
        for s in (-1.0, 1.0):
            p = np.zeros((u.size, 3))
            p[:, axis] = s
            p[:, a] = u.ravel()
            p[:, b] = v.ravel()
            pts.append(p)
    return np.unique(np.round(np.concatenate(pts) * h, 6), axis=0)


# --------------------------------------------------------------------------------------------- summary

# bop_toolkit scripts/eval_bop19_pose.py: np.arange(0.05, 0.51, 0.05) and np.arange(5, 51, 5), verbatim
MSSD_THRESHOLDS_REL = np.arange(0.05, 0.51, 0.05)      # × object diameter
MSPD_THRESHOLDS_PX = np.arange(5, 51, 5)               # px at a 640-px-wide image
MSPD_REFERENCE_WIDTH_PX = 640.0


def recall_curve(errors: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Fraction of errors STRICTLY below each threshold (bop_toolkit pose_matching: `error < th`); inf fails."""
    e = np.asarray(errors, float).reshape(-1)
    if e.size == 0:
        return np.zeros(len(thresholds))
    return (e[None, :] < np.asarray(thresholds, float)[:, None]).mean(axis=1)


def ar_mssd(mssd_mm: np.ndarray, diameter_mm: float) -> float:
    """BOP 2019 AR_MSSD: mean recall of MSSD / diameter over thresholds 0.05..0.50."""
    return float(recall_curve(np.asarray(mssd_mm, float) / diameter_mm, MSSD_THRESHOLDS_REL).mean())


def ar_mspd(mspd_px: np.ndarray, image_width_px: np.ndarray | float = MSPD_REFERENCE_WIDTH_PX) -> float:
    """BOP 2019 AR_MSPD: mean recall of MSPD × 640 / image width over thresholds 5..50 px."""
    e = np.asarray(mspd_px, float) * (MSPD_REFERENCE_WIDTH_PX / np.asarray(image_width_px, float))
    return float(recall_curve(e, MSPD_THRESHOLDS_PX).mean())


def auc_mm(errors_mm: np.ndarray, max_mm: float = 100.0) -> np.ndarray | float:
    """Area under the accuracy-vs-threshold curve for thresholds 0..max_mm, normalised to [0, 1]
    (PoseCNN's ADD(-S) AUC). Exact: the integral of 1[e < τ] over τ ∈ [0, T] is T − min(e, T).
    Reduces over the last axis."""
    e = np.asarray(errors_mm, float)
    r = np.mean(1.0 - np.minimum(e, max_mm) / max_mm, axis=-1)
    return float(r) if np.ndim(r) == 0 else r


METRIC_COLUMNS = ("te_mm", "re_deg", "add_mm", "adds_mm", "mssd_mm", "mspd_px")


def per_image_columns(per_image_rows: Sequence[dict[str, Any]], diameter_mm: float,
                      symmetric: bool = False) -> dict[str, np.ndarray]:
    """Column arrays (n,) of the raw errors plus each image's contribution to every summary statistic, so
    that every statistic is a median or a mean of one column (METRICS): accuracy indicators (0/1), per-image
    AR scores (the fraction of BOP thresholds the image passes) and per-image AUC terms (1 − min(e, T)/T).
    `width_px` (image width, for MSPD's 640-px normalisation) defaults to 640 when a row lacks it."""
    cols = {k: np.array([float(r[k]) for r in per_image_rows], dtype=np.float64) for k in METRIC_COLUMNS}
    width = np.array([float(r.get("width_px", MSPD_REFERENCE_WIDTH_PX)) for r in per_image_rows], np.float64)
    d = float(diameter_mm)
    te, re = cols["te_mm"], cols["re_deg"]
    addx = cols["adds_mm"] if symmetric else cols["add_mm"]
    mspd640 = cols["mspd_px"] * (MSPD_REFERENCE_WIDTH_PX / width)
    cols.update({
        "ar_mssd": (cols["mssd_mm"][:, None] / d < MSSD_THRESHOLDS_REL[None, :]).mean(1),
        "ar_mspd": (mspd640[:, None] < MSPD_THRESHOLDS_PX[None, :]).mean(1),
        "acc_5deg_5mm": ((re < 5) & (te < 5)).astype(float),
        "acc_5deg_2cm": ((re < 5) & (te < 20)).astype(float),
        "acc_5deg_5cm": ((re < 5) & (te < 50)).astype(float),
        "acc_10deg_2cm": ((re < 10) & (te < 20)).astype(float),
        "acc_add_01d": (addx < 0.1 * d).astype(float),
        "acc_adds_01d": (cols["adds_mm"] < 0.1 * d).astype(float),
        "auc_add_01d": 1.0 - np.minimum(cols["add_mm"], 0.1 * d) / (0.1 * d),
        "auc_adds_01d": 1.0 - np.minimum(cols["adds_mm"], 0.1 * d) / (0.1 * d),
        "auc_add_10cm": 1.0 - np.minimum(cols["add_mm"], 100.0) / 100.0,
        "auc_adds_10cm": 1.0 - np.minimum(cols["adds_mm"], 100.0) / 100.0,
    })
    cols["ar"] = (cols["ar_mssd"] + cols["ar_mspd"]) / 2.0
    cols["width_px"] = width
    return cols


# every summary statistic: key → (per-image column, reducer). Accuracies, ARs and AUCs are means of per-image
# terms, so the cluster bootstrap (eval/stats.py) handles all of them the same way.
METRICS: dict[str, tuple[str, str]] = {
    "te_mm_median": ("te_mm", "median"), "te_mm_mean": ("te_mm", "mean"),
    "re_deg_median": ("re_deg", "median"), "re_deg_mean": ("re_deg", "mean"),
    "add_mm_median": ("add_mm", "median"), "adds_mm_median": ("adds_mm", "median"),
    "mssd_mm_median": ("mssd_mm", "median"), "mspd_px_median": ("mspd_px", "median"),
    "ar": ("ar", "mean"), "ar_mssd": ("ar_mssd", "mean"), "ar_mspd": ("ar_mspd", "mean"),
    "acc_5deg_5mm": ("acc_5deg_5mm", "mean"), "acc_5deg_2cm": ("acc_5deg_2cm", "mean"),
    "acc_5deg_5cm": ("acc_5deg_5cm", "mean"), "acc_10deg_2cm": ("acc_10deg_2cm", "mean"),
    "acc_add_01d": ("acc_add_01d", "mean"), "acc_adds_01d": ("acc_adds_01d", "mean"),
    "auc_add_01d": ("auc_add_01d", "mean"), "auc_adds_01d": ("auc_adds_01d", "mean"),
    "auc_add_10cm": ("auc_add_10cm", "mean"), "auc_adds_10cm": ("auc_adds_10cm", "mean"),
}


def summarize(per_image_rows: Sequence[dict[str, Any]], diameter_mm: float, seed: int = 0,
              n_boot: int = 1000, symmetric: bool = False,
              clusters: Sequence[Any] | None = None) -> dict[str, Any]:
    """Summary metrics over per-image rows (keys te_mm, re_deg, add_mm, adds_mm, mssd_mm, mspd_px, optional
    width_px; inf = missing prediction = failure), each with a percentile-bootstrap 95 % interval
    `<key>_ci95`. `clusters` (one id per row, e.g. the capture instant) makes it a cluster bootstrap: the
    images of one cluster are resampled together; None = one cluster per image. Seeded by `seed`.

    acc_add_01d: ADD for an asymmetric object, ADD-S for a symmetric one (`symmetric=True`), the usual
    ADD(-S) < 0.1·diameter; acc_adds_01d always ADD-S. AUCs over 0–0.1·d (`*_01d`) and 0–10 cm (`*_10cm`,
    kept for comparison: for a 30 mm cube 10 cm is far beyond the object). ar: see the module docstring."""
    from eval.stats import cluster_weights, interval95, reduce, weighted_reduce
    n = len(per_image_rows)
    cols = per_image_columns(per_image_rows, diameter_mm, symmetric)
    n_pred = int(sum(1 for r in per_image_rows if r.get("predicted", np.isfinite(float(r["te_mm"])))))
    clusters = list(range(n)) if clusters is None else list(clusters)
    n_clusters = len(set(clusters))
    out: dict[str, Any] = {"n_images": n, "n_predicted": n_pred, "n_missing": n - n_pred,
                           "diameter_mm": float(diameter_mm),
                           "bootstrap": {"n": n_boot, "seed": seed, "interval": "percentile 95%",
                                         "unit": "image" if n_clusters == n else "capture instant",
                                         "n_clusters": n_clusters},
                           "ar_note": "ar = mean(AR_MSSD, AR_MSPD); BOP's AR_VSD needs depth images, which the "
                                      "real set lacks"}
    w = cluster_weights(clusters, n_boot, np.random.default_rng(seed)) if n else None
    for name, (col, red) in METRICS.items():
        if n == 0:
            out[name], out[name + "_ci95"] = float("nan"), [float("nan"), float("nan")]
            continue
        out[name] = float(reduce(cols[col], red))
        out[name + "_ci95"] = interval95(weighted_reduce(cols[col], w, red))
    return out
