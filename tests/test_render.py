"""Renderer and datasets: label geometry against rendered masks, an independent marker check, byte-level
determinism across worker counts, resume after interruption, and clear errors on bad input."""
import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from core.camera import project_points
from core.io import UserError
from core.objects import load_object_spec
from render.dataset import SyntheticDataset, is_dataset
from render.generate import GenerateConfig, generate_dataset

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
K_REAL = [[610.39, 0.0, 327.23], [0.0, 608.80, 244.14], [0.0, 0.0, 1.0]]


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


@pytest.fixture(scope="module")
def near_ds(tmp_path_factory):
    """Close-up renders at 320×240 with distractors (occlusions), so masks are large and labels testable."""
    out = tmp_path_factory.mktemp("near") / "ds"
    cfg = GenerateConfig(n=16, shard_size=8, frame_width=320, randomization="dr",
                         scene={"camera_distance_m": [0.19, 0.3]})
    generate_dataset(cfg, out, workers=1, progress=False)
    return SyntheticDataset(out)


@pytest.mark.parametrize("kind", ["frame", "crop"])
def test_projected_corners_match_mask_bbox(near_ds, kind):
    masks = near_ds.frame_masks if kind == "frame" else near_ds.crop_masks
    L = near_ds.labels
    checked = 0
    for i in range(len(near_ds)):
        if L["visib_fract"][i] < 0.99:
            continue  # an occluded cube's mask is smaller than its silhouette
        ys, xs = np.nonzero(masks[i])
        mask_box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)  # pixel edges
        c = project_points(near_ds.spec.corners_m(), L["R"][i], L["t_m"][i], L[f"K_{kind}"][i]) + 0.5
        proj_box = np.array([*c.min(0), *c.max(0)])
        if proj_box[0] < 0 or proj_box[1] < 0 or proj_box[2] > masks.shape[2] or proj_box[3] > masks.shape[1]:
            continue  # partly outside the image
        assert np.abs(mask_box - proj_box).max() < 1.5, (i, mask_box, proj_box)
        checked += 1
    assert checked >= 5


def test_labels_are_consistent(near_ds):
    L = near_ds.labels
    for i in range(len(near_ds)):
        R = L["R"][i]
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
        c = project_points(np.zeros((1, 3)), R, L["t_m"][i], L["K_full"][i])[0]
        np.testing.assert_allclose(c, L["center_full_px"][i], atol=1e-6)
        assert 0.19 * 0.9 < np.linalg.norm(L["t_m"][i]) < 0.3 * 1.1
        assert 0.6 <= L["visib_fract"][i] <= 1.05
    assert len(near_ds.params) == len(near_ds)
    assert {"light_azimuth_deg", "table_texture", "camera_distance_m"} <= set(near_ds.params[0])


@pytest.mark.parametrize("side_m", [0.03, 0.0306])
def test_aruco_detector_recovers_labelled_pose(tmp_path, side_m):
    """Independent check: OpenCV ArUco + PnP with the cube's geometry agrees with the labels — also for a face
    whose marker is no whole number of the default tile's texels (22 mm on 30.6 mm: render.mesh.tile_px_for)."""
    import yaml
    from core.objects import BUILTIN_DIR
    text = yaml.safe_load((BUILTIN_DIR / "aruco-cube.yaml").read_text())
    text["size_m"] = side_m
    (tmp_path / "cube.yaml").write_text(yaml.safe_dump(text))
    spec = load_object_spec(str(tmp_path / "cube.yaml"))
    cfg = GenerateConfig(object=str(tmp_path / "cube.yaml"), n=8, shard_size=8, frame_width=640,
                         cameras=[{"K": K_REAL, "width": 640, "height": 480}],
                         scene={"camera_distance_m": [0.19, 0.3], "camera_elevation_deg": [20, 45]})
    ds = SyntheticDataset(generate_dataset(cfg, tmp_path / "ds", progress=False))
    params = cv2.aruco.DetectorParameters()
    params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    det = cv2.aruco.ArucoDetector(cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50), params)
    geo = spec.marker_corners_m()
    checked = 0
    for i in range(len(ds)):
        corners, ids, _ = det.detectMarkers(cv2.cvtColor(ds.frames[i], cv2.COLOR_RGB2GRAY))
        if ids is None or len(ids) < 2:
            continue
        obj = np.concatenate([geo[int(k)] for k in ids.ravel()])
        img = np.concatenate([c.reshape(4, 2) for c in corners])
        K = ds.labels["K_frame"][i]
        ok, rvec, tvec = cv2.solvePnP(obj, img, K, None, flags=cv2.SOLVEPNP_SQPNP)
        rvec, tvec = cv2.solvePnPRefineLM(obj, img, K, None, rvec, tvec)
        R = cv2.Rodrigues(rvec)[0]
        dR = R.T @ ds.labels["R"][i]
        angle = np.degrees(np.arccos(np.clip((np.trace(dR) - 1) / 2, -1, 1)))
        assert np.linalg.norm(tvec.ravel() - ds.labels["t_m"][i]) < 0.002, i
        assert angle < 2.0, i
        checked += 1
    assert checked >= 4


def test_same_seed_same_bytes_with_1_and_2_workers_and_after_resume(tmp_path):
    cfg = GenerateConfig(n=12, shard_size=4, randomization="widest", seed=3)
    a = generate_dataset(cfg, tmp_path / "a", workers=1, progress=False)
    b = generate_dataset(cfg, tmp_path / "b", workers=2, progress=False)
    assert _files(a) == _files(b)
    # an interrupted run: one shard missing, the manifest not yet written, generate.json still there
    c = tmp_path / "c"
    shutil.copytree(a, c)
    (c / "manifest.json").unlink()
    shutil.rmtree(c / "shards" / "000001")
    (c / "shards" / ".000001.tmp99999").mkdir()  # the killed run's half-written shard: removed on resume
    (c / "shards" / ".000001.tmp99999" / "frames.npy").write_bytes(b"half")
    (c / "generate.json").write_text(json.dumps({"config_hash": json.loads((a / "manifest.json").read_text())
                                                 ["config_hash"]}))
    with pytest.raises(UserError, match="incomplete"):
        SyntheticDataset(c)
    generate_dataset(cfg, c, workers=1, progress=False)
    assert _files(c) == _files(a)
    assert json.loads((c / "manifest.json").read_text())["content_hash"] == \
        json.loads((a / "manifest.json").read_text())["content_hash"]


def test_interrupted_cli_run_resumes(tmp_path):
    """Kill a real `generate` mid-run, rerun the same command: the dataset equals an uninterrupted one."""
    args = [sys.executable, str(REPO / "cli.py"), "generate", "--n", "24", "--shard-size", "4", "--seed", "5"]
    proc = subprocess.Popen(args + ["--out", str(tmp_path / "x")], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    shard_dir = tmp_path / "x" / "shards"
    import time
    t0 = time.time()
    while time.time() - t0 < 120 and proc.poll() is None and not (
            shard_dir.is_dir() and len(list(shard_dir.glob("0*"))) >= 2):
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1]  # still running: we interrupt it mid-way
    proc.kill()
    proc.wait()
    assert not is_dataset(tmp_path / "x")
    subprocess.run(args + ["--out", str(tmp_path / "x")], cwd=REPO, check=True, capture_output=True)
    generate_dataset(GenerateConfig(n=24, shard_size=4, seed=5), tmp_path / "y", progress=False)
    assert _files(tmp_path / "x") == _files(tmp_path / "y")


def _cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, str(REPO / "cli.py"), *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("args, msg", [
    (["--object", "no-such-cube"], "unknown object"),
    (["--n", "0"], "--n"),
    (["--n", "-3"], "--n"),
    (["--scene", "BAD_SCENE"], "camera_distance_m"),
    (["--object", "BAD_SPEC"], "malformed"),
])
def test_generate_bad_input(tmp_path, args, msg):
    (tmp_path / "bad_scene.yaml").write_text("camera_distance_m: [0.5, 0.2]\n")
    (tmp_path / "bad_spec.yaml").write_text("name: x\n  size_m: [\n")
    args = [a.replace("BAD_SCENE", str(tmp_path / "bad_scene.yaml")).replace("BAD_SPEC", str(tmp_path / "bad_spec.yaml"))
            for a in args]
    full = ["generate", "--n", "4", "--out", str(tmp_path / "out")]
    for i in range(0, len(args), 2):  # later options override
        if args[i] in full:
            full[full.index(args[i]) + 1] = args[i + 1]
        else:
            full += args[i:i + 2]
    r = _cli(*full)
    assert r.returncode != 0
    assert msg in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "out").exists()


def test_generate_refuses_a_non_dataset_folder(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    r = _cli("generate", "--n", "4", "--out", str(tmp_path / "out"))
    assert r.returncode == 2 and "not a sim2real dataset" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["notes.txt"]


def test_show_and_export(near_ds, tmp_path):
    r = _cli("show", "--data", str(near_ds.root), "--out", str(tmp_path / "sheet.png"), "--n", "6")
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(tmp_path / "sheet.png")) is not None
    r = _cli("export", "--data", str(near_ds.root), "--format", "bop", "--out", str(tmp_path / "bop"))
    assert r.returncode == 0, r.stderr
    from core.bop import load_bop_scenes
    ims = load_bop_scenes(tmp_path / "bop")
    assert len(ims) == len(near_ds)
    np.testing.assert_allclose(ims[3].gts[0].t_mm, near_ds.labels["t_m"][3] * 1000, atol=1e-6)


def test_tile_size_draws_every_marker_at_its_size():
    from core.objects import spec_from_dict
    from render.mesh import TILE_PX, build_atlas, tile_px_for
    spec = load_object_spec("aruco-cube")
    assert tile_px_for(spec) == TILE_PX                       # 22/30 of 180 texels: 132, exact
    d = spec.to_dict()
    d["size_m"] = [0.0306] * 3
    big = spec_from_dict(d, "test")
    t = tile_px_for(big)
    m_px = t * 0.022 / 0.0306
    assert abs(m_px - round(m_px)) < 0.05 and (t - round(m_px)) % 2 == 0
    atlas = build_atlas(big)
    assert atlas.shape == (2 * t, 3 * t, 3)
    tile = atlas[:t, :t].min(axis=2)                           # +X: white face, black-bordered marker, centred
    dark = np.nonzero(tile.min(axis=0) < 128)[0]
    assert dark[0] == (t - round(m_px)) // 2 and dark[-1] - dark[0] + 1 == round(m_px)
