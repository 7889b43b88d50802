"""`sim2real real import trifinger`: the TriFinger pose-detection images → a BOP dataset.

Each folder (one cube pose seen by three calibrated cameras) becomes one scene and one session.
The images are undistorted with OpenCV and the new K is written (BOP has no distortion field).
Ground truth = tf_world_to_camera · (object pose in the world from gt_approx.json): it is APPROXIMATE
(about 1 cm / 0.2 rad upstream), flagged `approximate` for every image and in the manifest.
Only the cube folders are imported: cube_v2 (default) matches the colours of the `trifinger-cube` spec;
cube_v1 has a different colour-to-face mapping (import it with --sessions cube_v1 only if you know why).
The 20×80×20 mm cuboid folder has no object spec and is not imported.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from core.io import UserError, atomic_write_json, code_version, read_json
from core.objects import load_object_spec
from core import bop
from eval.baseline import project_to_so3
from core.real_sets import check_out_dir, publish_import, staged_import

UPSTREAM = {"repo": "open-dynamic-robot-initiative/trifinger_object_tracking",
            "commit": "78ec981a4902594c15b4c284805563d27a9cba33", "licence": "BSD-3-Clause"}
POSE_DIR = "test/images/pose_detection"
FOLDERS = ("cube_v2", "cube_v1")
CAMERAS = ("60", "180", "300")


def quat_xyzw_to_R(q) -> np.ndarray:
    x, y, z, w = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def read_calib(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """(K, dist (5,), T_world_to_camera (4,4), width, height) from a trifinger camera_calib_*.yml."""
    if not path.is_file():
        raise UserError(f"{path}: camera calibration not found")
    try:
        d = yaml.safe_load(path.read_text())
        K = np.asarray(d["camera_matrix"]["data"], float).reshape(3, 3)
        D = np.asarray(d["distortion_coefficients"]["data"], float).reshape(-1)
        T = np.asarray(d["tf_world_to_camera"]["data"], float).reshape(4, 4)
        w, h = int(d["image_width"]), int(d["image_height"])
    except yaml.YAMLError as e:
        raise UserError(f"{path}: malformed YAML ({str(e).splitlines()[0]})") from None
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: {e}: missing or malformed (expected camera_matrix, distortion_coefficients, "
                        f"tf_world_to_camera, image_width, image_height)") from None
    return K, D, T, w, h


def import_trifinger(src: str | Path, out: str | Path, sessions: list[str] | None = None,
                     log=print) -> dict[str, Any]:
    src, out = Path(src).expanduser(), Path(out).expanduser()
    gt_path = src / "gt_approx.json"
    if not (src / POSE_DIR).is_dir():
        raise UserError(f"{src}: {POSE_DIR}/ not found (expected the trifinger_object_tracking tree, "
                        f"e.g. ../shared/real/trifinger_cube)")
    gt_all = read_json(gt_path, "gt_approx.json (approximate poses)")
    sessions = ["cube_v2"] if sessions is None else sessions
    for s in sessions:
        if s not in FOLDERS:
            raise UserError(f"--sessions: unknown folder {s!r} (expected {', '.join(FOLDERS)})")
        if s not in gt_all:
            raise UserError(f"{gt_path}: {s}: missing")
    check_out_dir(out)
    spec = load_object_spec("trifinger-cube")
    with staged_import(out) as staged:
        groups, summary, skipped = {}, {}, []
        for sess in sessions:
            g = gt_all[sess]
            try:
                R_wo = quat_xyzw_to_R(g["quat_xyzw"])
                p_wo = np.asarray(g["position"], float).reshape(3).copy()
            except (KeyError, ValueError, TypeError):
                raise UserError(f"{gt_path}: {sess}: expected position (3) and quat_xyzw (4)") from None
            # upstream note: the cube rests on the floor, so its centre is half a side above it
            p_wo[2] = spec.size_m[2] / 2
            sid = 1 + FOLDERS.index(sess)
            images = []
            for i, cam in enumerate(CAMERAS):
                img_path = src / POSE_DIR / sess / f"camera{cam}.png"
                K, D, T_wc, w, h = read_calib(src / POSE_DIR / sess / f"camera_calib_{cam}.yml")
                bgr = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
                if bgr is None:
                    skipped.append({"source": str(img_path.relative_to(src)), "reason": "unreadable image"})
                    log(f"warning: {img_path}: unreadable image; skipped")
                    continue
                h, w = bgr.shape[:2]  # calibration sizes may differ from the stored (downscaled) image
                K_new, _ = cv2.getOptimalNewCameraMatrix(K, D, (w, h), alpha=0.0, newImgSize=(w, h))
                und = cv2.undistort(bgr, K, D, None, K_new)
                R = project_to_so3(T_wc[:3, :3] @ R_wo)  # calibrated rotations are orthonormal to ~1e-5 only
                t_mm = (T_wc[:3, :3] @ p_wo + T_wc[:3, 3]) * 1000.0
                images.append({"im_id": i, "K": K_new, "width": w, "height": h, "rgb": und[:, :, ::-1],
                               "gts": [(spec.obj_id, R, t_mm)], "source": img_path.relative_to(src).as_posix(),
                               "instant": sess,  # the three cameras see one resting pose
                               "label": {"status": "labelled", "approximate": True, "camera": f"camera{cam}",
                                         "distortion": D.tolist(), "K_distorted": K.tolist()}})
            if images:
                bop.write_scene(staged, sid, images, session=sess, camera="camera60/180/300",
                                extra={"approximate": True})
                groups[sess] = [sid]
            summary[sess] = {"images": len(images), "labelled": len(images), "approximate": True}
        if not groups:
            raise UserError(f"{src}: no readable image")
        bop.write_models(staged, [spec])
        atomic_write_json(staged / "scene_groups.json", groups)
        manifest = {"format": "sim2real-real/1", "name": "trifinger", "object": spec.to_dict(),
                    "obj_id": spec.obj_id, "gt_approximate": True,
                    "source": {"src": str(src.resolve()), "upstream": UPSTREAM},
                    "scene_groups": groups, "summary": summary, "skipped": skipped, "code_version": code_version()}
        publish_import(staged, out, manifest)
    return manifest
