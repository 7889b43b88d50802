"""Baseline without learning: predict the mean training pose for every real image — the floor of a report."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.objects import ObjectSpec
from core.bop import load_bop_scenes, write_results_csv


def project_to_so3(M: np.ndarray) -> np.ndarray:
    """The rotation closest to M in Frobenius norm (SVD, determinant forced to +1)."""
    U, _, Vt = np.linalg.svd(M)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(U @ Vt))])
    return U @ D @ Vt


def mean_pose(train_labels_R: np.ndarray, train_labels_t_m: np.ndarray, spec: ObjectSpec,
              iters: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(R, t_m) = chordal L2 mean rotation (mean of the matrices projected onto SO(3)) and mean translation.

    For a symmetric object each R_i may be replaced by any R_i g: the mean then alternates between picking,
    for every sample, the g that brings R_i g closest to the current mean and re-averaging (a few rounds),
    so equivalent poses do not cancel each other out."""
    Rs = np.asarray(train_labels_R, float).reshape(-1, 3, 3)
    t = np.asarray(train_labels_t_m, float).reshape(-1, 3)
    if len(Rs) == 0:
        raise ValueError("mean_pose: no training poses")
    syms = np.asarray(spec.symmetries, float).reshape(-1, 3, 3)
    aligned = Rs
    M = project_to_so3(Rs.mean(0)) if len(syms) == 1 else Rs[0]
    if len(syms) > 1:
        cand = np.einsum("nij,sjk->nsik", Rs, syms)                     # (N, S, 3, 3): R_i g_s
        for _ in range(iters):
            k = np.einsum("nsij,ij->ns", cand, M).argmax(1)              # max trace(Mᵀ R g) = min chordal
            aligned = cand[np.arange(len(Rs)), k]
            M_new = project_to_so3(aligned.mean(0))
            if np.allclose(M_new, M):
                break
            M = M_new
    return M, t.mean(0)


def mean_pose_predictions(R: np.ndarray, t_m: np.ndarray, real_root: str | Path, obj_id: int,
                          scene_ids=None) -> list[dict]:
    """One results row per image of the real set (labelled or not), all with the same pose."""
    return [{"scene_id": im.scene_id, "im_id": im.im_id, "obj_id": obj_id, "score": 1.0, "R": R,
             "t_mm": np.asarray(t_m) * 1000.0, "time_s": 0.0}
            for im in load_bop_scenes(real_root, scene_ids)]


def write_mean_pose_csv(train_R, train_t_m, spec: ObjectSpec, real_root, out_csv, scene_ids=None) -> Path:
    R, t = mean_pose(train_R, train_t_m, spec)
    write_results_csv(out_csv, mean_pose_predictions(R, t, real_root, spec.obj_id, scene_ids))
    return Path(out_csv)
