"""Multi-view fusion for a calibrated rig: the single-view estimates of one capture instant → one pose per image,
scored per image like any prediction (the benchmark's rig rows; never mixed with single-view rows).

Needs a BOP set whose images record world → camera extrinsics (`cam_R_w2c`, `cam_t_w2c`: the rig's calibration)
and capture instants (`scene_instants.json`: the images shot at the same moment). Nothing comes from labels.

The model, per view, in millimetres: a single-view position is good across its viewing ray (the projected centre
is found to a pixel or two) and poor along it (depth from apparent size: 1 px ≈ 5.5 mm at 0.3 m), so its
covariance is `across_mm²` across the ray and `along_mm²` along it; moving an estimate into another camera adds the
rig calibration's error, `rig_mm²` in every direction. For each instant:
1. consensus: every view's estimate goes into the world frame; the largest subset of views that agree — each within
   `gate_chi2` (Mahalanobis², 3 dof) of the subset's information-weighted position and within `gate_deg` of its
   mean rotation — is kept (ties: the smallest total χ²). A view outside it is an outlier (typically a localizer
   that locked onto clutter). No subset of two or more: every image keeps its own estimate;
2. per image: a view in the consensus gets the information-weighted mean of its own position (in its own frame,
   no calibration error) and the other consensus views' (with `rig_mm`), so it keeps its own accurate sideways
   position and gains depth from the cameras that see that depth sideways; its rotation is the chordal mean of
   the consensus rotations. An outlier view gets the consensus pose, mapped into its camera.
"""
from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from core.bop import BopImage, load_bop_scenes, read_capture_instants
from core.io import UserError


@dataclass(frozen=True)
class FuseConfig:
    """Noise model and gates (mm, degrees), measured on the TUNE session only (`perf/rig_fusion.py --sessions data`,
    image-dr seed 0 of the default benchmark: robust σ of its views within 50 mm, and the labelled views of one
    instant against each other); the report session never set them."""
    across_mm: float = 1.5    # a single view's position error across its viewing ray (1σ per axis; measured 1.5)
    along_mm: float = 24.0    # … along it, the depth (measured 23.8)
    rig_mm: float = 3.3       # the rig calibration's error when an estimate moves into another camera (labelled
                              # views of one instant: 7.2 mm apart (median) ≈ 2.18 σ)
    gate_chi2: float = 11.34  # χ², 3 dof, 99 %: a view farther than this from the consensus position is an outlier
    gate_deg: float = 25.0    # … or a view whose rotation is farther than this from the consensus rotation


def to_world(R_c: np.ndarray, t_c_mm: np.ndarray, R_w2c: np.ndarray, t_w2c_mm: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """A pose in a camera's frame → the world frame (R_w2c, t_w2c: world → that camera)."""
    return R_w2c.T @ R_c, R_w2c.T @ (t_c_mm - t_w2c_mm)


def to_camera(R_w: np.ndarray, t_w_mm: np.ndarray, R_w2c: np.ndarray, t_w2c_mm: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """A pose in the world frame → a camera's frame."""
    return R_w2c @ R_w, R_w2c @ t_w_mm + t_w2c_mm


def view_covariance_mm2(t_c_mm: np.ndarray, cfg: FuseConfig) -> np.ndarray:
    """(3,3) covariance (mm²) of a single-view position in its own camera frame: across_mm² across the viewing
    ray through t_c, along_mm² along it."""
    d = np.asarray(t_c_mm, float) / max(float(np.linalg.norm(t_c_mm)), 1e-9)
    along = np.outer(d, d)
    return cfg.across_mm ** 2 * (np.eye(3) - along) + cfg.along_mm ** 2 * along


def weighted_mean(points: np.ndarray, covs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Information-weighted mean of points (n,3) with covariances (n,3,3) → (mean (3,), χ² of each point)."""
    W = np.linalg.inv(covs)
    x = np.linalg.solve(W.sum(0), np.einsum("nij,nj->i", W, points))
    r = points - x
    return x, np.einsum("ni,nij,nj->n", r, W, r)


def rotation_angle_deg(Ra: np.ndarray, Rb: np.ndarray) -> float:
    c = (np.trace(Ra.T @ Rb) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


def mean_rotation(Rs: np.ndarray, syms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chordal L2 mean of rotations (n,3,3) of an object with symmetries syms (S,3,3) (the object looks the same
    under R·g): each is first replaced by its symmetric copy nearest the first one. → (mean, angle of each (deg))."""
    ref = Rs[0]
    aligned = np.stack([min((R @ g for g in syms), key=lambda Rg: float(np.sum((Rg - ref) ** 2))) for R in Rs])
    U, _, Vt = np.linalg.svd(aligned.sum(0))
    M = U @ np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))]) @ Vt
    return M, np.array([rotation_angle_deg(M, R) for R in aligned])


def consensus(R_w: np.ndarray, t_w_mm: np.ndarray, covs_w: np.ndarray, syms: np.ndarray,
              cfg: FuseConfig) -> np.ndarray | None:
    """The largest subset of views that agree (module docstring, step 1) as a bool mask, or None when no two do."""
    n = len(R_w)
    for size in range(n, 1, -1):
        best: tuple[float, tuple[int, ...]] | None = None
        for S in itertools.combinations(range(n), size):
            idx = list(S)
            _, chi2 = weighted_mean(t_w_mm[idx], covs_w[idx])
            _, ang = mean_rotation(R_w[idx], syms)
            if (chi2 <= cfg.gate_chi2).all() and (ang <= cfg.gate_deg).all():
                if best is None or chi2.sum() < best[0]:
                    best = (float(chi2.sum()), S)
        if best is not None:
            mask = np.zeros(n, bool)
            mask[list(best[1])] = True
            return mask
    return None


def fuse_instant(views: Sequence[dict[str, Any]], syms: np.ndarray, cfg: FuseConfig = FuseConfig()
                 ) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray | None]:
    """views: each {R (3,3), t_mm (3,) in its camera; R_w2c, t_w2c_mm}. → (the fused pose (R, t_mm) of every view
    in its own camera frame, the consensus mask or None (then every view keeps its own estimate))."""
    n = len(views)
    own = [(np.asarray(v["R"], float), np.asarray(v["t_mm"], float)) for v in views]
    if n < 2:
        return own, None
    Rw2c = np.stack([np.asarray(v["R_w2c"], float) for v in views])
    tw2c = np.stack([np.asarray(v["t_w2c_mm"], float) for v in views])
    world = [to_world(R, t, Rw2c[i], tw2c[i]) for i, (R, t) in enumerate(own)]
    R_w, t_w = np.stack([w[0] for w in world]), np.stack([w[1] for w in world])
    cov_c = np.stack([view_covariance_mm2(t, cfg) for _, t in own])
    cov_w = np.einsum("nji,njk,nkl->nil", Rw2c, cov_c, Rw2c) + cfg.rig_mm ** 2 * np.eye(3)
    mask = consensus(R_w, t_w, cov_w, syms, cfg)
    if mask is None:
        return own, None
    inl = np.flatnonzero(mask)
    R_mean_w, _ = mean_rotation(R_w[inl], syms)
    t_cons_w, _ = weighted_mean(t_w[inl], cov_w[inl])
    out = []
    for i in range(n):
        R_i, t_cons_i = to_camera(R_mean_w, t_cons_w, Rw2c[i], tw2c[i])
        if not mask[i]:  # an outlier view: the consensus pose
            out.append((R_i, t_cons_i))
            continue
        pts, covs = [own[i][1]], [cov_c[i]]
        for j in inl:
            if j == i:
                continue
            R_ji = Rw2c[i] @ Rw2c[j].T                           # camera j → camera i
            pts.append(to_camera(R_w[j], t_w[j], Rw2c[i], tw2c[i])[1])
            covs.append(R_ji @ cov_c[j] @ R_ji.T + cfg.rig_mm ** 2 * np.eye(3))
        t_i, _ = weighted_mean(np.stack(pts), np.stack(covs))
        out.append((R_i, t_i))
    return out, mask


def fuse_predictions(pred_rows: Sequence[dict[str, Any]], real_root: str | Path, syms: np.ndarray, obj_id: int,
                     scene_ids: Sequence[int] | None = None, cfg: FuseConfig = FuseConfig()
                     ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """BOP result rows (read_results_csv) of single-view predictions → (fused rows, one per predicted image of
    obj_id, summary counts). Images without extrinsics or alone in their instant keep their own estimate; a fused
    image's time_s is its instant's total (every view had to be predicted)."""
    images = load_bop_scenes(real_root, scene_ids)
    if not any(im.R_w2c is not None for im in images):
        raise UserError(f"{real_root}: no camera extrinsics (scene_camera.json cam_R_w2c/cam_t_w2c): multi-view "
                        f"fusion needs a calibrated rig (re-import the set with this version)")
    best: dict[tuple[int, int], dict[str, Any]] = {}
    for r in pred_rows:
        key = (int(r["scene_id"]), int(r["im_id"]))
        if int(r["obj_id"]) == obj_id and (key not in best or float(r["score"]) > float(best[key]["score"])):
            best[key] = r
    by_key: dict[tuple[int, int], BopImage] = {(im.scene_id, im.im_id): im for im in images}
    keys = [k for k in by_key if k in best]
    groups: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for k, inst in zip(keys, read_capture_instants(real_root, keys)):
        groups[inst if by_key[k].R_w2c is not None else f"alone:{k}"].append(k)
    rows, counts = [], {"images": len(keys), "instants": len(groups), "instants_multi_view": 0,
                        "instants_fused": 0, "views_in_consensus": 0, "outlier_views_replaced": 0}
    for inst, ks in groups.items():
        views = [{**best[k], "R_w2c": by_key[k].R_w2c, "t_w2c_mm": by_key[k].t_w2c_mm} for k in ks]
        poses, mask = fuse_instant(views, syms, cfg) if len(ks) > 1 else ([(v["R"], v["t_mm"]) for v in views], None)
        counts["instants_multi_view"] += len(ks) > 1
        if mask is not None:
            counts["instants_fused"] += 1
            counts["views_in_consensus"] += int(mask.sum())
            counts["outlier_views_replaced"] += int((~mask).sum())
        total_time = sum(max(0.0, float(v.get("time_s", 0.0))) for v in views) if len(ks) > 1 else None
        for k, v, (R, t) in zip(ks, views, poses):
            rows.append({"scene_id": k[0], "im_id": k[1], "obj_id": obj_id, "score": float(v["score"]), "R": R,
                         "t_mm": t, "time_s": float(v.get("time_s", -1.0)) if total_time is None else total_time})
    rows.sort(key=lambda r: (r["scene_id"], r["im_id"]))
    return rows, {**counts, "config": asdict(cfg)}
