"""`sim2real generate`: render a synthetic dataset on N worker processes, resumably.

Scene g (samples g·V … g·V+V−1, V views of one settled scene) draws everything from random streams keyed
by (seed, g) and the simulation is reset for every scene, so the bytes depend on (config, seed) only — not on the number of workers or on interruptions.
Shards are written to a temp folder and renamed; `generate.json` holds the config while the run is in
progress, `manifest.json` appears only when every shard is there.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import multiprocessing as mp
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from tqdm import tqdm

from core.io import UserError, atomic_write_json, code_version, read_json, sha256_of_json
from core.objects import load_object_spec
from randomizer.space import load_space
from render.dataset import (FORMAT, is_dataset, labels_array, read_manifest, remove_stale_temps, shard_entry,
                            shard_name, write_shard)
from render.scene import DEFAULT_CAMERA, RENDER_PARAMS, Camera, SceneRenderer, SceneSpec

RANDOMIZATION_LEVELS = ("nominal", "dr", "widest", "adr-pool")
ADR_POOL_Q_NOMINAL = 0.85  # adr-pool: each render parameter stays nominal with this probability


@dataclass
class GenerateConfig:
    object: str = "aruco-cube"
    n: int = 1000
    seed: int = 0
    randomization: str = "nominal"         # which render-time ranges of the parameter space to sample
    space_file: str | None = None          # parameter-space YAML (default: randomizer/default.yaml)
    scene: dict[str, Any] = field(default_factory=dict)  # SceneSpec overrides
    cameras: list[dict[str, Any]] = field(default_factory=lambda: [DEFAULT_CAMERA.to_dict()])
    frame_width: int = 160                 # working resolution of the full frame (height keeps the aspect)
    crop_px: int = 128
    crop_scale: float = 2.0                # crop side / the cube's projected size
    shard_size: int = 256
    views_per_scene: int = 4               # camera views rendered per built-and-settled scene

    def validate(self) -> "GenerateConfig":
        if not isinstance(self.n, int) or self.n <= 0:
            raise UserError(f"--n: expected a positive number of samples, got {self.n}")
        if self.randomization not in RANDOMIZATION_LEVELS:
            raise UserError(f"--randomization: expected one of {', '.join(RANDOMIZATION_LEVELS)}, got {self.randomization!r}")
        if not 16 <= self.frame_width <= 2048:
            raise UserError(f"--frame-width: expected 16..2048 px, got {self.frame_width}")
        if not 16 <= self.crop_px <= 1024:
            raise UserError(f"--crop-px: expected 16..1024 px, got {self.crop_px}")
        if not 1.0 <= self.crop_scale <= 6.0:
            raise UserError(f"--crop-scale: expected 1..6, got {self.crop_scale}")
        if not 1 <= self.views_per_scene <= 64:
            raise UserError(f"--views-per-scene: expected 1..64, got {self.views_per_scene}")
        if self.shard_size <= 0 or self.shard_size % self.views_per_scene:
            raise UserError(f"--shard-size: expected a positive multiple of --views-per-scene "
                            f"({self.views_per_scene}), got {self.shard_size}")
        load_object_spec(self.object)
        space = load_space(self.space_file)
        missing = [n for n in RENDER_PARAMS if n not in space.names("render")]
        if missing:
            raise UserError(f"{space.source}: params.{missing[0]}: missing (the renderer reads "
                            f"{len(missing)} render-time parameter(s) this space does not declare)")
        SceneSpec.from_dict(self.scene, "scene")
        return self

    def frame_size(self, cam: dict[str, Any]) -> tuple[int, int]:
        return self.frame_width, max(8, int(round(self.frame_width * cam["height"] / cam["width"])))


def load_scene_file(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: scene file not found")
    try:
        d = yaml.safe_load(p.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:  # a binary file given as YAML, too
        raise UserError(f"{p}: malformed YAML ({str(e).splitlines()[0][:100]})") from None
    if not isinstance(d, dict):
        raise UserError(f"{p}: expected a mapping of scene fields")
    SceneSpec.from_dict(d, str(p))
    return d


def cameras_from_k_file(path: str) -> list[dict[str, Any]]:
    """A JSON camera file {"cam_K": 9 numbers or 3×3, "width": W, "height": H} (core.camera.read_camera_file)."""
    from core.camera import read_camera_file
    return [read_camera_file(path)]


def cameras_like_real(bop_root: str) -> list[dict[str, Any]]:
    """Every distinct camera (K, size) of a real BOP set, so synthetic and real images share intrinsics."""
    from core.bop import load_bop_scenes  # the one BOP reader of the project
    seen: dict[str, dict[str, Any]] = {}
    for im in load_bop_scenes(bop_root):
        cam = {"K": np.round(np.asarray(im.K, dtype=np.float64), 6).tolist(), "width": im.width, "height": im.height}
        seen.setdefault(json.dumps(cam, sort_keys=True), cam)
    if not seen:
        raise UserError(f"{bop_root}: no images found in this BOP set")
    return list(seen.values())


# ------------------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _worker_init(cfg_dict: dict[str, Any]) -> None:
    cfg = GenerateConfig(**cfg_dict)
    spec = load_object_spec(cfg.object)
    space = load_space(cfg.space_file)
    scene = SceneSpec.from_dict(cfg.scene)
    renderers = []
    for cam in cfg.cameras:
        camera = Camera(np.asarray(cam["K"], dtype=np.float64), cam["width"], cam["height"])
        renderers.append(SceneRenderer(spec, scene, camera, space, cfg.frame_size(cam), cfg.crop_px, cfg.crop_scale))
    _WORKER.update(cfg=cfg, renderers=renderers, ranges=_ranges(space, cfg.randomization))


def _ranges(space, level: str):
    """Render-time ranges of a level; an ADR pool spans the widest ones (drawn mostly at nominal)."""
    return space.ranges("widest" if level == "adr-pool" else level, "render")


def _render_shard(job: tuple[int, int, int, str]) -> tuple[int, str, int]:
    k, start, stop, out = job
    cfg, renderers, ranges = _WORKER["cfg"], _WORKER["renderers"], _WORKER["ranges"]
    samples = []
    V = cfg.views_per_scene
    for g in range(start // V, (stop + V - 1) // V):  # shards hold whole scenes (shard_size % V == 0)
        cam_idx = int(np.random.default_rng([cfg.seed, g]).integers(len(renderers)))
        views = renderers[cam_idx].render_scene(
            (cfg.seed, g), V, ranges, pool_q_nominal=ADR_POOL_Q_NOMINAL if cfg.randomization == "adr-pool" else None)
        for v, s in enumerate(views):
            s.params.update(camera_index=cam_idx, scene_index=g, view_index=v)
        samples.extend(views[:stop - g * V])
    entry = write_shard(Path(out) / "shards" / shard_name(k),
                         np.stack([s.frame for s in samples]), np.stack([s.frame_mask for s in samples]),
                         np.stack([s.crop for s in samples]), np.stack([s.crop_mask for s in samples]),
                         labels_array([s.labels for s in samples]), [s.params for s in samples])
    return k, entry, stop - start


def generate_dataset(cfg: GenerateConfig, out_dir: str | os.PathLike, workers: int = 1,
                     progress: bool = True) -> Path:
    """Render (or resume) the dataset described by cfg into out_dir. Returns out_dir."""
    cfg.validate()
    if workers < 1:
        raise UserError(f"--workers: expected ≥ 1, got {workers}")
    if len({cfg.frame_size(c) for c in cfg.cameras}) != 1:
        raise UserError("the target cameras have different aspect ratios; generate one dataset per camera")
    out = Path(out_dir)
    job_cfg = asdict(cfg)
    key = sha256_of_json(job_cfg)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")
    if out.exists() and not _is_ours(out):
        raise UserError(f"{out}: exists, is not empty and is not a sim2real dataset; choose an empty or new folder")
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out):
        return _generate_locked(cfg, out, job_cfg, key, workers, progress)


LOCK_NAME = ".generate.lock"


def _is_ours(out: Path) -> bool:
    """out is empty (but for our lock file), a dataset, or an interrupted generate."""
    return is_dataset(out) or (out / "generate.json").is_file() or not any(
        p.name != LOCK_NAME for p in out.iterdir())


@contextlib.contextmanager
def output_lock(out: Path):
    """An exclusive flock on OUT/.generate.lock for the whole run: a second `generate` into the same folder gets
    a clear error instead of interleaving shards (the kernel drops the lock if the process dies)."""
    f = open(out / LOCK_NAME, "a")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{out}: another `sim2real generate` is writing into this folder; wait for it to "
                            f"finish or choose another --out") from None
        yield
    finally:
        f.close()


def _generate_locked(cfg: GenerateConfig, out: Path, job_cfg: dict[str, Any], key: str, workers: int,
                     progress: bool) -> Path:
    if is_dataset(out):
        m = read_manifest(out)
        if m.get("config_hash") == key:
            if progress:
                print(f"{out}: already complete ({m['n']} samples), nothing to do")
            return out
        raise UserError(f"{out}: holds a dataset made with other settings; choose another --out or delete it")
    if (out / "generate.json").is_file():
        prev = read_json(out / "generate.json", "generate state")
        if not isinstance(prev, dict) or prev.get("config_hash") != key:
            raise UserError(f"{out}: holds an interrupted run with other settings; rerun it with the same "
                            f"arguments, or delete the folder")
    elif not _is_ours(out):
        raise UserError(f"{out}: exists, is not empty and is not a sim2real dataset; choose an empty or new folder")
    remove_stale_temps(out / "shards")  # a killed run's half-written shard (we hold the lock)
    atomic_write_json(out / "generate.json", {"config": job_cfg, "config_hash": key})

    n_shards = (cfg.n + cfg.shard_size - 1) // cfg.shard_size
    jobs, entries = [], {}
    for k in range(n_shards):
        start, stop = k * cfg.shard_size, min(cfg.n, (k + 1) * cfg.shard_size)
        done = out / "shards" / shard_name(k)
        if (done / "params.json").is_file():  # shards appear by rename, so a present one is complete
            entries[k] = shard_entry(done)
        else:
            jobs.append((k, start, stop, str(out)))
    t0 = time.time()
    bar = tqdm(total=cfg.n, initial=cfg.n - sum(j[2] - j[1] for j in jobs), unit="img", desc="render",
               disable=not progress, dynamic_ncols=True)
    if jobs:
        if workers == 1:
            _worker_init(job_cfg)
            for job in jobs:
                k, entry, n = _render_shard(job)
                entries[k] = entry
                bar.update(n)
        else:
            ctx = mp.get_context("spawn")  # fresh interpreters: no inherited PyBullet state
            with ctx.Pool(min(workers, len(jobs)), initializer=_worker_init, initargs=(job_cfg,)) as pool:
                for k, entry, n in pool.imap_unordered(_render_shard, jobs):
                    entries[k] = entry
                    bar.update(n)
    bar.close()

    spec = load_object_spec(cfg.object)
    space = load_space(cfg.space_file)
    shards = [{"name": shard_name(k), "n": min(cfg.n, (k + 1) * cfg.shard_size) - k * cfg.shard_size,
               **entries[k]} for k in range(n_shards)]
    cam0 = cfg.cameras[0]
    fw, fh = cfg.frame_size(cam0)
    manifest = {
        "format": FORMAT, "object_name": cfg.object, "object": spec.to_dict(),
        "scene": SceneSpec.from_dict(cfg.scene).to_dict(), "cameras": cfg.cameras,
        "randomization": {"level": cfg.randomization, "space": space.to_dict(),
                          "ranges": {k: list(v) for k, v in _ranges(space, cfg.randomization).items()},
                          **({"pool_q_nominal": ADR_POOL_Q_NOMINAL} if cfg.randomization == "adr-pool" else {})},
        "seed": cfg.seed, "n": cfg.n, "shard_size": cfg.shard_size, "frame_hw": [fh, fw], "crop_px": cfg.crop_px,
        "crop_scale": cfg.crop_scale, "full_hw": [cam0["height"], cam0["width"]], "K_full": cam0["K"],
        "shards": shards, "code_version": code_version(), "config": job_cfg, "config_hash": key,
        "content_hash": sha256_of_json([s["sha256"] for s in shards]),
        "render_seconds_this_run": round(time.time() - t0, 2),
    }
    atomic_write_json(out / "manifest.json", manifest)
    (out / "generate.json").unlink(missing_ok=True)
    return out
