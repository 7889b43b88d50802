"""`sim2real real import aruco-cube`: the upstream ArUco-cube photos → a BOP dataset with marker-derived
ground truth (see eval/aruco_label.py for how a label is made and when a frame is left unlabelled).

One BOP scene per session × camera: scene 1–3 = session "data" cam0–2, scene 4–6 = "test1" cam0–2.
im_id = the upstream frame number (rgb_NNNNN.jpg). JPEG bytes are copied verbatim (no re-encoding).

Capture instants: the three cameras of a session are triggered together — meta.json lists each capture
event with the frame of every camera (time stamps within ~65 ms; consecutive events ≥ 200 ms apart), and
rgb_NNNNN.jpg of cam0/1/2 belong to event NNNNN. Each image's instant `<session>/<event:05d>` (from
meta.json, else the frame number) goes into scene_instants.json; the statistics resample whole instants.

The rig: each session's `calib_out_cube/transforms/T_C0_Ci_all.json` (upstream's camera-to-camera calibration,
T_Cref_Ci mapping camera-i points into the reference camera cam0; a few mm accurate) becomes BOP's world → camera
extrinsics (cam_R_w2c, cam_t_w2c in mm; world = that session's cam0), which multi-view fusion (eval/fuse.py) reads.
A session without the file is imported without extrinsics.
"""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from core.camera import parse_K
from core.io import UserError, atomic_write_json, code_version
from core.objects import load_object_spec
from core import bop
from eval.aruco_label import MAX_RMSE_PX, ArucoLabeler
from core.real_sets import check_out_dir, publish_import, staged_import

UPSTREAM = {"repo": "keemeoow/rb-ArucoCube_multi_calibration",
            "commit": "592a5c30b1d2753f904016dbfc2b82f2a8cb71c2", "folder": "src2"}
# session → (images folder, intrinsics folder), relative to the folder holding src2/
SESSIONS: dict[str, tuple[str, str]] = {
    "data": ("src2/data/cube_session_01", "src2/intrinsics"),
    "test1": ("src2/test1_result/data/cube_session_01", "src2/test1_result/intrinsics"),
}
CAMERAS = ("cam0", "cam1", "cam2")


def scene_id_of(session: str, camera: str) -> int:
    return 1 + 3 * list(SESSIONS).index(session) + CAMERAS.index(camera)


RGB_NAME = re.compile(r"^rgb_[0-9]+\.jpg$")

def load_intrinsics(npz_path: Path) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(K, dist, width, height) of the colour camera from an upstream intrinsics npz."""
    if not npz_path.is_file():
        raise UserError(f"{npz_path}: camera intrinsics not found")
    try:
        with np.load(npz_path) as z:
            K = parse_K(z["color_K"], f"{npz_path}: color_K")
            D = np.asarray(z["color_D"], np.float64).reshape(-1)
            w, h = int(z["color_w"]), int(z["color_h"])
    except KeyError as e:
        raise UserError(f"{npz_path}: {e.args[0]}: missing (expected color_K, color_D, color_w, color_h)") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # truncated or not an npz
        raise UserError(f"{npz_path}: not a readable npz ({type(e).__name__}: {str(e)[:80]})") from None
    return K, D, w, h


def load_rig(session_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """camera name → (R_w2c, t_w2c_mm): world (the session's reference camera, cam0) → that camera, from upstream's
    calib_out_cube/transforms/T_C0_Ci_all.json (`T_Cref_Ci`: 4×4 row-major, metres, camera i → reference);
    {} when the session has no such file."""
    p = session_dir / "calib_out_cube" / "transforms" / "T_C0_Ci_all.json"
    if not p.is_file():
        return {}
    try:
        d = json.loads(p.read_text())
        ref = int(d.get("ref_cam_idx", 0))
        rig = {}
        for idx, flat in d["T_Cref_Ci"].items():
            T = np.asarray(flat, np.float64).reshape(4, 4)
            if not (np.isfinite(T).all() and np.allclose(T[3], [0, 0, 0, 1])):
                raise ValueError(f"T_Cref_Ci[{idx}] is not a rigid 4×4 transform")
            R_ref_c, t_ref_c_mm = T[:3, :3], T[:3, 3] * 1000.0
            rig[f"cam{int(idx)}"] = (R_ref_c.T, -R_ref_c.T @ t_ref_c_mm)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UserError(f"{p}: T_Cref_Ci: expected camera index → 16 numbers (4×4, metres) ({e})") from None
    if f"cam{ref}" in rig and not np.allclose(rig[f"cam{ref}"][0], np.eye(3), atol=1e-6):
        raise UserError(f"{p}: T_Cref_Ci[{ref}]: the reference camera's transform is not the identity")
    return rig


def capture_events(session_dir: Path) -> dict[str, int]:
    """Upstream image path relative to the session folder (e.g. 'cam1/rgb_00003.jpg') → capture event id, from
    the session's meta.json; {} when it is missing or has no usable `captures` list."""
    p = session_dir / "meta.json"
    if not p.is_file():
        return {}
    try:
        caps = json.loads(p.read_text())["captures"]
        return {str(c["rgb_path"]): int(ev["event_id"]) for ev in caps for c in ev["cams"].values()
                if c.get("rgb_path")}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}   # a malformed meta.json only costs the instants: fall back to frame numbers


def _session_summary(labels: list[dict[str, Any]], skipped: int) -> dict[str, Any]:
    rmse = np.array([lb["reproj_rmse_px"] for lb in labels if lb["status"] == "labelled"])
    mx = np.array([lb["reproj_max_px"] for lb in labels if lb["status"] == "labelled"])
    count = lambda s: sum(1 for lb in labels if lb["status"] == s)  # noqa: E731
    return {"images": len(labels), "labelled": count("labelled"), "ambiguous": count("ambiguous"),
            "no_markers": count("no_markers"), "poor_fit": count("poor_fit"), "skipped": skipped,
            "reproj_rmse_px_median": float(np.median(rmse)) if rmse.size else None,
            "reproj_rmse_px_max": float(rmse.max()) if rmse.size else None,
            "reproj_corner_px_max": float(mx.max()) if mx.size else None}


def format_summary(summary: dict[str, dict[str, Any]]) -> str:
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    lines = [f"{'session':<10}{'images':>7}{'labelled':>9}{'ambiguous':>10}{'no mark':>8}{'poor fit':>9}"
             f"{'skipped':>8}{'rmse med px':>12}{'rmse max px':>12}{'corner max px':>14}"]
    for name, s in summary.items():
        lines.append(f"{name:<10}{s['images']:>7}{s['labelled']:>9}{s['ambiguous']:>10}{s['no_markers']:>8}"
                     f"{s['poor_fit']:>9}{s['skipped']:>8}{f(s['reproj_rmse_px_median']):>12}"
                     f"{f(s['reproj_rmse_px_max']):>12}{f(s['reproj_corner_px_max']):>14}")
    return "\n".join(lines)


def import_aruco_cube(src: str | Path, out: str | Path, sessions: list[str] | None = None,
                      cameras: list[str] | None = None, max_rmse_px: float = MAX_RMSE_PX,
                      log=print, only: set[str] | None = None) -> dict[str, Any]:
    """Import the upstream tree under `src` (the folder holding `src2/`) into the BOP root `out`
    (`only`: import just these files, paths relative to src; `real fetch` passes the verified ones).
    Returns the manifest (with a per-session summary). Unreadable images are skipped and listed;
    if no image at all can be read the import fails with a UserError and `out` is left untouched."""
    src, out = Path(src).expanduser(), Path(out).expanduser()
    if not (src / "src2").is_dir():
        raise UserError(f"{src}: src2/ not found (expected the upstream tree of {UPSTREAM['repo']}, "
                        f"e.g. ../shared/real/aruco_cube)")
    if sessions is None:
        sessions = [s for s, (imgs, _) in SESSIONS.items() if (src / imgs).is_dir()]
        if not sessions:
            raise UserError(f"{src}: no session folder found (expected {', '.join(v[0] for v in SESSIONS.values())})")
    for s in sessions:
        if s not in SESSIONS:
            raise UserError(f"--sessions: unknown session {s!r} (expected {', '.join(SESSIONS)})")
        if not (src / SESSIONS[s][0]).is_dir():
            raise UserError(f"{src / SESSIONS[s][0]}: session {s!r} not found")
    cameras = list(CAMERAS) if cameras is None else cameras
    for c in cameras:
        if c not in CAMERAS:
            raise UserError(f"--cameras: unknown camera {c!r} (expected {', '.join(CAMERAS)})")
    check_out_dir(out)
    spec = load_object_spec("aruco-cube")
    labeler = ArucoLabeler(spec, max_rmse_px=max_rmse_px)
    with staged_import(out) as staged:
        summary, groups, skipped_all = {}, {}, []
        for sess in sessions:
            img_dir, intr_dir = SESSIONS[sess]
            labels_all, skipped = [], 0
            events = capture_events(src / img_dir)
            rig = load_rig(src / img_dir)
            for cam in cameras:
                files = sorted((src / img_dir / cam).glob("rgb_*.jpg"))
                if only is not None:  # `real fetch`: import exactly the files whose sha256 was verified
                    for f in files:
                        if f.relative_to(src).as_posix() not in only:
                            log(f"warning: {f}: not in the pinned upstream file list; not imported")
                    files = [f for f in files if f.relative_to(src).as_posix() in only]
                for f in files:  # the frame number is the image id: refuse a name that carries none
                    if not RGB_NAME.match(f.name):
                        raise UserError(f"{f}: expected upstream frames named rgb_NNNNN.jpg")
                if not files:
                    continue
                K, D, w, h = load_intrinsics(src / intr_dir / f"{cam}.npz")
                sid = scene_id_of(sess, cam)
                R_w2c, t_w2c_mm = rig.get(cam, (None, None))
                images = []
                for f in tqdm(files, desc=f"{sess}/{cam}", leave=False, disable=None):
                    rel = f.relative_to(src).as_posix()
                    data = f.read_bytes()
                    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                    if bgr is None or bgr.shape[:2] != (h, w):
                        why = "unreadable image" if bgr is None else f"size {bgr.shape[1]}x{bgr.shape[0]}, expected {w}x{h}"
                        skipped_all.append({"source": rel, "reason": why})
                        log(f"warning: {f}: {why}; skipped")
                        skipped += 1
                        continue
                    res = labeler(bgr[:, :, ::-1], K, D)
                    lab = res.to_json()
                    labels_all.append(lab)
                    gts = [(spec.obj_id, res.R, res.t_m * 1000.0)] if res.labelled else []
                    frame = int(f.stem.split("_")[-1])
                    event = events.get(f"{cam}/{f.name}", frame)
                    images.append({"im_id": frame, "K": K, "width": w, "height": h,
                                   "rgb_bytes": data, "ext": ".jpg", "gts": gts, "source": rel, "label": lab,
                                   "instant": f"{sess}/{event:05d}", "R_w2c": R_w2c, "t_w2c_mm": t_w2c_mm})
                if images:
                    bop.write_scene(staged, sid, images, session=sess, camera=cam,
                                    extra={"intrinsics": f"{intr_dir}/{cam}.npz"})
                    groups.setdefault(sess, []).append(sid)
            summary[sess] = _session_summary(labels_all, skipped)
        if not groups:
            raise UserError(f"{src}: no readable image in the selected sessions/cameras")
        bop.write_models(staged, [spec])
        atomic_write_json(staged / "scene_groups.json", groups)
        manifest = {"format": "sim2real-real/1", "name": "aruco-cube", "object": spec.to_dict(),
                    "obj_id": spec.obj_id, "source": {"src": str(src.resolve()), "upstream": UPSTREAM},
                    "labeler": {"method": "ArucoDetector DICT_4X4_50 + CORNER_REFINE_SUBPIX; SQPnP over all "
                                          "markers' corners + solvePnPRefineLM",
                                "max_rmse_px": max_rmse_px, "single_marker": "ambiguous, not labelled"},
                    "scene_groups": groups, "summary": summary, "skipped": skipped_all,
                    "capture_instants": "scene_instants.json per scene: <session>/<capture event> from meta.json "
                                        "(cam0-2 frames of one event share it)",
                    "rig": "scene_camera.json cam_R_w2c/cam_t_w2c: world = the session's cam0, from upstream's "
                           "calib_out_cube/transforms/T_C0_Ci_all.json (a few mm accurate)",
                    "code_version": code_version()}
        publish_import(staged, out, manifest)
    return manifest
