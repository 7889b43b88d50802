"""Unlabelled real images and the patch samplers the refiner trains on.

Real images are read WITHOUT labels, from either
- a BOP dataset (a root with test/ and models/, or a name resolved by core.real_sets.resolve_real):
  sessions come from core.bop.read_scene_groups, or
- any folder of images (recursive *.jpg / *.jpeg / *.png). A folder image's session is the first
  folder `<name>_result` on its relative path (upstream ArUco layout: test1_result/ holds session
  "test1"), else the first folder named `data` ("data"), else its top-level folder name.
`--sessions` / `--include` / `--exclude` (fnmatch globs on the path relative to the root) choose which
images the refiner may see, so the images a score is computed on can be kept out (no leakage).

Content matching (`patches="frames"`, the default): synthetic windows are random P×P windows of the whole
synthetic frames (working resolution) and real windows are random P×P windows of whole real photos cut at
the same scale (window = P·W_real/W_frame native px, resized to P). Every real photo and every render shows
the cube from like-real cameras, so both sides hold the same kind of content (desk, cube, background) in the
same proportions and the discriminator can only separate appearance.

Scale matching for crops (`patches="crops"`, the earlier design): the pose model sees crops whose side is crop_box side (full-res px) resampled to C px,
so one crop pixel covers side/C camera pixels. Real patches are cut at that same scale (a window of
P·side/C native pixels, side drawn from the synthetic dataset, resized to P px), so the discriminator
compares real and synthetic images at the pixel scale the pose model will see them at — but synthetic crop
windows always hold the cube while random real windows mostly do not: D then separates content.
"""
from __future__ import annotations

import fnmatch
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import torch

from core.io import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _is_bop_root(p: Path) -> bool:
    return (p / "test").is_dir() and (p / "models").is_dir()


def _folder_session(rel: PurePosixPath) -> str:
    dirs = rel.parts[:-1]
    for d in dirs:
        if d.endswith("_result"):
            return d[: -len("_result")]
    if "data" in dirs:
        return "data"
    return dirs[0] if dirs else ""


def list_real_images(real: str, sessions: tuple[str, ...] | list[str] = (), include: tuple[str, ...] = (),
                     exclude: tuple[str, ...] = ()) -> tuple[list[Path], dict]:
    """Resolve `real` (folder, BOP root or BOP set name) to a sorted list of image files.

    Returns (files, source) where source records how they were chosen (for the checkpoint/manifest).
    """
    p = Path(real).expanduser()
    if not p.exists():
        if "/" in real or real.startswith("."):
            raise UserError(f"{real}: --real: no such folder")
        try:
            from core.real_sets import resolve_real
        except ModuleNotFoundError:
            raise UserError(f"--real {real}: not a folder, and real-set names need the eval stage "
                            "(give a folder of images or a BOP root instead)") from None
        p = resolve_real(real)
    p = p.resolve()
    if p.is_file():
        raise UserError(f"{p}: --real: expected a folder of images or a BOP root, got a file")
    kind = "bop" if _is_bop_root(p) else "folder"
    files: list[tuple[Path, str]] = []  # (file, session)
    if kind == "bop":
        groups: dict[str, list[int]] = {}
        try:
            from core.bop import read_scene_groups
            groups = read_scene_groups(p)
        except ModuleNotFoundError:
            pass
        scene_session = {sid: name for name, ids in groups.items() for sid in ids}
        for scene in sorted((p / "test").iterdir()):
            if not scene.is_dir():
                continue
            sid = int(scene.name) if scene.name.isdigit() else scene.name
            sess = scene_session.get(sid, scene.name)
            for f in sorted((scene / "rgb").glob("*")):
                if f.suffix.lower() in IMAGE_SUFFIXES:
                    files.append((f, sess))
    else:
        for f in sorted(p.rglob("*")):
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
                files.append((f, _folder_session(PurePosixPath(f.relative_to(p).as_posix()))))
    if not files:
        raise UserError(f"{p}: --real: no images found (expected *.jpg/*.png"
                        f"{' under test/*/rgb/' if kind == 'bop' else ' anywhere below it'})")
    known = sorted({s for _, s in files})
    if sessions:
        bad = [s for s in sessions if s not in known]
        if bad:
            raise UserError(f"{p}: --sessions: unknown session(s) {', '.join(bad)}; known: {', '.join(known)}")
        files = [(f, s) for f, s in files if s in sessions]

    def rel(f: Path) -> str:
        return f.relative_to(p).as_posix()

    if include:
        files = [(f, s) for f, s in files if any(fnmatch.fnmatch(rel(f), g) for g in include)]
    if exclude:
        files = [(f, s) for f, s in files if not any(fnmatch.fnmatch(rel(f), g) for g in exclude)]
    if not files:
        raise UserError(f"{p}: --real: no images left after --sessions/--include/--exclude "
                        f"(sessions here: {', '.join(known)})")
    source = {"root": str(p), "kind": kind, "sessions": sorted({s for _, s in files}),
              "sessions_available": known, "include": list(include), "exclude": list(exclude),
              "files": [rel(f) for f, _ in files]}
    return [f for f, _ in files], source


def read_rgb(path: Path) -> np.ndarray:
    """Read an image as uint8 RGB (H,W,3); anything that is not 3-channel 8-bit is a UserError."""
    im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if im is None:
        raise UserError(f"{path}: not a readable image")
    if im.dtype != np.uint8:
        raise UserError(f"{path}: expected 8-bit RGB, got {im.dtype}")
    if im.ndim != 3 or im.shape[2] != 3:
        ch = 1 if im.ndim == 2 else im.shape[2]
        raise UserError(f"{path}: expected a 3-channel RGB image, got {ch} channel(s)")
    return cv2.cvtColor(im, cv2.COLOR_BGR2RGB)


def load_real_images(files: list[Path]) -> list[np.ndarray]:
    return [read_rgb(f) for f in files]


def frame_scales(full_w: float, frame_w: int) -> np.ndarray:
    """Native camera pixels per working-frame pixel (one value): real photos cut at this scale look like
    the synthetic full frames (whole frames resized to the working resolution)."""
    return np.asarray([float(full_w) / float(frame_w)])


def crop_scales(labels: np.ndarray, crop_px: int) -> np.ndarray:
    """Native camera pixels per crop pixel for every synthetic sample (crop side / C)."""
    return np.asarray(labels["crop_box_full_px"][:, 2], dtype=np.float64) / float(crop_px)


def sample_real_patches(images: list[np.ndarray], n: int, patch_px: int, rng: np.random.Generator,
                        scales: np.ndarray | None = None, camera_width_px: float | None = None) -> np.ndarray:
    """n random patches (n,P,P,3) uint8. With `scales` (camera px per output px, drawn at random from
    the array), a window of P·scale pixels is cut and resized to P; without, native pixels. When the
    synthetic camera is `camera_width_px` wide and a real image is not, the window scales with it."""
    out = np.empty((n, patch_px, patch_px, 3), np.uint8)
    for k in range(n):
        im = images[rng.integers(len(images))]
        h, w = im.shape[:2]
        s = 1.0 if scales is None else float(scales[rng.integers(len(scales))])
        if scales is not None and camera_width_px:
            s *= w / camera_width_px
        win = int(round(patch_px * s))
        win = max(4, min(win, h, w))
        y0 = rng.integers(0, h - win + 1)
        x0 = rng.integers(0, w - win + 1)
        crop = im[y0:y0 + win, x0:x0 + win]
        if win != patch_px:
            crop = cv2.resize(crop, (patch_px, patch_px),
                              interpolation=cv2.INTER_AREA if win > patch_px else cv2.INTER_LINEAR)
        out[k] = crop
    return out


def sample_synthetic_patches(crops: np.ndarray, n: int, patch_px: int, rng: np.random.Generator,
                             indices: np.ndarray | None = None, masks: np.ndarray | None = None,
                             tries: int = 20) -> np.ndarray:
    """n random P×P windows (n,P,P,3) uint8 of the synthetic crops (n_total,C,C,3). With `masks`
    (the crop_masks), windows that show the cube are redrawn (up to `tries` times): background only."""
    h, w = crops.shape[1:3]
    if patch_px > min(h, w):
        raise UserError(f"patch size {patch_px} px is larger than the dataset's {h}×{w}-px images")
    pool = np.arange(len(crops)) if indices is None else indices
    out = np.empty((n, patch_px, patch_px, 3), np.uint8)
    for k in range(n):
        for _ in range(tries if masks is not None else 1):
            i = pool[rng.integers(len(pool))]
            y0, x0 = rng.integers(0, np.array([h, w]) - patch_px + 1)
            if masks is None or not masks[i, y0:y0 + patch_px, x0:x0 + patch_px].any():
                break
        out[k] = crops[i, y0:y0 + patch_px, x0:x0 + patch_px]
    return out


def sample_synthetic_windows(crops: np.ndarray, masks: np.ndarray, n: int, patch_px: int,
                             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Like sample_synthetic_patches (same draws) but also returns the windows' crop masks (n,P,P)."""
    h, w = crops.shape[1:3]
    out = np.empty((n, patch_px, patch_px, 3), np.uint8)
    out_m = np.empty((n, patch_px, patch_px), np.uint8)
    for k in range(n):
        i = rng.integers(len(crops))
        y0, x0 = rng.integers(0, np.array([h, w]) - patch_px + 1)
        out[k] = crops[i, y0:y0 + patch_px, x0:x0 + patch_px]
        out_m[k] = masks[i, y0:y0 + patch_px, x0:x0 + patch_px]
    return out, out_m


def to_tensor(batch: np.ndarray, device) -> torch.Tensor:
    """uint8 (B,H,W,3) → float (B,3,H,W) in [0,1] on device."""
    return torch.from_numpy(np.ascontiguousarray(batch)).to(device).permute(0, 3, 1, 2).float().div_(255)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float (B,3,H,W) in [0,1] → uint8 (B,H,W,3) (rounded)."""
    return (x.clamp(0, 1) * 255).round_().to("cpu", dtype=torch.uint8).permute(0, 2, 3, 1).numpy()
