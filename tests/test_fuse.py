"""Multi-view fusion (eval/fuse.py) on hand-built rigs: depth from the other cameras, outliers, symmetries."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from core import bop
from core.objects import cube_symmetries, load_object_spec
from eval.fuse import FuseConfig, fuse_instant, mean_rotation, rotation_angle_deg, to_camera, to_world

REPO = Path(__file__).resolve().parents[1]
EYE = np.eye(3)[None]


def look_at(centre_w_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R_w2c, t_w2c_mm) of a camera at centre_w looking at the world origin (OpenCV: z forward, y down)."""
    z = -centre_w_mm / np.linalg.norm(centre_w_mm)
    x = np.cross([0.0, 0.0, -1.0], z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R_w2c = np.stack([x, y, z])
    return R_w2c, -R_w2c @ centre_w_mm


def rot(axis, deg) -> np.ndarray:
    import cv2
    return cv2.Rodrigues(np.asarray(axis, float) / np.linalg.norm(axis) * np.radians(deg))[0]


# three cameras 300 mm from the cube, 90° apart around it, a little above it (like the ArUco rig)
CAMS = [look_at(300 * np.array([np.cos(a), np.sin(a), 0.25])) for a in np.radians([0, 90, 200])]
R_TRUE, T_TRUE = rot([1, 2, 3], 40), np.array([5.0, -3.0, 2.0])   # the cube in the world frame (mm)


def views(depth_err_mm=(0.0, 0.0, 0.0), rot_err=(EYE[0], EYE[0], EYE[0]), shift_mm=(None, None, None)):
    """Each camera's estimate: the truth in its frame, off by depth_err along its viewing ray (and shift_mm)."""
    out = []
    for (R_w2c, t_w2c), dz, dR, sh in zip(CAMS, depth_err_mm, rot_err, shift_mm):
        R, t = to_camera(R_TRUE, T_TRUE, R_w2c, t_w2c)
        t = t + dz * t / np.linalg.norm(t) + (0 if sh is None else sh)
        out.append({"R": R @ dR, "t_mm": t, "R_w2c": R_w2c, "t_w2c_mm": t_w2c})
    return out


def world_errors(poses):
    """Each fused pose (in its camera) back in the world: (position error mm, rotation error deg) against the truth."""
    errs = []
    for (R, t), (R_w2c, t_w2c) in zip(poses, CAMS):
        Rw, tw = to_world(R, t, R_w2c, t_w2c)
        errs.append((float(np.linalg.norm(tw - T_TRUE)), rotation_angle_deg(Rw, R_TRUE)))
    return np.array(errs)


def test_world_camera_round_trip():
    R_w2c, t_w2c = CAMS[1]
    R, t = to_camera(R_TRUE, T_TRUE, R_w2c, t_w2c)
    Rw, tw = to_world(R, t, R_w2c, t_w2c)
    assert np.allclose(Rw, R_TRUE) and np.allclose(tw, T_TRUE)


def test_depth_comes_from_the_cameras_that_see_it_sideways():
    # single views 20–30 mm off in depth; fused, each keeps its exact sideways position and gets depth from the
    # others: with σ across 1.5 (+3.3 rig) mm vs σ along 24 mm, the error shrinks ≈ 30×
    v = views(depth_err_mm=(25.0, -20.0, 30.0))
    poses, mask = fuse_instant(v, EYE)
    assert mask is not None and mask.all()
    single = world_errors([(x["R"], x["t_mm"]) for x in v])[:, 0]
    fused = world_errors(poses)[:, 0]
    assert single.min() >= 20 and fused.max() < 3.0, (single, fused)


def test_rotations_are_averaged():
    v = views(rot_err=(rot([1, 0, 0], 8), rot([0, 1, 0], -8), rot([0, 0, 1], 6)))
    poses, mask = fuse_instant(v, EYE)
    assert mask.all()
    ang = world_errors(poses)[:, 1]
    assert np.allclose(ang, ang[0], atol=1e-6)      # one fused rotation, seen from three cameras
    assert ang[0] < 5.0                             # the three errors partly cancel (each 6–8°)


def test_an_outlier_view_gets_the_consensus_pose():
    # camera 2's localizer locked onto clutter: 150 mm sideways
    v = views(depth_err_mm=(10.0, -10.0, 0.0), shift_mm=(None, None, np.array([0.0, 0.0, 150.0])))
    poses, mask = fuse_instant(v, EYE)
    assert mask.tolist() == [True, True, False]
    err = world_errors(poses)
    assert err[:, 0].max() < 3.0 and err[:, 1].max() < 1e-3   # the outlier's image too


def test_a_view_with_a_wrong_rotation_is_an_outlier():
    v = views(rot_err=(EYE[0], EYE[0], rot([1, 1, 0], 90)))
    _, mask = fuse_instant(v, EYE)
    assert mask.tolist() == [True, True, False]


def test_no_consensus_keeps_every_estimate():
    # three views, all far from each other: every pair fails the gate
    v = views(shift_mm=(np.array([60.0, -60.0, 0.0]), np.array([0.0, 120.0, 0.0]), np.array([-90.0, 0.0, 60.0])))
    poses, mask = fuse_instant(v, EYE)
    assert mask is None
    for (R, t), x in zip(poses, v):
        assert np.allclose(R, x["R"]) and np.allclose(t, x["t_mm"])


def test_one_view_is_left_alone():
    v = views()[:1]
    poses, mask = fuse_instant(v, EYE)
    assert mask is None and np.allclose(poses[0][1], v[0]["t_mm"])


def test_symmetric_copies_average_to_the_pose():
    # a plain cube: one view answers R·g for a symmetry g — the same pose
    syms = cube_symmetries()
    R = rot([1, 1, 0], 25)
    M, ang = mean_rotation(np.stack([R, R @ syms[5], R @ syms[17] @ rot([0, 0, 1], 4)]), syms)
    assert min(rotation_angle_deg(M @ g, R) for g in syms) < 2.0 and ang.max() < 4.0


def test_gates_come_from_the_config():
    v = views(shift_mm=(None, None, np.array([0.0, 0.0, 100.0])))
    assert fuse_instant(v, EYE)[1].tolist() == [True, True, False]
    assert fuse_instant(v, EYE, FuseConfig(gate_chi2=1e6))[1].all()


def test_fuse_cli_refuses_a_set_without_extrinsics(tmp_path):
    rgb = np.zeros((48, 64, 3), np.uint8)
    K = np.array([[60.0, 0, 32], [0, 60, 24], [0, 0, 1]])
    bop.write_scene(tmp_path / "set", 1, [{"im_id": 0, "K": K, "width": 64, "height": 48, "rgb": rgb, "gts": []}])
    bop.write_models(tmp_path / "set", [load_object_spec("aruco-cube")])
    bop.write_results_csv(tmp_path / "p.csv", [{"scene_id": 1, "im_id": 0, "obj_id": 1, "score": 1.0,
                                                "R": np.eye(3), "t_mm": [0, 0, 300]}])
    r = subprocess.run([sys.executable, str(REPO / "cli.py"), "fuse", "--pred", str(tmp_path / "p.csv"), "--real",
                        str(tmp_path / "set"), "--object", "aruco-cube", "--out", str(tmp_path / "f.csv")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "cam_R_w2c" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "f.csv").exists()


def test_extrinsics_round_trip_through_bop_files(tmp_path):
    rgb = np.zeros((48, 64, 3), np.uint8)
    K = np.array([[60.0, 0, 32], [0, 60, 24], [0, 0, 1]])
    R_w2c, t_w2c = CAMS[1]
    bop.write_scene(tmp_path, 1, [{"im_id": 3, "K": K, "width": 64, "height": 48, "rgb": rgb, "gts": [],
                                   "R_w2c": R_w2c, "t_w2c_mm": t_w2c}])
    im = bop.load_bop_scenes(tmp_path)[0]
    assert np.allclose(im.R_w2c, R_w2c) and np.allclose(im.t_w2c_mm, t_w2c) and bop.has_world_cameras(tmp_path)


@pytest.mark.parametrize("bad", [{"cam_R_w2c": [1, 0, 0, 0, 1, 0, 0, 0, 1]},
                                 {"cam_R_w2c": [1] * 9, "cam_t_w2c": [0, 0, 0]},
                                 {"cam_R_w2c": "x", "cam_t_w2c": [0, 0]}])
def test_malformed_extrinsics_never_stop_a_set_from_loading(tmp_path, bad):
    # predict and score must run on any BOP set: only fusion reads the extrinsics, and it skips an image without them
    import json
    rgb = np.zeros((48, 64, 3), np.uint8)
    K = np.array([[60.0, 0, 32], [0, 60, 24], [0, 0, 1]])
    sdir = bop.write_scene(tmp_path, 1, [{"im_id": 0, "K": K, "width": 64, "height": 48, "rgb": rgb, "gts": []}])
    cam = json.loads((sdir / "scene_camera.json").read_text())
    cam["0"].update(bad)
    (sdir / "scene_camera.json").write_text(json.dumps(cam))
    (im,) = bop.load_bop_scenes(tmp_path)
    assert im.R_w2c is None and im.t_w2c_mm is None
