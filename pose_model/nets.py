"""The two networks: a CenterNet-style localizer on the low-resolution frame and a crop regressor.

Both are plain strided CNNs (conv-BN-ReLU) sized by a width multiplier, so the same code gives a
CPU-sized default and wider GPU models. Inputs are float RGB in [0, 1], (B,3,H,W).
"""
from __future__ import annotations

import torch
import torch.nn as nn

# ImageNet-ish normalisation; fixed, so a checkpoint does not depend on dataset statistics.
_MEAN = (0.45, 0.45, 0.45)
_STD = (0.25, 0.25, 0.25)


def conv_bn(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def in_fp32(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """layer(x) in float32 whatever autocast the caller runs under (bf16 training: `TrainConfig.precision`). The
    output layers regress fine quantities that bf16's 8-bit mantissa would round: 0.4 % of a depth ≈ 1 mm."""
    with torch.autocast(x.device.type, enabled=False):
        return layer(x.float())


class _Normalize(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Localizer(nn.Module):
    """Frame (B,3,H,W) → per-cell logits (B,H/8,W/8), sub-cell offset (B,2,..) and log size (B,1,..).

    One cube per image: the centre cell is a softmax over all cells (cross-entropy against the cell that
    holds the projected centre); offset and size are read at that cell. Translation-equivariant, so a cube
    anywhere in the frame is found the same way.
    """
    stride = 8

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.norm = _Normalize()
        # a 4×4 stride-4 "patchify" stem: full-resolution 3×3 convs cost most of the time on a CPU and the
        # cube is ≥ 10 px wide in the 160×120 frame; dilations give the stride-8 cells a wide view
        self.body = nn.Sequential(
            nn.Conv2d(3, w, 4, 4, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True), conv_bn(w, w),
            conv_bn(w, 2 * w, 2), conv_bn(2 * w, 2 * w),
            conv_bn(2 * w, 2 * w, dilation=2), conv_bn(2 * w, 2 * w, dilation=4))
        self.head = nn.Conv2d(2 * w, 4, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = in_fp32(self.head, self.body(self.norm(x)))
        return {"logits": h[:, 0], "offset": torch.tanh(h[:, 1:3]) * 0.75, "log_size": h[:, 3]}


class CropRegressor(nn.Module):
    """Crop (B,3,S,S) → 6D allocentric rotation, centre offset (crop units), depth code, n_kp keypoints
    (crop units, (B,n_kp,2)) for the PnP head and n_cls logits (which shape symmetry the rotation is off by).

    The features are flattened rather than pooled: where the cube sits in the crop is part of the answer.
    """

    KP_FEATURE_STAGE = 4  # body[:5] → stride 8: where kp_head "dense" reads its features

    def __init__(self, in_px: int = 64, width: int = 32, hidden: int = 256, n_kp: int = 0, n_cls: int = 0,
                 kp_head: str = "fc") -> None:
        super().__init__()
        if kp_head not in ("fc", "dense"):
            raise ValueError(f"kp_head {kp_head!r}: expected 'fc' or 'dense'")
        w = width
        self.norm = _Normalize()
        # no 3×3 conv at the half-resolution stage: it doubled the CPU time for little accuracy
        self.body = nn.Sequential(
            conv_bn(3, w, 2),
            conv_bn(w, 2 * w, 2), conv_bn(2 * w, 2 * w),
            conv_bn(2 * w, 4 * w, 2), conv_bn(4 * w, 4 * w),
            conv_bn(4 * w, 8 * w, 2), conv_bn(8 * w, 4 * w))
        feat = 4 * w * (in_px // 16) ** 2
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(feat, hidden), nn.ReLU(inplace=True))
        self.n_kp, self.n_cls, self.kp_head = n_kp, n_cls, kp_head
        self.head = nn.Linear(hidden, 6 + 2 + 1 + 2 * n_kp + n_cls)
        if kp_head == "dense" and n_kp:
            # every cell of the stride-8 map votes for each keypoint: a weight (logit) and an offset from its centre,
            # from its own features and the whole crop's (the hidden vector: which corner is which)
            self.kp_vote = nn.Sequential(conv_bn(4 * w + hidden, 2 * w), nn.Conv2d(2 * w, 3 * n_kp, 1))
        with torch.no_grad():  # start at the identity rotation, centred, at the typical depth code
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
            self.head.bias[:9].copy_(torch.tensor([1., 0, 0, 0, 1, 0, 0, 0, 0]))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.norm(x)
        f8 = None
        for i, layer in enumerate(self.body):
            f = layer(f)
            if i == self.KP_FEATURE_STAGE:
                f8 = f
        hidden = self.fc(f)
        h = in_fp32(self.head, hidden)
        out = {"rot6d": h[:, :6], "offset": h[:, 6:8], "depth_code": h[:, 8]}
        if self.n_kp:
            out["kp"] = h[:, 9:9 + 2 * self.n_kp].reshape(-1, self.n_kp, 2)
        if self.n_kp and self.kp_head == "dense":  # the regressed ones stay, as an auxiliary task (reg_loss)
            g = hidden[:, :, None, None].expand(-1, -1, *f8.shape[-2:])
            out["kp_fc"], out["kp"] = out["kp"], dense_keypoints(self.kp_vote(torch.cat([f8, g], 1)).float(), self.n_kp)
        if self.n_cls:
            out["sym_logits"] = h[:, 9 + 2 * self.n_kp:]
        return out


def dense_keypoints(votes: torch.Tensor, n_kp: int) -> torch.Tensor:
    """(B, 3·n_kp, h, w) votes → (B, n_kp, 2) keypoints in crop units (x, y in [−0.5, 0.5] across the crop, pixel
    edges at ±0.5): per keypoint, the softmax-weighted mean over cells of (cell centre + offset), offsets in cells.
    Differentiable (integral regression), so the keypoint loss trains weights and offsets together; sub-cell by
    construction, where one regressed vector from pooled features has to encode where every corner lies."""
    B, _, gh, gw = votes.shape
    v = votes.view(B, n_kp, 3, gh * gw)
    weight = v[:, :, 0].softmax(-1)                                          # (B, n_kp, cells)
    ys, xs = torch.meshgrid(torch.arange(gh, device=votes.device, dtype=votes.dtype),
                            torch.arange(gw, device=votes.device, dtype=votes.dtype), indexing="ij")
    cx = (xs.reshape(-1) + 0.5 + v[:, :, 1]) / gw - 0.5                      # (B, n_kp, cells) crop units
    cy = (ys.reshape(-1) + 0.5 + v[:, :, 2]) / gh - 0.5
    return torch.stack([(weight * cx).sum(-1), (weight * cy).sum(-1)], -1)
