"""The PyBullet scene: a textured table, the cube dropped and settled by physics, an optional support
box, distractors, lights, and a camera on a spherical sector around the cube. Renders with TinyRenderer.

`SceneSpec` is the task distribution (where cameras and cubes are), fixed for every pipeline.
Appearance (lights, textures, distractors, tints, focal jitter, ...) comes from randomizer/'s declared
parameter space: `render_sample` takes the current render-time ranges and records every value drawn.
"""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import cv2
import numpy as np


def _import_pybullet_quietly():
    """pybullet prints its build time on stderr at import; users should see only our own messages."""
    import sys
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # no real stderr (e.g. captured by a test runner)
        import pybullet
        return pybullet
    saved, devnull = os.dup(fd), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    try:
        import pybullet
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)
    return pybullet


pb = _import_pybullet_quietly()

from core.camera import crop_K, cube_crop_box, project_points, scale_K
from core.io import UserError
from core.objects import ObjectSpec
from randomizer.space import ParamSpace, Range
from render.mesh import mesh_files
from render.textures import WALL_RGB, WOOD_RGB, make_texture

DROP_ORIENTATIONS = ("bottom", "any", "free")
# the render-time parameters the scene builder reads: a parameter space must declare every one of them
RENDER_PARAMS = ("ambient", "background_texture", "cube_brightness", "cube_texture_contrast", "cube_tint", "diffuse",
                 "distractor_count", "distractor_size_m", "focal_jitter_frac", "light_azimuth_deg",
                 "light_elevation_deg", "light_intensity", "light_tint", "shadow", "specular", "support_box_prob",
                 "table_texture", "texture_color_jitter")


@dataclass
class SceneSpec:
    """Where the cube and the camera are. Defaults cover the real ArUco photos (cube 0.19–0.45 m
    away, camera 2–27° above the cube, median 13°)."""
    camera_distance_m: tuple[float, float] = (0.19, 0.45)
    camera_elevation_deg: tuple[float, float] = (2.0, 35.0)
    camera_azimuth_deg: tuple[float, float] = (-180.0, 180.0)
    camera_roll_deg: tuple[float, float] = (-10.0, 10.0)
    image_margin_frac: float = 0.08      # the cube centre lands uniformly inside this margin of the frame
    drop_orientation: str = "bottom"     # bottom: blank face down (as in the real photos); any; free (no physics)
    drop_tilt_deg: float = 15.0          # tilt of the bottom-down drop, before physics settles it
    support_box_height_m: tuple[float, float] = (0.03, 0.12)
    table_half_extent_m: tuple[float, float] = (0.35, 1.0)
    min_visib_fract: float = 0.6         # reject samples where the cube is mostly hidden
    min_size_px: float = 12.0            # reject cubes smaller than this in the full-resolution image
    settle_steps: int = 150              # physics steps at 240 Hz (the drop is 5 mm, so it settles fast)

    def validate(self, src: str = "scene") -> "SceneSpec":
        num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
        for f in fields(self):  # types first: a scalar where a range belongs, a string where a number does
            v, default = getattr(self, f.name), f.default
            if isinstance(default, tuple) and not (isinstance(v, tuple) and len(v) == 2 and all(num(x) for x in v)):
                raise UserError(f"{src}: {f.name}: expected a range [low, high] of numbers, got {v!r}")
            if isinstance(default, (int, float)) and not num(v):
                raise UserError(f"{src}: {f.name}: expected a number, got {v!r}")
        if not isinstance(self.settle_steps, int) or not 0 <= self.settle_steps <= 10_000:
            raise UserError(f"{src}: settle_steps: expected an integer in 0..10000, got {self.settle_steps!r}")
        for name in ("drop_tilt_deg", "min_size_px"):
            if getattr(self, name) < 0:
                raise UserError(f"{src}: {name}: expected ≥ 0, got {getattr(self, name)}")
        for name in ("camera_distance_m", "camera_elevation_deg", "camera_azimuth_deg", "camera_roll_deg",
                     "support_box_height_m", "table_half_extent_m"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise UserError(f"{src}: {name}: low {lo} > high {hi}")
        lo, hi = self.camera_distance_m
        if lo <= 0.05 or hi > 5:
            raise UserError(f"{src}: camera_distance_m: expected metres within (0.05, 5], got [{lo}, {hi}]")
        lo, hi = self.camera_elevation_deg
        if lo < -10 or hi > 89:
            raise UserError(f"{src}: camera_elevation_deg: expected degrees within [-10, 89], got [{lo}, {hi}]")
        if not 0 <= self.image_margin_frac < 0.5:
            raise UserError(f"{src}: image_margin_frac: expected [0, 0.5), got {self.image_margin_frac}")
        if self.drop_orientation not in DROP_ORIENTATIONS:
            raise UserError(f"{src}: drop_orientation: expected one of {DROP_ORIENTATIONS}, got {self.drop_orientation!r}")
        if not 0 < self.min_visib_fract <= 1:
            raise UserError(f"{src}: min_visib_fract: expected (0, 1], got {self.min_visib_fract}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], src: str = "scene") -> "SceneSpec":
        known = set(cls.__dataclass_fields__)
        bad = set(d) - known
        if bad:
            raise UserError(f"{src}: {sorted(bad)[0]}: unknown scene field (expected {', '.join(sorted(known))})")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kw).validate(src)


@dataclass
class Camera:
    """Full-resolution intrinsics of the target camera."""
    K: np.ndarray
    width: int
    height: int

    def to_dict(self) -> dict[str, Any]:
        return {"K": np.asarray(self.K).tolist(), "width": self.width, "height": self.height}


DEFAULT_CAMERA = Camera(np.array([[610.0, 0, 320.0], [0, 610.0, 240.0], [0, 0, 1]]), 640, 480)


@dataclass
class Sample:
    frame: np.ndarray       # (Hf, Wf, 3) uint8
    frame_mask: np.ndarray  # (Hf, Wf) uint8
    crop: np.ndarray        # (C, C, 3) uint8
    crop_mask: np.ndarray   # (C, C) uint8
    labels: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# camera maths: OpenCV intrinsics/extrinsics → OpenGL matrices for PyBullet

_CV_TO_GL = np.diag([1.0, -1.0, -1.0])
# TinyRenderer rasterizes one pixel higher than the pinhole model (measured; tests/test_render.py checks
# projected corners against the rendered mask), so the principal point's y is shifted down by 1 px.
TINYRENDERER_DY_PX = 1.0


def gl_view_matrix(R_w2c: np.ndarray, t_w2c: np.ndarray) -> list[float]:
    V = np.eye(4)
    V[:3, :3] = _CV_TO_GL @ R_w2c
    V[:3, 3] = _CV_TO_GL @ t_w2c
    return V.T.reshape(-1).tolist()  # column-major


def gl_projection_matrix(K: np.ndarray, width: int, height: int, near: float = 0.01, far: float = 10.0) -> list[float]:
    """OpenGL projection reproducing an OpenCV K (pixel centres at integer coordinates) for TinyRenderer.
    TinyRenderer's rasterizer has no half-pixel offset, so cx/cy enter without the usual +0.5; together with
    the 1 px y shift above, mask bounding boxes match projected corners within 0.6 px (tests/test_render.py)."""
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2] + TINYRENDERER_DY_PX
    P = np.zeros((4, 4))
    P[0, 0] = 2 * fx / width
    P[0, 2] = 1 - 2 * cx / width
    P[1, 1] = 2 * fy / height
    P[1, 2] = 2 * cy / height - 1
    P[2, 2] = -(far + near) / (far - near)
    P[2, 3] = -2 * far * near / (far - near)
    P[3, 2] = -1
    return P.T.reshape(-1).tolist()


def look_at(cam_pos: np.ndarray, target: np.ndarray, roll_deg: float) -> np.ndarray:
    """World→camera rotation (OpenCV axes) of a camera at cam_pos looking at target, z-up world."""
    z = target - cam_pos
    z = z / np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    if np.linalg.norm(x) < 1e-6:
        x = np.array([1.0, 0, 0])
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ R


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking unit vector a to unit vector b (Rodrigues)."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    if np.linalg.norm(v) < 1e-12:
        return np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def _quat_to_R(q) -> np.ndarray:
    return np.array(pb.getMatrixFromQuaternion(q)).reshape(3, 3)


def _R_to_quat(R: np.ndarray) -> list[float]:
    """Rotation matrix → PyBullet quaternion (x, y, z, w)."""
    m = R
    tr = np.trace(m)
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        w, x, y, z = 0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = math.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k]) * 2
        q = [0.0, 0.0, 0.0]
        q[i] = 0.25 * s
        q[j] = (m[j, i] + m[i, j]) / s
        q[k] = (m[k, i] + m[i, k]) / s
        w = (m[k, j] - m[j, k]) / s
        x, y, z = q
    return [x, y, z, w]


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    return _quat_to_R(q.tolist())


# ----------------------------------------------------------------------------------------------


class SceneRenderer:
    """One PyBullet DIRECT client. Each sample resets the simulation, so a sample depends only on its
    own random stream — never on the samples rendered before it (same bytes whatever the workers)."""

    def __init__(self, spec: ObjectSpec, scene: SceneSpec, camera: Camera, space: ParamSpace,
                 frame_size: tuple[int, int] = (160, 120), crop_px: int = 128, crop_scale: float = 2.0):
        self.spec, self.scene, self.camera, self.space = spec, scene, camera, space
        self.frame_w, self.frame_h = frame_size
        self.crop_px, self.crop_scale = crop_px, crop_scale
        self.obj_path, self.atlas_path = mesh_files(spec)
        self.client = pb.connect(pb.DIRECT)

    def close(self) -> None:
        if self.client is not None and pb.isConnected(self.client):
            pb.disconnect(self.client)
        self.client = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # --- scene building -------------------------------------------------------------------------
    def _texture(self, rgb: np.ndarray) -> int:
        # TinyRenderer ignores changeTexture, so the texture goes through a small uncompressed file. It also
        # caches textures by file name: the name is the content hash, so a name never means two images. The
        # folder lives only for this call: a renderer in a pool worker is never closed (its __del__ does not
        # run when the worker exits), and a folder per renderer was left behind in /tmp.
        with tempfile.TemporaryDirectory(prefix="sim2real-tex-") as tmp:
            path = os.path.join(tmp, hashlib.sha1(rgb.tobytes()).hexdigest() + ".png")
            cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 0])
            return pb.loadTexture(path, physicsClientId=self.client)

    def _box(self, half, pos, rgba, mass=0.0, orn=(0, 0, 0, 1)) -> int:
        c = self.client
        col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=half, physicsClientId=c)
        vis = pb.createVisualShape(pb.GEOM_BOX, halfExtents=half, rgbaColor=rgba, physicsClientId=c)
        return pb.createMultiBody(mass, col, vis, pos, orn, physicsClientId=c)

    def _build(self, rng: np.random.Generator, p: dict[str, Any], info: dict[str, Any]) -> tuple[int, np.ndarray]:
        """Table, support box, cube and distractors; physics settles them. Returns (cube id, table top z)."""
        c = self.client
        pb.resetSimulation(physicsClientId=c)
        pb.setGravity(0, 0, -9.81, physicsClientId=c)
        half = float(rng.uniform(*self.scene.table_half_extent_m))
        table = self._box([half, half, 0.01], [0, 0, -0.01], [1, 1, 1, 1])
        tex = make_texture(p["table_texture"], rng, p["texture_color_jitter"], 128, WOOD_RGB)
        pb.changeVisualShape(table, -1, textureUniqueId=self._texture(tex), physicsClientId=c)
        info["table_half_extent_m"] = half

        top_z = 0.0
        if rng.random() < p["support_box_prob"]:
            h = float(rng.uniform(*self.scene.support_box_height_m))
            bx = float(rng.uniform(0.04, 0.12))
            white = 0.85 + 0.15 * rng.random()
            self._box([bx, bx * rng.uniform(0.6, 1.0), h / 2], [0, 0, h / 2],
                      [white, white, white * rng.uniform(0.92, 1.0), 1])
            top_z = h
            info["support_box_height_m"] = h
        else:
            info["support_box_height_m"] = 0.0

        side = np.asarray(self.spec.size_m)
        col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=(side / 2).tolist(), physicsClientId=c)
        vis = pb.createVisualShape(pb.GEOM_MESH, fileName=str(self.obj_path), meshScale=[1, 1, 1],
                                   rgbaColor=[1, 1, 1, 1], specularColor=[p["specular"]] * 3, physicsClientId=c)
        mode = self.scene.drop_orientation
        if mode == "bottom":
            yaw = rng.uniform(-math.pi, math.pi)
            tilt_axis = rng.normal(size=3) * [1, 1, 0]
            tilt = math.radians(self.scene.drop_tilt_deg) * rng.random()
            R0 = cv2.Rodrigues(tilt_axis / (np.linalg.norm(tilt_axis) + 1e-12) * tilt)[0] @ \
                cv2.Rodrigues(np.array([0, 0, yaw]))[0]
        else:
            R0 = random_rotation(rng)
        z0 = top_z + float(np.max(np.abs(R0 @ np.diag(side / 2)).sum(axis=1)[2])) + 0.005
        pos0 = [0.0, 0.0, z0]
        if mode == "free":
            pos0[2] = top_z + 0.5 * float(np.linalg.norm(side)) + rng.uniform(0.0, 0.05)
        cube = pb.createMultiBody(0.0 if mode == "free" else 0.05, col, vis, pos0, _R_to_quat(R0), physicsClientId=c)
        pb.changeVisualShape(cube, -1, textureUniqueId=pb.loadTexture(str(self.atlas_path), physicsClientId=c),
                             physicsClientId=c)
        pb.changeDynamics(cube, -1, lateralFriction=0.8, physicsClientId=c)

        n_dis = int(p["distractor_count"])
        info["distractors"] = []
        for _ in range(n_dis):
            size = float(p["distractor_size_m"]) * rng.uniform(0.5, 1.5)
            r = rng.uniform(0.5 * size + 0.03, 0.35)
            a = rng.uniform(-math.pi, math.pi)
            rgba = list(rng.random(3)) + [1.0]
            shape = ("box", "sphere", "cylinder")[int(rng.integers(3))]
            pos = [r * math.cos(a), r * math.sin(a), size]
            if shape == "box":
                hs = (size / 2 * rng.uniform(0.4, 1.0, 3)).tolist()
                cs = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=hs, physicsClientId=c)
                vs = pb.createVisualShape(pb.GEOM_BOX, halfExtents=hs, rgbaColor=rgba, physicsClientId=c)
            elif shape == "sphere":
                cs = pb.createCollisionShape(pb.GEOM_SPHERE, radius=size / 2, physicsClientId=c)
                vs = pb.createVisualShape(pb.GEOM_SPHERE, radius=size / 2, rgbaColor=rgba, physicsClientId=c)
            else:
                cs = pb.createCollisionShape(pb.GEOM_CYLINDER, radius=size / 3, height=size, physicsClientId=c)
                vs = pb.createVisualShape(pb.GEOM_CYLINDER, radius=size / 3, length=size, rgbaColor=rgba,
                                          physicsClientId=c)
            pb.createMultiBody(0.1, cs, vs, pos, _R_to_quat(random_rotation(rng)), physicsClientId=c)
            info["distractors"].append({"shape": shape, "size_m": size, "dist_m": r})

        if mode != "free":
            for _ in range(self.scene.settle_steps):
                pb.stepSimulation(physicsClientId=c)
        return cube, top_z

    # --- rendering --------------------------------------------------------------------------------
    def _render(self, K: np.ndarray, w: int, h: int, R_w2c, t_w2c, light: dict) -> tuple[np.ndarray, np.ndarray]:
        out = pb.getCameraImage(w, h, gl_view_matrix(R_w2c, t_w2c), gl_projection_matrix(K, w, h),
                                renderer=pb.ER_TINY_RENDERER, physicsClientId=self.client, **light)
        rgb = np.asarray(out[2], dtype=np.uint8).reshape(h, w, 4)[..., :3]
        seg = np.asarray(out[4]).reshape(h, w)
        return rgb, seg

    def render_scene(self, key: tuple[int, ...], n_views: int, ranges: dict[str, Range],
                     max_attempts: int = 20, pool_q_nominal: float | None = None) -> list[Sample]:
        """Build and settle one scene (appearance drawn inside `ranges`), then render `n_views` camera views
        of it: each view is a sample (full frame at working resolution + zoomed crop). Views are placed with
        their own random streams (key + view index), retried until the cube is in view and mostly visible.
        Scene building and physics cost are shared by the views.
        pool_q_nominal: draw for an ADR pool instead — each parameter nominal with this probability, else
        anywhere in its widest range (so that ADR's narrow early ranges still find samples)."""
        for attempt in range(max_attempts):
            rng = np.random.default_rng([*key, n_views, 10_000 + attempt])
            if pool_q_nominal is None:
                p = self.space.sample(rng, ranges)
            else:
                from randomizer.pool import pool_sample_params
                p = pool_sample_params(self.space, rng, pool_q_nominal)
            info: dict[str, Any] = {"scene_attempt": attempt}
            cube, top_z = self._build(rng, p, info)
            pos, orn = pb.getBasePositionAndOrientation(cube, physicsClientId=self.client)
            R_obj, p_obj = _quat_to_R(orn), np.asarray(pos)
            look = self._scene_look(rng, p)
            samples = []
            for v in range(n_views):
                view_rng = np.random.default_rng([*key, v, attempt])
                for _ in range(50):
                    sample = self._place_camera_and_render(view_rng, p, info, look, cube, R_obj, p_obj)
                    if sample is not None:
                        samples.append(sample)
                        break
                else:
                    break  # this scene hides the cube too often (e.g. a distractor on top): draw another
            if len(samples) == n_views:
                return samples
        raise RuntimeError("could not draw a valid sample: the scene/camera ranges rarely show the cube")

    def _scene_look(self, rng: np.random.Generator, p: dict[str, Any]) -> dict[str, Any]:
        """Per-scene appearance that is not a PyBullet object: light, background, cube tint."""
        tint = p["light_tint"]
        light_rgb = np.clip((1 - tint) + tint * 2 * rng.random(3), 0, 1) * p["light_intensity"]
        az_l, el_l = math.radians(p["light_azimuth_deg"]), math.radians(p["light_elevation_deg"])
        light = dict(lightDirection=[math.cos(el_l) * math.cos(az_l), math.cos(el_l) * math.sin(az_l), math.sin(el_l)],
                     lightColor=np.clip(light_rgb, 0, 1).tolist(), lightDistance=2.0,
                     shadow=1 if p["shadow"] == "on" else 0, lightAmbientCoeff=p["ambient"],
                     lightDiffuseCoeff=p["diffuse"], lightSpecularCoeff=p["specular"])
        bg = make_texture(p["background_texture"], rng, p["texture_color_jitter"], 128, WALL_RGB)
        cube_tint_rgb = 1 - p["cube_tint"] + p["cube_tint"] * 2 * rng.random(3)
        return {"light": light, "light_rgb": light_rgb, "background": bg, "cube_tint_rgb": cube_tint_rgb}

    def _place_camera_and_render(self, rng, p, info, look, cube, R_obj, p_obj) -> Sample | None:
        sc, cam = self.scene, self.camera
        d = rng.uniform(*sc.camera_distance_m)
        el = math.radians(rng.uniform(*sc.camera_elevation_deg))
        az = math.radians(rng.uniform(*sc.camera_azimuth_deg))
        roll = rng.uniform(*sc.camera_roll_deg)
        cam_pos = p_obj + d * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        K = np.array(cam.K, dtype=np.float64)
        fj = p["focal_jitter_frac"] * rng.uniform(-1, 1)
        K[0, 0] *= 1 + fj
        K[1, 1] *= 1 + fj
        # aim so that the cube centre lands at a uniformly drawn pixel inside the margin
        m = sc.image_margin_frac
        u = rng.uniform(m * cam.width, (1 - m) * cam.width)
        v = rng.uniform(m * cam.height, (1 - m) * cam.height)
        R0 = look_at(cam_pos, p_obj, roll)
        ray = np.linalg.solve(K, [u, v, 1.0])
        R_w2c = rotation_between(np.array([0, 0, 1.0]), ray) @ R0
        t_w2c = -R_w2c @ cam_pos
        R = R_w2c @ R_obj
        t = R_w2c @ p_obj + t_w2c
        corners = project_points(self.spec.corners_m(), R, t, K)
        if (R_w2c @ (p_obj - cam_pos))[2] <= 0.05:  # cube behind or at the camera
            return None
        x0, y0 = corners.min(0)
        x1, y1 = corners.max(0)
        size_px = max(x1 - x0, y1 - y0)
        if size_px < sc.min_size_px:
            return None
        centre = project_points(np.zeros((1, 3)), R, t, K)[0]

        light = look["light"]

        # full frame at working resolution
        Kf = scale_K(K, self.frame_w / cam.width, self.frame_h / cam.height)
        frame, seg_f = self._render(Kf, self.frame_w, self.frame_h, R_w2c, t_w2c, light)
        frame_mask = (seg_f == cube).astype(np.uint8)
        # silhouette of the unoccluded cube = convex hull of its projected corners (a convex body)
        hull_f = cv2.convexHull(project_points(self.spec.corners_m(), R, t, Kf).astype(np.float32))
        hull_area_f = cv2.contourArea(hull_f)

        # zoomed crop through an off-axis projection, centred on the projected cube centre
        cx0, cy0, side = cube_crop_box(corners, centre, self.crop_scale)
        Kc = crop_K(K, cx0, cy0, side, self.crop_px)
        crop, seg_c = self._render(Kc, self.crop_px, self.crop_px, R_w2c, t_w2c, light)
        crop_mask = (seg_c == cube).astype(np.uint8)
        hull_c = cv2.convexHull(project_points(self.spec.corners_m(), R, t, Kc).astype(np.float32))
        visib = float(crop_mask.sum()) / max(cv2.contourArea(hull_c), 1e-6)
        # out of frame parts count as hidden: compare the in-frame visible area with the whole silhouette
        visib_frame = float(frame_mask.sum()) / max(hull_area_f, 1e-6)
        visib_fract = min(visib, visib_frame if hull_area_f > 40 else visib)
        if visib_fract < sc.min_visib_fract or not (0 <= centre[0] < cam.width and 0 <= centre[1] < cam.height):
            return None

        # background: the scene's texture stretched over the full-resolution image plane, seen by both images
        # (texture → full-res pixel edges → frame / crop pixels, as one affine map each)
        bg = look["background"]
        tex_w, tex_h = bg.shape[1], bg.shape[0]
        def _bg(sx, sy, x0, y0, w, h):
            A = np.array([[sx, 0, -x0 * sx], [0, sy, -y0 * sy]], np.float64)  # full-res edges → output edges
            T = np.array([[cam.width / tex_w, 0, 0], [0, cam.height / tex_h, 0], [0, 0, 1]])  # texture → full res
            M = A @ T
            M[:, 2] += 0.5 * M[[0, 1], [0, 1]] - 0.5  # edge → centre coordinates
            return cv2.warpAffine(bg, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frame = np.where((seg_f < 0)[..., None], _bg(self.frame_w / cam.width, self.frame_h / cam.height, 0, 0,
                                                     self.frame_w, self.frame_h), frame)
        s = self.crop_px / side
        crop = np.where((seg_c < 0)[..., None], _bg(s, s, cx0, cy0, self.crop_px, self.crop_px), crop)
        # cube appearance: tint, marker contrast, brightness — applied to the cube's own pixels
        frame = _recolor_cube(frame, frame_mask, p, look["cube_tint_rgb"])
        crop = _recolor_cube(crop, crop_mask, p, look["cube_tint_rgb"])

        ys, xs = np.nonzero(crop_mask)
        k = side / self.crop_px
        bbox = [cx0 + xs.min() * k, cy0 + ys.min() * k, cx0 + (xs.max() + 1) * k, cy0 + (ys.max() + 1) * k]
        labels = {"R": R, "t_m": t, "K_full": K, "K_frame": Kf, "K_crop": Kc, "center_full_px": centre,
                  "bbox_full_px": np.array(bbox), "crop_box_full_px": np.array([cx0, cy0, side]),
                  "visib_fract": visib_fract}
        params = dict(p)
        params.update(info)
        params.update({"camera_distance_m": d, "camera_elevation_deg": math.degrees(el),
                       "camera_azimuth_deg": math.degrees(az), "camera_roll_deg": roll,
                       "cube_target_px": [u, v], "focal_jitter": fj, "light_rgb": look["light_rgb"].tolist()})
        return Sample(frame, frame_mask, crop, crop_mask, labels, params)


def _recolor_cube(img: np.ndarray, mask: np.ndarray, p: dict, tint_rgb: np.ndarray) -> np.ndarray:
    if p["cube_tint"] == 0 and p["cube_texture_contrast"] == 1 and p["cube_brightness"] == 1:
        return img
    m = mask.astype(bool)
    if not m.any():
        return img
    px = img[m].astype(np.float32)
    white = np.percentile(px, 95, axis=0)
    c = p["cube_texture_contrast"]
    px = (c * px + (1 - c) * white) * tint_rgb * p["cube_brightness"]
    out = img.copy()
    out[m] = np.clip(px, 0, 255).astype(np.uint8)
    return out
