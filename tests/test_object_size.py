"""`real check-size`: the object's size measured from labelled photos — hand-made edges, renders of known size, and
the shared ArUco photos (the cube there is ≈ 2 % larger than its 30 mm spec, its markers 22 mm)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eval.object_size import SCALES, check_object_size, edge_support, marker_border_scale, peak_of, silhouette_scale

ROOT = Path(__file__).resolve().parents[1]


def test_peak_of_refines_between_grid_points():
    support = -(SCALES - 1.012) ** 2
    assert peak_of(SCALES, support) == pytest.approx(1.012, abs=1e-9)     # a parabola is fitted exactly
    assert peak_of(SCALES, SCALES) == SCALES[-1]                           # a peak at the grid's end stays there


def test_edge_support_is_high_on_the_edges_only():
    img = np.zeros((100, 100), np.float32)
    img[30:70, 30:70] = 255.0
    import cv2
    gx, gy = cv2.Sobel(img, cv2.CV_32F, 1, 0), cv2.Sobel(img, cv2.CV_32F, 0, 1)
    on = np.array([[29.5, 29.5], [69.5, 29.5], [69.5, 69.5], [29.5, 69.5]])
    inside = np.array([[35, 35], [64, 35], [64, 64], [35, 64]], float)
    assert edge_support(gx, gy, on) > 500 and edge_support(gx, gy, inside) == 0.0
    assert edge_support(gx, gy, on + 1000) == 0.0                          # nothing in the image


def test_renders_give_back_the_size_they_were_rendered_at(tmp_path):
    from core.objects import load_object_spec
    from render.dataset import SyntheticDataset
    from render.generate import GenerateConfig, generate_dataset
    generate_dataset(GenerateConfig(object="aruco-cube", n=8, seed=3, crop_px=128), tmp_path / "ds", workers=1,
                     progress=False)
    ds, spec = SyntheticDataset(tmp_path / "ds"), load_object_spec("aruco-cube")
    sil, mk = [], []
    for i in range(len(ds)):
        lab = ds.labels[i]
        if lab["visib_fract"] < 0.99:
            continue
        rgb, K, R, t = ds.crops[i], lab["K_crop"], lab["R"], lab["t_m"]
        sil.append(silhouette_scale(rgb, K, R, t, spec.corners_m() / 1.03))   # a spec 3 % too small
        mk.append(marker_border_scale(rgb, K, R, t, spec.marker_corners_m()))
    assert len(sil) >= 4
    # both come out ≈ 0.5 % large on renders; their ratio is the size against the markers
    assert np.median([m for m in mk if m is not None]) == pytest.approx(1.0, abs=0.01)
    assert np.median(sil) / np.median([m for m in mk if m is not None]) == pytest.approx(1.03, abs=0.006)


def test_shared_photos_cube_is_larger_than_its_spec(shared_real, tmp_path):
    from core.bop import load_bop_scenes
    from eval.import_aruco import import_aruco_cube
    from eval.score import spec_for_real
    out = tmp_path / "bop"
    import_aruco_cube(shared_real / "aruco_cube", out, sessions=["data"], cameras=["cam0"], log=lambda *a: None)
    check = check_object_size(load_bop_scenes(out), spec_for_real(out))
    s = check.summary()
    assert s["n_photos"] >= 25
    assert 1.008 < s["size_factor"] < 1.03                # the folded card cube: ≈ 30.6 mm, not 30
    assert s["marker_factor"] == pytest.approx(1.0, abs=0.005)
    r = subprocess.run([sys.executable, str(ROOT / "cli.py"), "real", "check-size", "--real", str(out),
                        "--session", "data"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "The object is larger than its spec" in r.stdout and "Method check" in r.stdout
    r = subprocess.run([sys.executable, str(ROOT / "cli.py"), "real", "check-size", "--real", str(out),
                        "--session", "test1"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown session" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("factor, says", [(1.004, "matches its spec (within 1 %)"),
                                          (1.02, "larger than its spec by 2.0 %: to render it as it is, set size_m "
                                                 "to [0.0306, 0.0306, 0.0306]"),
                                          (0.97, "smaller than its spec by 3.0 %")])
def test_the_paragraph_says_what_to_do(factor, says):
    from eval.object_size import format_size_check
    s = {"size_factor": factor, "n_photos": 99, "silhouette_factor": factor, "silhouette_iqr": [0.99, 1.03],
         "marker_factor": 1.0, "measured_size_mm": [30 * factor] * 3, "spec_size_mm": [30.0] * 3}
    text = format_size_check(s, "aruco-cube")
    assert says in text and "in 99 labelled photos" in text
    assert ("matches" in text) == (abs(factor - 1) <= 0.01)
