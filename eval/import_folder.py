"""`sim2real real import aruco-cube --src DIR --camera K.json`: your own photos of a printed marker cube
→ a BOP set with marker-derived labels (the same labeller and writer as the upstream importer).

DIR holds photos (jpg/png) directly — one session, named by `--session` (default: the folder's name) —
or one subfolder per session (`--session` then picks some of them). One BOP scene per session; im_id =
the photo's index in sorted file-name order; scene_source.json maps it back to the file.

Intrinsics: `--camera K.json` (core.camera.KFILE_SCHEMA), else a K.json inside the session folder, else
one in DIR. Photos must have the K file's size. With distortion coefficients, the label is solved on the
original photo with them, and the stored photo is undistorted (same K), so the BOP set is pinhole like
every other set; without, the photo's bytes are copied verbatim.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from core import bop
from core.camera import read_camera_file
from core.io import UserError, atomic_write_json, code_version
from core.objects import ObjectSpec
from core.real_sets import check_out_dir, publish_import, staged_import
from eval.aruco_label import MAX_RMSE_PX, ArucoLabeler
from eval.import_aruco import _session_summary

PHOTO_EXTS = (".jpg", ".jpeg", ".png")
LISTED_MAX = 20  # problem frames printed per session (all are in the manifest)


def _photos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_EXTS)


def find_sessions(src: Path, sessions: list[str] | None) -> dict[str, Path]:
    """Session name → folder of photos (see the module docstring)."""
    if not src.is_dir():
        raise UserError(f"--src {src}: folder not found")
    subs = {p.name: p for p in sorted(src.iterdir()) if p.is_dir() and not p.name.startswith(".") and _photos(p)}
    if _photos(src):
        if subs:
            raise UserError(f"--src {src}: holds photos and session subfolders ({', '.join(subs)}); put the loose "
                            f"photos in a subfolder too")
        if sessions and len(sessions) > 1:
            raise UserError(f"--session: one name for a folder of photos without subfolders, got {','.join(sessions)}")
        return {(sessions or [src.resolve().name])[0]: src}
    if not subs:
        raise UserError(f"--src {src}: no photos (expected {', '.join(PHOTO_EXTS)} files, or subfolders of them "
                        f"= sessions)")
    if sessions:
        unknown = [s for s in sessions if s not in subs]
        if unknown:
            raise UserError(f"--session {unknown[0]}: no such session in {src} (found {', '.join(subs)})")
        return {s: subs[s] for s in sessions}
    return subs


def _camera_for(folder: Path, src: Path, camera_file: Path | None) -> tuple[dict[str, Any], Path]:
    for p in ([camera_file] if camera_file else []) + [folder / "K.json", src / "K.json"]:
        if p is not None and Path(p).is_file():
            return read_camera_file(p, with_dist=True), Path(p)
    if camera_file:
        raise UserError(f"--camera {camera_file}: camera file not found")
    raise UserError(f"{folder}: no camera intrinsics: pass --camera K.json (`sim2real camera calibrate` writes one)")


def import_photo_folder(src: str | Path, out: str | Path, spec: ObjectSpec, camera_file: str | Path | None = None,
                        sessions: list[str] | None = None, max_rmse_px: float = MAX_RMSE_PX,
                        log=print) -> dict[str, Any]:
    """Import a plain folder of photos into the BOP root `out`; returns the manifest. Nothing is written
    unless the whole import succeeds and at least one photo gets a label."""
    src, out = Path(src).expanduser(), Path(out).expanduser()
    camera_file = Path(camera_file).expanduser() if camera_file else None
    found = find_sessions(src, sessions)
    try:
        labeler = ArucoLabeler(spec, max_rmse_px=max_rmse_px)
    except ValueError as e:
        raise UserError(f"--object {spec.name}: {e}; a plain folder import needs a marker cube") from None
    check_out_dir(out)
    with staged_import(out) as staged:
        summary, groups, skipped_all, problems, cameras = {}, {}, [], {}, {}
        for sid, (sess, folder) in enumerate(found.items(), start=1):
            cam, cam_path = _camera_for(folder, src, camera_file)
            K, D, w, h = np.asarray(cam["K"]), np.asarray(cam["dist"]), cam["width"], cam["height"]
            distorted = D.size > 0 and bool(np.any(D != 0))
            labels, images, skipped = [], [], 0
            for im_id, f in enumerate(tqdm(_photos(folder), desc=sess, leave=False, disable=None)):
                rel = f.relative_to(src).as_posix() if f.is_relative_to(src) else f.name
                data = f.read_bytes()
                bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                if bgr is None:
                    skipped_all.append({"source": rel, "reason": "unreadable image"})
                    log(f"warning: {f}: unreadable image; skipped")
                    skipped += 1
                    continue
                if bgr.shape[:2] != (h, w):
                    raise UserError(f"{f}: {bgr.shape[1]}x{bgr.shape[0]} photo, but {cam_path} is for {w}x{h} "
                                    f"(calibrate at the photos' resolution, or scale cam_K)")
                res = labeler(bgr[:, :, ::-1], K, D if distorted else None)
                lab = {**res.to_json(), "source": rel}
                labels.append(lab)
                if res.status in ("ambiguous", "poor_fit"):
                    problems.setdefault(sess, []).append(f"{rel} ({res.status})")
                im = {"im_id": im_id, "K": K, "width": w, "height": h, "source": rel, "label": lab,
                      "gts": [(spec.obj_id, res.R, res.t_m * 1000.0)] if res.labelled else []}
                if distorted:  # store the undistorted photo with the same K: the set stays pinhole
                    und = cv2.undistort(bgr, K, D, None, K)
                    ext = ".png" if f.suffix.lower() == ".png" else ".jpg"
                    ok, enc = cv2.imencode(ext, und, [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == ".jpg" else [])
                    im.update(rgb_bytes=enc.tobytes(), ext=ext)
                else:
                    im.update(rgb_bytes=data, ext=".png" if f.suffix.lower() == ".png" else ".jpg")
                images.append(im)
            if images:
                bop.write_scene(staged, sid, images, session=sess, camera=str(cam_path.name),
                                extra={"intrinsics": str(cam_path), "undistorted": distorted})
                groups[sess] = [sid]
                cameras[sess] = {"file": str(cam_path), **cam}
            summary[sess] = _session_summary(labels, skipped)
        if not groups:
            raise UserError(f"--src {src}: no readable photo")
        if not any(s["labelled"] for s in summary.values()):
            n = sum(s["images"] for s in summary.values())
            nm = sum(s["no_markers"] for s in summary.values())
            raise UserError(f"--src {src}: no photo got a marker-derived label ({n} photos: {nm} without a "
                            f"{spec.name} marker, the rest ambiguous or poor fits); check --object and the photos")
        bop.write_models(staged, [spec])
        atomic_write_json(staged / "scene_groups.json", groups)
        manifest = {"format": "sim2real-real/1", "name": src.resolve().name, "object": spec.to_dict(),
                    "object_source": spec.source, "obj_id": spec.obj_id,
                    "source": {"src": str(src.resolve()), "kind": "plain folder of photos"},
                    "cameras": cameras,
                    "labeler": {"method": "ArucoDetector + CORNER_REFINE_SUBPIX; SQPnP over all markers' corners "
                                          "+ solvePnPRefineLM (with the K file's distortion)",
                                "max_rmse_px": max_rmse_px, "single_marker": "ambiguous, not labelled"},
                    "scene_groups": groups, "summary": summary, "problem_frames": problems,
                    "skipped": skipped_all, "code_version": code_version()}
        publish_import(staged, out, manifest)
    return manifest


def format_problems(manifest: dict[str, Any]) -> str:
    lines = []
    for sess, items in manifest.get("problem_frames", {}).items():
        more = f", … (+{len(items) - LISTED_MAX})" if len(items) > LISTED_MAX else ""
        shown = ", ".join(items[:LISTED_MAX]) + more
        lines.append(f"{sess}: {len(items)} ambiguous/poor-fit photos, not labelled: {shown}")
    return "\n".join(lines)
