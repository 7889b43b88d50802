"""`sim2real camera board|calibrate`: a printable ChArUco board and OpenCV's calibration → K.json.

K.json (read by core.camera.read_camera_file, the project's one K-file parser):
    {"cam_K": [fx, 0, cx, 0, fy, cy, 0, 0, 1], "width": W, "height": H,
     "dist": [k1, k2, p1, p2, k3]            (optional; OpenCV order, 4/5/8/12/14 numbers),
     ...}                                    (calibrate adds reproj_rms_px, n_views, board, code_version)
Any other source of intrinsics (e.g. a RealSense's `color_K`) can be written in this form by hand.

Why ChArUco: its corners are identified by the markers, so partly visible or tilted boards still give
labelled points, and the chessboard corners refine to sub-pixel accuracy (better than marker corners).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.io import UserError, atomic_write_bytes, atomic_write_json, code_version

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
MIN_VIEWS = 4           # fewer views than this cannot pin down K (OpenCV's docs advise 10+)
MIN_CORNERS = 6         # ChArUco corners a view needs to count (a homography wants ≥ 4, non-collinear)


@dataclass(frozen=True)
class BoardSpec:
    """A ChArUco board: squares_x × squares_y chessboard squares, ArUco markers in the white ones."""
    squares_x: int = 5
    squares_y: int = 7
    square_mm: float = 30.0
    marker_mm: float = 22.0
    dictionary: str = "DICT_5X5_100"  # not the cube's DICT_4X4_50, so a cube in view never confuses it

    def validate(self) -> "BoardSpec":
        if self.squares_x < 3 or self.squares_y < 3:
            raise UserError(f"--squares {self.squares_x}x{self.squares_y}: expected at least 3×3")
        if not 0 < self.marker_mm < self.square_mm:
            raise UserError(f"--marker-mm {self.marker_mm}: expected 0 < marker < square ({self.square_mm} mm)")
        if not hasattr(cv2.aruco, self.dictionary) or not self.dictionary.startswith("DICT_"):
            raise UserError(f"--dictionary {self.dictionary}: not an OpenCV ArUco dictionary (e.g. DICT_5X5_100)")
        n_markers = (self.squares_x * self.squares_y) // 2
        if n_markers > self.aruco_dict().bytesList.shape[0]:
            raise UserError(f"--dictionary {self.dictionary}: holds fewer markers than the {n_markers} the board needs")
        return self

    def aruco_dict(self):
        return cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))

    def board(self):
        return cv2.aruco.CharucoBoard((self.squares_x, self.squares_y), self.square_mm / 1000.0,
                                      self.marker_mm / 1000.0, self.aruco_dict())


def draw_board(spec: BoardSpec, fmt: str = "pdf", dpi: int = 300) -> tuple[bytes, dict[str, Any]]:
    """The board as vector shapes on an A4 (or larger) page, with a scale bar and its parameters printed.
    Layout from OpenCV's own board (object points: x right, y down, metres; top-left square black)."""
    from matplotlib.patches import PathPatch
    from render.cube_print import MARGIN_MM, cells_path, draw_scale_bar, page_axes, save_page, _pick_page
    board = spec.board()
    bw, bh = spec.squares_x * spec.square_mm, spec.squares_y * spec.square_mm
    paper, pw, ph = _pick_page(max(bw, 150.0), bh + 30.0)
    x0, y0 = (pw - bw) / 2, MARGIN_MM
    fig, ax = page_axes(pw, ph, dpi)
    marker_squares = set()
    for corners in board.getObjPoints():
        c = np.asarray(corners)[:, :2] * 1000.0
        marker_squares.add((int(c[:, 0].mean() // spec.square_mm), int(c[:, 1].mean() // spec.square_mm)))
    black = np.array([[(i, j) not in marker_squares for i in range(spec.squares_x)] for j in range(spec.squares_y)])
    ax.add_patch(PathPatch(cells_path(black, x0, y0, spec.square_mm), fc="black", ec="none"))
    d = spec.aruco_dict()
    cells = d.markerSize + 2
    for corners, mid in zip(board.getObjPoints(), np.asarray(board.getIds()).ravel()):
        tl = np.asarray(corners)[0, :2] * 1000.0  # corner 0 = top-left of the upright marker
        bits = cv2.aruco.generateImageMarker(d, int(mid), cells) < 128
        ax.add_patch(PathPatch(cells_path(bits, x0 + tl[0], y0 + tl[1], spec.marker_mm / cells), fc="black",
                               ec="none"))
    ty = y0 + bh + 8
    ax.text(x0, ty, f"sim2real ChArUco board: {spec.squares_x}×{spec.squares_y} squares of {spec.square_mm:g} mm, "
                    f"{spec.dictionary} markers of {spec.marker_mm:g} mm; code {code_version()}",
            fontsize=6.5, va="top")
    ax.text(x0, ty + 4.2, "Print at 100 %, tape it flat. A square not measuring "
                          f"{spec.square_mm:g} mm? Pass the measured size to `camera calibrate --square-mm`.",
            fontsize=6.5, va="top")
    bar = draw_scale_bar(ax, x0, ty + 12, 100.0 if bw >= 100 else 50.0,
                         f"a board square must measure {spec.square_mm:g} mm")
    data = save_page(fig, fmt, dpi, "sim2real ChArUco board")
    return data, {"paper": paper, "board_mm": [x0, y0, x0 + bw, y0 + bh], "scale_bar_mm": bar}


def write_board(spec: BoardSpec, out: str | Path, dpi: int = 300) -> dict[str, Any]:
    out = Path(out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("pdf", "svg", "png"):
        raise UserError(f"--out {out}: expected a .pdf, .svg or .png file name")
    data, layout = draw_board(spec.validate(), fmt, dpi)
    atomic_write_bytes(out, data)
    return layout


def list_images(folder: str | Path, what: str = "--images") -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{what} {folder}: folder not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise UserError(f"{what} {folder}: no images (expected {', '.join(IMAGE_EXTS)} files)")
    return files


def calibrate_camera(images: str | Path, spec: BoardSpec, fix_k3: bool = True, log=print) -> dict[str, Any]:
    """ChArUco calibration over a folder of photos of the printed board → the K.json dict."""
    spec.validate()
    files = list_images(images)
    board = spec.board()
    detector = cv2.aruco.CharucoDetector(board)
    obj_pts, img_pts, used, rejected, size = [], [], [], [], None
    for f in files:
        gray = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            rejected.append({"file": f.name, "reason": "unreadable image"})
            continue
        if size is None:
            size = (gray.shape[1], gray.shape[0])
        elif (gray.shape[1], gray.shape[0]) != size:
            raise UserError(f"{f}: size {gray.shape[1]}x{gray.shape[0]}, but {files[0].name} is {size[0]}x{size[1]}"
                            f" (calibrate one camera at one resolution)")
        ch_corners, ch_ids, _, _ = detector.detectBoard(gray)
        n = 0 if ch_ids is None else len(ch_ids)
        if n < MIN_CORNERS:
            rejected.append({"file": f.name, "reason": f"{n} board corners found (need {MIN_CORNERS})"})
            continue
        op, ip = board.matchImagePoints(ch_corners, ch_ids)
        obj_pts.append(op.astype(np.float32))
        img_pts.append(ip.astype(np.float32))
        used.append(f.name)
    if not used:
        raise UserError(f"--images {images}: no ChArUco board found in any of {len(files)} images (expected "
                        f"{spec.squares_x}×{spec.squares_y} squares, {spec.dictionary}; as printed by `camera board`)")
    if len(used) < MIN_VIEWS:
        raise UserError(f"--images {images}: the board was found in only {len(used)} of {len(files)} images; "
                        f"need at least {MIN_VIEWS} views (10–20 from different angles is better)")
    if len(used) < 10:
        log(f"warning: only {len(used)} usable views; 10–20 from different angles and distances give a steadier K")
    flags = cv2.CALIB_FIX_K3 if fix_k3 else 0
    rms, K, dist, _, _ = cv2.calibrateCamera(obj_pts, img_pts, size, None, None, flags=flags)
    return {"cam_K": K.reshape(-1).tolist(), "width": size[0], "height": size[1],
            "dist": np.asarray(dist).reshape(-1).tolist(), "reproj_rms_px": float(rms), "n_views": len(used),
            "views": used, "rejected": rejected, "board": asdict(spec), "method": "OpenCV CharucoDetector + "
            "calibrateCamera" + (" (k3 fixed at 0)" if fix_k3 else ""), "code_version": code_version()}


def write_calibration(images: str | Path, out: str | Path, spec: BoardSpec, fix_k3: bool = True,
                      log=print) -> dict[str, Any]:
    if Path(out).suffix.lower() != ".json":
        raise UserError(f"--out {out}: expected a .json file name (K.json)")
    res = calibrate_camera(images, spec, fix_k3, log)
    atomic_write_json(out, res)
    return res
