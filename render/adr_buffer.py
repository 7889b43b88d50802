"""Render workers for ADR (Akkaya et al. 2019, "Solving Rubik's Cube with a Robot Hand", Algorithm 1).

ADR needs samples rendered from its *current* ranges, and boundary samples rendered AT a pinned boundary
value with every other parameter drawn from the current ranges. A pre-rendered pool cannot give that, so
here spawned worker processes (each with its own PyBullet client, the renderer of render/generate.py) take
jobs `(job_id, key, render_ranges, n_scenes)` from a queue and put back the rendered samples. The trainer
never blocks on them: it submits jobs, collects whatever is ready between steps (`poll`), and keeps
training on its rolling buffer meanwhile (the paper's ADR eval workers run beside training the same way).

Seeding: every job renders from the stream `key` (the trainer's seed and a job counter), so one job's images
depend only on its key and ranges. Which step a job lands at depends on timing, so the same seed does NOT
give the same ADR log with asynchronous workers; the seed is recorded in the model card.
"""
from __future__ import annotations

import multiprocessing as mp
import queue
import time
from typing import Any

import numpy as np


def _worker_main(gen_cfg: dict[str, Any], space: dict | None, inq, outq) -> None:
    import torch
    torch.set_num_threads(1)
    from render.dataset import labels_array
    from render.generate import _WORKER, _worker_init
    _worker_init(gen_cfg)
    renderers, V = _WORKER["renderers"], int(gen_cfg.get("views_per_scene", 1))
    if space is not None:  # ADR's space (it may differ from the one the dataset was rendered with)
        from randomizer.space import space_from_dict
        sp = space_from_dict({"params": space}, "ADR space")
        for r in renderers:
            r.space = sp
    while True:
        job = inq.get()
        if job is None:
            break
        job_id, key, ranges, n_scenes = job
        t0 = time.perf_counter()
        samples = []
        try:
            for s in range(n_scenes):
                cam = int(np.random.default_rng([*key, s]).integers(len(renderers)))
                samples += renderers[cam].render_scene((*key, s), V, ranges)
        except RuntimeError as e:  # ranges that rarely show the cube: the job comes back empty
            outq.put((job_id, None, time.perf_counter() - t0, str(e)))
            continue
        out = {"frames": np.stack([s.frame for s in samples]), "crops": np.stack([s.crop for s in samples]),
               "labels": labels_array([s.labels for s in samples]), "params": [s.params for s in samples]}
        outq.put((job_id, out, time.perf_counter() - t0, None))
    for r in renderers:
        r.close()


class RenderBuffer:
    """A pool of spawned render workers fed through queues. `submit` returns a job id; `poll` returns the
    finished jobs as (job_id, arrays | None, render_seconds) without waiting (or waits up to `timeout` s for
    at least one)."""

    def __init__(self, gen_cfg: dict[str, Any], n_workers: int = 1, space: dict | None = None) -> None:
        ctx = mp.get_context("spawn")  # fresh interpreters: no inherited PyBullet or torch thread state
        self.inq, self.outq = ctx.Queue(), ctx.Queue()
        self.procs = [ctx.Process(target=_worker_main, args=(gen_cfg, space, self.inq, self.outq), daemon=True)
                      for _ in range(n_workers)]
        for p in self.procs:
            p.start()
        self.pending: set[int] = set()
        self.next_id = 0
        self.n_samples = 0
        self.render_s = 0.0
        self.n_failed = 0
        self.t_start = time.perf_counter()

    def submit(self, key: tuple[int, ...], ranges: dict[str, Any], n_scenes: int) -> int:
        job_id = self.next_id
        self.next_id += 1
        self.inq.put((job_id, tuple(int(k) for k in key), dict(ranges), int(n_scenes)))
        self.pending.add(job_id)
        return job_id

    def poll(self, timeout: float = 0.0) -> list[tuple[int, dict | None, float]]:
        done = []
        deadline = time.perf_counter() + timeout
        while self.pending:
            try:
                left = deadline - time.perf_counter()
                job_id, out, secs, err = self.outq.get(timeout=left) if (left > 0 and not done) else self.outq.get_nowait()
            except queue.Empty:
                break
            self.pending.discard(job_id)
            self.render_s += secs
            if out is None:
                self.n_failed += 1
            else:
                self.n_samples += len(out["frames"])
            done.append((job_id, out, secs))
        if not done and any(not p.is_alive() for p in self.procs):
            raise RuntimeError("an ADR render worker died (see its traceback above)")
        return done

    def samples_per_s(self) -> float:
        return self.n_samples / max(1e-9, time.perf_counter() - self.t_start)

    def close(self) -> None:
        for _ in self.procs:
            try:
                self.inq.put(None)
            except (ValueError, OSError):
                pass
        for p in self.procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
        self.procs = []
        self.pending.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
