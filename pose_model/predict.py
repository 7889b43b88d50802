"""Inference: one RGB image of any size + its K → the cube's pose. Nothing comes from labels.

    est = PoseEstimator.load("runs/none/model.pt", device="cpu")
    R, t_m, score = est.predict(image_rgb_uint8, K)

The image is resized (area filter) to the localizer's working resolution; the crop regressor reads a crop
of the FULL-resolution image around the localizer's estimate (and again around its own centre estimate,
`refine_iters` times).
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from core.device import cpu_conv_layout, pick_device
from core.io import UserError, atomic_write_bytes, atomic_write_json, read_json, read_rgb
from core.objects import spec_from_dict
from pose_model import geometry as G
from pose_model.model import PoseModel, load_checkpoint, meta_from_dict

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class PoseEstimator:
    def __init__(self, model: PoseModel, spec, device: torch.device, refine_iters: int = 1,
                 card: dict | None = None, resize_crop: bool = True, head: str = "pnp-rot",
                 hypotheses: int = 1) -> None:
        self.model, self.spec, self.device, self.refine_iters = model.eval(), spec, device, refine_iters
        self.resize_crop, self.head, self.hypotheses = resize_crop, head, hypotheses
        self.card = card or {}

    @classmethod
    def load(cls, ckpt: str | os.PathLike, device: str | torch.device = "cpu",
             refine_iters: int | None = None, head: str | None = None,
             resize_crop: bool | None = None, hypotheses: int | None = None) -> "PoseEstimator":
        dev = device if isinstance(device, torch.device) else pick_device(device)
        if dev.type == "cpu":  # one image at a time: extra threads only spin (20× slower on a busy CPU)
            torch.set_num_threads(1)
        ck = load_checkpoint(ckpt, map_location="cpu")
        try:
            spec = spec_from_dict(ck["object"], f"{ckpt}: object")
            meta = meta_from_dict(ck["meta"])
            model = PoseModel(meta, torch.as_tensor(spec.symmetries, dtype=torch.float32))
            model.load_state_dict(ck["model"])
        except (KeyError, TypeError, RuntimeError) as e:
            raise UserError(f"{ckpt}: damaged pose-model checkpoint ({type(e).__name__}: {str(e)[:120]})") from None
        c = ck["config"]
        it = c.get("refine_iters", 1) if refine_iters is None else refine_iters
        head = c.get("head", "pnp-rot") if head is None else head
        rs = c.get("resize_crop", True) if resize_crop is None else resize_crop
        hyp = c.get("hypotheses", 1) if hypotheses is None else hypotheses
        if hyp < 1:
            raise UserError(f"--hypotheses {hyp}: expected a positive integer")
        return cls(cpu_conv_layout(model.to(dev), dev), spec, dev, it,
                   {"pipeline": c.get("pipeline"), "epoch": ck["epoch"]}, resize_crop=rs, head=head, hypotheses=hyp)

    def check_object(self, name: str | None = None, size_m=None, obj_id: int | None = None, where: str = "") -> None:
        """Refuse to run on images of another object (a model only knows the cube it was trained on)."""
        if name is not None and name != self.spec.name:
            raise UserError(f"{where}: the checkpoint is for object {self.spec.name!r}, not {name!r}")
        if size_m is not None and not np.allclose(sorted(size_m), sorted(self.spec.size_m), rtol=0.03):
            raise UserError(f"{where}: object size {np.round(size_m, 4).tolist()} m does not match the "
                            f"checkpoint's object {self.spec.name!r} ({list(self.spec.size_m)} m)")

    @torch.no_grad()
    def predict(self, image_rgb: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """image (H,W,3) uint8 RGB, K (3,3) → (R (3,3), t_m (3,), score in [0,1])."""
        out = self.predict_full(image_rgb, K)
        return out["R"], out["t_m"], out["score"]

    @torch.no_grad()
    def predict_full(self, image_rgb: np.ndarray, K: np.ndarray, box: np.ndarray | None = None) -> dict:
        """As predict, plus the crop box used. box (x0, y0, side): skip the localizer and crop there
        (the ground-truth-crop DIAGNOSTIC only; never for a reported end-to-end score)."""
        if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
            raise UserError(f"expected an RGB image (H,W,3), got shape {image_rgb.shape}")
        m = self.model
        H, W = image_rgb.shape[:2]
        Hf, Wf = m.meta.frame_hw
        frame = cv2.resize(image_rgb, (Wf, Hf), interpolation=cv2.INTER_AREA)
        dev = self.device
        frame_t = torch.from_numpy(frame).to(dev).permute(2, 0, 1)[None].float() / 255
        full_t = torch.from_numpy(np.ascontiguousarray(image_rgb)).to(dev).permute(2, 0, 1)[None].float() / 255
        K_t = torch.as_tensor(np.asarray(K, dtype=np.float32), device=dev)[None]

        def crop_source(box: torch.Tensor, n: int) -> torch.Tensor:
            # sample at ≥ 2× the output and at least the source resolution, then average down
            aa = int(max(2, min(8, np.ceil(float(box[0, 2]) / n))))
            return G.crop_images(full_t, box, n, antialias=aa)

        boxes = None if box is None else torch.as_tensor(np.asarray(box, np.float32), device=dev)[None]
        out = m.infer(frame_t, crop_source, K_t, self.refine_iters, boxes=boxes, image_hw=(H, W),
                      resize_crop=self.resize_crop, head=self.head, hypotheses=self.hypotheses)
        return {"R": out["R"][0].double().cpu().numpy(), "t_m": out["t_m"][0].double().cpu().numpy(),
                "score": float(out["score"][0]), "box": out["box"][0].cpu().numpy()}


def draw_overlay(image_rgb: np.ndarray, R: np.ndarray, t_m: np.ndarray, K: np.ndarray, spec,
                 color=(0, 255, 0), gt: tuple | None = None) -> np.ndarray:
    """The cube's edges (green: prediction, red: ground truth if given) drawn on a copy of the image."""
    from core.camera import project_points
    img = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR).copy()
    c = spec.corners_m()
    edges = [(i, j) for i in range(8) for j in range(i + 1, 8) if bin(i ^ j).count("1") == 1]
    for (R_, t_), col in ([(gt, (0, 0, 255))] if gt is not None else []) + [((R, t_m), color[::-1])]:
        if t_[2] <= 0:
            continue
        p = project_points(c, R_, t_, K)
        for i, j in edges:
            cv2.line(img, tuple(np.round(p[i]).astype(int)), tuple(np.round(p[j]).astype(int)), col, 1, cv2.LINE_AA)
    return img


def gt_crop_box(spec, R: np.ndarray, t_m: np.ndarray, K: np.ndarray, crop_factor: float) -> np.ndarray:
    """The crop the regressor would get from a perfect localizer (the renderer's rule: side = 2 × the larger
    side of the projected corners' bounding box, centred on the projected centre) × crop_factor."""
    from core.camera import cube_crop_box, project_points
    return cube_crop_box(project_points(spec.corners_m(), R, t_m, K), project_points(np.zeros((1, 3)), R, t_m, K)[0],
                         2.0 * crop_factor)


def check_model_for_set(est: PoseEstimator, real_root: str | os.PathLike) -> None:
    """Refuse (UserError) a BOP set whose object (models_info.json: id, name, size) is not the checkpoint's."""
    from core.bop import read_models_info
    root = Path(real_root)
    info = read_models_info(root)
    mine = info.get(est.spec.obj_id)
    if mine is None or (mine.get("name") not in (None, est.spec.name)):
        names = {k: v.get("name", "?") for k, v in info.items()}
        raise UserError(f"{root}/models/models_info.json: the checkpoint is for object {est.spec.name!r} "
                        f"(obj_id {est.spec.obj_id}), this set has {names}")
    if all(k in mine for k in ("size_x", "size_y", "size_z")):
        est.check_object(size_m=[mine["size_x"] / 1000, mine["size_y"] / 1000, mine["size_z"] / 1000],
                         where=f"{root}/models/models_info.json")


def predict_bop(ckpt: str | os.PathLike, real_root: str | os.PathLike, out_csv: str | os.PathLike,
                scene_ids=None, device: str = "auto", overlays: str | os.PathLike | None = None,
                progress: bool = False, diagnostic_gt_crop: bool = False, head: str | None = None,
                hypotheses: int | None = None) -> Path:
    """Predict every image of a BOP set (labels are never read for the prediction) → BOP results CSV.

    head: which of the model's pose heads to report (registry.HEADS; default: the one it was trained with).
    hypotheses: localizer peaks looked at per image (PoseModel.infer; default: the checkpoint's, else 1).

    diagnostic_gt_crop: instead of the localizer, crop around the LABELLED pose (unlabelled images are
    skipped): isolates the crop regressor's transfer; a diagnostic, never an end-to-end score."""
    from core.bop import load_bop_scenes, write_results_csv
    est = PoseEstimator.load(ckpt, device, head=head, hypotheses=hypotheses)
    root = Path(real_root)
    check_model_for_set(est, root)
    images = load_bop_scenes(root, scene_ids)
    if not images:
        raise UserError(f"{root}: no images in the chosen scenes")
    rows = []
    from tqdm import tqdm
    for im in tqdm(images, disable=not progress, desc="predict", unit="img"):
        rgb = read_rgb(im.rgb_path)
        box = None
        if diagnostic_gt_crop:
            g = next((g for g in im.gts if g.obj_id == est.spec.obj_id), None)
            if g is None:
                continue
            box = gt_crop_box(est.spec, g.R, g.t_mm / 1000, im.K, est.model.meta.crop_factor)
        t0 = time.perf_counter()
        o = est.predict_full(rgb, im.K, box)
        R, t, score = o["R"], o["t_m"], o["score"]
        dt = time.perf_counter() - t0
        rows.append({"scene_id": im.scene_id, "im_id": im.im_id, "obj_id": est.spec.obj_id, "score": score,
                     "R": R, "t_mm": t * 1000, "time_s": dt})
        if overlays:
            gt = next(((g.R, g.t_mm / 1000) for g in im.gts if g.obj_id == est.spec.obj_id), None)
            _save_overlay(Path(overlays) / f"{im.scene_id:06d}_{im.im_id:06d}.jpg",
                          draw_overlay(rgb, R, t, im.K, est.spec, gt=gt))
    write_results_csv(out_csv, rows)
    return Path(out_csv)


def _save_overlay(path: Path, bgr: np.ndarray) -> None:
    ok, buf = cv2.imencode(path.suffix or ".jpg", bgr)
    if not ok:
        raise UserError(f"{path}: could not encode the overlay image")
    atomic_write_bytes(path, buf.tobytes())


def read_camera_K(path: str | os.PathLike) -> np.ndarray:
    """K.json: {"cam_K": 9 numbers (row-major) or a 3×3 list}."""
    d = read_json(path, "camera file")
    if not isinstance(d, dict) or "cam_K" not in d:
        raise UserError(f"{path}: cam_K: missing (expected {{\"cam_K\": [fx, 0, cx, 0, fy, cy, 0, 0, 1]}})")
    try:
        K = np.asarray(d["cam_K"], dtype=np.float64)
    except (TypeError, ValueError):
        raise UserError(f"{path}: cam_K: expected 9 numbers or a 3×3 list") from None
    if K.size != 9 or K.shape not in ((9,), (3, 3)):
        raise UserError(f"{path}: cam_K: expected 9 numbers or a 3×3 list, got shape {list(K.shape)}")
    K = K.reshape(3, 3)
    if not (np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0 and np.allclose(K[2], [0, 0, 1])):
        raise UserError(f"{path}: cam_K: not a camera matrix (fx, fy > 0, last row 0 0 1)")
    return K


def predict_images(ckpt: str | os.PathLike, images_dir: str | os.PathLike, camera_json: str | os.PathLike,
                   out_csv: str | os.PathLike, device: str = "auto", overlays: str | os.PathLike | None = None,
                   object_name: str | None = None, head: str | None = None, hypotheses: int | None = None) -> Path:
    """Predict a plain folder of images sharing one camera → BOP results CSV (scene 0, im_id = the file's
    number when its stem is an integer, else its position in sorted order; names in <out>.images.json)."""
    from core.bop import write_results_csv
    d = Path(images_dir)
    if not d.is_dir():
        raise UserError(f"--images {d}: not a folder")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"--images {d}: no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
    K = read_camera_K(camera_json)
    est = PoseEstimator.load(ckpt, device, head=head, hypotheses=hypotheses)
    if object_name:
        est.check_object(name=object_name, where=f"--object {object_name}")
    numeric = all(p.stem.isdigit() for p in files) and len({int(p.stem) for p in files}) == len(files)
    rows, names = [], {}
    for i, p in enumerate(files):
        rgb = read_rgb(p)
        t0 = time.perf_counter()
        R, t, score = est.predict(rgb, K)
        dt = time.perf_counter() - t0
        im_id = int(p.stem) if numeric else i
        names[im_id] = p.name
        rows.append({"scene_id": 0, "im_id": im_id, "obj_id": est.spec.obj_id, "score": score, "R": R,
                     "t_mm": t * 1000, "time_s": dt})
        if overlays:
            _save_overlay(Path(overlays) / f"{p.stem}.jpg", draw_overlay(rgb, R, t, K, est.spec))
    write_results_csv(out_csv, rows)
    atomic_write_json(f"{out_csv}.images.json", {str(k): v for k, v in names.items()})
    return Path(out_csv)
