"""Object spec → textured cuboid mesh (Wavefront OBJ with a UV atlas PNG) for PyBullet's TinyRenderer.

The atlas is a 3×2 grid of face tiles (order FACES); tile column ↦ face u axis, tile row ↦ face v axis
(see core.objects). Files are cached by the spec's hash, so workers share them.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from core.io import sha256_of_json
from core.objects import FACE_FRAMES, FACES, ObjectSpec, face_point_m

TILE_PX = 180  # the smallest tile: 22/30 of 180 = 132 px = 6 marker cells of 22 px, crisp under nearest sampling
_DICTS = {}


def _marker_fraction(spec: ObjectSpec, face: str) -> float:
    """The face's marker side as a fraction of the face's (shorter) side, i.e. of its tile."""
    n = np.abs(FACE_FRAMES[face][0])
    return spec.faces[face].marker.size_m / min(s for s, k in zip(spec.size_m, n) if k == 0)


def tile_px_for(spec: ObjectSpec, max_px: int = 4 * TILE_PX) -> int:
    """Texels per face tile: the smallest size from TILE_PX up on which every marker spans a whole number of
    texels (within 0.05) and sits centred (even margins), so that the rendered marker has its spec's size — a
    marker of 22 mm on a 30.6 mm face is 129.4 texels of 180 (drawn as 129: 21.9 mm), 220 of 306. TILE_PX itself
    when it fits (the 30 mm ArUco cube); the closest fit up to max_px otherwise."""
    fr = [_marker_fraction(spec, f) for f, look in spec.faces.items() if look.marker is not None]
    best, best_err = TILE_PX, np.inf
    for t in range(TILE_PX, max_px + 1):
        px = [t * f for f in fr]
        err = max((abs(p - round(p)) for p in px), default=0.0)
        if any((t - round(p)) % 2 for p in px):
            continue
        if err < 0.05:
            return t
        if err < best_err:
            best, best_err = t, err
    return best


def cache_dir() -> Path:
    return Path(os.environ.get("SIM2REAL_CACHE", Path.home() / ".cache" / "sim2real"))


def face_tile(spec: ObjectSpec, face: str, tile_px: int = TILE_PX) -> np.ndarray:
    """The RGB texture of one face: its colour (or image), and its marker drawn at scale and roll."""
    look = spec.faces[face]
    if look.texture:
        img = cv2.imread(look.texture, cv2.IMREAD_COLOR)
        tile = cv2.cvtColor(cv2.resize(img, (tile_px, tile_px), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    else:
        tile = np.empty((tile_px, tile_px, 3), np.uint8)
        tile[:] = (np.asarray(look.color_rgb) * 255).round().astype(np.uint8)
    m = look.marker
    if m is not None:
        m_px = int(round(tile_px * _marker_fraction(spec, face)))
        if m.dictionary not in _DICTS:
            _DICTS[m.dictionary] = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, m.dictionary))
        bitmap = cv2.aruco.generateImageMarker(_DICTS[m.dictionary], m.id, m_px)
        bitmap = np.rot90(bitmap, k=-(m.roll_deg // 90))  # clockwise, matching core.objects._rot90_cw
        o = (tile_px - m_px) // 2
        tile[o:o + m_px, o:o + m_px] = bitmap[..., None]
    return tile



def build_atlas(spec: ObjectSpec, tile_px: int | None = None) -> np.ndarray:
    tile_px = tile_px_for(spec) if tile_px is None else tile_px
    atlas = np.zeros((2 * tile_px, 3 * tile_px, 3), np.uint8)
    for k, face in enumerate(FACES):
        r, c = divmod(k, 3)
        atlas[r * tile_px:(r + 1) * tile_px, c * tile_px:(c + 1) * tile_px] = face_tile(spec, face, tile_px)
    return atlas


def obj_text(spec: ObjectSpec) -> str:
    """OBJ text: 4 vertices and 2 triangles per face, UVs into the atlas (v measured from the bottom)."""
    lines = ["# sim2real cuboid " + spec.name]
    vt_lines, f_lines = [], []
    eps = 0.5 / (3 * tile_px_for(spec))  # keep samples inside the tile so neighbouring tiles never bleed in
    for k, face in enumerate(FACES):
        r, c = divmod(k, 3)
        n = FACE_FRAMES[face][0]
        half = np.asarray(spec.size_m) / 2
        u_half = float(np.abs(FACE_FRAMES[face][1]) @ half)
        v_half = float(np.abs(FACE_FRAMES[face][2]) @ half)
        # corners in (u, v) order: top-left, top-right, bottom-right, bottom-left of the tile
        uv = np.array([[-u_half, -v_half], [u_half, -v_half], [u_half, v_half], [-u_half, v_half]])
        pts = face_point_m(face, uv, spec.size_m)
        tex = [(c / 3 + eps, 1 - r / 2 - eps), ((c + 1) / 3 - eps, 1 - r / 2 - eps),
               ((c + 1) / 3 - eps, 1 - (r + 1) / 2 + eps), (c / 3 + eps, 1 - (r + 1) / 2 + eps)]
        base = 4 * k
        for p_ in pts:
            lines.append(f"v {p_[0]:.6f} {p_[1]:.6f} {p_[2]:.6f}")
        for t_ in tex:
            vt_lines.append(f"vt {t_[0]:.6f} {t_[1]:.6f}")
        lines.append(f"vn {n[0]:.0f} {n[1]:.0f} {n[2]:.0f}")
        # counter-clockwise seen from outside (outward normal)
        i = [base + 1, base + 2, base + 3, base + 4]
        nn = k + 1
        f_lines.append(f"f {i[0]}/{i[0]}/{nn} {i[3]}/{i[3]}/{nn} {i[2]}/{i[2]}/{nn}")
        f_lines.append(f"f {i[0]}/{i[0]}/{nn} {i[2]}/{i[2]}/{nn} {i[1]}/{i[1]}/{nn}")
    return "\n".join(lines + vt_lines + f_lines) + "\n"


def mesh_files(spec: ObjectSpec) -> tuple[Path, Path]:
    """(obj path, atlas png path) in the cache, written once per spec (atomically)."""
    key = sha256_of_json({"spec": spec.to_dict(), "tile": tile_px_for(spec), "v": 3})[:16]
    d = cache_dir() / "meshes" / f"{spec.name}-{key}"
    obj, png = d / "cube.obj", d / "atlas.png"
    if not (obj.is_file() and png.is_file()):
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".tmp{os.getpid()}"
        tmp.mkdir(exist_ok=True)
        (tmp / "cube.obj").write_text(obj_text(spec))
        # uncompressed: TinyRenderer decodes this file for every sample (the simulation is reset per sample)
        cv2.imwrite(str(tmp / "atlas.png"), cv2.cvtColor(build_atlas(spec), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_PNG_COMPRESSION, 0])
        os.replace(tmp / "atlas.png", png)
        os.replace(tmp / "cube.obj", obj)
        tmp.rmdir()
    return obj, png
