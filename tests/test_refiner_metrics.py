"""Label-preservation and realism metrics on small constructed cases whose answer is known."""
import cv2
import numpy as np
import pytest
import torch

from refiner.label_check import (aruco_corner_shift_px, aruco_detector, canny_edges, edge_chamfer_px,
                                 label_preservation, silhouette_edge_recall)
from refiner.realism import domain_classifier_accuracy, kid


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The CI box is shared: OpenMP threads spinning against each other make tiny nets 10× slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _square(shift: int = 0, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    im = np.full((size, size, 3), 60, np.uint8)
    mask = np.zeros((size, size), np.uint8)
    im[16:48, 16 + shift:48 + shift] = 220
    mask[16:48, 16:48] = 1
    return im, mask


def test_edge_chamfer_and_silhouette_recall():
    a, m = _square()
    b, _ = _square(shift=3)
    ea, eb = canny_edges(a), canny_edges(b)
    assert edge_chamfer_px(ea, ea) == 0.0
    assert 1.0 < edge_chamfer_px(ea, eb) < 3.0  # the vertical edges moved 3 px, horizontal ones not at all
    assert silhouette_edge_recall(ea, m) > 0.9
    assert silhouette_edge_recall(canny_edges(np.full_like(a, 60)), m) == 0.0  # cube erased


def test_label_preservation_summary_and_aruco_corners():
    det = aruco_detector("DICT_4X4_50")
    marker = cv2.aruco.generateImageMarker(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50), 3, 48)
    im = np.full((96, 96, 3), 255, np.uint8)
    im[24:72, 24:72] = marker[..., None]
    mask = np.zeros((96, 96), np.uint8)
    mask[20:76, 20:76] = 1
    moved = np.roll(im, 2, axis=1)
    n_a, n_b, shifts = aruco_corner_shift_px(det, im, moved)
    assert n_a == n_b == 1 and abs(shifts[0] - 2.0) < 0.3
    rep = label_preservation(np.stack([im, im]), np.stack([im, moved]), np.stack([mask, mask]), "DICT_4X4_50")
    assert rep["aruco"]["markers_synthetic"] == 2 and rep["aruco"]["corner_shift_px"]["median"] > 0.5
    assert rep["edge_chamfer_px"]["median"] > 0 and rep["mean_abs_change_inside_mask_8bit"]["n"] == 2


def test_domain_classifier_and_kid_separate_only_different_domains():
    rng = np.random.default_rng(0)
    noisy = lambda n, mu: np.clip(rng.normal(mu, 20, (n, 12, 12, 3)), 0, 255).astype(np.uint8)
    a_tr, a_te, b_tr, b_te = noisy(200, 100), noisy(200, 100), noisy(200, 160), noisy(200, 160)
    assert domain_classifier_accuracy(a_tr, b_tr, a_te, b_te, steps=25, batch=32) > 0.9
    same = domain_classifier_accuracy(a_tr, noisy(200, 100), a_te, noisy(200, 100), steps=25, batch=32)
    assert same < 0.75
    fa, fb, fc = (rng.normal(0, 1, (200, 8)), rng.normal(0, 1, (200, 8)), rng.normal(1, 1, (200, 8)))
    same_kid, diff_kid = kid(fa, fb, subset=50, n_subsets=10)[0], kid(fa, fc, subset=50, n_subsets=10)[0]
    assert abs(same_kid) < 0.1 * diff_kid
