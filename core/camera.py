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
