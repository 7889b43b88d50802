"""Render workers for ADR (Akkaya et al. 2019, "Solving Rubik's Cube with a Robot Hand", Algorithm 1).

ADR needs samples rendered from its *current* ranges, and boundary samples rendered AT a pinned boundary
value with every other parameter drawn from the current ranges. A pre-rendered pool cannot give that, so
here spawned worker processes (each with its own PyBullet client, the renderer of render/generate.py) take
jobs `(job_id, key, render_ranges, n_scenes)` from a queue and put back the rendered samples; under
`--executor ray` the workers are Ray actors instead (`RayRenderBuffer`, same jobs, same bytes). `poll` never
blocks unless asked to: the trainer (pose_model/pipelines.py, `ADRPipeline.service`) submits jobs, trains on
its rolling buffer while they render (the paper's ADR eval workers run beside training the same way) and
collects each job at a fixed later step.

Seeding: every job renders from the stream `key` (the trainer's seed and a job counter), so one job's images
depend only on its key and ranges; with jobs collected at fixed steps, one seed gives one ADR run.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import queue
import time
from typing import Any

import numpy as np


def _start_renderers(gen_cfg: dict[str, Any], space: dict | None):
    """This process's renderers (render/generate.py's worker set-up) with ADR's space → (renderers, views)."""
    import torch
    torch.set_num_threads(1)
    from render.generate import _WORKER, _worker_init
    _worker_init(gen_cfg)
    renderers, V = _WORKER["renderers"], int(gen_cfg.get("views_per_scene", 1))
    if space is not None:  # ADR's space (it may differ from the one the dataset was rendered with)
        from randomizer.space import space_from_dict
        sp = space_from_dict({"params": space}, "ADR space")
        for r in renderers:
            r.space = sp
    return renderers, V


def render_job(renderers, views: int, key: tuple[int, ...], ranges: dict[str, Any], n_scenes: int):
    """One job → (arrays | None, render seconds, error | None); its images depend only on key and ranges."""
    from render.dataset import labels_array
    t0 = time.perf_counter()
    samples = []
    try:
        for s in range(n_scenes):
            cam = int(np.random.default_rng([*key, s]).integers(len(renderers)))
            samples += renderers[cam].render_scene((*key, s), views, ranges)
    except RuntimeError as e:  # ranges that rarely show the cube: the job comes back empty
        return None, time.perf_counter() - t0, str(e)
    out = {"frames": np.stack([s.frame for s in samples]), "crops": np.stack([s.crop for s in samples]),
           "labels": labels_array([s.labels for s in samples]), "params": [s.params for s in samples]}
    return out, time.perf_counter() - t0, None


def _worker_main(gen_cfg: dict[str, Any], space: dict | None, inq, outq) -> None:
    renderers, V = _start_renderers(gen_cfg, space)
    while True:
        job = inq.get()
        if job is None:
            break
        job_id, key, ranges, n_scenes = job
        outq.put((job_id, *render_job(renderers, V, key, ranges, n_scenes)))
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
        self._reset_counts()

    def _reset_counts(self) -> None:
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
            self._account(out, secs)
            done.append((job_id, out, secs))
        if not done and any(not p.is_alive() for p in self.procs):
            raise RuntimeError("an ADR render worker died (see its traceback above)")
        return done

    def samples_per_s(self) -> float:
        return self.n_samples / max(1e-9, time.perf_counter() - self.t_start)

    def _account(self, out: dict | None, secs: float) -> None:
        self.render_s += secs
        if out is None:
            self.n_failed += 1
        else:
            self.n_samples += len(out["frames"])

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


class _RenderActor:
    """One Ray actor: its own renderers, one job per call (same code as a worker process)."""

    def __init__(self, gen_cfg: dict[str, Any], space: dict | None) -> None:
        self.renderers, self.views = _start_renderers(gen_cfg, space)

    def render(self, key: tuple[int, ...], ranges: dict[str, Any], n_scenes: int):
        return render_job(self.renderers, self.views, key, ranges, n_scenes)


class RayRenderBuffer(RenderBuffer):
    """RenderBuffer with Ray actors instead of processes (training under `--executor ray`). The actors are pinned
    to the trainer's node and declare no CPU of their own, exactly like the local executor's worker process
    beside a 1-CPU training task: an actor that asked for a CPU would wait while the other trainings hold them
    all (and the trainer would wait for its late jobs, so ADR would stall)."""

    def __init__(self, gen_cfg: dict[str, Any], n_workers: int = 1, space: dict | None = None) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        if not ray.is_initialized():  # inside a benchmark task Ray is up; a lone `train` starts or joins one
            ray.init(include_dashboard=False, configure_logging=False)
        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        actor = ray.remote(_RenderActor).options(num_cpus=0, scheduling_strategy=here)
        self.ray = ray
        self.actors = [actor.remote(gen_cfg, space) for _ in range(n_workers)]
        self.in_flight: dict[int, tuple[Any, cf.Future]] = {}   # job id → (ObjectRef, its Future; see poll)
        self.load = [0] * n_workers             # jobs in flight per actor
        self.actor_of: dict[int, int] = {}
        self._reset_counts()

    def submit(self, key: tuple[int, ...], ranges: dict[str, Any], n_scenes: int) -> int:
        job_id = self.next_id
        self.next_id += 1
        a = int(np.argmin(self.load))  # the least busy actor
        ref = self.actors[a].render.remote(tuple(int(k) for k in key), dict(ranges), int(n_scenes))
        self.in_flight[job_id] = (ref, ref.future())
        self.load[a] += 1
        self.actor_of[job_id] = a
        self.pending.add(job_id)
        return job_id

    def poll(self, timeout: float = 0.0) -> list[tuple[int, dict | None, float]]:
        """Finished jobs, read from futures that Ray's own threads resolve: never ray.wait / ray.get here. A task
        blocked in those lends its CPU back to the scheduler, even with timeout=0, and the scheduler starts another
        task beside it: under the benchmark three 1-CPU tasks then ran on 2 CPUs and every stage beside an ADR
        training ran 1.4–1.8× slower (measured; perf note in docs/cluster.md)."""
        futures = {job_id: fut for job_id, (_, fut) in self.in_flight.items()}
        if not futures:
            return []
        if timeout > 0 and not any(f.done() for f in futures.values()):
            cf.wait(list(futures.values()), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        done = []
        for job_id in [j for j, f in futures.items() if f.done()]:
            out, secs, _err = self.in_flight.pop(job_id)[1].result()  # an actor that died raises here (RayActorError)
            if out is not None:  # Ray hands back read-only views of its object store; torch wants writable arrays
                out = {k: np.require(v, requirements="W") if isinstance(v, np.ndarray) else v for k, v in out.items()}
            self.pending.discard(job_id)
            self.load[self.actor_of.pop(job_id)] -= 1
            self._account(out, secs)
            done.append((job_id, out, secs))
        return done

    def close(self) -> None:
        for a in getattr(self, "actors", []):
            try:
                self.ray.kill(a)
            except Exception:
                pass
        self.actors = []
        self.in_flight.clear()
        self.pending.clear()
