"""`sim2real cube print`: a printable net of an object spec's cuboid (cross layout, glue tabs).

The net is drawn in millimetres with matplotlib on a page of known size, so PDF/SVG come out at true
scale and a PNG at `dpi` pixels per inch. Markers are vector paths built from OpenCV's own bit matrix
(`generateImageMarker`): crisp at any printer resolution, and exactly the bitmap the renderer textures.

Layout (printed side = outside of the cube): a column +Y, +Z, −Y, −Z with −X left and +X right of +Z.
Each square knows which 3D directions the paper's right and down point to once folded, so every face's
(u, v) frame — and with it each marker's roll — lands on the cube as `core.objects` defines it.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.io import UserError, atomic_write_bytes, code_version, sha256_of_json
from core.objects import FACE_FRAMES, ObjectSpec

MM_PER_INCH = 25.4
PAPERS_MM = {"A4": (210.0, 297.0), "A3": (297.0, 420.0)}
MARGIN_MM = 10.0
TEXT_BLOCK_MM = 48.0  # height kept under the net for the spec text and the scale bar
FORMATS = ("pdf", "svg", "png")


@dataclass
class Square:
    """One face on the paper: its outward normal, the 3D directions of paper-right (a) and paper-down (b)
    once folded, and its centre and size on the paper (mm)."""
    face: str
    n: np.ndarray
    a: np.ndarray
    b: np.ndarray
    cx: float = 0.0
    cy: float = 0.0
    w: float = 0.0
    h: float = 0.0

    def rect(self) -> tuple[float, float, float, float]:
        return self.cx - self.w / 2, self.cy - self.h / 2, self.cx + self.w / 2, self.cy + self.h / 2


def _face_name(n: np.ndarray) -> str:
    return next(f for f, (nn, _, _) in FACE_FRAMES.items() if np.allclose(nn, n))


def _step(sq: Square, direction: str) -> Square:
    """The face reached by crossing sq's edge in a paper direction, unfolded flat (fold the paper 90°)."""
    n, a, b = sq.n, sq.a, sq.b
    if direction == "right":
        n2, a2, b2 = a, -n, b
    elif direction == "left":
        n2, a2, b2 = -a, n, b
    elif direction == "down":
        n2, a2, b2 = b, a, -n
    else:  # up
        n2, a2, b2 = -b, a, n
    return Square(_face_name(n2), n2, a2, b2)


def net_squares(size_m) -> list[Square]:
    """The six squares of the cross net, placed in mm with +Z's centre at the origin."""
    size_mm = np.asarray(size_m, dtype=float) * 1000.0
    top = Square("+Z", *[np.asarray(v, float) for v in (FACE_FRAMES["+Z"][0], [1, 0, 0], [0, -1, 0])])
    # (face reached, from which square, direction): a column up/down from +Z and two arms
    squares = {"top": top}
    plan = [("up", "top", "up"), ("down", "top", "down"), ("down2", "down", "down"),
            ("left", "top", "left"), ("right", "top", "right")]
    for key, frm, d in plan:
        squares[key] = _step(squares[frm], d)
    for sq in squares.values():
        sq.w, sq.h = float(np.abs(sq.a) @ size_mm), float(np.abs(sq.b) @ size_mm)
    for key, frm, d in plan:
        s, p = squares[key], squares[frm]
        dx = {"right": 1, "left": -1}.get(d, 0)
        dy = {"down": 1, "up": -1}.get(d, 0)
        s.cx = p.cx + dx * (p.w + s.w) / 2
        s.cy = p.cy + dy * (p.h + s.h) / 2
    return list(squares.values())


def face_to_paper(sq: Square) -> np.ndarray:
    """2×2 matrix taking the face's (u, v) texture axes to paper (x right, y down)."""
    _, u, v = FACE_FRAMES[sq.face]
    return np.array([[u @ sq.a, v @ sq.a], [u @ sq.b, v @ sq.b]])


def marker_bits(dictionary: str, marker_id: int, roll_deg: int) -> np.ndarray:
    """(cells, cells) bool, True = black, in face texture orientation (row ↦ v, column ↦ u), border
    included, turned clockwise by the roll exactly like render/mesh.py's texture."""
    d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, dictionary))
    cells = d.markerSize + 2  # one black border cell on each side (OpenCV's default borderBits=1)
    img = cv2.aruco.generateImageMarker(d, marker_id, cells)
    return np.rot90(img < 128, k=-(roll_deg // 90))


def _bits_to_paper(bits: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Re-index a square (v, u) bit array into paper (y, x) orientation through the signed permutation M."""
    n = bits.shape[0]
    c = (n - 1) / 2
    out = np.zeros_like(bits)
    ii, jj = np.mgrid[0:n, 0:n]
    xy = M @ np.stack([jj.ravel() - c, ii.ravel() - c])
    out[np.rint(xy[1] + c).astype(int), np.rint(xy[0] + c).astype(int)] = bits.ravel()
    return out


def cells_path(cells: np.ndarray, x0: float, y0: float, cell: float):
    """One matplotlib Path holding every True cell as a square: a single fill, so no seams between cells."""
    from matplotlib.path import Path as MPath
    verts, codes = [], []
    for r, c in zip(*np.nonzero(cells)):
        xa, ya = x0 + c * cell, y0 + r * cell
        verts += [(xa, ya), (xa + cell, ya), (xa + cell, ya + cell), (xa, ya + cell), (xa, ya)]
        codes += [MPath.MOVETO, MPath.LINETO, MPath.LINETO, MPath.LINETO, MPath.CLOSEPOLY]
    return MPath(verts, codes)


def _edges(squares: list[Square]) -> tuple[list, list]:
    """(fold edges, cut edges). An edge = (square, side, 3D key); a cut edge's twin carries the same key."""
    folds, cuts = [], []
    dirs = {"right": lambda s: s.a, "left": lambda s: -s.a, "down": lambda s: s.b, "up": lambda s: -s.b}
    by_normal = {sq.face: sq for sq in squares}
    for sq in squares:
        for side, f in dirs.items():
            other = _face_name(f(sq))
            key = frozenset((sq.face, other))
            nb = by_normal[other]
            x0, y0, x1, y1 = sq.rect()
            nx0, ny0, nx1, ny1 = nb.rect()
            touching = {"right": abs(x1 - nx0) < 1e-6 and abs(sq.cy - nb.cy) < 1e-6,
                        "left": abs(x0 - nx1) < 1e-6 and abs(sq.cy - nb.cy) < 1e-6,
                        "down": abs(y1 - ny0) < 1e-6 and abs(sq.cx - nb.cx) < 1e-6,
                        "up": abs(y0 - ny1) < 1e-6 and abs(sq.cx - nb.cx) < 1e-6}[side]
            (folds if touching else cuts).append((sq, side, key))
    return folds, cuts


def _side_segment(sq: Square, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start, end, outward unit vector) of one side of a square on the paper."""
    x0, y0, x1, y1 = sq.rect()
    return {"up": (np.array([x0, y0]), np.array([x1, y0]), np.array([0., -1])),
            "down": (np.array([x0, y1]), np.array([x1, y1]), np.array([0., 1])),
            "left": (np.array([x0, y0]), np.array([x0, y1]), np.array([-1., 0])),
            "right": (np.array([x1, y0]), np.array([x1, y1]), np.array([1., 0]))}[side]


def glue_tabs(squares: list[Square], depth_mm: float) -> list[np.ndarray]:
    """One trapezoid tab per pair of cut edges (7 for a cube), on a side whose outward strip is free."""
    _, cuts = _edges(squares)
    tabs, done, boxes = [], set(), [sq.rect() for sq in squares]

    def overlaps(b):
        return any(b[0] < o[2] - 1e-6 and o[0] < b[2] - 1e-6 and b[1] < o[3] - 1e-6 and o[1] < b[3] - 1e-6
                   for o in boxes)
    for sq, side, key in cuts:
        if key in done:
            continue
        p, q, out = _side_segment(sq, side)
        length = float(np.linalg.norm(q - p))
        inset = min(depth_mm, length / 3)
        along = (q - p) / length
        poly = np.array([p, q, q + out * depth_mm - along * inset, p + out * depth_mm + along * inset])
        bbox = (*poly.min(0), *poly.max(0))
        if overlaps(bbox):
            continue  # its twin edge gets the tab
        tabs.append(poly)
        boxes.append(bbox)
        done.add(key)
    return tabs


def spec_lines(spec: ObjectSpec) -> list[str]:
    size = " × ".join(f"{s * 1000:.1f}" for s in spec.size_m)
    lines = [f"sim2real cube net — object {spec.name!r} (obj_id {spec.obj_id}), {size} mm; "
             f"spec sha256 {sha256_of_json(spec.to_dict())[:12]}; code {code_version()}"]
    faces = []
    for f, look in spec.faces.items():
        if look.marker:
            m = look.marker
            faces.append(f"{f}: {m.dictionary} id {m.id}, {m.size_m * 1000:.1f} mm, roll {m.roll_deg}°")
        elif look.texture:
            faces.append(f"{f}: texture {Path(look.texture).name}")
        else:
            faces.append(f"{f}: colour #{''.join(f'{round(c * 255):02x}' for c in look.color_rgb)}")
    lines += ["; ".join(faces[:3]), "; ".join(faces[3:])]
    lines.append("Print at 100 % (no 'fit to page'). Cut the solid lines, fold the dashed ones, printed side out, "
                 "glue the grey tabs inside.")
    return lines


def _pick_page(w_mm: float, h_mm: float) -> tuple[str, float, float]:
    for name, (pw, ph) in PAPERS_MM.items():
        if w_mm + 2 * MARGIN_MM <= pw and h_mm + 2 * MARGIN_MM <= ph:
            return name, pw, ph
    return "custom", w_mm + 2 * MARGIN_MM, h_mm + 2 * MARGIN_MM


LW_PT = 0.3 * 72 / MM_PER_INCH  # 0.3 mm lines, in points


def page_axes(pw_mm: float, ph_mm: float, dpi: int):
    """A matplotlib figure of the page's physical size whose data coordinates are millimetres, y down."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(pw_mm / MM_PER_INCH, ph_mm / MM_PER_INCH), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, pw_mm)
    ax.set_ylim(ph_mm, 0)
    ax.set_axis_off()
    return fig, ax


def draw_scale_bar(ax, x_mm: float, y_mm: float, bar_mm: float, note: str) -> list[float]:
    """A black bar of bar_mm with 10 mm ticks and a line of text under it; returns its box (mm)."""
    from matplotlib.patches import Rectangle
    ax.add_patch(Rectangle((x_mm, y_mm), bar_mm, 2.0, fc="black", ec="none"))
    for k in range(int(bar_mm // 10) + 1):
        ax.plot([x_mm + 10 * k, x_mm + 10 * k], [y_mm - 1.5, y_mm], color="black", lw=LW_PT)
    ax.text(x_mm, y_mm + 3.5, f"scale bar: this black bar must measure {bar_mm:.0f} mm (ticks every 10 mm); {note}",
            fontsize=6.5, va="top", ha="left")
    return [x_mm, y_mm, x_mm + bar_mm, y_mm + 2.0]


def save_page(fig, fmt: str, dpi: int, title: str) -> bytes:
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, metadata={"Title": title})
    plt.close(fig)
    return buf.getvalue()


def draw_net(spec: ObjectSpec, fmt: str, dpi: int = 300) -> tuple[bytes, dict]:
    """The net as `fmt` bytes, and a layout record (page, square rectangles and marker boxes in mm)."""
    from matplotlib.patches import PathPatch, Polygon, Rectangle

    squares = net_squares(spec.size_m)
    tab_mm = min(8.0, 0.3 * min(s * 1000 for s in spec.size_m))
    tabs = glue_tabs(squares, tab_mm)
    pts = np.concatenate([np.array([sq.rect()[:2] for sq in squares]), np.array([sq.rect()[2:] for sq in squares])]
                         + tabs)
    lo, hi = pts.min(0), pts.max(0)
    net_w, net_h = hi - lo
    lines = spec_lines(spec)
    text_w = 190.0
    paper, pw, ph = _pick_page(max(net_w, text_w), net_h + TEXT_BLOCK_MM)
    # shift so the net is centred horizontally, MARGIN_MM from the top
    off = np.array([(pw - net_w) / 2 - lo[0], MARGIN_MM - lo[1]])

    fig, ax = page_axes(pw, ph, dpi)
    layout = {"paper": paper, "page_mm": [pw, ph], "faces": {}, "markers": {}}
    for poly in tabs:
        ax.add_patch(Polygon(poly + off, closed=True, fc="0.85", ec="black", lw=LW_PT))
    for sq in squares:
        x0, y0, x1, y1 = np.array(sq.rect()) + np.tile(off, 2)
        look = spec.faces[sq.face]
        M = face_to_paper(sq)
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fc=look.color_rgb, ec="none"))
        if look.texture:
            img = cv2.cvtColor(cv2.imread(look.texture, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            # the texture in paper orientation: rotate the (v, u) image by M (a rotation: det +1)
            k = {(1, 0): 0, (0, 1): 1, (-1, 0): 2, (0, -1): 3}[(int(M[0, 0]), int(M[1, 0]))]
            ax.imshow(np.rot90(img, k=-k), extent=(x0, x1, y1, y0), interpolation="antialiased", zorder=1)
        layout["faces"][sq.face] = {"rect_mm": [x0, y0, x1, y1], "paper_right": sq.a.tolist(),
                                    "paper_down": sq.b.tolist()}
        m = look.marker
        if m is not None:
            bits = _bits_to_paper(marker_bits(m.dictionary, m.id, m.roll_deg), M)
            side = m.size_m * 1000
            mx0, my0 = (x0 + x1 - side) / 2, (y0 + y1 - side) / 2
            # white under the black cells, as in the renderer's texture (the bitmap replaces the face's look)
            ax.add_patch(Rectangle((mx0, my0), side, side, fc="white", ec="none", zorder=1.5))
            ax.add_patch(PathPatch(cells_path(bits, mx0, my0, side / bits.shape[0]), fc="black", ec="none",
                                   zorder=2))
            layout["markers"][m.id] = {"face": sq.face, "box_mm": [mx0, my0, mx0 + side, my0 + side],
                                       "dictionary": m.dictionary}
    folds, cuts = _edges(squares)
    tab_keys = set()
    for sq, side, _ in folds:
        p, q, _o = _side_segment(sq, side)
        ax.plot(*np.stack([p + off, q + off]).T, color="0.45", lw=LW_PT, ls=(0, (4, 3)), zorder=3)
    for poly in tabs:  # a tab's base is a fold too
        tab_keys.add((round(poly[0][0], 6), round(poly[0][1], 6), round(poly[1][0], 6), round(poly[1][1], 6)))
        ax.plot(*np.stack([poly[0] + off, poly[1] + off]).T, color="0.45", lw=LW_PT, ls=(0, (4, 3)), zorder=3)
    for sq, side, _ in cuts:
        p, q, _o = _side_segment(sq, side)
        if (round(p[0], 6), round(p[1], 6), round(q[0], 6), round(q[1], 6)) in tab_keys:
            continue
        ax.plot(*np.stack([p + off, q + off]).T, color="black", lw=LW_PT, zorder=3)

    # spec text and a scale bar under the net
    y = MARGIN_MM + net_h + 8
    x = (pw - text_w) / 2
    for i, line in enumerate(lines):
        ax.text(x, y + i * 4.2, line, fontsize=6.5, va="top", ha="left", family="DejaVu Sans")
    bar_mm = 100.0 if pw - 2 * MARGIN_MM >= 110 else 50.0
    by = y + len(lines) * 4.2 + 6
    sx, sy, _ = (v * 1000 for v in spec.size_m)
    layout["scale_bar_mm"] = draw_scale_bar(ax, x, by, bar_mm, f"the +Z face must measure {sx:.1f} × {sy:.1f} mm")
    data = save_page(fig, fmt, dpi, f"sim2real cube net {spec.name}")
    return data, layout


def paper_to_object_m(spec: ObjectSpec, face_layout: dict, xy_mm: np.ndarray) -> np.ndarray:
    """Where paper points (mm, page coordinates) inside a face's square end up on the folded cube
    (object frame, metres): the fold map that the tests check the markers against."""
    x0, y0, x1, y1 = face_layout["rect_mm"]
    a, b = np.asarray(face_layout["paper_right"]), np.asarray(face_layout["paper_down"])
    n = np.cross(b, a)  # outward normal: (a, b, -n) is a right-handed camera frame looking at the face
    half = np.abs(n) @ (np.asarray(spec.size_m) / 2)
    rel = (np.atleast_2d(xy_mm) - [(x0 + x1) / 2, (y0 + y1) / 2]) / 1000.0
    return n * half + rel[:, :1] * a + rel[:, 1:2] * b


def print_cube(spec: ObjectSpec, out: str | Path, dpi: int = 300) -> dict:
    """Write the net to `out` (.pdf, .svg or .png, chosen by suffix) atomically; returns the layout."""
    out = Path(out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise UserError(f"--out {out}: expected a .pdf, .svg or .png file name")
    if not 50 <= dpi <= 2400:
        raise UserError(f"--dpi {dpi}: expected 50..2400")
    data, layout = draw_net(spec, fmt, dpi)
    atomic_write_bytes(out, data)
    return layout
