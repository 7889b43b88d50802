"""Synthetic dataset → in-memory tensors, the train/val split, and training batches.

Training crops are sub-crops of the rendered crop (which is centred on the true cube at about twice its
size), jittered in scale and position the way the localizer errs, so the regressor learns to cope with
off-centre, mis-sized crops; their K follows exactly (geometry.crop_K).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pose_model import geometry as G

VAL_SPLIT_SEED = 12345  # the split never depends on the training seed: every run validates on the same set


@dataclass
class PoseData:
    frames: torch.Tensor      # (N,Hf,Wf,3) uint8
    crops: torch.Tensor       # (N,C,C,3) uint8
    R: torch.Tensor           # (N,3,3) float32
    t: torch.Tensor           # (N,3)
    K_full: torch.Tensor      # (N,3,3)
    centre: torch.Tensor      # (N,2) projected cube centre, full-res px
    crop_box: torch.Tensor    # (N,3) rendered crop x0, y0, side (full-res, pixel edges)

    @classmethod
    def from_dataset(cls, ds, max_samples: int | None = None) -> "PoseData":
        n = len(ds) if max_samples is None else min(len(ds), max_samples)
        lab = ds.labels[:n]
        f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        return cls(frames=torch.from_numpy(np.ascontiguousarray(ds.frames[:n])),
                   crops=torch.from_numpy(np.ascontiguousarray(ds.crops[:n])),
                   R=f32(lab["R"]), t=f32(lab["t_m"]), K_full=f32(lab["K_full"]),
                   centre=f32(lab["center_full_px"]), crop_box=f32(lab["crop_box_full_px"]))

    def __len__(self) -> int:
        return len(self.R)


def split_indices(n: int, val_frac: float) -> tuple[np.ndarray, np.ndarray]:
    """Fixed random split: (train, val) sorted index arrays; at least one sample on each side when n ≥ 2."""
    perm = np.random.default_rng(VAL_SPLIT_SEED).permutation(n)
    n_val = int(round(n * val_frac))
    n_val = min(max(n_val, 1 if n >= 2 else 0), n - 1)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def to_float(img_u8: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(B,H,W,3) uint8 → (B,3,H,W) float in [0,1] on device."""
    return img_u8.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)


def crops_from_rendered(crops_f: torch.Tensor, crop_box: torch.Tensor, box_full: torch.Tensor, out_px: int,
                        antialias: int = 2) -> torch.Tensor:
    """Sub-crops `box_full` (full-res px) out of rendered crops whose full-res box is `crop_box`."""
    C = crops_f.shape[-1]
    s = C / crop_box[:, 2]
    box_c = torch.stack([(box_full[:, 0] - crop_box[:, 0]) * s, (box_full[:, 1] - crop_box[:, 1]) * s,
                         box_full[:, 2] * s], -1)
    return G.crop_images(crops_f, box_c, out_px, antialias)


def jittered_boxes(centre: torch.Tensor, side: torch.Tensor, scale: float, shift: float,
                   gen: torch.Generator) -> torch.Tensor:
    """Boxes around centre with side × U(1−scale, 1+scale) and the centre moved by U(−shift, shift)·side."""
    B = centre.shape[0]
    u = torch.rand(B, 3, generator=gen, device=gen.device).to(centre.device)
    side_j = side * (1 - scale + 2 * scale * u[:, 0])
    c = centre + (2 * u[:, 1:] - 1) * shift * side_j[:, None]
    return G.box_around(c, side_j)
