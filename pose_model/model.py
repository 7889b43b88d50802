"""The two-stage pose model: training targets, decoding, and end-to-end inference on batches.

Coordinates: `centre` is the projected cube centre in full-resolution pixel-centre coordinates; `side` is
the side (full-res px) of the square the renderer crops around the cube (`crop_box_full_px[2]`); the
regressor sees a crop of side `crop_factor · side`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from core.io import UserError, load_torch_file
from pose_model import geometry as G
from pose_model.nets import CropRegressor, Localizer
from pose_model.registry import HEADS


@dataclass
class ModelMeta:
    frame_hw: tuple[int, int]        # localizer input (the dataset's working resolution)
    full_hw: tuple[int, int]         # camera resolution the dataset's K_full belongs to
    crop_px: int
    crop_factor: float
    size_m: float                    # cube side (max extent), sets the depth code's scale
    loc_width: int
    reg_width: int
    reg_hidden: int
    size_xyz_m: tuple[float, float, float] | None = None   # the cuboid's sides (None: a cube of size_m)
    sym_split: bool = False          # rotation = geometry modulo the shape's symmetries + a classifier (see PoseModel)
    depth_scale: float = 1.0         # multiplies the reported translation: 1 for a sim-trained model; a depth
                                     # calibration on labelled photos sets it (pose_model.finetune.calibrate_depth)
    kp_head: str = "fc"              # the keypoints: "fc" (regressed with the pose) or "dense" (cells vote, nets.py)


N_KP = 9  # keypoints: the cube centre, then the 8 corners (core.objects.ObjectSpec.corners_m order)


def keypoints_m(size_xyz_m) -> torch.Tensor:
    """(9,3) object-frame keypoints: the centre, then the 8 corners (x slowest, as ObjectSpec.corners_m)."""
    h = torch.as_tensor(size_xyz_m, dtype=torch.float64) / 2
    c = [[sx * h[0], sy * h[1], sz * h[2]] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]
    return torch.tensor([[0.0, 0.0, 0.0]] + c, dtype=torch.float64)


def shape_symmetries(size_xyz_m) -> torch.Tensor:
    """(S,3,3) the proper rotations that map the cuboid's SHAPE onto itself (signed permutations with det +1
    that keep the sides): 24 for a cube, 4 for a box with three different sides."""
    size = np.asarray(size_xyz_m, float)
    out = []
    for perm in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)):
        for signs in np.ndindex(2, 2, 2):
            P = np.zeros((3, 3))
            for r, c in enumerate(perm):
                P[r, c] = 1.0 - 2.0 * signs[r]
            if np.linalg.det(P) > 0 and np.allclose(np.abs(P) @ size, size, rtol=1e-3):
                out.append(P)
    return torch.as_tensor(np.stack(out))


class PoseModel(nn.Module):
    """Localizer + crop regressor.

    meta.sym_split False (the default for new models): rotation and keypoints are regressed directly, modulo the
    OBJECT's symmetries only (`syms`, those of the metrics): the texture tells the faces apart.
    meta.sym_split True: geometry is learnt modulo the cuboid's SHAPE symmetries (`geo_syms`) and which of them
    it is — the markers' word — is a classification (`sym_logits`). Measured worse under image randomization at
    the CPU budget (the classifier stays near chance for 8 epochs, median re 70–87°), kept for old checkpoints."""

    def __init__(self, meta: ModelMeta, symmetries: torch.Tensor) -> None:
        super().__init__()
        self.meta = meta
        size = meta.size_xyz_m or (meta.size_m,) * 3
        geo = shape_symmetries(size).float()
        n_cls = len(geo) if meta.sym_split and len(geo) > len(symmetries) else 0
        self.localizer = Localizer(meta.loc_width)
        self.regressor = CropRegressor(meta.crop_px, meta.reg_width, meta.reg_hidden, n_kp=N_KP, n_cls=n_cls,
                                       kp_head=meta.kp_head)
        self.register_buffer("syms", symmetries.float())
        self.register_buffer("geo_syms", geo if n_cls else symmetries.float())
        self.register_buffer("kp_obj", keypoints_m(size).float())

    # ---- localizer ----------------------------------------------------------------------------------
    def loc_targets(self, centre_full: torch.Tensor, side_full: torch.Tensor):
        """→ (cell index (B,), sub-cell offset (B,2) in cells, log size (B,)) for the localizer."""
        Hf, Wf = self.meta.frame_hw
        H, W = self.meta.full_hw
        s = self.localizer.stride
        gh, gw = -(-Hf // s), -(-Wf // s)
        # full-res pixel centre → frame pixel-edge coordinate → cell coordinate
        ex = (centre_full[:, 0] + 0.5) * Wf / W / s
        ey = (centre_full[:, 1] + 0.5) * Hf / H / s
        cx = ex.floor().clamp(0, gw - 1)
        cy = ey.floor().clamp(0, gh - 1)
        off = torch.stack([ex - cx - 0.5, ey - cy - 0.5], -1)
        return (cy * gw + cx).long(), off, torch.log(side_full / W)

    def loc_loss(self, out: dict, centre_full: torch.Tensor, side_full: torch.Tensor) -> torch.Tensor:
        cell, off, logs = self.loc_targets(centre_full, side_full)
        B = cell.shape[0]
        logits = out["logits"].reshape(B, -1)
        ce = F.cross_entropy(logits, cell)
        o = out["offset"].reshape(B, 2, -1).gather(2, cell.view(B, 1, 1).expand(B, 2, 1))[..., 0]
        sz = out["log_size"].reshape(B, -1).gather(1, cell[:, None])[:, 0]
        return ce + 2.0 * F.l1_loss(o, off.clamp(-0.75, 0.75)) + 2.0 * F.l1_loss(sz, logs)

    def loc_decode(self, out: dict, image_hw: tuple[int, int] | None = None):
        """→ centre (B,2) px, side (B,) px, score (B,) = probability of the chosen cell, in the pixels of an
        image of size image_hw (default: the training camera's) that the frame was resized from."""
        B = out["logits"].shape[0]
        score, cell = out["logits"].reshape(B, -1).softmax(-1).max(-1)
        centre, side = self._cells_to_pixels(out, cell[:, None], image_hw)
        return centre[:, 0], side[:, 0], score

    def loc_peaks(self, out: dict, k: int, image_hw: tuple[int, int] | None = None):
        """The k most probable local maxima (3×3 cells) of the localizer's map: k hypotheses of where the cube
        is. → centre (B,k,2) px, side (B,k) px, score (B,k) (cell probabilities; 0 where fewer peaks exist)."""
        logits = out["logits"]
        B = logits.shape[0]
        p = logits.reshape(B, -1).softmax(-1).reshape(logits.shape)
        peak = p == F.max_pool2d(p[:, None], 3, 1, 1)[:, 0]
        score, cell = torch.where(peak, p, torch.zeros_like(p)).reshape(B, -1).topk(min(k, p[0].numel()), -1)
        centre, side = self._cells_to_pixels(out, cell, image_hw)
        return centre, side, score

    def _cells_to_pixels(self, out: dict, cell: torch.Tensor, image_hw: tuple[int, int] | None):
        """Localizer cells (B,k) → centre (B,k,2) and side (B,k) in the pixels of an image of size image_hw."""
        Hf, Wf = self.meta.frame_hw
        H, W = image_hw or self.meta.full_hw
        s = self.localizer.stride
        B, gh, gw = out["logits"].shape
        k = cell.shape[1]
        cy, cx = (cell // gw).float(), (cell % gw).float()
        off = out["offset"].reshape(B, 2, -1).gather(2, cell[:, None].expand(B, 2, k))         # (B,2,k)
        ex = (cx + 0.5 + off[:, 0]) * s
        ey = (cy + 0.5 + off[:, 1]) * s
        centre = torch.stack([ex * W / Wf - 0.5, ey * H / Hf - 0.5], -1)
        side = torch.exp(out["log_size"].reshape(B, -1).gather(1, cell)) * W
        return centre, side

    # ---- crop regressor -----------------------------------------------------------------------------
    def reg_targets(self, R: torch.Tensor, t: torch.Tensor, K_full: torch.Tensor, box: torch.Tensor):
        """Targets for a crop `box` (x0, y0, side, full-res px): allocentric R, centre offset, depth code."""
        n = self.meta.crop_px
        Kc = G.crop_K(K_full, box, n)
        uv = G.project(t, Kc)
        offset = (uv + 0.5) / n - 0.5
        code = G.depth_code(t[:, 2], Kc, n, self.meta.size_m)
        return G.ego_to_allo(R, t), offset, code, Kc

    SYM_TEMP = 0.5  # softness of the symmetry class (trace units: 3 at the identity, 1 + 2cos θ)

    def sym_class_probs(self, R_allo: torch.Tensor) -> torch.Tensor:
        """(B,3,3) → (B,S) which shape symmetry g takes R·g nearest the identity (a soft one-hot: softmax of
        trace(R·g) / SYM_TEMP; 0.5: soft enough that a geometric estimate ≈ 10° off still picks the right copy,
        measured with an ideal classifier). A function of the rotation alone, so the classifier's target does not move with
        the geometric head's choice, and it is smooth where two symmetric copies are equally near."""
        tr = (R_allo[:, None] @ self.geo_syms[None].to(R_allo.dtype)).diagonal(dim1=-2, dim2=-1).sum(-1)
        return (tr / self.SYM_TEMP).softmax(-1)

    def sym_choice(self, out: dict) -> torch.Tensor:
        """(B,3,3) the shape symmetry g the geometric estimate R_geo is off by (R = R_geo · gᵀ): of the 24 copies
        R_geo·h, the one whose symmetry class (sym_class_probs) agrees best with the classifier's; the identity
        when there is no classifier."""
        Rg = G.rot6d_to_matrix(out["rot6d"])
        if "sym_logits" not in out:
            return torch.eye(3, dtype=Rg.dtype, device=Rg.device).expand(len(Rg), 3, 3)
        geo = self.geo_syms.to(Rg.dtype)
        B, S = len(Rg), len(geo)
        copies = (Rg[:, None] @ geo[None]).reshape(B * S, 3, 3)               # R_geo · h for every h
        q = self.sym_class_probs(copies).reshape(B, S, S)                     # their class distributions
        p = out["sym_logits"].softmax(-1)
        best = (q @ p[..., None])[..., 0].argmax(-1)                          # (B,) the copy that agrees best
        return geo[best].transpose(-1, -2)

    def reg_decode(self, out: dict, Kc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """→ R (B,3,3) egocentric, t (B,3) metres, R_allo, from the regressor's outputs and the crop's K."""
        n = self.meta.crop_px
        uv = (out["offset"] + 0.5) * n - 0.5
        z = G.depth_from_code(out["depth_code"], Kc, n, self.meta.size_m)
        t = G.translation_from_centre_depth(uv, z, Kc)
        R_allo = G.rot6d_to_matrix(out["rot6d"]) @ self.sym_choice(out).transpose(-1, -2)
        return G.allo_to_ego(R_allo, t), t, R_allo

    def kp_targets(self, R: torch.Tensor, t: torch.Tensor, Kc: torch.Tensor) -> torch.Tensor:
        """(B,S,9,2): the keypoints' projections into the crop (crop units, as `offset`) for the pose R·g of
        each symmetry g: a symmetric cube looks the same under every g, so which corner is which is decided
        by the rotation the network chose (reg_loss picks the g nearest its rotation)."""
        n = self.meta.crop_px
        Rg = R[:, None] @ self.geo_syms[None].to(R.dtype)                           # (B,S,3,3)
        X = (Rg[:, :, None] @ self.kp_obj.to(R.dtype)[None, None, :, :, None])[..., 0] + t[:, None, None]
        uv = G.project(X, Kc[:, None, None])
        return (uv + 0.5) / n - 0.5

    def reg_loss(self, out: dict, R_allo: torch.Tensor, offset: torch.Tensor, code: torch.Tensor, w: tuple,
                 kp: torch.Tensor | None = None):
        """Per-sample losses (B,) of rotation (min over the shape's symmetries), centre and depth, the
        classifier's cross-entropy against the truth's symmetry class (weight w[4], default w[0]), and with `kp`
        (kp_targets, (B,S,9,2)) and w[3] the keypoints' mean L1 (crop units) for the same symmetry."""
        Rp = G.rot6d_to_matrix(out["rot6d"])
        Rg = R_allo[:, None] @ self.geo_syms[None].to(R_allo.dtype)
        d_rot, g = ((Rp[:, None] - Rg) ** 2).sum((-1, -2)).min(1)
        l_rot = d_rot.clamp_min(1e-8).sqrt()
        if "sym_logits" in out:  # cross-entropy against the truth's (soft) symmetry class
            w_cls = w[4] / w[0] if len(w) > 4 else 1.0
            tgt = self.sym_class_probs(R_allo)
            l_rot = l_rot - w_cls * (tgt * out["sym_logits"].log_softmax(-1)).sum(-1)
        l_c = (out["offset"] - offset).abs().sum(-1)
        l_d = (out["depth_code"] - code).abs()
        total = w[0] * l_rot + w[1] * l_c + w[2] * l_d
        if kp is None or len(w) < 4 or "kp" not in out:
            return total, (l_rot, l_c, l_d)
        tgt = kp[torch.arange(len(g), device=g.device), g]                            # (B,9,2)
        l_kp = (out["kp"] - tgt).abs().sum(-1).mean(-1)
        if "kp_fc" in out:  # a dense head's regressed twin (nets.CropRegressor)
            l_kp = l_kp + (out["kp_fc"] - tgt).abs().sum(-1).mean(-1)
        return total + w[3] * l_kp, (l_rot, l_c, l_d, l_kp)

    def pnp(self, kp_crop: torch.Tensor, Kc: torch.Tensor, R0: torch.Tensor, t0: torch.Tensor,
            max_err_px: float | None = None):
        """Pose from the predicted keypoints (crop units) by PnP in the crop's K (OpenCV: RANSAC from the direct
        head's pose, then Levenberg-Marquardt). → R (B,3,3), t (B,3), ok (B,) bool; where PnP fails or its
        reprojection error is above max_err_px (default 5 % of the crop) the direct pose is kept."""
        n = self.meta.crop_px
        max_err_px = 0.05 * n if max_err_px is None else max_err_px
        uv = ((kp_crop.double() + 0.5) * n - 0.5).cpu().numpy()
        K = Kc.double().cpu().numpy()
        X = self.kp_obj.double().cpu().numpy()
        R_out, t_out = R0.double().cpu().numpy().copy(), t0.double().cpu().numpy().copy()
        ok = np.zeros(len(uv), bool)
        for i in range(len(uv)):
            R_i, t_i, good = solve_pnp(X, uv[i], K[i], R_out[i], t_out[i], max_err_px)
            # the direct head is the sanity check: keypoints that collapsed or scattered give a far-off depth
            if good and abs(np.log(t_i[2] / max(t_out[i][2], 1e-6))) < 0.3:
                R_out[i], t_out[i], ok[i] = R_i, t_i, True
        dev, dt = R0.device, R0.dtype
        return (torch.as_tensor(R_out, dtype=dt, device=dev), torch.as_tensor(t_out, dtype=dt, device=dev),
                torch.as_tensor(ok, device=dev))

    def crop_side(self, R: torch.Tensor, t: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        """The crop side for a pose: crop_factor × the renderer's rule (2 × the larger side of the projected
        corners' bounding box), so a re-sized crop frames the cube the way the training crops did."""
        X = (R[:, None] @ self.kp_obj[1:].to(R.dtype)[None, :, :, None])[..., 0] + t[:, None]
        uv = G.project(X, K[:, None])
        ext = (uv.max(1).values - uv.min(1).values).max(-1).values
        return 2.0 * ext * self.meta.crop_factor

    # ---- end to end ---------------------------------------------------------------------------------
    KP_VERIFY_WEIGHT = 100.0  # hypothesis score = log p(cell) − this × keypoint residual (crop units). Chosen on the
                              # tune session: 10 at first (image-dr seed 0; 5–10 alike, 0 no gain); then 100, on 21
                              # models of the 16-epoch grid (7 rows × seeds 0–2), 100 − 10: AR +0.015 [+0.001, +0.030],
                              # photos with the cube missed −0.028 [−0.053, −0.002] (README, "Localizer hypotheses")

    @torch.no_grad()
    def infer(self, frames: torch.Tensor, crop_source, K_full: torch.Tensor, refine_iters: int = 1,
              boxes: torch.Tensor | None = None, image_hw: tuple[int, int] | None = None,
              resize_crop: bool = True, head: str = "pnp-rot", hypotheses: int = 1):
        """End-to-end inference on a batch.

        frames: (B,3,Hf,Wf) float in [0,1] at the working resolution;
        crop_source(boxes (B,3) full-res px, out_px) → (B,3,n,n) float crops (from the full-res photo at
        test time, from the rendered crop on the synthetic validation set);
        boxes: skip the localizer and use these crop boxes (the GT-crop diagnostic);
        image_hw: size of the image K_full belongs to (default: the training camera's);
        resize_crop: each refinement re-sizes (not only re-centres) the crop from the current pose estimate;
        head: "pnp" (keypoints + PnP, the direct pose where PnP fails), "direct" (the 6D/depth head), "pnp-rot"
        (PnP's rotation with the direct head's translation) or "pnp-mean" (PnP's rotation, the mean of the two
        heads' translations where PnP succeeded);
        hypotheses: look at this many peaks of the localizer's map (one crop each) and refine, per image, the one
        whose localizer probability and keypoint agreement are best (`KP_VERIFY_WEIGHT`): on a cluttered desk
        the cube is often the second or third peak.
        → dict R, t_m (the chosen head), R_direct, t_direct, pnp_ok (B,) bool, score (B,), centre/side of the
        localizer, box of the last crop, kp_residual (B,) crop units, hypothesis (B,) the chosen peak's rank.
        Both translations are multiplied by meta.depth_scale (after the crops, which follow the raw estimate).
        """
        if head not in HEADS:
            raise ValueError(f"head {head!r}: expected one of {HEADS}")
        out = self._infer(frames, crop_source, K_full, refine_iters, boxes, image_hw, resize_crop, head, hypotheses)
        if self.meta.depth_scale != 1.0:  # along the ray: the projected centre stays where the crops put it
            out["t_m"], out["t_direct"] = out["t_m"] * self.meta.depth_scale, out["t_direct"] * self.meta.depth_scale
        return out

    def _infer(self, frames, crop_source, K_full, refine_iters, boxes, image_hw, resize_crop, head, hypotheses):
        if boxes is not None:
            centre = torch.stack([boxes[:, 0] + boxes[:, 2] / 2 - 0.5, boxes[:, 1] + boxes[:, 2] / 2 - 0.5], -1)
            return self._follow_crops(crop_source, K_full, centre, boxes[:, 2],
                                      torch.ones(len(boxes), device=boxes.device), refine_iters, resize_crop, head)
        loc = self.localizer(frames)
        if hypotheses <= 1:
            centre, side, score = self.loc_decode(loc, image_hw)
            return self._follow_crops(crop_source, K_full, centre, side * self.meta.crop_factor, score,
                                      refine_iters, resize_crop, head)
        centre, side, score = self.loc_peaks(loc, hypotheses, image_hw)          # (B,k,2), (B,k), (B,k)
        B, k = score.shape

        def crops_of_all(box: torch.Tensor, n: int) -> torch.Tensor:            # (B·k,3) → (B·k,3,n,n)
            bk = box.view(B, k, 3)
            return torch.stack([crop_source(bk[:, j], n) for j in range(k)], 1).flatten(0, 1)

        # one crop per peak (direct head, no PnP) picks the hypothesis; only the chosen one is refined: on the tune
        # session as accurate as refining every peak, 1.3–2.1× faster (README, "Localizer hypotheses")
        first = self._follow_crops(crops_of_all, K_full.repeat_interleave(k, 0), centre.flatten(0, 1),
                                   side.flatten(0, 1) * self.meta.crop_factor, score.flatten(0, 1), 0, resize_crop,
                                   "direct")
        verify = score.clamp_min(1e-12).log() - self.KP_VERIFY_WEIGHT * first["kp_residual"].view(B, k)
        verify = torch.where(score > 0, verify, torch.full_like(verify, -torch.inf))
        best = verify.argmax(1)
        rows = torch.arange(B, device=best.device)
        out = self._follow_crops(crop_source, K_full, centre[rows, best], side[rows, best] * self.meta.crop_factor,
                                 score[rows, best], refine_iters, resize_crop, head)
        out["hypothesis"] = best
        return out

    def _follow_crops(self, crop_source, K_full: torch.Tensor, centre: torch.Tensor, side: torch.Tensor,
                      score: torch.Tensor, refine_iters: int, resize_crop: bool, head: str) -> dict:
        """The crop regressor on a crop (centre, side) and again on crops that follow its estimate."""
        n = self.meta.crop_px
        loc_centre, loc_side = centre, side
        for it in range(1 + max(0, refine_iters)):
            box = G.box_around(centre, side)
            Kc = G.crop_K(K_full, box, n)
            out = self.regressor(crop_source(box, n))
            R_d, t_d, _ = self.reg_decode(out, Kc)
            R, t, ok = (R_d, t_d, torch.zeros(len(R_d), dtype=torch.bool, device=R_d.device))
            if head != "direct":  # keypoints follow the geometric estimate R_d·g: PnP there, back by gᵀ
                g = self.sym_choice(out)
                R, t, ok = self.pnp(out["kp"], Kc, R_d @ g, t_d)
                R = R @ g.transpose(-1, -2)
                if head == "pnp-rot":  # the direct head's translation: its depth is the better one (measured)
                    t = t_d
                elif head == "pnp-mean":  # the two depths err to opposite sides on photos (README, "Depth");
                    t = (t + t_d) / 2     # where PnP failed, t is t_d already (pnp keeps the direct pose)
            if it < refine_iters:  # the next crop follows the estimate (behind the camera: keep the last crop)
                good = t[:, 2] > 1e-3
                centre = torch.where(good[:, None], G.project(t, K_full), centre)
                if resize_crop:
                    side = torch.where(good, self.crop_side(R, t, K_full), side)
        return {"R": R, "t_m": t, "R_direct": R_d, "t_direct": t_d, "pnp_ok": ok, "score": score,
                "loc_centre": loc_centre, "loc_side": loc_side, "box": box,
                "kp_residual": self.kp_residual(out, R_d, t_d, Kc)}

    def kp_residual(self, out: dict, R: torch.Tensor, t: torch.Tensor, Kc: torch.Tensor) -> torch.Tensor:
        """(B,) RMS distance (crop units) between the regressed keypoints and those of the direct pose R, t: small
        where the crop holds a cube the two heads agree on, large on clutter."""
        g = self.sym_choice(out)
        X = ((R @ g)[:, None] @ self.kp_obj.to(R.dtype)[None, :, :, None])[..., 0] + t[:, None]
        uv = (G.project(X, Kc[:, None]) + 0.5) / self.meta.crop_px - 0.5
        return ((out["kp"] - uv) ** 2).sum(-1).mean(-1).sqrt()


def solve_pnp(X: np.ndarray, uv: np.ndarray, K: np.ndarray, R0: np.ndarray, t0: np.ndarray,
              max_err_px: float = np.inf) -> tuple[np.ndarray, np.ndarray, bool]:
    """Object points X (N,3) m, their image points uv (N,2) px, K → (R, t, ok): RANSAC with OpenCV's iterative
    solver started at the initial pose R0, t0 (which is also the start when RANSAC finds no consensus), then
    Levenberg-Marquardt on the inliers. ok is False when the result is behind the camera or its RMS reprojection error > max_err_px."""
    dist = np.zeros(5)
    rvec0, _ = cv2.Rodrigues(np.ascontiguousarray(R0, np.float64))
    tvec0 = np.asarray(t0, np.float64).reshape(3, 1)
    X = np.ascontiguousarray(X, np.float64)
    uv = np.ascontiguousarray(uv, np.float64)
    if not (np.isfinite(uv).all() and np.isfinite(tvec0).all()):
        return R0, t0, False
    try:
        found, rvec, tvec, inl = cv2.solvePnPRansac(X, uv, K, dist, rvec0.copy(), tvec0.copy(), True,
                                                    iterationsCount=50, reprojectionError=max(1.0, max_err_px / 2),
                                                    confidence=0.99, flags=cv2.SOLVEPNP_ITERATIVE)
        if not found or inl is None or len(inl) < 6:
            rvec, tvec, inl = rvec0.copy(), tvec0.copy(), np.arange(len(X))[:, None]
        idx = inl[:, 0]
        rvec, tvec = cv2.solvePnPRefineLM(X[idx], uv[idx], K, dist, rvec, tvec)
    except cv2.error:
        return R0, t0, False
    proj, _ = cv2.projectPoints(X, rvec, tvec, K, dist)
    err = float(np.sqrt(((proj[:, 0] - uv) ** 2).sum(-1).mean()))
    R = cv2.Rodrigues(rvec)[0]
    t = tvec[:, 0]
    if not (t[2] > 0 and err <= max_err_px and np.isfinite(R).all()):
        return R0, t0, False
    return R, t, True


CKPT_FORMAT = "sim2real-pose/3"   # /2: keypoints and the symmetry classifier (the PnP head); /3: meta.sym_split
OLD_FORMATS = ("sim2real-pose/1", "sim2real-pose/2")


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a pose checkpoint (tensors and plain types only: weights_only=True, so a crafted file cannot run
    code) and check its format; problems are UserErrors naming the file. Imports nothing from training."""
    ck = load_torch_file(path, "pose-model checkpoint", None, map_location)
    if ck.get("format") in OLD_FORMATS:
        raise UserError(f"{path}: format: a pose checkpoint of the older format {ck['format']}; "
                        f"retrain it with `sim2real train` (this version reads {CKPT_FORMAT})")
    if ck.get("format") != CKPT_FORMAT:
        raise UserError(f"{path}: format: not a sim2real pose-model checkpoint (expected format {CKPT_FORMAT})")
    return ck


def meta_from_dict(m: dict) -> ModelMeta:
    return ModelMeta(**{**m, "frame_hw": tuple(m["frame_hw"]), "full_hw": tuple(m["full_hw"]),
                        "size_xyz_m": tuple(m["size_xyz_m"]) if m.get("size_xyz_m") else None})
