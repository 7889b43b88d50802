"""eval.metrics against hand-computed cases, eval.baseline.mean_pose on plain arrays."""
import math

import cv2
import numpy as np
import pytest

from core.objects import load_object_spec
from eval import metrics as M
from eval.baseline import mean_pose

CUBE = load_object_spec("aruco-cube")        # 30 mm, no symmetry
PLAIN = load_object_spec("plain-cube")       # 40 mm, 24 symmetries
CORNERS_MM = CUBE.corners_m() * 1000.0
K = np.array([[600.0, 0, 320], [0, 600.0, 240], [0, 0, 1]])
T = np.array([0.0, 0.0, 500.0])


def rot(axis, deg):
    a = np.asarray(axis, float)
    return cv2.Rodrigues(a / np.linalg.norm(a) * math.radians(deg))[0]


def test_identity_gives_zero_everywhere():
    R = rot([1, 2, 3], 40)
    pts = M.cuboid_surface_points_mm(CUBE.size_m)
    assert M.te_mm(T, T) == 0
    assert M.re_deg(R, R) == pytest.approx(0, abs=1e-5)
    for f in (M.add_mm, M.adds_mm, M.mssd_mm):
        assert f(R, T, R, T, pts) == pytest.approx(0, abs=1e-6)
    assert M.mspd_px(R, T, R, T, K, pts) == pytest.approx(0, abs=1e-6)


def test_known_90deg_rotation():
    # about z, every corner (±15, ±15, z) moves to (∓15, ±15, z): |Δ| = sqrt((2·15)²/2·2) = 30 mm exactly
    Rz = rot([0, 0, 1], 90)
    assert M.re_deg(Rz, np.eye(3)) == pytest.approx(90, abs=1e-6)
    assert M.te_mm(T, T) == 0
    assert M.add_mm(Rz, T, np.eye(3), T, CORNERS_MM) == pytest.approx(30.0, abs=1e-9)
    assert M.mssd_mm(Rz, T, np.eye(3), T, CORNERS_MM) == pytest.approx(30.0, abs=1e-9)
    # the rotated corners land on corners: ADD-S sees nothing
    assert M.adds_mm(Rz, T, np.eye(3), T, CORNERS_MM) == pytest.approx(0.0, abs=1e-6)
    # 180° about x
    assert M.re_deg(rot([1, 0, 0], 180), np.eye(3)) == pytest.approx(180, abs=1e-6)


def test_pure_translation():
    d = np.array([10.0, 0, 0])
    R = rot([0, 1, 0], 25)
    assert M.te_mm(T + d, T) == pytest.approx(10)
    assert M.re_deg(R, R) == pytest.approx(0, abs=1e-5)
    assert M.add_mm(R, T + d, R, T, CORNERS_MM) == pytest.approx(10)
    assert M.mssd_mm(R, T + d, R, T, CORNERS_MM) == pytest.approx(10)
    assert M.adds_mm(R, T + d, R, T, CORNERS_MM) <= 10 + 1e-9
    # lateral shift at constant depth: every point moves f·Δx/z — but depths vary with the points, so
    # check with the identity rotation where the corners' depths are 485/515 mm: max shift at 485 mm
    assert M.mspd_px(np.eye(3), T + d, np.eye(3), T, K, CORNERS_MM) == pytest.approx(600 * 10 / 485, rel=1e-9)


def test_plain_cube_symmetry_gives_zero_rotation_error():
    R_gt = rot([1, -1, 2], 33)
    g = PLAIN.symmetries[7]
    assert not np.allclose(g, np.eye(3))
    R_pred = R_gt @ g
    pts = M.cuboid_surface_points_mm(PLAIN.size_m)
    assert M.re_deg(R_pred, R_gt) > 80                       # without symmetries: a big error
    assert M.re_deg(R_pred, R_gt, PLAIN.symmetries) == pytest.approx(0, abs=1e-4)
    assert M.mssd_mm(R_pred, T, R_gt, T, pts, PLAIN.symmetries) == pytest.approx(0, abs=1e-6)
    assert M.mspd_px(R_pred, T, R_gt, T, K, pts, PLAIN.symmetries) == pytest.approx(0, abs=1e-6)


def test_add_vs_adds_on_symmetric_object():
    R_gt = rot([0, 0, 1], 10)
    R_pred = R_gt @ rot([0, 0, 1], 90)                        # a symmetry of the plain cube
    pts = M.cuboid_surface_points_mm(PLAIN.size_m)
    add, adds = M.add_mm(R_pred, T, R_gt, T, pts), M.adds_mm(R_pred, T, R_gt, T, pts)
    assert add > 15                                            # ADD punishes an indistinguishable pose
    assert adds == pytest.approx(0, abs=1e-3)                  # ADD-S does not (µm round-off)
    # a genuine error is seen by both, ADD-S ≤ ADD
    R_bad = R_gt @ rot([1, 0, 0], 20)
    assert 0 < M.adds_mm(R_bad, T, R_gt, T, pts) < M.add_mm(R_bad, T, R_gt, T, pts)


def _rows(errs):
    return [{k: e for k in M.METRIC_COLUMNS} | {"predicted": math.isfinite(e)} for e in errs]


def test_summary_counts_missing_as_failure_and_auc_is_exact():
    s = M.summarize(_rows([0.0, 50.0, 100.0, math.inf]), diameter_mm=1000.0, seed=0, n_boot=200)
    assert s["n_images"] == 4 and s["n_predicted"] == 3 and s["n_missing"] == 1
    assert s["auc_add_10cm"] == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert s["acc_add_01d"] == pytest.approx(2 / 4)            # 0.1·d = 100 mm: errors 0 and 50 pass
    assert s["te_mm_mean"] == math.inf
    assert s["te_mm_median"] == pytest.approx(75.0)
    assert s["acc_5deg_5cm"] == pytest.approx(1 / 4)           # re < 5 and te < 50: only the zero
    # bootstrap: seeded, interval brackets the estimate
    s2 = M.summarize(_rows([0.0, 50.0, 100.0, math.inf]), diameter_mm=1000.0, seed=0, n_boot=200)
    assert s2 == s
    for key in ("auc_add_10cm", "acc_5deg_5cm", "re_deg_median"):
        lo, hi = s[key + "_ci95"]
        assert lo <= s[key] <= hi


def test_summary_interval_shrinks_with_more_images():
    rng = np.random.default_rng(1)
    small = M.summarize(_rows(list(rng.exponential(10, 20))), 50.0, n_boot=300)
    big = M.summarize(_rows(list(rng.exponential(10, 2000))), 50.0, n_boot=300)
    w = lambda s: s["re_deg_median_ci95"][1] - s["re_deg_median_ci95"][0]  # noqa: E731
    assert w(big) < w(small)


def test_mean_pose_of_clustered_rotations():
    rng = np.random.default_rng(0)
    R0 = rot([1, 2, 0.5], 70)
    Rs = np.array([R0 @ rot(rng.normal(size=3), rng.normal(0, 5)) for _ in range(200)])
    ts = rng.normal([0.01, 0.02, 0.3], 0.01, size=(200, 3))
    R, t = mean_pose(Rs, ts, CUBE)
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-9) and np.linalg.det(R) > 0
    assert M.re_deg(R, R0) < 1.5
    assert np.allclose(t, ts.mean(0))


def test_mean_pose_symmetry_aware():
    # every sample is R0 times a random symmetry of the plain cube: all the same pose to the eye
    rng = np.random.default_rng(0)
    R0 = rot([0.3, -1, 0.2], 50)
    Rs = np.array([R0 @ rot(rng.normal(size=3), 2) @ PLAIN.symmetries[rng.integers(24)] for _ in range(100)])
    naive = np.linalg.svd(Rs.mean(0))[1]                       # the plain matrix mean nearly cancels out
    assert naive.min() < 0.5
    R, _ = mean_pose(Rs, np.zeros((100, 3)), PLAIN)
    assert M.re_deg(R, R0, PLAIN.symmetries) < 1.5


# ------------------------------------------------------------------ BOP 2019 metrics for a small cube

def test_adds_runs_ground_truth_to_prediction_like_bop_adi():
    # bop_toolkit pose_error.adi: KD-tree of the ESTIMATED points queried with the GT points
    from scipy.spatial import cKDTree
    pts = np.array([[0, 0, 0], [10, 0, 0], [0, 4, 0], [0, 0, 2], [7, 7, 0]], float)
    R, t = rot([0.3, 0.2, 0.9], 55), np.array([1.0, 2.0, 0.0])
    ref = cKDTree(pts @ R.T + t).query(pts, k=1)[0].mean()           # GT (identity pose) → prediction
    other = cKDTree(pts).query(pts @ R.T + t, k=1)[0].mean()         # prediction → GT
    assert abs(ref - other) > 0.1                                   # the direction matters here
    assert M.adds_mm(R, t, np.eye(3), np.zeros(3), pts) == pytest.approx(ref, abs=1e-9)


def test_mssd_mspd_of_a_known_shift():
    pts = M.cuboid_surface_points_mm(CUBE.size_m)
    d = np.array([3.0, 0.0, 0.0])
    # every point moves by 3 mm; in the image the nearest points (z = 500 − 15) move most: 600·3/485 px
    assert M.mssd_mm(np.eye(3), T + d, np.eye(3), T, pts) == pytest.approx(3.0, abs=1e-9)
    assert M.mspd_px(np.eye(3), T + d, np.eye(3), T, K, pts) == pytest.approx(600 * 3 / 485, abs=1e-9)


def test_ar_thresholds_and_width_scaling():
    dia = CUBE.diameter_m * 1000.0                                   # 30·√3 = 51.96 mm
    assert dia == pytest.approx(30 * math.sqrt(3))
    # MSSD 6 mm = 0.1155 d: fails 0.05 and 0.10, passes 0.15…0.50 → 8/10
    assert M.ar_mssd([6.0], dia) == pytest.approx(0.8)
    # strictly below: MSSD exactly 0.5 d fails the last threshold too (bop pose_matching uses `<`)
    assert M.ar_mssd([0.5 * dia], dia) == pytest.approx(0.0)
    assert M.ar_mssd([0.499 * dia], dia) == pytest.approx(0.1)
    # MSPD 12 px on a 1280-px-wide image = 6 px at 640: passes 10…50 → 9/10; at 640 wide → same 12 px → 8/10
    assert M.ar_mspd([12.0], 1280) == pytest.approx(0.9)
    assert M.ar_mspd([12.0], 640) == pytest.approx(0.8)
    assert M.ar_mspd([math.inf], 640) == 0.0
    assert list(M.MSPD_THRESHOLDS_PX) == [5, 10, 15, 20, 25, 30, 35, 40, 45, 50]
    assert np.allclose(M.MSSD_THRESHOLDS_REL, np.arange(1, 11) * 0.05)


def _perturbed_rows(shifts_mm, rot_deg=0.0, width=640):
    """Per-image rows for the aruco cube, GT perturbed by a known translation along x and a rotation."""
    pts = M.cuboid_surface_points_mm(CUBE.size_m)
    rows = []
    for s in shifts_mm:
        R = rot([0, 0, 1], rot_deg) if rot_deg else np.eye(3)
        t = T + np.array([s, 0.0, 0.0])
        rows.append({"te_mm": M.te_mm(t, T), "re_deg": M.re_deg(R, np.eye(3)),
                     "add_mm": M.add_mm(R, t, np.eye(3), T, pts), "adds_mm": M.adds_mm(R, t, np.eye(3), T, pts),
                     "mssd_mm": M.mssd_mm(R, t, np.eye(3), T, pts), "width_px": width,
                     "mspd_px": M.mspd_px(R, t, np.eye(3), T, K, pts)})
    return rows


def test_summary_of_known_perturbations():
    dia = CUBE.diameter_m * 1000.0
    # shifts 1, 4, 6, 30 mm: te = shift, ADD = MSSD = shift, MSPD = 600·shift/485 px
    s = M.summarize(_perturbed_rows([1.0, 4.0, 6.0, 30.0]), dia, n_boot=100)
    assert s["acc_5deg_5mm"] == pytest.approx(2 / 4)                 # 1 and 4 mm
    assert s["acc_5deg_2cm"] == pytest.approx(3 / 4)                 # 1, 4, 6 mm
    assert s["acc_5deg_5cm"] == pytest.approx(1.0)
    assert s["acc_add_01d"] == pytest.approx(2 / 4)                  # 0.1 d = 5.196 mm
    # MSSD/d = 0.0192, 0.0770, 0.1155, 0.577: passes 10, 9, 8, 0 of the 10 thresholds
    assert s["ar_mssd"] == pytest.approx((10 + 9 + 8 + 0) / 40)
    # MSPD = 1.237, 4.948, 7.423, 37.11 px: passes 10, 10, 9, 3 of 5…50
    assert s["ar_mspd"] == pytest.approx((10 + 10 + 9 + 3) / 40)
    assert s["ar"] == pytest.approx((s["ar_mssd"] + s["ar_mspd"]) / 2)
    # AUC of ADD over 0–0.1 d: mean of 1 − min(e, 0.1 d)/(0.1 d)
    assert s["auc_add_01d"] == pytest.approx(np.mean([1 - 1 / (0.1 * dia), 1 - 4 / (0.1 * dia), 0, 0]))
    assert s["te_mm_median"] == pytest.approx(5.0)
    # a rotation of 6° about the viewing axis fails every 5° accuracy whatever the shift
    r = M.summarize(_perturbed_rows([1.0, 1.0], rot_deg=6.0), dia, n_boot=50)
    assert r["acc_5deg_5mm"] == 0 and r["acc_10deg_2cm"] == 1.0
    assert r["re_deg_median"] == pytest.approx(6.0, abs=1e-6)


def test_summary_cluster_bootstrap_unit():
    rows = _perturbed_rows([1.0, 2.0, 3.0, 4.0])
    s = M.summarize(rows, 50.0, n_boot=50, clusters=["a", "a", "b", "b"])
    assert s["bootstrap"]["unit"] == "capture instant" and s["bootstrap"]["n_clusters"] == 2
    # two clusters: a replicate is {a,a}, {a,b} or {b,b}; median te ∈ {1.5, 2.5, 3.5}
    lo, hi = s["te_mm_median_ci95"]
    assert lo in (1.5, 2.5) and hi in (2.5, 3.5)
