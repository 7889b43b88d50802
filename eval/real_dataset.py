"""Labelled real images → a dataset in the synthetic-dataset format, so the same trainer can learn from
them (the benchmark's oracle baseline: trained on one real session, scored on the other; and its fine-tune row,
`finetune_on_session`).

Crops are cut from the full-resolution photo around the ground-truth projected centre exactly as the
renderer frames its crops (side = crop_scale × projected size); masks are the projected silhouette
(occlusions by hands are not known)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from core.camera import crop_K, project_points, scale_K
from core.io import UserError, atomic_write_json, code_version, sha256_of_json
from core.objects import ObjectSpec
from core.bop import load_bop_scenes
from render.dataset import FORMAT, labels_array, read_manifest, write_shard


def _warp_crop(img: np.ndarray, x0: float, y0: float, side: float, out_px: int, interp=cv2.INTER_AREA) -> np.ndarray:
    s = out_px / side
    M = np.array([[s, 0, -x0 * s + 0.5 * s - 0.5], [0, s, -y0 * s + 0.5 * s - 0.5]])  # edge coords, as crop_K
    return cv2.warpAffine(img, M, (out_px, out_px), flags=interp, borderMode=cv2.BORDER_REPLICATE)


def real_to_dataset(real_root: str | os.PathLike, scene_ids: Sequence[int], spec: ObjectSpec,
                    out_dir: str | os.PathLike, frame_width: int = 160, crop_px: int = 128,
                    crop_scale: float = 2.0) -> Path:
    """The labelled photos of `scene_ids` of the BOP set `real_root` showing `spec`'s object → a dataset in OUT_DIR
    (frames `frame_width` wide, crops of `crop_px`² framed like the renderer's: `crop_scale` × the projected size).
    A finished dataset already in OUT_DIR is reused (a rerun resumes) when it was built from the same set, scenes and
    sizes; one built otherwise is a UserError naming what differs, never silently another dataset."""
    out = Path(out_dir)
    if (out / "manifest.json").is_file():
        _check_reused(out, real_root, scene_ids, frame_width, crop_px, crop_scale)
        return out
    images = [im for im in load_bop_scenes(real_root, scene_ids) if im.labelled
              and any(g.obj_id == spec.obj_id for g in im.gts)]
    if not images:
        raise UserError(f"{real_root}: no labelled images of {spec.name} in scenes {list(scene_ids)}")
    frames, fmasks, crops, cmasks, labels, params = [], [], [], [], [], []
    corners = spec.corners_m()
    for im in images:
        g = next(g for g in im.gts if g.obj_id == spec.obj_id)
        R, t = np.asarray(g.R, float), np.asarray(g.t_mm, float) / 1000.0
        bgr = cv2.imread(str(im.rgb_path), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        K = np.asarray(im.K, float)
        fh = int(round(frame_width * im.height / im.width))
        Kf = scale_K(K, frame_width / im.width, fh / im.height)
        pc = project_points(corners, R, t, K)
        centre = project_points(np.zeros((1, 3)), R, t, K)[0]
        size = float(max(np.ptp(pc[:, 0]), np.ptp(pc[:, 1])))
        side = crop_scale * size
        x0, y0 = centre[0] + 0.5 - side / 2, centre[1] + 0.5 - side / 2
        Kc = crop_K(K, x0, y0, side, crop_px)
        hull = lambda KK, shape: cv2.fillConvexPoly(np.zeros(shape, np.uint8), cv2.convexHull(
            np.round(project_points(corners, R, t, KK) * 16).astype(np.int32)), 1, cv2.LINE_8, 4)
        frames.append(cv2.resize(rgb, (frame_width, fh), interpolation=cv2.INTER_AREA))
        fmasks.append(hull(Kf, (fh, frame_width)))
        crops.append(_warp_crop(rgb, x0, y0, side, crop_px))
        cmasks.append(hull(Kc, (crop_px, crop_px)))
        labels.append({"R": R, "t_m": t, "K_full": K, "K_frame": Kf, "K_crop": Kc, "center_full_px": centre,
                       "bbox_full_px": np.array([*pc.min(0) + 0.5, *pc.max(0) + 0.5]),
                       "crop_box_full_px": np.array([x0, y0, side]), "visib_fract": 1.0})
        params.append({"real_image": str(im.rgb_path), "scene_id": im.scene_id, "im_id": im.im_id})
    out.mkdir(parents=True, exist_ok=True)
    entry = write_shard(out / "shards" / "000000", np.stack(frames), np.stack(fmasks), np.stack(crops),
                         np.stack(cmasks), labels_array(labels), params)
    fh = frames[0].shape[0]
    atomic_write_json(out / "manifest.json", {
        "format": FORMAT, "object_name": spec.name, "object": spec.to_dict(), "scene": {"real": str(real_root),
                                                                                          "scene_ids": list(scene_ids)},
        "randomization": {"level": "real"}, "seed": 0, "n": len(frames), "shard_size": len(frames),
        "frame_hw": [fh, frame_width], "crop_px": crop_px, "crop_scale": crop_scale,
        "full_hw": [images[0].height, images[0].width], "K_full": np.asarray(images[0].K).tolist(),
        "shards": [{"name": "000000", "n": len(frames), **entry}], "code_version": code_version(),
        "content_hash": sha256_of_json([entry["sha256"]]), "real_source": {"root": str(real_root), "scene_ids": list(scene_ids)},
    })
    return out


def cut_sizes(manifest: dict) -> dict:
    """The sizes a dataset's frames and crops were cut at, as real_to_dataset's keyword arguments."""
    return {"frame_width": int(manifest["frame_hw"][1]), "crop_px": int(manifest["crop_px"]),
            "crop_scale": float(manifest.get("crop_scale", 2.0))}


def _check_reused(out: Path, real_root, scene_ids: Sequence[int], frame_width: int, crop_px: int,
                  crop_scale: float) -> None:
    man = read_manifest(out)
    src = man.get("real_source") or {}
    want = {"real set": str(Path(real_root).resolve()), "scenes": sorted(int(s) for s in scene_ids),
            "frame_width": int(frame_width), "crop_px": int(crop_px), "crop_scale": float(crop_scale)}
    have = {"real set": str(Path(src["root"]).resolve()) if src.get("root") else None,
            "scenes": sorted(int(s) for s in src.get("scene_ids") or []), **cut_sizes(man)}
    sizes = [k for k in ("frame_width", "crop_px", "crop_scale") if have[k] != want[k]]
    if have["real set"] != want["real set"] or have["scenes"] != want["scenes"] or sizes:
        def what(d):
            return f"{d['real set']} scenes {d['scenes']}" + "".join(
                f", {k.replace('frame_width', 'frame width')} {d[k]}" for k in sizes)
        raise UserError(f"{out}: holds photos of {what(have)}, not of {what(want)}; use another output folder")


def finetune_on_session(ckpt: str | os.PathLike, real_root: str | os.PathLike, out: str | os.PathLike,
                        session: str = "data", **finetune_kw) -> Path:
    """Fine-tune the sim-trained `ckpt` on the labelled photos of `session` of the BOP set `real_root` → OUT/model.pt
    (pose_model.finetune.finetune; keyword arguments go there). The photos become a dataset in OUT/photos_SESSION,
    cut at the frame width and crop size of the model's own training set when it is there (co-training needs them
    equal), else at real_to_dataset's defaults. A session that is missing or holds no labelled photo of the object:
    UserError before anything is written."""
    from eval.score import spec_for_real
    from pose_model.finetune import check_tune_scenes, finetune
    from pose_model.model import load_checkpoint
    scene_ids = check_tune_scenes(real_root, None, session)
    sizes: dict = {}
    sim_data = load_checkpoint(ckpt)["config"].get("data")
    if sim_data and (Path(sim_data) / "manifest.json").is_file():
        sizes = cut_sizes(read_manifest(sim_data))
    photos = Path(out) / f"photos_{session}"   # a rerun resumes: real_to_dataset reuses it if built the same way
    data = real_to_dataset(real_root, scene_ids, spec_for_real(real_root), photos, **sizes)
    return finetune(ckpt, data, out, real_root, session, **finetune_kw)
