"""`sim2real cube print`: rasterise the printed net at a known dpi; OpenCV must find every marker with the
right id, at the spec's size (within 1 %), and — folded along the net — at the spec's 3D corners."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.objects import load_object_spec
from render.cube_print import paper_to_object_m, print_cube

ROOT = Path(__file__).resolve().parents[1]
DPI = 200


def _detect(png: Path, dictionary: str) -> dict[int, np.ndarray]:
    gray = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    det = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, dictionary)), params)
    corners, ids, _ = det.detectMarkers(gray)
    return {} if ids is None else {int(i): c.reshape(4, 2) for i, c in zip(ids.ravel(), corners)}


@pytest.mark.parametrize("obj, rolls", [("aruco-cube", None), ("rolled", [90, 270, 180, 0, 90])])
def test_printed_markers_detected_at_spec_size_and_fold_onto_spec_corners(tmp_path, obj, rolls):
    if rolls is None:
        spec = load_object_spec(obj)
    else:  # a user spec: other dictionary, ids, sizes, rolls, a non-cubic box — the net must follow any spec
        faces = ["+Z", "+X", "+Y", "-X", "-Y"]
        text = "name: rolled\nsize_m: [0.04, 0.035, 0.03]\nfaces:\n" + "".join(
            f"  '{f}': {{marker: {{dictionary: DICT_5X5_50, id: {10 + k}, size_m: {0.022 + 0.001 * k}, "
            f"roll_deg: {r}}}}}\n" for k, (f, r) in enumerate(zip(faces, rolls)))
        (tmp_path / "rolled.yaml").write_text(text)
        spec = load_object_spec(tmp_path / "rolled.yaml")
    out = tmp_path / "cube.png"
    layout = print_cube(spec, out, dpi=DPI)
    dictionary = next(lk.marker.dictionary for lk in spec.faces.values() if lk.marker)
    found = _detect(out, dictionary)
    want = spec.marker_corners_m()
    assert sorted(found) == sorted(want)
    px_per_mm = DPI / 25.4
    for mid, c in found.items():
        side_px = np.mean([np.linalg.norm(c[i] - c[(i + 1) % 4]) for i in range(4)])
        marker = next(lk.marker for lk in spec.faces.values() if lk.marker and lk.marker.id == mid)
        assert abs(side_px / (marker.size_m * 1000 * px_per_mm) - 1) < 0.01, (mid, side_px)
        # fold the paper: detected corners (OpenCV order) land on the spec's corners of that marker
        face = layout["markers"][mid]["face"]
        xyz = paper_to_object_m(spec, layout["faces"][face], (c + 0.5) / px_per_mm)
        assert np.abs(xyz - want[mid]).max() < 0.0005, (mid, face, xyz - want[mid])


def test_cli_pdf_svg_and_bad_suffix(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    for name in ("cube.pdf", "cube.svg"):
        r = subprocess.run([sys.executable, str(ROOT / "cli.py"), "cube", "print", "--object", "trifinger-cube",
                            "--out", str(tmp_path / name)], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        head = (tmp_path / name).read_bytes()[:200]
        assert head.startswith(b"%PDF") if name.endswith("pdf") else b"<svg" in (tmp_path / name).read_bytes()
    r = subprocess.run([sys.executable, str(ROOT / "cli.py"), "cube", "print", "--out", str(tmp_path / "cube.jpg")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--out" in r.stderr
    assert not (tmp_path / "cube.jpg").exists()
