"""`sim2real camera board|calibrate`: the printed board, seen through a known pinhole camera (exact
homography rendering, 2× supersampled), calibrates back to that K within 1 %; bad input → one line, exit 2."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.camera import read_camera_file, scale_K
from eval.calibrate import BoardSpec, calibrate_camera, draw_board

ROOT = Path(__file__).resolve().parents[1]
K_TRUE = np.array([[600.0, 0, 331.5], [0, 604.0, 236.0], [0, 0, 1]])
W, H = 640, 480
PX_PER_MM = 10  # board texture: the printed page rasterised at 254 dpi


def _rot(ax, ay, az):
    rx = cv2.Rodrigues(np.array([ax, 0.0, 0]))[0]
    ry = cv2.Rodrigues(np.array([0, ay, 0.0]))[0]
    rz = cv2.Rodrigues(np.array([0, 0.0, az]))[0]
    return rz @ ry @ rx


def render_board_views(folder: Path, n: int, seed: int = 0, spec: BoardSpec = BoardSpec()) -> None:
    """Photos of the printed board (the PNG page `camera board` makes) at random poses through K_TRUE."""
    png, layout = draw_board(spec, "png", dpi=int(25.4 * PX_PER_MM))
    page = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE)
    x0, y0, x1, y1 = (np.array(layout["board_mm"]) * PX_PER_MM).round().astype(int)
    tex = page[y0:y1, x0:x1]
    # board texture pixel (j, i) ↦ board point ((j + .5), (i + .5)) / (1000 px/m·mm) in metres
    S = np.array([[1e-3 / PX_PER_MM, 0, 0.5e-3 / PX_PER_MM], [0, 1e-3 / PX_PER_MM, 0.5e-3 / PX_PER_MM], [0, 0, 1]])
    centre = np.array([tex.shape[1], tex.shape[0], 0]) * 1e-3 / PX_PER_MM / 2
    rng = np.random.default_rng(seed)
    K2 = scale_K(K_TRUE, 2.0)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        R = _rot(*rng.uniform(-0.5, 0.5, 2), rng.uniform(-0.4, 0.4))
        t = np.array([*rng.uniform(-0.03, 0.03, 2), rng.uniform(0.38, 0.5)]) - R @ centre
        Hm = K2 @ np.column_stack([R[:, 0], R[:, 1], t]) @ S
        big = cv2.warpPerspective(tex, Hm, (2 * W, 2 * H), flags=cv2.INTER_LINEAR, borderValue=110)
        img = cv2.resize(big, (W, H), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"view_{k:02d}.png"), img)


def test_calibrate_recovers_known_K(tmp_path):
    render_board_views(tmp_path / "views", 8)
    res = calibrate_camera(tmp_path / "views", BoardSpec(), log=lambda *_: None)
    K = np.asarray(res["cam_K"]).reshape(3, 3)
    assert res["n_views"] == 8 and (res["width"], res["height"]) == (W, H)
    for (i, j) in [(0, 0), (1, 1), (0, 2), (1, 2)]:  # fx, fy, cx, cy within 1 %
        assert abs(K[i, j] / K_TRUE[i, j] - 1) < 0.01, (i, j, K[i, j], K_TRUE[i, j])
    assert res["reproj_rms_px"] < 0.5
    # K.json through the CLI, and read back by the one K-file parser
    out = tmp_path / "K.json"
    r = subprocess.run([sys.executable, str(ROOT / "cli.py"), "camera", "calibrate", "--images",
                        str(tmp_path / "views"), "--out", str(out)], capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    cam = read_camera_file(out, with_dist=True)
    assert np.allclose(cam["K"], K, rtol=1e-6) and len(cam["dist"]) == 5


@pytest.mark.parametrize("case", ["too_few", "no_board", "empty"])
def test_calibrate_bad_input_one_line_exit_2(tmp_path, case):
    d = tmp_path / "imgs"
    if case == "too_few":
        render_board_views(d, 2, seed=1)
    elif case == "no_board":
        d.mkdir()
        for k in range(5):
            cv2.imwrite(str(d / f"x{k}.jpg"), np.full((120, 160, 3), 40 * k, np.uint8))
    else:
        d.mkdir()
    out = tmp_path / "K.json"
    r = subprocess.run([sys.executable, str(ROOT / "cli.py"), "camera", "calibrate", "--images", str(d),
                        "--out", str(out)], capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert {"too_few": "need at least", "no_board": "no ChArUco board", "empty": "no images"}[case] in r.stderr
    assert not out.exists()
