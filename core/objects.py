"""Object specs: a cuboid, the look of each face, and its discrete symmetries.

A spec is a small YAML/JSON file; built-ins live in `core/objects/*.yaml`. Frames: the object frame has
its origin at the cuboid centre, axes along the edges, metres.

Each face has a canonical 2D frame (u to the right, v down, seen from outside the cube) so that a face
texture is an ordinary image: texture column ↦ u, texture row ↦ v. A marker's `roll_deg` turns its
bitmap clockwise (as seen from outside) by multiples of 90°.
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from core.io import UserError

FACES = ("+X", "-X", "+Y", "-Y", "+Z", "-Z")
# face → (outward normal, u axis, v axis), with normal = v × u so that (u, v, -normal) is a camera frame
# (x right, y down, z forward) looking at the face from outside.
FACE_FRAMES: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {
    "+X": (np.array([1., 0, 0]), np.array([0., 1, 0]), np.array([0., 0, -1])),
    "-X": (np.array([-1., 0, 0]), np.array([0., -1, 0]), np.array([0., 0, -1])),
    "+Y": (np.array([0., 1, 0]), np.array([-1., 0, 0]), np.array([0., 0, -1])),
    "-Y": (np.array([0., -1, 0]), np.array([1., 0, 0]), np.array([0., 0, -1])),
    "+Z": (np.array([0., 0, 1]), np.array([1., 0, 0]), np.array([0., -1, 0])),
    "-Z": (np.array([0., 0, -1]), np.array([1., 0, 0]), np.array([0., 1, 0])),
}
ARUCO_DICTIONARIES = ("DICT_4X4_50", "DICT_4X4_100", "DICT_5X5_50", "DICT_6X6_50", "DICT_ARUCO_ORIGINAL")
BUILTIN_DIR = Path(__file__).parent / "objects"
BUILTIN_OBJECTS = tuple(sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")))


@dataclass(frozen=True)
class Marker:
    dictionary: str
    id: int
    size_m: float
    roll_deg: int = 0


@dataclass(frozen=True)
class FaceLook:
    color_rgb: tuple[float, float, float]  # 0..1
    marker: Marker | None = None
    texture: str | None = None  # path to an image, resolved relative to the spec file


@dataclass
class ObjectSpec:
    name: str
    obj_id: int
    size_m: tuple[float, float, float]
    faces: dict[str, FaceLook]
    symmetries: np.ndarray = field(repr=False)  # (S, 3, 3) rotations g with the object looking the same under R·g
    source: str = ""

    @property
    def diameter_m(self) -> float:
        return float(np.linalg.norm(self.size_m))

    def corners_m(self) -> np.ndarray:
        """(8, 3) corners of the cuboid in the object frame."""
        h = np.asarray(self.size_m) / 2
        return np.array([[sx * h[0], sy * h[1], sz * h[2]] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])

    def marker_corners_m(self) -> dict[int, np.ndarray]:
        """marker id → (4, 3) corner positions in the object frame, in OpenCV `detectMarkers` order
        (top-left, top-right, bottom-right, bottom-left of the upright marker bitmap)."""
        out = {}
        for face, look in self.faces.items():
            if look.marker is not None:
                out[look.marker.id] = marker_corners_on_face(face, look.marker, self.size_m)
        return out

    def to_dict(self) -> dict[str, Any]:
        faces = {}
        for f, look in self.faces.items():
            d: dict[str, Any] = {"color": list(look.color_rgb)}
            if look.marker:
                m = look.marker
                d["marker"] = {"dictionary": m.dictionary, "id": m.id, "size_m": m.size_m, "roll_deg": m.roll_deg}
            if look.texture:
                d["texture"] = look.texture
            faces[f] = d
        return {"name": self.name, "obj_id": self.obj_id, "size_m": list(self.size_m), "faces": faces,
                "symmetries": self.symmetries.round(6).tolist()}


def _rot90_cw(xy: np.ndarray, k: int) -> np.ndarray:
    """Rotate 2D texture points (x right, y down, centred) clockwise by k·90° as seen on the image."""
    for _ in range(k % 4):
        xy = np.stack([-xy[..., 1], xy[..., 0]], axis=-1)
    return xy


def face_point_m(face: str, uv_m: np.ndarray, size_m) -> np.ndarray:
    """3D object-frame points of face-local (u, v) coordinates (metres, centred on the face)."""
    n, u, v = FACE_FRAMES[face]
    half = np.abs(n) @ (np.asarray(size_m) / 2)
    uv_m = np.atleast_2d(uv_m)
    return n * half + uv_m[:, :1] * u + uv_m[:, 1:2] * v


def marker_corners_on_face(face: str, marker: Marker, size_m) -> np.ndarray:
    h = marker.size_m / 2
    upright = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    return face_point_m(face, _rot90_cw(upright, marker.roll_deg // 90), size_m)


def cube_symmetries() -> np.ndarray:
    """The 24 proper rotations of a cube: signed permutation matrices with determinant +1."""
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            for i, j in enumerate(perm):
                m[i, j] = signs[i]
            if np.linalg.det(m) > 0:
                mats.append(m)
    return np.array(mats)


def _err(src: str, field_name: str, msg: str) -> UserError:
    return UserError(f"{src}: {field_name}: {msg}")


def _parse_color(src, fname, value) -> tuple[float, float, float]:
    if isinstance(value, str) and value.startswith("#") and len(value) == 7:
        return tuple(int(value[i:i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(c, (int, float)) for c in value):
        if all(0 <= c <= 1 for c in value):
            return tuple(float(c) for c in value)  # type: ignore[return-value]
    raise _err(src, fname, f"expected a colour as [r, g, b] in 0..1 or '#rrggbb', got {value!r}")


def spec_from_dict(d: Any, src: str = "<spec>") -> ObjectSpec:
    """Validate a parsed spec; every problem is a UserError naming the file and the field."""
    if not isinstance(d, dict):
        raise UserError(f"{src}: expected a mapping at the top level")
    unknown = set(d) - {"name", "obj_id", "size_m", "faces", "symmetries", "default_color"}
    if unknown:
        raise _err(src, sorted(unknown)[0], "unknown field (expected name, obj_id, size_m, faces, symmetries)")
    name = d.get("name")
    if not isinstance(name, str) or not name:
        raise _err(src, "name", "expected a non-empty string")
    obj_id = d.get("obj_id", 1)
    if not isinstance(obj_id, int) or obj_id < 1:
        raise _err(src, "obj_id", f"expected a positive integer, got {obj_id!r}")
    size = d.get("size_m")
    if isinstance(size, (int, float)):
        size = [size] * 3
    if not (isinstance(size, list) and len(size) == 3 and all(isinstance(s, (int, float)) and 0.001 <= s <= 2
                                                                   for s in size)):
        raise _err(src, "size_m", f"expected a side or [x, y, z] in metres between 0.001 and 2, got {d.get('size_m')!r}")
    default_color = _parse_color(src, "default_color", d.get("default_color", [0.9, 0.9, 0.9]))
    faces_in = d.get("faces", {}) or {}
    if not isinstance(faces_in, dict):
        raise _err(src, "faces", "expected a mapping face → look")
    faces: dict[str, FaceLook] = {}
    for f in FACES:
        fd = faces_in.get(f, {}) or {}
        if not isinstance(fd, dict):
            raise _err(src, f"faces.{f}", "expected a mapping with color/marker/texture")
        bad = set(fd) - {"color", "marker", "texture"}
        if bad:
            raise _err(src, f"faces.{f}.{sorted(bad)[0]}", "unknown field (expected color, marker, texture)")
        color = _parse_color(src, f"faces.{f}.color", fd["color"]) if "color" in fd else default_color
        marker = None
        if fd.get("marker") is not None:
            md = fd["marker"]
            fn = f"faces.{f}.marker"
            if not isinstance(md, dict):
                raise _err(src, fn, "expected a mapping with dictionary, id, size_m, roll_deg")
            dic = md.get("dictionary", "DICT_4X4_50")
            if dic not in ARUCO_DICTIONARIES:
                raise _err(src, fn + ".dictionary", f"expected one of {', '.join(ARUCO_DICTIONARIES)}, got {dic!r}")
            mid = md.get("id")
            if not isinstance(mid, int) or mid < 0 or mid >= int(dic.rsplit("_", 1)[-1].replace("ORIGINAL", "1024")):
                raise _err(src, fn + ".id", f"expected an integer id valid for {dic}, got {mid!r}")
            msize = md.get("size_m")
            face_side = min(s for s, nn in zip(size, np.abs(FACE_FRAMES[f][0])) if nn == 0)
            if not isinstance(msize, (int, float)) or not 0 < msize <= face_side:
                raise _err(src, fn + ".size_m", f"expected metres in (0, {face_side}], got {msize!r}")
            roll = md.get("roll_deg", 0)
            if roll not in (0, 90, 180, 270):
                raise _err(src, fn + ".roll_deg", f"expected 0, 90, 180 or 270, got {roll!r}")
            marker = Marker(dic, mid, float(msize), int(roll))
        texture = fd.get("texture")
        if texture is not None:
            tp = Path(texture)
            if not tp.is_absolute() and src not in ("<spec>",):
                tp = Path(src).parent / tp
            if not tp.is_file():
                raise _err(src, f"faces.{f}.texture", f"image file {tp} not found")
            texture = str(tp)
        faces[f] = FaceLook(color, marker, texture)
    extra = set(faces_in) - set(FACES)
    if extra:
        raise _err(src, f"faces.{sorted(extra)[0]}", f"unknown face (expected {', '.join(FACES)})")
    ids = [lk.marker.id for lk in faces.values() if lk.marker]
    if len(ids) != len(set(ids)):
        raise _err(src, "faces", "marker ids must be unique")
    sym = d.get("symmetries", "none")
    if sym == "none":
        syms = np.eye(3)[None]
    elif sym == "cube24":
        if not (size[0] == size[1] == size[2]):
            raise _err(src, "symmetries", "cube24 needs equal sides")
        syms = cube_symmetries()
    elif isinstance(sym, list):
        try:
            syms = np.asarray(sym, dtype=np.float64).reshape(-1, 3, 3)
        except ValueError:
            raise _err(src, "symmetries", "expected 'none', 'cube24' or a list of 3×3 rotation matrices") from None
        for i, g in enumerate(syms):
            if not (np.allclose(g @ g.T, np.eye(3), atol=1e-6) and np.linalg.det(g) > 0):
                raise _err(src, f"symmetries[{i}]", "not a rotation matrix")
    else:
        raise _err(src, "symmetries", f"expected 'none', 'cube24' or a list of 3×3 matrices, got {sym!r}")
    return ObjectSpec(name, obj_id, tuple(float(s) for s in size), faces, syms, source=src)  # type: ignore[arg-type]


def load_object_spec(name_or_path: str | os.PathLike) -> ObjectSpec:
    """A built-in name (`aruco-cube`, `trifinger-cube`, `plain-cube`) or a path to a YAML/JSON spec."""
    p = Path(name_or_path)
    if str(name_or_path) in BUILTIN_OBJECTS:
        p = BUILTIN_DIR / f"{name_or_path}.yaml"
    elif not p.is_file():
        raise UserError(f"unknown object {str(name_or_path)!r}: expected one of {', '.join(BUILTIN_OBJECTS)} "
                        f"or the path of a spec file")
    try:
        d = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:  # a binary file given as YAML, too
        raise UserError(f"{p}: malformed YAML/JSON ({str(e).splitlines()[0][:100]})") from None
    return spec_from_dict(d, str(p))
