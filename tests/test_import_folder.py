"""`sim2real real import aruco-cube --src DIR --camera K.json`: "user photos" rendered by the project's
renderer at a user camera's K, saved as JPEGs in a plain folder, import with labels that agree with the
renderer's (within 1° / 2 mm), also through lens distortion; bad input → one clear line, exit 2, nothing written."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from core import bop
from eval.metrics import re_deg

generate = pytest.importorskip("render.generate", reason="renderer not available")
from render.dataset import SyntheticDataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# a user's camera: not the RealSense of the upstream set, off-centre principal point, 480×360
K_USER = np.array([[520.0, 0.0, 236.5], [0.0, 523.0, 183.0], [0.0, 0.0, 1.0]])
W, H = 480, 360
DIST = np.array([-0.12, 0.06, 0.0005, -0.0004, 0.0])


def _cli(*args):
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *map(str, args)], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
                               "SIM2REAL_CACHE": "/nonexistent-cache"})


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    """12 nominal aruco-cube renders at the user's K and size (the renderer's exact labels alongside)."""
    out = tmp_path_factory.mktemp("user") / "ds"
    cfg = generate.GenerateConfig(object="aruco-cube", n=12, seed=3, randomization="nominal",
                                  cameras=[{"K": K_USER.tolist(), "width": W, "height": H}], frame_width=W,
                                  shard_size=12)
    generate.generate_dataset(cfg, out, workers=1, progress=False)
    return SyntheticDataset(out)


def _distort(rgb: np.ndarray) -> np.ndarray:
    """The photo a lens with DIST would take: each distorted pixel samples the pinhole image where it maps."""
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    pts = np.stack([u.ravel(), v.ravel()], -1).reshape(-1, 1, 2)
    und = cv2.undistortPoints(pts, K_USER, DIST, None, K_USER,
                              criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-6)).reshape(H, W, 2)
    return cv2.remap(rgb, und[..., 0], und[..., 1], cv2.INTER_LINEAR)


def _write_photos(ds, folder: Path, idx, distort=False):
    folder.mkdir(parents=True, exist_ok=True)
    for i in idx:
        img = _distort(ds.frames[i]) if distort else ds.frames[i]
        cv2.imwrite(str(folder / f"IMG_{i:04d}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 92])


def _kfile(path: Path, dist=None, size=(W, H)):
    d = {"cam_K": K_USER.reshape(-1).tolist(), "width": size[0], "height": size[1]}
    if dist is not None:
        d["dist"] = list(dist)
    path.write_text(json.dumps(d))
    return path


def _check_labels(root: Path, ds, min_labelled: int):
    rot, te = [], []
    for im in bop.load_bop_scenes(root):
        if not im.gts:
            continue
        i = int(Path(json.loads((im.rgb_path.parents[1] / "scene_source.json").read_text())[str(im.im_id)])
                .stem.split("_")[1])
        g = im.gts[0]
        rot.append(re_deg(g.R, ds.labels["R"][i]))
        te.append(np.linalg.norm(g.t_mm - ds.labels["t_m"][i] * 1000))
        assert np.allclose(im.K, K_USER)
    print(f"labels vs renderer: rotation {np.round(rot, 2).tolist()} deg, translation {np.round(te, 2).tolist()} mm")
    assert len(rot) >= min_labelled, len(rot)
    # the bar, on the median (a 30 mm cube ~50 px wide: single frames scatter a little more)
    assert np.median(rot) < 1.0 and np.median(te) < 2.0, (np.median(rot), np.median(te))
    assert max(rot) < 3.0 and max(te) < 6.0, (max(rot), max(te))


def test_import_sessions_from_subfolders(renders, tmp_path):
    src = tmp_path / "photos"
    _write_photos(renders, src / "desk", range(0, 6))
    _write_photos(renders, src / "shelf", range(6, 12))
    out = tmp_path / "bop"
    r = _cli("real", "import", "aruco-cube", "--src", src, "--camera", _kfile(tmp_path / "K.json"), "--out", out)
    assert r.returncode == 0, r.stderr
    assert "desk" in r.stdout and "shelf" in r.stdout and "labelled" in r.stdout
    assert bop.read_scene_groups(out) == {"desk": [1], "shelf": [2]}
    _check_labels(out, renders, 6)
    # the benchmark takes this set's named sessions; a wrong one fails before anything is written
    for args, want in ((["--tune", "desk", "--report", "garden"], "--report garden: no such session"),
                       (["--tune", "desk", "--report", "desk"], "both are 'desk'")):
        r = _cli("benchmark", "--real", out, "--out", tmp_path / "report", "--profile", "quick", *args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and want in r.stderr, r.stderr
        assert not (tmp_path / "report").exists()


def test_import_undistorts_with_k_file_distortion(renders, tmp_path):
    src = tmp_path / "flat"
    _write_photos(renders, src, range(12), distort=True)
    out = tmp_path / "bop"
    r = _cli("real", "import", "aruco-cube", "--src", src, "--camera", _kfile(tmp_path / "K.json", DIST),
             "--session", "lens", "--out", out)
    assert r.returncode == 0, r.stderr
    assert bop.read_scene_groups(out) == {"lens": [1]}
    _check_labels(out, renders, 6)
    # the stored photo is the undistorted one: close to the pinhole render
    im = bop.load_bop_scenes(out)[0]
    i = int(json.loads((im.rgb_path.parents[1] / "scene_source.json").read_text())["0"].split("_")[1][:4])
    stored = cv2.cvtColor(cv2.imread(str(im.rgb_path)), cv2.COLOR_BGR2RGB).astype(float)
    assert np.median(np.abs(stored - renders.frames[i])[40:-40, 40:-40]) < 6


@pytest.mark.parametrize("case", ["k_missing_field", "k_other_size", "empty", "no_markers", "unknown_session"])
def test_bad_input_one_line_exit_2_nothing_written(renders, tmp_path, case):
    src = tmp_path / "photos"
    kfile = _kfile(tmp_path / "K.json")
    args = []
    if case == "k_missing_field":
        _write_photos(renders, src, range(2))
        kfile.write_text(json.dumps({"cam_K": K_USER.reshape(-1).tolist(), "width": W}))
        want = "height: missing"
    elif case == "k_other_size":
        _write_photos(renders, src, range(2))
        _kfile(kfile, size=(640, 480))
        want = "is for 640x480"
    elif case == "empty":
        src.mkdir()
        want = "no photos"
    elif case == "no_markers":
        src.mkdir()
        for k in range(3):
            cv2.imwrite(str(src / f"wall_{k}.jpg"), np.full((H, W, 3), 60 + 50 * k, np.uint8))
        want = "no photo got a marker-derived label"
    else:
        _write_photos(renders, src / "desk", range(2))
        args = ["--session", "garden"]
        want = "--session garden: no such session"
    out = tmp_path / "bop"
    r = _cli("real", "import", "aruco-cube", "--src", src, "--camera", kfile, "--out", out, *args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and want in r.stderr, r.stderr
    assert not out.exists() and not any(p.name.startswith(".bop") for p in tmp_path.iterdir())
