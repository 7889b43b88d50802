"""Does the object spec's size match the object in the photos? Measured from labelled photos, without a ruler.

The labels come from the markers, so they fix the pose in the markers' scale. Given that pose, the spec's cuboid
projects to a silhouette; if the real object is larger than the spec says (a printed cube folded from card is),
the photo's edges lie just outside that silhouette. For each labelled photo we scale the spec's cuboid about its
centre by each factor of a grid and keep the factor whose projected outline sits on the strongest image edges.
The same search on each visible marker's own border (scaled about the marker centre) is the method's check: it
must return ≈ 1 — the labels were solved with those marker sizes — and the size is the outline's factor over the
markers' (on renders of the right size both come out ≈ 1.005; in the photos the method needs a cube ≳ 40 px wide).

The shared ArUco cube measures ≈ 30.6 mm against its 30 mm spec (tune session, 99 photos: outline 1.020×,
markers 1.001×). Whether rendering it at that size helps a model is an open question (README): a model that reads
distance from the outline would see such a cube ≈ 2 % too close, one that reads it from the markers would not.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.camera import project_points
from core.io import read_rgb

SCALES = np.round(np.arange(0.95, 1.1001, 0.005), 4)  # the size factors searched (below 0.95: inner edges)


def edge_support(grad_x: np.ndarray, grad_y: np.ndarray, polygon_px: np.ndarray) -> float:
    """Mean |image gradient · edge normal| at points along the middle 60 % of each side of a closed polygon
    (N, 2) in pixels (OpenCV convention: pixel centres at integers), the gradients interpolated bilinearly (corners
    are left out: their gradients point every way). 0 when no point is in the image."""
    h, w = grad_x.shape
    pts, normals = [], []
    for a, b in zip(polygon_px, np.roll(polygon_px, -1, axis=0)):
        n = np.array([b[1] - a[1], a[0] - b[0]], dtype=np.float64)
        length = float(np.linalg.norm(n))
        if length < 1e-9:
            continue
        u = np.linspace(0.2, 0.8, 15)[:, None]
        pts.append(a + u * (b - a))
        normals.append(np.repeat((n / length)[None], len(u), 0))
    if not pts:
        return 0.0
    p, n = np.concatenate(pts), np.concatenate(normals)
    inside = (p[:, 0] >= 0) & (p[:, 0] <= w - 1) & (p[:, 1] >= 0) & (p[:, 1] <= h - 1)
    if not inside.any():
        return 0.0
    p, n = p[inside].astype(np.float32), n[inside]
    gx = cv2.remap(grad_x, p[:, :1], p[:, 1:], cv2.INTER_LINEAR)[:, 0]
    gy = cv2.remap(grad_y, p[:, :1], p[:, 1:], cv2.INTER_LINEAR)[:, 0]
    return float(np.mean(np.abs(gx * n[:, 0] + gy * n[:, 1])))


def peak_of(scales: np.ndarray, support: np.ndarray) -> float:
    """The scale at the maximum of `support`, refined between grid points by a parabola through the peak and its
    two neighbours (the grid's value itself at either end of the grid)."""
    i = int(np.argmax(support))
    if i == 0 or i == len(scales) - 1:
        return float(scales[i])
    y0, y1, y2 = support[i - 1], support[i], support[i + 1]
    den = y0 - 2 * y1 + y2
    off = 0.5 * (y0 - y2) / den if den < 0 else 0.0
    return float(scales[i] + np.clip(off, -0.5, 0.5) * (scales[i + 1] - scales[i]))


def image_gradients(image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(grad_x, grad_y) of the grey image, lightly smoothed: what edge_support reads."""
    g = cv2.GaussianBlur(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY).astype(np.float32), (0, 0), 0.8)
    return cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)


def silhouette_scale(image_rgb: np.ndarray, K: np.ndarray, R: np.ndarray, t_m: np.ndarray, corners_m: np.ndarray,
                     scales: np.ndarray = SCALES, grads: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """The size factor (of `scales`) whose scaled cuboid outline (convex hull of the 8 projected corners
    `corners_m`, object frame, metres) lies on the strongest edges of the photo, at pose (R, t_m).
    grads: the photo's image_gradients, when the caller has them already."""
    gx, gy = grads if grads is not None else image_gradients(image_rgb)
    support = [edge_support(gx, gy, cv2.convexHull(project_points(corners_m * s, R, t_m, K).astype(np.float32))[:, 0])
               for s in scales]
    return peak_of(scales, np.array(support))


def marker_border_scale(image_rgb: np.ndarray, K: np.ndarray, R: np.ndarray, t_m: np.ndarray,
                        marker_corners_m: dict[int, np.ndarray], scales: np.ndarray = SCALES,
                        grads: tuple[np.ndarray, np.ndarray] | None = None) -> float | None:
    """As silhouette_scale, for the outer borders of the markers that face the camera (each scaled about its
    own centre); None when no marker faces the camera."""
    gx, gy = grads if grads is not None else image_gradients(image_rgb)
    total = np.zeros(len(scales))
    seen = False
    for corners in marker_corners_m.values():
        centre = corners.mean(axis=0)
        normal_cam = R @ (centre / np.linalg.norm(centre))
        centre_cam = R @ centre + t_m
        if normal_cam @ centre_cam > -0.3 * np.linalg.norm(centre_cam):   # seen edge-on or from behind
            continue
        seen = True
        total += [edge_support(gx, gy, project_points(centre + s * (corners - centre), R, t_m, K)) for s in scales]
    return peak_of(scales, total) if seen else None


@dataclass
class SizeCheck:
    """Per labelled photo: the silhouette's size factor and the markers' (the method check)."""
    silhouette: np.ndarray        # (N,)
    markers: np.ndarray           # (N,), NaN where no marker faced the camera
    scene_ids: np.ndarray         # (N,)
    size_m: tuple[float, float, float]

    @property
    def factor(self) -> float:
        """The outline's factor relative to the markers' (their sizes fix the labels' scale; dividing by their
        factor removes what the method itself adds: on renders of the right size both come out ≈ 1.005)."""
        mk = float(np.nanmedian(self.markers)) if np.isfinite(self.markers).any() else 1.0
        return float(np.median(self.silhouette)) / mk

    def summary(self) -> dict:
        q25, q75 = np.percentile(self.silhouette, [25, 75])
        return {"n_photos": int(len(self.silhouette)), "size_factor": round(self.factor, 4),
                "silhouette_factor": round(float(np.median(self.silhouette)), 4),
                "silhouette_iqr": [round(float(q25), 4), round(float(q75), 4)],
                "marker_factor": round(float(np.nanmedian(self.markers)), 4) if np.isfinite(self.markers).any()
                else None,
                "spec_size_mm": [round(s * 1000, 3) for s in self.size_m],
                "measured_size_mm": [round(s * 1000 * self.factor, 2) for s in self.size_m],
                "per_scene": {int(s): round(float(np.median(self.silhouette[self.scene_ids == s])), 4)
                              for s in np.unique(self.scene_ids)}}


def check_object_size(images, spec) -> SizeCheck:
    """images: core.bop.BopImage's (unlabelled ones are skipped; the first ground truth of each is used);
    spec: core.objects.ObjectSpec."""
    corners = spec.corners_m()
    markers = spec.marker_corners_m()
    sil, mk, sid = [], [], []
    for im in images:
        if not im.labelled:
            continue
        rgb = read_rgb(im.rgb_path)
        grads = image_gradients(rgb)
        R, t = np.asarray(im.gts[0].R, np.float64), np.asarray(im.gts[0].t_mm, np.float64) / 1000
        sil.append(silhouette_scale(rgb, im.K, R, t, corners, grads=grads))
        m = marker_border_scale(rgb, im.K, R, t, markers, grads=grads) if markers else None
        mk.append(np.nan if m is None else m)
        sid.append(im.scene_id)
    return SizeCheck(np.array(sil), np.array(mk, dtype=np.float64), np.array(sid), tuple(spec.size_m))


def format_size_check(s: dict, spec_name: str) -> str:
    """One paragraph a user reads: the measured size, the method check, and what to do."""
    f = s["size_factor"]
    lines = [f"{spec_name}: in {s['n_photos']} labelled photos the object's outline agrees with "
             f"{s['silhouette_factor']:.3f}× the spec's size (photos' IQR {s['silhouette_iqr'][0]:.3f}–"
             f"{s['silhouette_iqr'][1]:.3f})."]
    if s["marker_factor"] is not None:
        lines.append(f"Method check: the marker borders agree with {s['marker_factor']:.3f}× their spec size "
                     f"(expected ≈ 1: the labels were solved with it).")
    lines.append(f"Measured size, relative to the markers: {f:.3f}× = "
                 f"{' × '.join(f'{v:g}' for v in s['measured_size_mm'])} mm (spec "
                 f"{' × '.join(f'{v:g}' for v in s['spec_size_mm'])} mm).")
    if abs(f - 1) > 0.01:
        lines.append(f"The object is {'larger' if f > 1 else 'smaller'} than its spec by {abs(f - 1) * 100:.1f} %: "
                     f"to render it as it is, set size_m to {[round(v / 1000, 5) for v in s['measured_size_mm']]} in "
                     f"the object's spec (markers unchanged).")
    else:
        lines.append("The object matches its spec (within 1 %): nothing to change.")
    return "\n".join(lines)
