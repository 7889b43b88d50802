"""Procedural textures for the table, the background and distractors (uint8 RGB, seeded).

`jitter` in [0, 1] moves colours from their nominal palette (0) to anything (1), so the same code
serves the plain renders (pipeline none) and domain randomization.
"""
from __future__ import annotations

import cv2
import numpy as np

WOOD_RGB = np.array([0.62, 0.45, 0.30])
WALL_RGB = np.array([0.80, 0.80, 0.78])


def _color(rng: np.random.Generator, nominal: np.ndarray, jitter: float) -> np.ndarray:
    """A colour between the nominal one (jitter 0) and a uniformly random one (jitter 1)."""
    return (1 - jitter) * nominal + jitter * rng.random(3)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: random cells upsampled smoothly (cheap stand-in for Perlin noise)."""
    small = rng.random((cells, cells)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def make_texture(kind: str, rng: np.random.Generator, jitter: float, size: int = 256,
                 nominal_rgb: np.ndarray = WOOD_RGB) -> np.ndarray:
    """One texture of the given kind: wood, noise, checker, stripes, gradient, office, photo."""
    c1 = _color(rng, nominal_rgb, jitter)
    c2 = _color(rng, nominal_rgb * 0.7, jitter)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "wood":
        warp = _smooth_noise(rng, size, 4) * 0.3
        freq = rng.uniform(15, 40)
        w = 0.5 + 0.5 * np.sin((yy + warp) * freq * np.pi + 3 * _smooth_noise(rng, size, 8))
        a = w[..., None] ** 2
    elif kind == "noise":
        a = _smooth_noise(rng, size, int(rng.integers(3, 24)))[..., None]
    elif kind == "checker":
        n = int(rng.integers(2, 16))
        a = (((xx * n).astype(int) + (yy * n).astype(int)) % 2).astype(np.float32)[..., None]
    elif kind == "stripes":
        n = rng.uniform(3, 30)
        ang = rng.uniform(0, np.pi)
        a = (np.sin((np.cos(ang) * xx + np.sin(ang) * yy) * n * np.pi) > 0).astype(np.float32)[..., None]
    elif kind == "gradient":
        ang = rng.uniform(0, 2 * np.pi)
        g = np.cos(ang) * xx + np.sin(ang) * yy
        a = ((g - g.min()) / max(float(np.ptp(g)), 1e-6))[..., None]
    elif kind in ("office", "photo"):
        # clutter: rectangles (monitors, boxes, papers) and lines (cables) over a smooth base;
        # 'photo' adds fine noise and blur so it reads as a camera image rather than flat shapes.
        base = _smooth_noise(rng, size, 3)[..., None] * 0.4 + 0.3
        img = (1 - base) * c2 + base * c1
        for _ in range(int(rng.integers(3, 12))):
            x0, y0 = rng.integers(0, size, 2)
            w, h = rng.integers(size // 16, size // 2, 2)
            col = _color(rng, rng.random(3) * 0.3 if rng.random() < 0.4 else WALL_RGB, max(jitter, 0.3))
            img[y0:y0 + h, x0:x0 + w] = col
        for _ in range(int(rng.integers(2, 8))):
            pts = rng.integers(0, size, (2, 2))
            cv2.line(img, tuple(map(int, pts[0])), tuple(map(int, pts[1])),
                     tuple(float(v) for v in rng.random(3) * 0.25), int(rng.integers(1, 4)))
        if kind == "photo":
            img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 1.0) + rng.normal(0, 0.03, img.shape)
        return (np.clip(img, 0, 1) * 255).astype(np.uint8)
    else:
        raise ValueError(f"unknown texture kind {kind!r}")
    img = a * c1 + (1 - a) * c2
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)
