"""Pose-error metrics (bop_toolkit style): small pure functions, millimetres and degrees in the names.

Conventions: a pose (R, t) maps model points into the camera frame, x_cam = R x + t; translations and
model points in mm. `symmetries` is an (S,3,3) array of rotations g under which the object looks the
same (the GT pose R_gt is then equivalent to R_gt @ g); None means no symmetry. Rotation error, MSSD and
MSPD take the minimum over the symmetries; ADD ignores them and ADD-S handles them implicitly (closest
point). A missing prediction is represented by an infinite error.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

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
    """ADD-S: mean over predicted model points of the distance to the CLOSEST true model point (mm)."""
    a = _transform(pts_mm, R_pred, t_pred_mm)
    b = _transform(pts_mm, R_gt, t_gt_mm)
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

def _acc(mask: np.ndarray) -> np.ndarray:
    return np.mean(mask, axis=-1)


def auc_mm(errors_mm: np.ndarray, max_mm: float = 100.0) -> np.ndarray | float:
    """Area under the accuracy-vs-threshold curve for thresholds 0..max_mm, normalised to [0, 1]
    (PoseCNN's ADD(-S) AUC). Exact: the integral of 1[e < τ] over τ ∈ [0, T] is T − min(e, T).
    Reduces over the last axis (a batch of bootstrap resamples works too)."""
    e = np.asarray(errors_mm, float)
    r = np.mean(1.0 - np.minimum(e, max_mm) / max_mm, axis=-1)
    return float(r) if np.ndim(r) == 0 else r


def _stats(diameter_mm: float) -> dict[str, Callable[[dict[str, np.ndarray]], Any]]:
    """Every summary statistic as a function of column arrays (..., n), reducing the last axis, so the
    bootstrap evaluates all resamples at once."""
    med = lambda k: (lambda c: np.median(c[k], axis=-1))  # noqa: E731
    mean = lambda k: (lambda c: np.mean(c[k], axis=-1))  # noqa: E731
    return {
        "te_mm_median": med("te_mm"), "te_mm_mean": mean("te_mm"),
        "re_deg_median": med("re_deg"), "re_deg_mean": mean("re_deg"),
        "add_mm_median": med("add_mm"), "adds_mm_median": med("adds_mm"),
        "mssd_mm_median": med("mssd_mm"), "mspd_px_median": med("mspd_px"),
        "acc_5deg_5cm": lambda c: _acc((c["re_deg"] < 5) & (c["te_mm"] < 50)),
        "acc_10deg_2cm": lambda c: _acc((c["re_deg"] < 10) & (c["te_mm"] < 20)),
        "acc_add_01d": lambda c: _acc(c["add_or_adds_mm"] < 0.1 * diameter_mm),
        "acc_adds_01d": lambda c: _acc(c["adds_mm"] < 0.1 * diameter_mm),
        "auc_add_10cm": lambda c: auc_mm(c["add_mm"]),
        "auc_adds_10cm": lambda c: auc_mm(c["adds_mm"]),
    }


METRIC_COLUMNS = ("te_mm", "re_deg", "add_mm", "adds_mm", "mssd_mm", "mspd_px")


def summarize(per_image_rows: Sequence[dict[str, Any]], diameter_mm: float, seed: int = 0,
              n_boot: int = 1000, symmetric: bool = False) -> dict[str, Any]:
    """Summary metrics over per-image rows (keys te_mm, re_deg, add_mm, adds_mm, mssd_mm, mspd_px; inf =
    missing prediction = failure), each with a percentile-bootstrap 95 % interval `<key>_ci95` (images
    resampled with replacement, numpy RNG seeded by `seed`).

    acc_add_01d uses ADD for an asymmetric object and ADD-S for a symmetric one (`symmetric=True`), the
    usual ADD(-S) < 0.1·diameter; acc_adds_01d always uses ADD-S. AUCs: thresholds 0–10 cm."""
    n = len(per_image_rows)
    cols = {k: np.array([float(r[k]) for r in per_image_rows], dtype=np.float64) for k in METRIC_COLUMNS}
    cols["add_or_adds_mm"] = cols["adds_mm"] if symmetric else cols["add_mm"]
    n_pred = int(sum(1 for r in per_image_rows if r.get("predicted", np.isfinite(float(r["te_mm"])))))
    out: dict[str, Any] = {"n_images": n, "n_predicted": n_pred, "n_missing": n - n_pred,
                           "diameter_mm": float(diameter_mm), "bootstrap": {"n": n_boot, "seed": seed,
                                                                            "interval": "percentile 95%"}}
    stats = _stats(diameter_mm)
    rng = np.random.default_rng(seed)
    boot_cols = None
    if n:
        idx = rng.integers(0, n, size=(n_boot, n))
        boot_cols = {k: v[idx] for k, v in cols.items()}
    for name, fn in stats.items():
        if n == 0:
            out[name], out[name + "_ci95"] = float("nan"), [float("nan"), float("nan")]
            continue
        out[name] = float(fn(cols))
        boots = np.sort(np.asarray(fn(boot_cols), dtype=np.float64))
        # order statistics rather than interpolation: a resample statistic may be inf (missing predictions)
        lo = boots[int(np.floor(0.025 * (n_boot - 1)))]
        hi = boots[int(np.ceil(0.975 * (n_boot - 1)))]
        out[name + "_ci95"] = [float(lo), float(hi)]
    return out
