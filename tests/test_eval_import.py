"""Importers on the shared real data (ArUco cube, TriFinger), fetch, and `sim2real score` end to end."""
import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.io import UserError
from core.objects import load_object_spec
from core import bop
from eval.aruco_label import ArucoLabeler
from eval.fetch import fetch_aruco_cube
from eval.import_aruco import import_aruco_cube
from eval.import_trifinger import import_trifinger
from core.real_sets import resolve_real
from eval.score import score_predictions, spec_for_real, write_score_outputs

SHARED = Path(__file__).resolve().parents[2] / "shared" / "real"
ARUCO = SHARED / "aruco_cube"
TRIF = SHARED / "trifinger_cube"
pytestmark = pytest.mark.skipif(not (ARUCO / "src2").is_dir(), reason=f"real data not found at {ARUCO}")
SPEC = load_object_spec("aruco-cube")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The whole shared ArUco set, fetched with --from (sha256-verified) and imported once (~6 s)."""
    c = tmp_path_factory.mktemp("cache")
    man = fetch_aruco_cube(from_dir=ARUCO, cache=c, log=lambda *a: None)
    return c, man


@pytest.fixture(scope="module")
def root(cache):
    return cache[0] / "real" / "aruco-cube"


def _gt_rows(images):
    return [{"scene_id": im.scene_id, "im_id": im.im_id, "obj_id": g.obj_id, "score": 1.0, "R": g.R,
             "t_mm": g.t_mm, "time_s": 0.0} for im in images for g in im.gts]


def test_import_counts_per_session(cache, root):
    _, man = cache
    s = man["summary"]
    assert s["data"]["images"] == 3 * 52 and s["test1"]["images"] == 3 * 36
    for name in ("data", "test1"):
        v = s[name]
        assert v["labelled"] + v["ambiguous"] + v["no_markers"] + v["poor_fit"] == v["images"]
        assert v["labelled"] >= 0.6 * v["images"]
        assert v["reproj_rmse_px_median"] < 1.0
    assert s["data"]["ambiguous"] > 30           # one camera of "data" often sees a single face
    assert bop.read_scene_groups(root) == {"data": [1, 2, 3], "test1": [4, 5, 6]}
    ims = bop.load_bop_scenes(root)
    assert len(ims) == 264
    assert sum(im.labelled for im in ims) == s["data"]["labelled"] + s["test1"]["labelled"]


def test_capture_instants_group_the_three_cameras(root):
    # frame N of cam0/1/2 of one session is capture event N (meta.json): one instant, three images
    keys = [(im.scene_id, im.im_id) for im in bop.load_bop_scenes(root)]
    inst = bop.read_capture_instants(root, keys)
    by = {}
    for (sid, iid), c in zip(keys, inst):
        by.setdefault(c, set()).add((sid, iid))
    assert len(by) == 52 + 36
    assert by["test1/00007"] == {(4, 7), (5, 7), (6, 7)} and by["data/00000"] == {(1, 0), (2, 0), (3, 0)}
    assert bop.has_capture_instants(root)
    # a set without scene_instants.json: one cluster per image
    assert bop.read_capture_instants(root, [(99, 1), (99, 2)]) == ["image:99/1", "image:99/2"]


def test_labels_reproject_detected_corners(root):
    """Independent check of the written files: re-detect the markers, project their 3D corners with the
    pose from scene_gt.json and the K from scene_camera.json."""
    labeler = ArucoLabeler(SPEC)
    corners3d = SPEC.marker_corners_m()
    ims = [im for im in bop.load_bop_scenes(root) if im.labelled]
    rmses = []
    for im in ims[::4]:
        det = labeler.detect(cv2.imread(str(im.rgb_path))[:, :, ::-1])
        g = im.gts[0]
        assert len(det) >= 2
        obj = np.concatenate([corners3d[i] for i in sorted(det)])
        img = np.concatenate([det[i] for i in sorted(det)])
        cam = obj @ g.R.T + g.t_mm / 1000.0
        uv = (cam @ im.K.T)[:, :2] / (cam @ im.K.T)[:, 2:3]
        rmses.append(float(np.sqrt(np.mean(np.sum((uv - img) ** 2, axis=1)))))
    rmses = np.array(rmses)
    assert rmses.max() < 2.0, rmses.max()
    assert np.median(rmses) < 1.0
    # depth sanity: the README says the cube is 0.19–0.45 m from the camera
    z = np.array([im.gts[0].t_mm[2] for im in ims])
    assert 150 < z.min() and z.max() < 500


def test_ambiguous_frames_listed_not_labelled(root):
    found = 0
    for sid in (1, 2, 3, 4, 5, 6):
        sdir = bop.scene_dir(root, sid)
        labels = json.loads((sdir / "scene_labels.json").read_text())["images"]
        gt = json.loads((sdir / "scene_gt.json").read_text())
        for im_id, lab in labels.items():
            assert (lab["status"] == "labelled") == bool(gt[im_id])
            if lab["status"] == "ambiguous":
                assert lab["n_markers"] == 1
                found += 1
    assert found > 0


def test_scene_source_points_at_upstream_bytes(root):
    sdir = bop.scene_dir(root, 5)  # test1 / cam1
    src = json.loads((sdir / "scene_source.json").read_text())
    assert len(src) == 36
    for im_id, rel in list(src.items())[:5]:
        assert rel.startswith("src2/test1_result/data/cube_session_01/cam1/rgb_")
        assert (ARUCO / rel).read_bytes() == (sdir / "rgb" / f"{int(im_id):06d}.jpg").read_bytes()


def test_resolve_by_name_after_fetch(cache, monkeypatch):
    monkeypatch.setenv("SIM2REAL_CACHE", str(cache[0]))
    assert resolve_real("aruco-cube") == cache[0] / "real" / "aruco-cube"


def test_score_ground_truth_as_predictions_is_perfect(root, tmp_path):
    spec = spec_for_real(root)
    assert spec.name == "aruco-cube"
    ims = bop.load_bop_scenes(root, [4, 5, 6])
    rows = _gt_rows(ims)
    bop.write_results_csv(tmp_path / "gt.csv", rows)
    rows = bop.read_results_csv(tmp_path / "gt.csv")
    m, per = score_predictions(rows, root, spec, [4, 5, 6], n_boot=200)
    assert m["n_images"] == len(rows) == m["n_predicted"]
    assert m["n_unlabelled_excluded"] == sum(not im.labelled for im in ims)
    for k in ("te_mm_median", "re_deg_median", "add_mm_median", "mssd_mm_median", "mspd_px_median"):
        assert m[k] == pytest.approx(0, abs=1e-3)
    for k in ("acc_5deg_5cm", "acc_10deg_2cm", "acc_add_01d"):
        assert m[k] == 1.0
    assert m["auc_adds_10cm"] == pytest.approx(1.0, abs=1e-4)
    for k in ("ar", "ar_mssd", "ar_mspd", "acc_5deg_5mm", "acc_5deg_2cm", "auc_adds_01d"):
        assert m[k] == pytest.approx(1.0, abs=1e-6), k
    assert m["bootstrap"]["unit"] == "capture instant" and m["bootstrap"]["n_clusters"] <= 36
    assert {r["instant"].split("/")[0] for r in per} == {"test1"}
    paths = write_score_outputs(tmp_path / "out", m, per, root, spec, rows)
    saved = json.loads(paths["metrics"].read_text())
    for k in ("n_images", "n_predicted", "te_mm_median", "re_deg_median", "add_mm_median", "acc_5deg_5cm",
              "acc_add_01d", "auc_adds_10cm"):
        assert k in saved
    assert len(paths["per_image"].read_text().splitlines()) == len(rows) + 1
    for k in ("cdf", "overlays"):
        img = cv2.imread(str(paths[k]))
        assert img is not None and img.shape[0] > 100


def test_score_missing_and_perturbed_predictions(root):
    spec = spec_for_real(root)
    rows = _gt_rows(bop.load_bop_scenes(root, [1]))
    rng = np.random.default_rng(0)
    pert = []
    for r in rows[1:]:                                   # the first image gets no prediction
        ax = rng.normal(size=3)
        d = rng.normal(size=3)
        pert.append({**r, "R": cv2.Rodrigues(ax / np.linalg.norm(ax) * math.radians(3))[0] @ r["R"],
                     "t_mm": r["t_mm"] + 5 * d / np.linalg.norm(d)})
    pert.append({**pert[0], "score": 0.1, "t_mm": pert[0]["t_mm"] + 500})   # lower score: ignored
    m, per = score_predictions(pert, root, spec, [1], n_boot=200)
    assert m["n_images"] == len(rows) and m["n_missing"] == 1
    assert per[0]["predicted"] is False and per[0]["te_mm"] == math.inf
    assert m["re_deg_median"] == pytest.approx(3.0, abs=1e-6)
    assert m["te_mm_median"] == pytest.approx(5.0, abs=1e-6)
    assert m["acc_5deg_5cm"] == pytest.approx((len(rows) - 1) / len(rows))


def test_score_cli_with_session(cache, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SIM2REAL_CACHE", str(cache[0]))
    root = cache[0] / "real" / "aruco-cube"
    bop.write_results_csv(tmp_path / "gt.csv", _gt_rows(bop.load_bop_scenes(root)))
    code, out, err = run_cli(["score", "--pred", tmp_path / "gt.csv", "--real", "aruco-cube", "--out",
                              tmp_path / "o", "--session", "test1", "--n-boot", "100"], capsys)
    assert code == 0, err
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["scene_ids"] == [4, 5, 6] and m["acc_5deg_5cm"] == 1.0
    assert "acc (5°, 5 cm)" in out
    code, _, err = run_cli(["score", "--pred", tmp_path / "gt.csv", "--real", "aruco-cube", "--out",
                            tmp_path / "o2", "--session", "nope"], capsys)
    assert code == 2 and "unknown session" in err


def run_cli(args, capsys):
    """The real CLI entry point in-process (a subprocess would pay the ~10 s import of every stage)."""
    import cli
    code = 0
    try:
        cli.main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def _small_tree(tmp_path, n_bad=1):
    """test1/cam0 only (36 frames) with n_bad jpgs replaced by garbage."""
    src = tmp_path / "up"
    cam = src / "src2/test1_result/data/cube_session_01/cam0"
    shutil.copytree(ARUCO / "src2/test1_result/data/cube_session_01/cam0", cam)
    shutil.copytree(ARUCO / "src2/test1_result/intrinsics", src / "src2/test1_result/intrinsics")
    files = sorted(cam.glob("*.jpg"))
    for f in files[:n_bad]:
        f.write_bytes(b"\xff\xd8 not really a jpeg")
    return src, len(files)


def test_corrupt_jpg_is_skipped_and_reported(tmp_path):
    src, n = _small_tree(tmp_path, n_bad=1)
    logs = []
    man = import_aruco_cube(src, tmp_path / "out", sessions=["test1"], cameras=["cam0"], log=logs.append)
    s = man["summary"]["test1"]
    assert s["skipped"] == 1 and s["images"] == n - 1
    assert man["skipped"][0]["source"].endswith("rgb_00000.jpg")
    assert any("unreadable" in line for line in logs)
    assert len(bop.load_bop_scenes(tmp_path / "out")) == n - 1
    # a second import into the same folder replaces the first
    import_aruco_cube(src, tmp_path / "out", sessions=["test1"], cameras=["cam0"], log=logs.append)


def test_import_cli_prints_session_summary(tmp_path, capsys):
    src, n = _small_tree(tmp_path, n_bad=0)
    code, out, err = run_cli(["real", "import", "aruco-cube", "--src", src, "--out", tmp_path / "bop",
                              "--sessions", "test1", "--cameras", "cam0"], capsys)
    assert code == 0, err
    header, row = out.splitlines()[:2]
    assert "labelled" in header and "ambiguous" in header and "rmse med px" in header
    assert row.split()[:2] == ["test1", str(n)]
    assert bop.read_scene_groups(tmp_path / "bop") == {"test1": [4]}
    code, _, err = run_cli(["real", "import", "aruco-cube", "--src", tmp_path / "nothing", "--out",
                            tmp_path / "bop2"], capsys)
    assert code == 2 and err.startswith("error: ") and "src2/ not found" in err


def test_unusable_input_fails_and_leaves_nothing(tmp_path):
    src, n = _small_tree(tmp_path, n_bad=36)
    with pytest.raises(UserError, match="no readable image"):
        import_aruco_cube(src, tmp_path / "out", sessions=["test1"], cameras=["cam0"], log=lambda *a: None)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["up"]          # no staging folder left behind
    with pytest.raises(UserError, match="src2/ not found"):
        import_aruco_cube(tmp_path / "nothing", tmp_path / "out")
    with pytest.raises(UserError, match="session 'data' not found"):
        import_aruco_cube(src, tmp_path / "out", sessions=["data"])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("x")
    with pytest.raises(UserError, match="not a sim2real real-set import"):
        import_aruco_cube(src, tmp_path / "busy")


def test_fetch_without_network_says_use_from(tmp_path, monkeypatch):
    monkeypatch.setenv("SIM2REAL_FETCH_URL", "http://127.0.0.1:9/{repo}/{commit}/{path}")
    with pytest.raises(UserError, match="--from"):
        fetch_aruco_cube(cache=tmp_path)


def test_fetch_from_modified_copy_is_refused(tmp_path):
    src, _ = _small_tree(tmp_path, n_bad=0)
    with pytest.raises(UserError, match="differ from the pinned upstream"):
        fetch_aruco_cube(from_dir=src, cache=tmp_path / "c")


@pytest.mark.skipif(not (TRIF / "gt_approx.json").is_file(), reason=f"TriFinger data not found at {TRIF}")
def test_trifinger_import(tmp_path):
    man = import_trifinger(TRIF, tmp_path / "tri", sessions=["cube_v2"], log=lambda *a: None)
    assert man["gt_approximate"] and man["summary"]["cube_v2"]["images"] == 3
    spec = load_object_spec("trifinger-cube")
    ims = bop.load_bop_scenes(tmp_path / "tri")
    assert len(ims) == 3 and all(im.labelled and im.approximate for im in ims)
    calib = json.loads((bop.scene_dir(tmp_path / "tri", 1) / "scene_labels.json").read_text())["images"]
    for im in ims:
        assert not np.allclose(im.K, calib[str(im.im_id)]["K_distorted"])    # undistorted: a new K
        g = im.gts[0]
        cam = spec.corners_m() @ g.R.T + g.t_mm / 1000
        uv = (cam @ im.K.T)[:, :2] / (cam @ im.K.T)[:, 2:3]
        assert (cam[:, 2] > 0).all() and (uv > 0).all() and (uv < [im.width, im.height]).all()
        assert 0.02 < np.ptp(uv, axis=0).max() / im.width < 0.5                # a cube-sized box


def test_rig_extrinsics_bring_the_views_of_an_instant_together(root):
    # the upstream calibration, as BOP world → camera extrinsics: world = each session's cam0
    from eval.fuse import rotation_angle_deg, to_world
    ims = bop.load_bop_scenes(root)
    assert all(im.R_w2c is not None for im in ims) and bop.has_world_cameras(root)
    assert all(np.allclose(im.R_w2c, np.eye(3)) and np.allclose(im.t_w2c_mm, 0) for im in ims if im.scene_id in (1, 4))
    by = {}
    for im, k in zip(ims, bop.read_capture_instants(root, [(im.scene_id, im.im_id) for im in ims])):
        if im.labelled:
            by.setdefault(k, []).append(to_world(im.gts[0].R, im.gts[0].t_mm, im.R_w2c, im.t_w2c_mm))
    d = [(np.linalg.norm(a[1] - b[1]), rotation_angle_deg(a[0], b[0]))
         for v in by.values() for i, a in enumerate(v) for b in v[i + 1:]]
    d = np.array(d)
    assert len(d) > 100
    # a wrong convention (camera → world taken for world → camera) puts them hundreds of mm apart
    assert np.median(d[:, 0]) < 10 and d[:, 0].max() < 25 and np.median(d[:, 1]) < 3 and d[:, 1].max() < 6


def test_fusion_repairs_an_outlier_view_of_the_rig(root):
    from eval.fuse import fuse_predictions
    ids = bop.read_scene_groups(root)["test1"]
    images = bop.load_bop_scenes(root, ids)
    rows = _gt_rows(images)
    cam2 = ids[2]
    for r in rows:                      # camera 2's "localizer" is 200 mm off in every image
        if r["scene_id"] == cam2:
            r["t_mm"] = r["t_mm"] + np.array([200.0, 0.0, 0.0])
    fused, counts = fuse_predictions(rows, root, SPEC.symmetries, SPEC.obj_id, ids)
    assert counts["outlier_views_replaced"] > 10 and counts["instants_fused"] > 10
    m, per = score_predictions(fused, root, SPEC, scene_ids=ids, n_boot=10)
    inst = bop.read_capture_instants(root, [(r["scene_id"], r["im_id"]) for r in per])
    n_views = {k: inst.count(k) for k in inst}
    repaired = [r["te_mm"] for r, k in zip(per, inst) if r["scene_id"] == cam2 and n_views[k] == 3]
    assert len(repaired) > 10 and np.median(repaired) < 15        # was 200 mm
    good = [r["te_mm"] for r in per if r["scene_id"] != cam2]
    assert np.median(good) < 8                                   # the rig's calibration error, not more
