"""The two-stage pose model: training targets, decoding, and end-to-end inference on batches.

Coordinates: `centre` is the projected cube centre in full-resolution pixel-centre coordinates; `side` is
the side (full-res px) of the square the renderer crops around the cube (`crop_box_full_px[2]`); the
regressor sees a crop of side `crop_factor · side`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.io import load_torch_file
from pose_model import geometry as G
from pose_model.nets import CropRegressor, Localizer


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


class PoseModel(nn.Module):
    def __init__(self, meta: ModelMeta, symmetries: torch.Tensor) -> None:
        super().__init__()
        self.meta = meta
        self.localizer = Localizer(meta.loc_width)
        self.regressor = CropRegressor(meta.crop_px, meta.reg_width, meta.reg_hidden)
        self.register_buffer("syms", symmetries.float())

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
        Hf, Wf = self.meta.frame_hw
        H, W = image_hw or self.meta.full_hw
        s = self.localizer.stride
        logits = out["logits"]
        B, gh, gw = logits.shape
        p = logits.reshape(B, -1).softmax(-1)
        score, cell = p.max(-1)
        cy, cx = (cell // gw).float(), (cell % gw).float()
        off = out["offset"].reshape(B, 2, -1).gather(2, cell.view(B, 1, 1).expand(B, 2, 1))[..., 0]
        ex = (cx + 0.5 + off[:, 0]) * s
        ey = (cy + 0.5 + off[:, 1]) * s
        centre = torch.stack([ex * W / Wf - 0.5, ey * H / Hf - 0.5], -1)
        side = torch.exp(out["log_size"].reshape(B, -1).gather(1, cell[:, None])[:, 0]) * W
        return centre, side, score

    # ---- crop regressor -----------------------------------------------------------------------------
    def reg_targets(self, R: torch.Tensor, t: torch.Tensor, K_full: torch.Tensor, box: torch.Tensor):
        """Targets for a crop `box` (x0, y0, side, full-res px): allocentric R, centre offset, depth code."""
        n = self.meta.crop_px
        Kc = G.crop_K(K_full, box, n)
        uv = G.project(t, Kc)
        offset = (uv + 0.5) / n - 0.5
        code = G.depth_code(t[:, 2], Kc, n, self.meta.size_m)
        return G.ego_to_allo(R, t), offset, code, Kc

    def reg_decode(self, out: dict, Kc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """→ R (B,3,3) egocentric, t (B,3) metres, R_allo, from the regressor's outputs and the crop's K."""
        n = self.meta.crop_px
        uv = (out["offset"] + 0.5) * n - 0.5
        z = G.depth_from_code(out["depth_code"], Kc, n, self.meta.size_m)
        t = G.translation_from_centre_depth(uv, z, Kc)
        R_allo = G.rot6d_to_matrix(out["rot6d"])
        return G.allo_to_ego(R_allo, t), t, R_allo

    def reg_loss(self, out: dict, R_allo: torch.Tensor, offset: torch.Tensor, code: torch.Tensor, w: tuple):
        """Per-sample losses (B,) of rotation (min over symmetries), centre and depth."""
        Rp = G.rot6d_to_matrix(out["rot6d"])
        Rg = R_allo[:, None] @ self.syms[None]
        l_rot = ((Rp[:, None] - Rg) ** 2).sum((-1, -2)).min(1).values.clamp_min(1e-8).sqrt()
        l_c = (out["offset"] - offset).abs().sum(-1)
        l_d = (out["depth_code"] - code).abs()
        return w[0] * l_rot + w[1] * l_c + w[2] * l_d, (l_rot, l_c, l_d)

    # ---- end to end ---------------------------------------------------------------------------------
    @torch.no_grad()
    def infer(self, frames: torch.Tensor, crop_source, K_full: torch.Tensor, refine_iters: int = 1,
              boxes: torch.Tensor | None = None, image_hw: tuple[int, int] | None = None):
        """End-to-end inference on a batch.

        frames: (B,3,Hf,Wf) float in [0,1] at the working resolution;
        crop_source(boxes (B,3) full-res px, out_px) → (B,3,n,n) float crops (from the full-res photo at
        test time, from the rendered crop on the synthetic validation set);
        boxes: skip the localizer and use these crop boxes (the GT-crop diagnostic);
        image_hw: size of the image K_full belongs to (default: the training camera's).
        → dict R (B,3,3), t_m (B,3), score (B,), centre/side of the localizer, box of the last crop.
        """
        n = self.meta.crop_px
        if boxes is None:
            centre, side, score = self.loc_decode(self.localizer(frames), image_hw)
            side = side * self.meta.crop_factor
        else:
            centre = torch.stack([boxes[:, 0] + boxes[:, 2] / 2 - 0.5, boxes[:, 1] + boxes[:, 2] / 2 - 0.5], -1)
            side, score = boxes[:, 2], torch.ones(len(boxes), device=boxes.device)
        loc_centre, loc_side = centre, side
        for it in range(1 + max(0, refine_iters)):
            box = G.box_around(centre, side)
            Kc = G.crop_K(K_full, box, n)
            out = self.regressor(crop_source(box, n))
            R, t, _ = self.reg_decode(out, Kc)
            centre = G.project(t, K_full)
        return {"R": R, "t_m": t, "score": score, "loc_centre": loc_centre, "loc_side": loc_side, "box": box}


CKPT_FORMAT = "sim2real-pose/1"


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a pose checkpoint (tensors and plain types only: weights_only=True, so a crafted file cannot run
    code) and check its format; problems are UserErrors naming the file. Imports nothing from training."""
    return load_torch_file(path, "pose-model checkpoint", CKPT_FORMAT, map_location)
