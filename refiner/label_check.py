"""Label preservation: does refinement move the cube? Small pure functions on uint8 RGB crops (H,W,3).

Three geometric checks between a synthetic crop and its refined version, all in pixels of the crop:
- edge_chamfer_px: symmetric mean chamfer distance between Canny edge maps inside the cube region
  (cube mask dilated by a few px): 0 = same edges; moving the image by 1 px gives ≈ 0.5–1 px.
- silhouette_edge_recall: fraction of the cube silhouette (boundary of crop_mask) that has a Canny
  edge within tol px; a refiner that blurs, shifts or erases the cube outline lowers it.
- aruco_corner_shift_px: corners of the ArUco markers found in both images (same ids), mean distance.
`label_preservation` summarises them over many samples, with a 1-px-shift reference for scale.
"""
from __future__ import annotations

import cv2
import numpy as np

CANNY_LO, CANNY_HI = 50, 150


def canny_edges(rgb: np.ndarray) -> np.ndarray:
    """bool (H,W) Canny edge map of an RGB uint8 image."""
    return cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), CANNY_LO, CANNY_HI) > 0


def _dist_to(edges: np.ndarray) -> np.ndarray:
    """Distance (px) of every pixel to the nearest edge pixel."""
    return cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, 5)


def edge_chamfer_px(edges_a: np.ndarray, edges_b: np.ndarray, region: np.ndarray | None = None) -> float:
    """Symmetric mean chamfer distance (px) between two edge maps, counting edges inside `region`.
    NaN when either map has no edge there."""
    if region is not None:
        edges_a, edges_b = edges_a & region, edges_b & region
    if not edges_a.any() or not edges_b.any():
        return float("nan")
    d_ab = _dist_to(edges_b)[edges_a].mean()
    d_ba = _dist_to(edges_a)[edges_b].mean()
    return float(0.5 * (d_ab + d_ba))


def mask_boundary(mask: np.ndarray) -> np.ndarray:
    """bool (H,W): pixels of the mask whose 4-neighbourhood leaves the mask."""
    m = (mask > 0).astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)) > 0


def silhouette_edge_recall(edges: np.ndarray, mask: np.ndarray, tol_px: int = 1) -> float:
    """Fraction of silhouette pixels with an edge within tol_px (NaN when the mask is empty)."""
    b = mask_boundary(mask)
    if not b.any():
        return float("nan")
    near = cv2.dilate(edges.astype(np.uint8), np.ones((2 * tol_px + 1, 2 * tol_px + 1), np.uint8)) > 0
    return float(near[b].mean())


def region_of(mask: np.ndarray, margin_px: int = 3) -> np.ndarray:
    k = 2 * margin_px + 1
    return cv2.dilate((mask > 0).astype(np.uint8), np.ones((k, k), np.uint8)) > 0


def aruco_detector(dictionary: str = "DICT_4X4_50") -> "cv2.aruco.ArucoDetector":
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    return cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, dictionary)), params)


def detect_markers(det, rgb: np.ndarray) -> dict[int, np.ndarray]:
    """{marker id: (4,2) corners px} (ids seen more than once are dropped)."""
    corners, ids, _ = det.detectMarkers(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    if ids is None:
        return {}
    ids = ids.ravel().tolist()
    return {i: c.reshape(4, 2) for i, c in zip(ids, corners) if ids.count(i) == 1}


def aruco_corner_shift_px(det, a: np.ndarray, b: np.ndarray) -> tuple[int, int, list[float]]:
    """(#markers in a, #markers in b, per matched marker mean corner distance px)."""
    ma, mb = detect_markers(det, a), detect_markers(det, b)
    shifts = [float(np.linalg.norm(ma[i] - mb[i], axis=1).mean()) for i in ma if i in mb]
    return len(ma), len(mb), shifts


def _stats(x: list[float]) -> dict:
    a = np.asarray([v for v in x if np.isfinite(v)], float)
    if len(a) == 0:
        return {"n": 0}
    return {"n": int(len(a)), "mean": float(a.mean()), "median": float(np.median(a)),
            "p95": float(np.percentile(a, 95))}


def label_preservation(syn: np.ndarray, ref: np.ndarray, masks: np.ndarray,
                       aruco_dictionary: str | None = None) -> dict:
    """Summary over samples: syn/ref uint8 (n,H,W,3), masks uint8 (n,H,W) (the dataset's crop_masks)."""
    chamfer, chamfer_shift1, rec_syn, rec_ref, abs_in, abs_out = [], [], [], [], [], []
    det = aruco_detector(aruco_dictionary) if aruco_dictionary else None
    n_a = n_b = 0
    shifts: list[float] = []
    for s, r, m in zip(syn, ref, masks):
        region = region_of(m)
        es, er = canny_edges(s), canny_edges(r)
        chamfer.append(edge_chamfer_px(es, er, region))
        chamfer_shift1.append(edge_chamfer_px(es, np.roll(es, 1, axis=1), region))
        rec_syn.append(silhouette_edge_recall(es, m))
        rec_ref.append(silhouette_edge_recall(er, m))
        d = np.abs(r.astype(np.int16) - s.astype(np.int16)).mean(axis=2)
        inside = m > 0
        if inside.any():
            abs_in.append(float(d[inside].mean()))
        if (~inside).any():
            abs_out.append(float(d[~inside].mean()))
        if det is not None:
            a, b, sh = aruco_corner_shift_px(det, s, r)
            n_a, n_b = n_a + a, n_b + b
            shifts += sh
    out = {
        "n_samples": int(len(syn)),
        "edge_chamfer_px": _stats(chamfer),
        "edge_chamfer_px_reference_1px_shift": _stats(chamfer_shift1),
        "silhouette_edge_recall_synthetic": _stats(rec_syn),
        "silhouette_edge_recall_refined": _stats(rec_ref),
        "mean_abs_change_inside_mask_8bit": _stats(abs_in),
        "mean_abs_change_outside_mask_8bit": _stats(abs_out),
    }
    if det is not None:
        out["aruco"] = {"dictionary": aruco_dictionary, "markers_synthetic": n_a, "markers_refined": n_b,
                        "corner_shift_px": _stats(shifts)}
    return out


def aruco_dictionary_of(spec) -> str | None:
    """The ArUco dictionary of an ObjectSpec's markers (None when it has none)."""
    for face in spec.faces.values():
        if face.marker is not None:
            return face.marker.dictionary
    return None
