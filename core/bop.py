"""BOP dataset and BOP results-CSV I/O (https://github.com/thodan/bop_toolkit/blob/master/docs/bop_datasets_format.md).

Layout read and written here (millimetres in every file, OpenCV camera frame):

    ROOT/models/models_info.json            {"<obj_id>": {diameter, min_x.., size_x.., symmetries_discrete}}
    ROOT/models/obj_XXXXXX.ply               the cuboid as a triangle mesh (mm)
    ROOT/<split>/<scene_id:06d>/rgb/<im_id:06d>.jpg|png
    ROOT/<split>/<scene_id:06d>/scene_camera.json   {"<im_id>": {"cam_K": [9], "depth_scale": 1.0}} and, for a
                                                     calibrated rig, BOP's optional "cam_R_w2c": [9], "cam_t_w2c":
                                                     [3] (mm): world (the rig's frame) → camera
    ROOT/<split>/<scene_id:06d>/scene_gt.json       {"<im_id>": [{"obj_id", "cam_R_m2c": [9], "cam_t_m2c": [3]}]}
                                                     (an empty list = image kept but not labelled)
    ROOT/<split>/<scene_id:06d>/scene_source.json   {"<im_id>": "upstream/relative/path"}   (sim2real extra)
    ROOT/<split>/<scene_id:06d>/scene_labels.json   {"session", "camera", "images": {"<im_id>": {status,
                                                     n_markers, reproj_rmse_px, ..}}}   (sim2real extra)
    ROOT/<split>/<scene_id:06d>/scene_instants.json {"<im_id>": "<instant id>"}   (sim2real extra): images
                                                     that share an instant id were shot at the same moment (one
                                                     pose, several cameras); ids are unique across the dataset
    ROOT/scene_groups.json                          {"<session>": [scene ids]}           (sim2real extra)

Results CSV (BOP challenge): `scene_id,im_id,obj_id,score,R,t,time`, R row-major 9 values separated by
spaces, t in mm, time in seconds (-1 when unknown).
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from core.camera import parse_K
from core.io import UserError, atomic_write_json, atomic_write_text, read_json

RESULTS_COLUMNS = ("scene_id", "im_id", "obj_id", "score", "R", "t", "time")
IMAGE_EXTS = (".jpg", ".png", ".jpeg", ".tif")


@dataclass
class BopGt:
    obj_id: int
    R: np.ndarray      # (3, 3) model → camera
    t_mm: np.ndarray   # (3,)


@dataclass
class BopImage:
    scene_id: int
    im_id: int
    rgb_path: Path
    K: np.ndarray      # (3, 3)
    width: int
    height: int
    gts: list[BopGt] = field(default_factory=list)
    session: str = ""
    labelled: bool = False
    approximate: bool = False   # ground truth known only roughly (e.g. TriFinger's gt_approx.json)
    status: str = ""            # labeller's verdict: labelled / ambiguous / no_markers / poor_fit / unreadable
    R_w2c: np.ndarray | None = None     # (3, 3) world (a calibrated rig's frame) → camera, when the set has it
    t_w2c_mm: np.ndarray | None = None  # (3,)


# --------------------------------------------------------------------------------------------- validation

def check_rotation(R: Any, where: str, tol: float = 1e-3) -> np.ndarray:
    """A 3×3 rotation (orthonormal, det +1) or a UserError naming `where`."""
    try:
        R = np.asarray(R, dtype=np.float64).reshape(3, 3)
    except (ValueError, TypeError):
        raise UserError(f"{where}: expected 9 numbers (a row-major 3×3 rotation)") from None
    if not np.all(np.isfinite(R)):
        raise UserError(f"{where}: rotation has non-finite values")
    err = np.abs(R @ R.T - np.eye(3)).max()
    if err > tol or np.linalg.det(R) < 0:
        raise UserError(f"{where}: not a rotation matrix (|R Rᵀ − I| = {err:.3g}, det = {np.linalg.det(R):.3g})")
    return R


def _vec(x: Any, n: int, where: str) -> np.ndarray:
    try:
        v = np.asarray(x, dtype=np.float64).reshape(n)
    except (ValueError, TypeError):
        raise UserError(f"{where}: expected {n} numbers") from None
    if not np.all(np.isfinite(v)):
        raise UserError(f"{where}: non-finite value")
    return v


# --------------------------------------------------------------------------------------------- reading

def scene_dir(root: Path, scene_id: int, split: str = "test") -> Path:
    return Path(root) / split / f"{scene_id:06d}"


def list_scene_ids(root: str | Path, split: str = "test") -> list[int]:
    d = Path(root) / split
    if not d.is_dir():
        raise UserError(f"{d}: BOP split folder not found (expected {split}/<scene_id>/ under the dataset root)")
    return sorted(int(p.name) for p in d.iterdir() if p.is_dir() and p.name.isdigit())


def _find_rgb(sdir: Path, im_id: int) -> Path | None:
    for ext in IMAGE_EXTS:
        p = sdir / "rgb" / f"{im_id:06d}{ext}"
        if p.is_file():
            return p
    return None


def load_bop_scenes(root: str | Path, scene_ids: Iterable[int] | None = None, split: str = "test") -> list[BopImage]:
    """Every image of the chosen scenes (all scenes by default), sorted by (scene_id, im_id).

    Needs scene_camera.json and scene_gt.json in every scene (UserError naming the file otherwise).
    An image with an empty GT list is returned with labelled=False (e.g. a single-marker ArUco view)."""
    root = Path(root)
    available = list_scene_ids(root, split)
    ids = available if scene_ids is None else [int(s) for s in scene_ids]
    missing = sorted(set(ids) - set(available))
    if missing:
        raise UserError(f"{root / split}: scene(s) {missing} not found (available: {available})")
    groups = read_scene_groups(root, split)
    session_of = {sid: name for name, sids in groups.items() for sid in sids}
    out: list[BopImage] = []
    for sid in ids:
        sdir = scene_dir(root, sid, split)
        cam = read_json(sdir / "scene_camera.json", "scene_camera.json")
        gt = read_json(sdir / "scene_gt.json", "scene_gt.json (ground-truth poses)")
        labels_path = sdir / "scene_labels.json"
        linfo = read_json(labels_path, "scene_labels.json").get("images", {}) if labels_path.is_file() else {}
        if not isinstance(cam, dict) or not isinstance(gt, dict):
            raise UserError(f"{sdir}: scene_camera.json / scene_gt.json: expected a mapping im_id → entry")
        for key in sorted(cam, key=lambda k: int(k) if str(k).isdigit() else -1):
            where = f"{sdir / 'scene_camera.json'}: {key}"
            if not str(key).isdigit():
                raise UserError(f"{where}: expected an integer image id")
            im_id = int(key)
            entry = cam[key]
            if not isinstance(entry, dict) or "cam_K" not in entry:
                raise UserError(f"{where}: cam_K: missing")
            K = parse_K(entry["cam_K"], f"{where}: cam_K")
            rgb = _find_rgb(sdir, im_id)
            if rgb is None:
                raise UserError(f"{sdir / 'rgb'}: image {im_id:06d}.jpg/png not found")
            gts = []
            for j, g in enumerate(gt.get(key, gt.get(str(im_id), [])) or []):
                gw = f"{sdir / 'scene_gt.json'}: {key}[{j}]"
                if not isinstance(g, dict) or not {"obj_id", "cam_R_m2c", "cam_t_m2c"} <= set(g):
                    raise UserError(f"{gw}: expected obj_id, cam_R_m2c, cam_t_m2c")
                gts.append(BopGt(int(g["obj_id"]), check_rotation(g["cam_R_m2c"], f"{gw}: cam_R_m2c"),
                                 _vec(g["cam_t_m2c"], 3, f"{gw}: cam_t_m2c")))
            info = linfo.get(str(im_id), {})
            R_w2c, t_w2c = _world_to_camera(entry, where)
            w, h = entry.get("width"), entry.get("height")
            if w is None or h is None:
                w, h = _image_size(rgb)
            out.append(BopImage(sid, im_id, rgb, K, int(w), int(h), gts, session_of.get(sid, ""),
                                labelled=bool(gts), approximate=bool(info.get("approximate", False)),
                                status=str(info.get("status", "labelled" if gts else "unlabelled")),
                                R_w2c=R_w2c, t_w2c_mm=t_w2c))
    return out


def _world_to_camera(entry: dict, where: str) -> tuple[np.ndarray | None, np.ndarray | None]:
    """BOP's optional cam_R_w2c / cam_t_w2c of one image, or (None, None). Only multi-view fusion reads them, so a
    malformed pair never stops a set from loading (predict and score must run on any BOP set): it is ignored."""
    if not {"cam_R_w2c", "cam_t_w2c"} <= set(entry):
        return None, None
    try:
        return (check_rotation(entry["cam_R_w2c"], f"{where}: cam_R_w2c", tol=1e-2),
                _vec(entry["cam_t_w2c"], 3, f"{where}: cam_t_w2c"))
    except UserError:
        return None, None


def _image_size(path: Path) -> tuple[int, int]:
    import cv2
    im = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if im is None:
        raise UserError(f"{path}: unreadable image")
    return im.shape[1], im.shape[0]


def read_scene_groups(root: str | Path, split: str = "test") -> dict[str, list[int]]:
    """Session name → scene ids. From ROOT/scene_groups.json when present, else from each scene's
    scene_labels.json `session`, else one group "all" holding every scene."""
    root = Path(root)
    p = root / "scene_groups.json"
    if p.is_file():
        d = read_json(p, "scene_groups.json")
        if not isinstance(d, dict) or not all(isinstance(v, list) for v in d.values()):
            raise UserError(f"{p}: expected a mapping session → list of scene ids")
        try:
            return {str(k): sorted(int(s) for s in v) for k, v in d.items()}
        except (TypeError, ValueError):
            raise UserError(f"{p}: scene ids must be integers") from None
    groups: dict[str, list[int]] = {}
    for sid in list_scene_ids(root, split):
        lp = scene_dir(root, sid, split) / "scene_labels.json"
        name = str(read_json(lp).get("session", "all")) if lp.is_file() else "all"
        groups.setdefault(name, []).append(sid)
    return groups


def read_capture_instants(root: str | Path, keys: Iterable[tuple[int, int]],
                          split: str = "test") -> list[str]:
    """The capture-instant (cluster) id of each (scene_id, im_id), from each scene's scene_instants.json;
    an image without one (or a set without the files) is its own cluster `scene/im`. Statistics resample
    whole instants (eval/stats.py), since the cameras of one instant see the same pose."""
    root = Path(root)
    cache: dict[int, dict[str, str]] = {}
    out = []
    for sid, iid in keys:
        sid, iid = int(sid), int(iid)
        if sid not in cache:
            p = scene_dir(root, sid, split) / "scene_instants.json"
            d = read_json(p, "scene_instants.json") if p.is_file() else {}
            if not isinstance(d, dict):
                raise UserError(f"{p}: expected a mapping im_id → instant id")
            cache[sid] = {str(k): str(v) for k, v in d.items()}
        out.append(cache[sid].get(str(iid), f"image:{sid}/{iid}"))
    return out


def has_capture_instants(root: str | Path, split: str = "test") -> bool:
    """Whether any scene of the set records capture instants."""
    return any((scene_dir(Path(root), sid, split) / "scene_instants.json").is_file()
               for sid in list_scene_ids(root, split))


def has_world_cameras(root: str | Path, split: str = "test") -> bool:
    """Whether the set records world → camera extrinsics (cam_R_w2c) for its images: a calibrated rig."""
    for sid in list_scene_ids(root, split):
        p = scene_dir(Path(root), sid, split) / "scene_camera.json"
        cam = read_json(p, "scene_camera.json") if p.is_file() else {}
        if isinstance(cam, dict) and any(isinstance(e, dict) and "cam_R_w2c" in e for e in cam.values()):
            return True
    return False


def read_models_info(root: str | Path) -> dict[int, dict]:
    p = Path(root) / "models" / "models_info.json"
    d = read_json(p, "models_info.json")
    try:
        return {int(k): v for k, v in d.items()}
    except (ValueError, AttributeError):
        raise UserError(f"{p}: expected a mapping obj_id → model info") from None


# --------------------------------------------------------------------------------------------- writing

def models_info_entry(spec) -> dict[str, Any]:
    """models_info.json entry of an ObjectSpec (mm), with its discrete symmetries as 4×4 row-major."""
    size = np.asarray(spec.size_m) * 1000.0
    syms = [np.block([[g, np.zeros((3, 1))], [np.zeros((1, 3)), np.ones((1, 1))]]).reshape(-1).tolist()
            for g in spec.symmetries if not np.allclose(g, np.eye(3))]
    d: dict[str, Any] = {"diameter": float(np.linalg.norm(size)),
                         "min_x": -size[0] / 2, "min_y": -size[1] / 2, "min_z": -size[2] / 2,
                         "size_x": size[0], "size_y": size[1], "size_z": size[2], "name": spec.name}
    if syms:
        d["symmetries_discrete"] = syms
    return d


def cuboid_ply_text(size_m) -> str:
    """ASCII PLY of a cuboid centred at the origin (mm): 8 vertices, 12 outward-facing triangles."""
    h = np.asarray(size_m, dtype=float) * 500.0
    v = [(sx * h[0], sy * h[1], sz * h[2]) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]
    # vertex index = 4*(x>0) + 2*(y>0) + (z>0); quads listed counter-clockwise seen from outside
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    tris = [t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))]
    lines = ["ply", "format ascii 1.0", "element vertex 8", "property float x", "property float y",
             "property float z", f"element face {len(tris)}", "property list uchar int vertex_indices", "end_header"]
    lines += [f"{x:.4f} {y:.4f} {z:.4f}" for x, y, z in v] + [f"3 {a} {b} {c}" for a, b, c in tris]
    return "\n".join(lines) + "\n"


def write_models(root: str | Path, specs: list) -> None:
    root = Path(root)
    (root / "models").mkdir(parents=True, exist_ok=True)
    info = {}
    for spec in specs:
        info[str(spec.obj_id)] = models_info_entry(spec)
        atomic_write_text(root / "models" / f"obj_{spec.obj_id:06d}.ply", cuboid_ply_text(spec.size_m))
    atomic_write_json(root / "models" / "models_info.json", info)


def gt_entry(obj_id: int, R: np.ndarray, t_mm: np.ndarray) -> dict[str, Any]:
    return {"obj_id": int(obj_id), "cam_R_m2c": np.asarray(R, float).reshape(-1).tolist(),
            "cam_t_m2c": np.asarray(t_mm, float).reshape(-1).tolist()}


def write_scene(root: str | Path, scene_id: int, images: list[dict[str, Any]], session: str = "",
                camera: str = "", extra: dict[str, Any] | None = None, split: str = "test") -> Path:
    """Write one BOP scene. Each image dict: im_id, K (3,3), width, height, gts [(obj_id, R, t_mm)],
    and either `rgb_bytes` + `ext` (copied verbatim, no re-encoding) or `rgb` (uint8 RGB array, written
    as PNG); optional `source` (upstream path), `label` (dict stored in scene_labels.json), `instant`
    (capture-instant id, stored in scene_instants.json) and `R_w2c` + `t_w2c_mm` (a calibrated rig: world → camera,
    stored as BOP's cam_R_w2c / cam_t_w2c)."""
    import cv2
    sdir = scene_dir(Path(root), scene_id, split)
    (sdir / "rgb").mkdir(parents=True, exist_ok=True)
    cams, gts, sources, labels, instants = {}, {}, {}, {}, {}
    for im in images:
        i = int(im["im_id"])
        if "rgb_bytes" in im:
            (sdir / "rgb" / f"{i:06d}{im.get('ext', '.jpg')}").write_bytes(im["rgb_bytes"])
        else:
            ok = cv2.imwrite(str(sdir / "rgb" / f"{i:06d}.png"), cv2.cvtColor(im["rgb"], cv2.COLOR_RGB2BGR))
            if not ok:
                raise OSError(f"could not write {sdir / 'rgb'}/{i:06d}.png")
        cams[str(i)] = {"cam_K": np.asarray(im["K"], float).reshape(-1).tolist(), "depth_scale": 1.0,
                        "width": int(im["width"]), "height": int(im["height"])}
        if im.get("R_w2c") is not None:
            cams[str(i)].update(cam_R_w2c=np.asarray(im["R_w2c"], float).reshape(-1).tolist(),
                                cam_t_w2c=np.asarray(im["t_w2c_mm"], float).reshape(-1).tolist())
        gts[str(i)] = [gt_entry(o, R, t) for o, R, t in im.get("gts", [])]
        if "source" in im:
            sources[str(i)] = im["source"]
        labels[str(i)] = im.get("label", {})
        if "instant" in im:
            instants[str(i)] = str(im["instant"])
    atomic_write_json(sdir / "scene_camera.json", cams)
    atomic_write_json(sdir / "scene_gt.json", gts)
    if sources:
        atomic_write_json(sdir / "scene_source.json", sources)
    if instants:
        atomic_write_json(sdir / "scene_instants.json", instants)
    atomic_write_json(sdir / "scene_labels.json", {"session": session, "camera": camera, **(extra or {}),
                                                    "images": labels})
    return sdir


# --------------------------------------------------------------------------------------------- results CSV

def _fmt(x: float) -> str:
    return repr(float(x)) if math.isfinite(float(x)) else str(float(x))


def write_results_csv(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write BOP results. Each row: scene_id, im_id, obj_id, score, R (3,3), t_mm (3,), time_s (opt.)."""
    buf = io.StringIO()
    buf.write(",".join(RESULTS_COLUMNS) + "\n")
    for r in rows:
        R = np.asarray(r["R"], float).reshape(-1)
        t = np.asarray(r["t_mm"], float).reshape(-1)
        buf.write(f"{int(r['scene_id'])},{int(r['im_id'])},{int(r['obj_id'])},{_fmt(r.get('score', 1.0))},"
                  f"{' '.join(_fmt(v) for v in R)},{' '.join(_fmt(v) for v in t)},{_fmt(r.get('time_s', -1.0))}\n")
    atomic_write_text(path, buf.getvalue())


def read_results_csv(path: str | Path) -> list[dict[str, Any]]:
    """Read BOP results; every problem is a UserError naming the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: results CSV not found")
    try:
        return _read_results(path)
    except (UnicodeDecodeError, csv.Error) as e:  # a binary file, NUL bytes, …
        raise UserError(f"{path}: not a text CSV ({type(e).__name__}: {str(e)[:80]})") from None


def _read_results(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise UserError(f"{path}: empty file (expected header {','.join(RESULTS_COLUMNS)})")
        header = [h.strip() for h in header]
        if tuple(header) != RESULTS_COLUMNS:
            raise UserError(f"{path}: header: expected columns {','.join(RESULTS_COLUMNS)}, got {','.join(header)}")
        rows = []
        for lineno, rec in enumerate(reader, start=2):
            if not rec or all(not c.strip() for c in rec):
                continue
            where = f"{path}: line {lineno}"
            if len(rec) != len(RESULTS_COLUMNS):
                raise UserError(f"{where}: expected {len(RESULTS_COLUMNS)} columns, got {len(rec)}")
            d = dict(zip(RESULTS_COLUMNS, rec))
            try:
                ids = {k: int(d[k]) for k in ("scene_id", "im_id", "obj_id")}
            except ValueError:
                raise UserError(f"{where}: scene_id/im_id/obj_id: expected integers") from None
            try:
                score = float(d["score"])
                time_s = float(d["time"]) if d["time"].strip() else -1.0
            except ValueError:
                raise UserError(f"{where}: score/time: expected numbers") from None
            try:
                R = [float(v) for v in d["R"].split()]
                t = [float(v) for v in d["t"].split()]
            except ValueError:
                raise UserError(f"{where}: R/t: expected space-separated numbers") from None
            if not math.isfinite(score):
                raise UserError(f"{where}: score: expected a finite number, got {d['score'].strip()}")
            if len(R) != 9:
                raise UserError(f"{where}: R: expected 9 values, got {len(R)}")
            if len(t) != 3:
                raise UserError(f"{where}: t: expected 3 values (mm), got {len(t)}")
            rows.append({**ids, "score": score, "R": check_rotation(R, f"{where}: R"),
                         "t_mm": _vec(t, 3, f"{where}: t"), "time_s": time_s})
    return rows
