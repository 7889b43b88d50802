"""Image-level randomization on the fly: kornia ops driven by the declared parameter space.

`ImageRandomizer(space, ranges)` is an nn.Module. Each call samples ONE parameter set for the batch
(per-sample values, drawn once), applies it, and keeps it in `.last_params`; `forward(x, params)`
replays a parameter set exactly (same input, same params -> bitwise the same output on the same device).

Why explicit parameters instead of `kornia.augmentation.AugmentationSequential`: kornia's modules cache
their samplers at construction and draw from the global torch RNG, so ADR (which changes the ranges every
batch) would have to rebuild them each step, and a seeded stream would be entangled with whatever else
uses the global RNG. Here the sampling is ours (a few numbers per sample, drawn on the CPU from a
`torch.Generator`), and the pixel work is kornia's functional ops (`kornia.enhance`, `kornia.filters`,
`kornia.contrib.diamond_square`, the planckian table of `RandomPlanckianJitter`, the differentiable JPEG
codec of `RandomJPEG` off the CPU; OpenCV's libjpeg on it). Changing ranges is just `set_ranges(...)` (or a
new module): nothing is cached.
A params dict holds values, not ranges, so it replays on any ImageRandomizer; the per-pixel random fields
(noise, plasma) are stored as seeds and regenerated on x's device.

Semantics of a range (lo, hi) per parameter (per-sample value v ~ U(lo, hi), integers uniform on
floor(lo)..floor(hi)):
  brightness      additive offset v                  kornia.enhance.adjust_brightness
  contrast        factor v around the image's grey mean  adjust_contrast_with_mean_subtraction
  saturation      factor v on the chroma (U, V) of kornia.color.rgb_to_yuv
  hue             rotation of the chroma plane by v turns (0.1 = 36 deg); see _chroma for why not HSV
  gamma           x ** v                             adjust_gamma
  planckian_prob  apply a random black-body illuminant (RandomPlanckianJitter's table) with prob v
  noise_std       additive Gaussian noise with std v
  blur_sigma_px   Gaussian blur with sigma v px (v < 0.1 px: left as is)
  motion_blur_px  motion blur over v px (kernel = v rounded up to odd; v <= 1: left as is), random angle
  jpeg_quality    JPEG round trip at quality v (on the CPU OpenCV's libjpeg, 3–6× faster there; on other
                  devices kornia's differentiable codec), on a fraction `jpeg_fraction` of the
                  batch (the codec is the slowest op; see perf/); on all of it when the range is a single
                  value (an ADR boundary draw)
  plasma_shadow_prob  a plasma-fractal shadow (diamond-square at 1/4 resolution, upsampled) with prob v
  erasing_prob    an occluding rectangle (2-20 % of the area, random colour) with prob v

An op whose range is exactly its nominal point is skipped entirely, so nominal ranges are an exact
identity (the output is the input tensor, unchanged). Names missing from `ranges` count as nominal;
render-time names in `ranges` are ignored (pass ADR's full ranges freely); unknown names are an error.

Order follows the image formation: occluders and shadows are in the scene, the illuminant colours it,
optics blur it, the sensor adds noise, the camera's processing changes tone/colour, then JPEG.
"""
from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

import kornia
from kornia.augmentation._2d.intensity.planckian_jitter import get_planckian_coeffs
from kornia.contrib import diamond_square

from core.io import UserError
from randomizer.space import ParamSpace, Range

# Fixed shapes of the stochastic ops whose strength the space does not declare (the space declares
# only how often they happen). Moderate values: real shadows/occluders, not black holes.
SHADOW_ROUGHNESS = (0.1, 0.7)
SHADOW_INTENSITY = (-0.5, -0.15)   # added to the image inside the shadow
SHADOW_QUANTITY = (0.1, 0.6)       # fraction-ish of the image under shadow
SHADOW_DOWNSCALE = 4
ERASE_AREA = (0.02, 0.2)
ERASE_LOG_RATIO = (math.log(0.3), math.log(3.3))

IMAGE_PARAMS = ("brightness", "contrast", "saturation", "hue", "gamma", "planckian_prob", "noise_std",
                "blur_sigma_px", "motion_blur_px", "jpeg_quality", "plasma_shadow_prob", "erasing_prob")
# application order (see module docstring)
_ORDER = ("erasing_prob", "plasma_shadow_prob", "planckian_prob", "motion_blur_px", "blur_sigma_px",
          "noise_std", "brightness", "contrast", "saturation", "hue", "gamma", "jpeg_quality")

Params = dict[str, Any]


class ImageRandomizer(nn.Module):
    """Batched, replayable image randomization. x: float (B,3,H,W) in [0,1] on any device."""

    def __init__(self, space: ParamSpace, ranges: dict[str, Range] | None = None, jpeg_fraction: float = 0.25,
                 seed: int | None = None) -> None:
        super().__init__()
        self.space = space
        self.jpeg_fraction = float(jpeg_fraction)
        self.generator: torch.Generator | None = None
        self.last_params: Params | None = None
        self.ranges: dict[str, tuple[float, float]] = {}
        self.set_ranges(ranges if ranges is not None else space.ranges("nominal", acts_on="image"))
        if seed is not None:
            self.set_seed(seed)

    # ---- configuration -------------------------------------------------------------------------
    def set_seed(self, seed: int) -> None:
        """Draw from a private generator from now on (same seed => same parameter stream)."""
        self.generator = torch.Generator().manual_seed(int(seed))

    def set_ranges(self, ranges: dict[str, Range]) -> None:
        """Replace the ranges (nothing is cached, so this is all ADR needs between batches)."""
        out: dict[str, tuple[float, float]] = {}
        for name, r in ranges.items():
            p = self.space.params.get(name)
            if p is None:
                raise UserError(f"{self.space.source}: ranges.{name}: unknown parameter "
                                f"(known image parameters: {', '.join(self.space.names('image'))})")
            if p.acts_on != "image":
                continue
            if name not in IMAGE_PARAMS:
                raise UserError(f"{self.space.source}: params.{name}: no image op implements it "
                                f"(implemented: {', '.join(IMAGE_PARAMS)})")
            try:
                lo, hi = float(r[0]), float(r[1])
            except (TypeError, ValueError, IndexError):
                raise UserError(f"ranges.{name}: expected (low, high), got {r!r}") from None
            if not lo <= hi:
                raise UserError(f"ranges.{name}: low {lo} > high {hi}")
            out[name] = (lo, hi)
        self.ranges = out

    def active(self) -> list[str]:
        """Image ops that will run (range differs from the nominal point), in application order."""
        act = []
        for name in _ORDER:
            r = self.ranges.get(name)
            if r is None:
                continue
            nom = float(self.space.params[name].nominal)
            if r[0] == nom and r[1] == nom:
                continue
            if name == "motion_blur_px" and math.floor(r[1]) <= 1:
                continue
            act.append(name)
        return act

    # ---- sampling --------------------------------------------------------------------------------
    def _u(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.generator, dtype=torch.float64)

    def _uniform(self, n: int, r: tuple[float, float]) -> torch.Tensor:
        return r[0] + (r[1] - r[0]) * self._u(n)

    def sample_params(self, batch_size: int, height: int, width: int) -> Params:
        """One parameter set for a batch: small CPU tensors (B,), plus integer seeds for the
        per-pixel random fields (noise, plasma) that are regenerated on the data's device."""
        B = batch_size
        prm: Params = {"batch_size": B, "hw": (height, width)}
        for name in self.active():
            r = self.ranges[name]
            if name in ("planckian_prob", "plasma_shadow_prob", "erasing_prob"):
                prob = self._uniform(B, r)
                mask = self._u(B) < prob
                prm[name] = {"apply": mask}
                if name == "planckian_prob":
                    n_ill = get_planckian_coeffs("blackbody").shape[0]
                    prm[name]["idx"] = torch.randint(0, n_ill, (B,), generator=self.generator)
                elif name == "plasma_shadow_prob":
                    prm[name].update(roughness=self._uniform(B, SHADOW_ROUGHNESS),
                                     intensity=self._uniform(B, SHADOW_INTENSITY),
                                     quantity=self._uniform(B, SHADOW_QUANTITY),
                                     seed=int(torch.randint(0, 2**62, (1,), generator=self.generator)))
                else:
                    area = self._uniform(B, ERASE_AREA) * height * width
                    ratio = torch.exp(self._uniform(B, ERASE_LOG_RATIO))
                    h = torch.sqrt(area * ratio).clamp(1, height)
                    w = torch.sqrt(area / ratio).clamp(1, width)
                    y0 = self._u(B) * (height - h)
                    x0 = self._u(B) * (width - w)
                    prm[name].update(box=torch.stack([x0, y0, x0 + w, y0 + h], 1),
                                     color=self._u(3 * B).view(B, 3))
            elif name == "motion_blur_px":
                lo, hi = int(math.floor(r[0])), int(math.floor(r[1]))
                length = torch.randint(lo, hi + 1, (B,), generator=self.generator)
                prm[name] = {"length": length, "angle": self._uniform(B, (0.0, 180.0)),
                             "direction": self._uniform(B, (-1.0, 1.0))}
            elif name == "noise_std":
                prm[name] = {"std": self._uniform(B, r),
                             "seed": int(torch.randint(0, 2**62, (1,), generator=self.generator))}
            elif name == "jpeg_quality":
                q = self._uniform(B, r)
                # a pinned range (an ADR boundary draw) compresses every sample: ADR's score must see it
                frac = 1.0 if r[0] == r[1] else self.jpeg_fraction
                prm[name] = {"quality": q, "apply": self._u(B) < frac}
            else:
                prm[name] = {"value": self._uniform(B, r)}
        return prm

    # ---- application -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"ImageRandomizer expects (B,3,H,W), got {tuple(x.shape)}")
        if params is None:
            params = self.sample_params(x.shape[0], x.shape[2], x.shape[3])
        elif params["batch_size"] != x.shape[0] or tuple(params["hw"]) != tuple(x.shape[2:]):
            raise ValueError("params were sampled for another batch shape")
        self.last_params = params
        for name in _ORDER:
            if name == "saturation":  # saturation and hue share one chroma pass
                if "saturation" in params or "hue" in params:
                    x = _chroma(x, params.get("saturation"), params.get("hue"))
            elif name != "hue" and name in params:
                x = _APPLY[name](x, params[name])
        return x


# Each op: (x (B,3,H,W) float, its params) -> x'. Float64 params are cast to x's dtype on x's device.
def _v(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.to(device=x.device, dtype=x.dtype)


def _subset(x: torch.Tensor, mask: torch.Tensor, fn) -> torch.Tensor:
    """Apply fn only to the selected samples (saves work when few are selected)."""
    idx = mask.nonzero().flatten()
    if idx.numel() == 0:
        return x
    out = x.clone()
    idx_d = idx.to(x.device)
    out[idx_d] = fn(x[idx_d], idx)
    return out


def _brightness(x, p):
    return kornia.enhance.adjust_brightness(x, _v(p["value"], x))


def _contrast(x, p):
    return kornia.enhance.adjust_contrast_with_mean_subtraction(x, _v(p["value"], x))


def _yuv_matrices(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """kornia's RGB->YUV transform as a 3x3 matrix (and its inverse), read off by transforming the basis."""
    eye = torch.eye(3, device=x.device, dtype=torch.float64 if x.device.type == "cpu" else x.dtype)
    m = kornia.color.rgb_to_yuv(eye.view(3, 3, 1, 1)).view(3, 3).T  # column j = image of basis colour j
    return m, torch.linalg.inv(m)


def _chroma(x, sat, hue):
    """Saturation and hue in one pass: scale and rotate the chroma plane (U, V) of kornia's YUV.
    Rotating chroma is the classic video "hue" control. Being linear, the whole thing is one 3x3 matrix
    per sample (YUV^-1 . diag(1, R(hue) * sat) . YUV): ~10x cheaper than kornia's HSV round trip
    (adjust_hue was the slowest op in perf/augment_throughput.py) and smooth in the factor."""
    B = x.shape[0]
    yuv, inv = _yuv_matrices(x)
    s = sat["value"] if sat is not None else torch.ones(B, dtype=torch.float64)
    a = hue["value"] * (2 * math.pi) if hue is not None else torch.zeros(B, dtype=torch.float64)
    s, a = s.to(yuv), a.to(yuv)
    rot = torch.zeros(B, 3, 3, dtype=yuv.dtype, device=yuv.device)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2] = torch.cos(a) * s, -torch.sin(a) * s
    rot[:, 2, 1], rot[:, 2, 2] = torch.sin(a) * s, torch.cos(a) * s
    m = (inv @ rot @ yuv).to(x.dtype)  # (B,3,3)
    out = torch.bmm(m, x.reshape(B, 3, -1)).view_as(x)
    return out.clamp(0, 1)


def _gamma(x, p):
    return kornia.enhance.adjust_gamma(x.clamp(0, 1), _v(p["value"], x))


def _planckian(x, p):
    table = get_planckian_coeffs("blackbody")

    def fn(xs, idx):
        c = _v(table[p["idx"][idx]], xs)
        return torch.stack([xs[:, 0] * c[:, 0, None, None], xs[:, 1], xs[:, 2] * c[:, 1, None, None]], 1).clamp(0, 1)
    return _subset(x, p["apply"], fn)


def _noise(x, p):
    g = torch.Generator(device=x.device).manual_seed(p["seed"])
    n = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
    return (x + n * _v(p["std"], x).view(-1, 1, 1, 1)).clamp(0, 1)


def _blur(x, p):
    sigma = p["value"]
    mask = sigma >= 0.1
    if not bool(mask.any()):
        return x
    k = 2 * math.ceil(3 * float(sigma.max())) + 1

    def fn(xs, idx):
        s = _v(sigma[idx], xs)
        return kornia.filters.gaussian_blur2d(xs, (k, k), torch.stack([s, s], 1))
    return _subset(x, mask, fn)


def _motion(x, p):
    length = p["length"]
    ksize = length + (length % 2 == 0).long()  # odd kernel covering the length
    out = x
    for k in sorted(set(ksize.tolist())):
        if k <= 1:
            continue
        sel = (ksize == k) & (length > 1)

        def fn(xs, idx, k=k):
            return kornia.filters.motion_blur(xs, k, _v(p["angle"][idx], xs), _v(p["direction"][idx], xs))
        out = _subset(out, sel, fn)
    return out


def _jpeg(x, p):
    def fn(xs, idx):
        if xs.device.type != "cpu":  # kornia's batched codec (a differentiable approximation of JPEG) on the device
            return kornia.enhance.jpeg_codec_differentiable(xs.clamp(0, 1), _v(p["quality"][idx], xs)).clamp(0, 1)
        return jpeg_round_trip(xs, p["quality"][idx])
    return _subset(x, p["apply"], fn)


def jpeg_round_trip(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """(B,3,H,W) float RGB CPU images in [0,1] → the same after a real JPEG round trip (OpenCV's libjpeg) at
    quality[i] (1–100, rounded) for image i. On the CPU 3–6× faster than kornia's differentiable codec (64–144 px,
    perf/augment_throughput.py), which took a third of the image randomization's time in training."""
    rgb = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = np.empty_like(rgb)
    for i, (im, q) in enumerate(zip(rgb, quality.round().clamp(1, 100).int().tolist())):
        _, coded = cv2.imencode(".jpg", np.ascontiguousarray(im[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, q])  # BGR
        out[i] = cv2.imdecode(coded, cv2.IMREAD_COLOR)[..., ::-1]
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(x.dtype) / 255


def _shadow(x, p):
    def fn(xs, idx):
        g = torch.Generator(device=xs.device).manual_seed(p["seed"])
        n, _, h, w = xs.shape
        # the fractal is drawn at 1/SHADOW_DOWNSCALE resolution and upsampled: shadows are smooth,
        # and diamond-square at full size was one of the slowest ops
        hs, ws = max(8, math.ceil(h / SHADOW_DOWNSCALE)), max(8, math.ceil(w / SHADOW_DOWNSCALE))
        plasma = diamond_square((n, 1, hs, ws), _v(p["roughness"][idx], xs),
                                random_fn=lambda shape, device=None, dtype=None: torch.rand(
                                    shape, generator=g, device=device, dtype=dtype),
                                device=xs.device, dtype=xs.dtype)
        plasma = torch.nn.functional.interpolate(plasma, size=(h, w), mode="bilinear", align_corners=False)
        shade = (plasma < _v(p["quantity"][idx], xs).view(-1, 1, 1, 1)).to(xs.dtype)
        return (xs + shade * _v(p["intensity"][idx], xs).view(-1, 1, 1, 1)).clamp(0, 1)
    return _subset(x, p["apply"], fn)


def _erase(x, p):
    B, _, H, W = x.shape
    box = _v(p["box"], x)
    ys = torch.arange(H, device=x.device, dtype=x.dtype).view(1, H, 1) + 0.5
    xs = torch.arange(W, device=x.device, dtype=x.dtype).view(1, 1, W) + 0.5
    inside = ((xs >= box[:, 0, None, None]) & (xs < box[:, 2, None, None])
              & (ys >= box[:, 1, None, None]) & (ys < box[:, 3, None, None]))
    inside = inside & p["apply"].to(x.device).view(-1, 1, 1)
    color = _v(p["color"], x).view(B, 3, 1, 1).expand_as(x)
    return torch.where(inside[:, None], color, x)


_APPLY = {
    "brightness": _brightness, "contrast": _contrast,
    "gamma": _gamma, "planckian_prob": _planckian, "noise_std": _noise, "blur_sigma_px": _blur,
    "motion_blur_px": _motion, "jpeg_quality": _jpeg, "plasma_shadow_prob": _shadow, "erasing_prob": _erase,
}
