"""Pinhole camera maths in the OpenCV convention (x right, y down, z forward), metres and pixels."""
from __future__ import annotations

import numpy as np


def scale_K(K: np.ndarray, sx: float, sy: float | None = None) -> np.ndarray:
    """K for an image resized by (sx, sy). Pixel centres follow the OpenCV/`cv2.resize` convention:
    u' + 0.5 = sx (u + 0.5)."""
    sy = sx if sy is None else sy
    K2 = np.array(K, dtype=np.float64).copy()
    K2[0, 0] *= sx
    K2[0, 2] = (K2[0, 2] + 0.5) * sx - 0.5
    K2[1, 1] *= sy
    K2[1, 2] = (K2[1, 2] + 0.5) * sy - 0.5
    return K2


def crop_K(K: np.ndarray, x0_px: float, y0_px: float, side_px: float, out_px: int) -> np.ndarray:
    """K of the square crop [x0, x0+side) × [y0, y0+side) of an image, resampled to out_px × out_px.
    x0/y0 are pixel-edge coordinates (the left edge of pixel 0 is -0.5 in centre coordinates)."""
    s = out_px / side_px
    K2 = np.array(K, dtype=np.float64).copy()
    K2[0, 0] *= s
    K2[1, 1] *= s
    K2[0, 2] = (K2[0, 2] + 0.5 - x0_px) * s - 0.5
    K2[1, 2] = (K2[1, 2] + 0.5 - y0_px) * s - 0.5
    return K2


def project_points(points_m: np.ndarray, R: np.ndarray, t_m: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Project (N,3) object points with pose (R, t) and intrinsics K → (N,2) pixel centres."""
    cam = points_m @ np.asarray(R).T + np.asarray(t_m).reshape(1, 3)
    uvw = cam @ np.asarray(K).T
    return uvw[:, :2] / uvw[:, 2:3]


def cube_crop_box(corners_px: np.ndarray, centre_px: np.ndarray, scale: float) -> np.ndarray:
    """The square crop framing a projected cube: side = scale × the larger side of the projected corners'
    bounding box, centred on the projected centre. Returns [x0, y0, side] in pixel-edge coordinates (the
    renderer's crops use scale 2; the regressor's crop is that × its crop_factor)."""
    corners_px = np.asarray(corners_px, dtype=np.float64)
    side = scale * float((corners_px.max(0) - corners_px.min(0)).max())
    u, v = np.asarray(centre_px, dtype=np.float64).reshape(2)
    return np.array([u + 0.5 - side / 2, v + 0.5 - side / 2, side])


def parse_K(value, where: str) -> np.ndarray:
    """A 3×3 intrinsic matrix from 9 numbers (row-major) or nested 3×3 lists; finite, positive focal lengths."""
    from core.io import UserError
    try:
        K = np.asarray(value, dtype=np.float64).reshape(3, 3)
    except (ValueError, TypeError):
        raise UserError(f"{where}: expected 9 numbers (a 3×3 intrinsic matrix)") from None
    if not np.all(np.isfinite(K)):
        raise UserError(f"{where}: non-finite value")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise UserError(f"{where}: focal lengths must be positive")
    return K


KFILE_SCHEMA = ('{"cam_K": [9 numbers] or 3×3, "width": W, "height": H, optional "dist": [4, 5, 8, 12 or 14 '
                'OpenCV distortion coefficients k1 k2 p1 p2 [k3 ...]]}')


def parse_dist(value, where: str) -> np.ndarray:
    """OpenCV distortion coefficients (k1, k2, p1, p2[, k3[, k4, k5, k6[, s1..s4[, τx, τy]]]]), finite."""
    from core.io import UserError
    try:
        d = np.asarray(value, dtype=np.float64).reshape(-1)
    except (ValueError, TypeError):
        raise UserError(f"{where}: expected a list of 4, 5, 8, 12 or 14 numbers") from None
    if d.size not in (0, 4, 5, 8, 12, 14) or not np.all(np.isfinite(d)):
        raise UserError(f"{where}: expected 4, 5, 8, 12 or 14 finite numbers (OpenCV order), got {d.size}")
    return d


def read_camera_file(path, with_dist: bool = False) -> dict:
    """A camera file (K.json) → {"K", "width", "height"} (+ "dist", a list, possibly empty, when with_dist).
    Schema: KFILE_SCHEMA; other keys (e.g. the reprojection RMS `camera calibrate` writes) are ignored."""
    from core.io import UserError, read_json
    d = read_json(path, "camera file")
    if not isinstance(d, dict):
        raise UserError(f"{path}: expected {KFILE_SCHEMA}")
    for key in ("cam_K", "width", "height"):
        if key not in d:
            raise UserError(f"{path}: {key}: missing (expected {KFILE_SCHEMA})")
    K = parse_K(d["cam_K"], f"{path}: cam_K")
    try:
        w, h = int(d["width"]), int(d["height"])
    except (TypeError, ValueError):
        raise UserError(f"{path}: width/height: expected positive integers") from None
    if w <= 0 or h <= 0:
        raise UserError(f"{path}: width/height: expected positive integers, got {w}×{h}")
    out = {"K": K.tolist(), "width": w, "height": h}
    if with_dist:
        out["dist"] = parse_dist(d.get("dist", []), f"{path}: dist").tolist()
    return out
