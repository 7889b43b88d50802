"""Batched pose geometry in torch (OpenCV camera frame, metres, pixel-edge crop boxes).

- 6D rotation representation (Zhou et al. 2019): the first two columns of R, Gram-Schmidt back to R.
- Allocentric ↔ egocentric: a crop only shows the object's rotation *relative to the viewing ray*
  through it; R_ego = R_ray · R_allo where R_ray turns the optical axis onto that ray.
- Translation from (projected centre, scale-invariant depth) and K.
- Crop boxes and their K (same convention as core.camera.crop_K), crops by affine grid sampling.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) → (..., 3, 3). The 6 numbers are the first two columns of R (Zhou et al. 2019)."""
    a1, a2 = x[..., 0:3], x[..., 3:6]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) → (..., 6): first column then second column."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def ray_rotation(ray: torch.Tensor) -> torch.Tensor:
    """(..., 3) viewing rays → (..., 3, 3) the smallest rotation taking the optical axis (0,0,1) onto
    the ray (Rodrigues about z × ray)."""
    r = F.normalize(ray, dim=-1)
    z = torch.zeros_like(r)
    z[..., 2] = 1.0
    axis = torch.cross(z, r, dim=-1)
    s = axis.norm(dim=-1, keepdim=True)          # sin(angle)
    c = r[..., 2:3]                              # cos(angle)
    k = axis / s.clamp_min(1e-12)
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    O = torch.zeros_like(kx)
    Kx = torch.stack([torch.stack([O, -kz, ky], -1), torch.stack([kz, O, -kx], -1),
                      torch.stack([-ky, kx, O], -1)], -2)
    eye = torch.eye(3, dtype=r.dtype, device=r.device).expand(Kx.shape)
    s, c = s[..., None], c[..., None]
    return eye + s * Kx + (1 - c) * (Kx @ Kx)


def pixel_ray(K: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """(...,3,3) K and (...,2) pixel centres → (...,3) rays K⁻¹[u, v, 1] (z component 1)."""
    ones = torch.ones_like(uv[..., :1])
    return (torch.linalg.inv(K) @ torch.cat([uv, ones], -1)[..., None])[..., 0]


def allo_to_ego(R_allo: torch.Tensor, ray: torch.Tensor) -> torch.Tensor:
    return ray_rotation(ray) @ R_allo


def ego_to_allo(R_ego: torch.Tensor, ray: torch.Tensor) -> torch.Tensor:
    return ray_rotation(ray).transpose(-1, -2) @ R_ego


# ---- scale-invariant depth -------------------------------------------------------------------------------
# A crop resampled to `out_px` has focal f_crop = f · out_px / side_px. An object of size S at depth z looks
# f_crop · S / z pixels wide in it, so log(z · out_px / (f_crop · S)) is what the crop's pixels show,
# whatever the real distance: the network predicts that number.

def depth_code(z_m: torch.Tensor, K_crop: torch.Tensor, out_px: int, size_m: float) -> torch.Tensor:
    f = torch.sqrt(K_crop[..., 0, 0] * K_crop[..., 1, 1])
    return torch.log(z_m * out_px / (f * size_m))


def depth_from_code(code: torch.Tensor, K_crop: torch.Tensor, out_px: int, size_m: float) -> torch.Tensor:
    f = torch.sqrt(K_crop[..., 0, 0] * K_crop[..., 1, 1])
    return torch.exp(code) * f * size_m / out_px


def translation_from_centre_depth(uv_px: torch.Tensor, z_m: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Projected centre (pixel centres, in the image K belongs to) + depth z → t (metres)."""
    return pixel_ray(K, uv_px) * z_m[..., None]


def project(t_m: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(...,3) camera points → (...,2) pixel centres."""
    uvw = (K @ t_m[..., None])[..., 0]
    return uvw[..., :2] / uvw[..., 2:3]


# ---- crops ----------------------------------------------------------------------------------------------

def crop_K(K: torch.Tensor, box: torch.Tensor, out_px: int) -> torch.Tensor:
    """Batched core.camera.crop_K: box (...,3) = x0, y0, side in pixel-edge coordinates of K's image."""
    s = out_px / box[..., 2]
    K2 = K.clone()
    K2[..., 0, 0] = K[..., 0, 0] * s
    K2[..., 1, 1] = K[..., 1, 1] * s
    K2[..., 0, 1] = K[..., 0, 1] * s
    K2[..., 0, 2] = (K[..., 0, 2] + 0.5 - box[..., 0]) * s - 0.5
    K2[..., 1, 2] = (K[..., 1, 2] + 0.5 - box[..., 1]) * s - 0.5
    return K2


def box_around(centre_px: torch.Tensor, side_px: torch.Tensor) -> torch.Tensor:
    """Square box (x0, y0, side), pixel-edge coordinates, centred on a pixel-centre coordinate."""
    return torch.stack([centre_px[..., 0] + 0.5 - side_px / 2, centre_px[..., 1] + 0.5 - side_px / 2, side_px], -1)


def crop_images(img: torch.Tensor, box: torch.Tensor, out_px: int, antialias: int = 2) -> torch.Tensor:
    """Crop square boxes out of a batch of images and resample them to out_px × out_px.

    img (B,C,H,W) float; box (B,3) x0, y0, side in pixel-edge coordinates of img. Outside the image: 0.
    Sampled bilinearly at `antialias`× the output size, then averaged down, so that training crops
    (sub-crops of the rendered crop) and test crops (from a full-resolution photo) are made the same way.
    """
    B, _, H, W = img.shape
    n = out_px * antialias
    # the sampling grid of F.affine_grid (align_corners=False) for a scale + shift, built as the outer sum it is:
    # affine_grid's batched matmul took 40 % of a training batch's crop time (perf/train_throughput.py)
    base = (2 * torch.arange(n, dtype=img.dtype, device=img.device) + 1) / n - 1      # output pixel centres
    box = box.to(img.dtype)
    gx = (box[:, 2:3] / W) * base + ((2 * box[:, 0:1] + box[:, 2:3]) / W - 1)       # (B,n)
    gy = (box[:, 2:3] / H) * base + ((2 * box[:, 1:2] + box[:, 2:3]) / H - 1)
    grid = torch.stack([gx[:, None, :].expand(B, n, n), gy[:, :, None].expand(B, n, n)], -1)
    out = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return box_downsample(out, antialias)


def box_downsample(x: torch.Tensor, k: int) -> torch.Tensor:
    """F.avg_pool2d(x, k) for (…, H, W) with H, W multiples of k. For k ≤ 4 as sums of strided slices (columns, then
    rows): the same means up to rounding, ≈ 4× faster than avg_pool2d on a training batch here for k = 2 (the crops'
    antialiasing: 7.5 → 1.6 ms); from k = 8 on avg_pool2d is the faster."""
    if k == 1:
        return x
    if k > 4:
        return F.avg_pool2d(x, k)
    cols = sum(x[..., i::k] for i in range(k))
    return sum(cols[..., i::k, :] for i in range(k)) * (1.0 / (k * k))


# ---- symmetry-aware errors ----------------------------------------------------------------------------

def sym_rotation_error_deg(R_pred: torch.Tensor, R_gt: torch.Tensor, syms: torch.Tensor) -> torch.Tensor:
    """(B,3,3),(B,3,3),(S,3,3) → (B,) min over g of the angle of R_pred⁻¹ · R_gt · g, degrees."""
    Rg = R_gt[:, None] @ syms[None]                                    # (B,S,3,3)
    tr = (R_pred[:, None].transpose(-1, -2) @ Rg).diagonal(dim1=-2, dim2=-1).sum(-1)
    cos = ((tr - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.arccos(cos.max(dim=1).values))


def sym_rotation_loss(R_pred: torch.Tensor, R_gt: torch.Tensor, syms: torch.Tensor) -> torch.Tensor:
    """(B,) min over the symmetry group of the squared Frobenius distance ‖R_pred − R_gt·g‖² (= 4 − 2 cosθ…,
    smooth, and the object looks the same under every g so any of them is a right answer)."""
    Rg = R_gt[:, None] @ syms[None]
    d = ((R_pred[:, None] - Rg) ** 2).sum((-1, -2))
    return d.min(dim=1).values
