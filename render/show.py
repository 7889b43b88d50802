"""Contact sheet: samples of a dataset with the cube's axes and wireframe drawn from the LABELS, so a
person can check at a glance that labels and pixels agree."""
from __future__ import annotations

import os

import cv2
import numpy as np

from core.camera import project_points
from core.io import atomic_write_bytes
from core.objects import ObjectSpec

EDGES = [(i, j) for i in range(8) for j in range(i + 1, 8) if bin(i ^ j).count("1") == 1]  # corners_m() order


def draw_pose(img_rgb: np.ndarray, spec: ObjectSpec, R: np.ndarray, t_m: np.ndarray, K: np.ndarray,
              color=(0, 255, 0), axes: bool = True, thickness: int = 1) -> np.ndarray:
    """Draw the cuboid wireframe (and x/y/z axes in red/green/blue) of pose (R, t) on a copy of the image."""
    out = np.ascontiguousarray(img_rgb.copy())
    sh = 4  # fixed-point sub-pixel drawing
    corners = project_points(spec.corners_m(), R, t_m, K)
    for i, j in EDGES:
        cv2.line(out, tuple((corners[i] * (1 << sh)).astype(int)), tuple((corners[j] * (1 << sh)).astype(int)),
                 color, thickness, cv2.LINE_AA, sh)
    if axes:
        L = 0.75 * float(np.max(spec.size_m))
        pts = project_points(np.array([[0, 0, 0], [L, 0, 0], [0, L, 0], [0, 0, L]]), R, t_m, K)
        for k, c in zip(range(1, 4), [(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
            cv2.line(out, tuple((pts[0] * (1 << sh)).astype(int)), tuple((pts[k] * (1 << sh)).astype(int)),
                     c, thickness + 1, cv2.LINE_AA, sh)
    return out


def contact_sheet(ds, out_png: str | os.PathLike, n: int = 24, cols: int = 6, tile_px: int = 192) -> None:
    """Frames (top of each pair) and crops (bottom), each with the labelled pose drawn."""
    idx = np.linspace(0, len(ds) - 1, min(n, len(ds))).round().astype(int)
    lab = ds.labels
    tiles = []
    for i in idx:
        f = draw_pose(cv2.resize(ds.frames[i], None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST), ds.spec,
                      lab["R"][i], lab["t_m"][i], np.diag([2, 2, 1]) @ lab["K_frame"][i] + np.array(
                          [[0, 0, 0.5], [0, 0, 0.5], [0, 0, 0]]))
        c = draw_pose(ds.crops[i], ds.spec, lab["R"][i], lab["t_m"][i], lab["K_crop"][i])
        f = cv2.resize(f, (tile_px, int(tile_px * f.shape[0] / f.shape[1])), interpolation=cv2.INTER_AREA)
        c = cv2.resize(c, (tile_px, tile_px), interpolation=cv2.INTER_LINEAR)
        tile = np.concatenate([f, c], 0)
        cv2.putText(tile, f"#{i}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
        tiles.append(tile)
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[r:r + cols], 1) for r in range(0, len(tiles), cols)]
    sheet = np.concatenate(rows, 0)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"could not encode {out_png}")
    atomic_write_bytes(out_png, buf.tobytes())
