"""How each sim-to-real pipeline plugs into the training loop.

A pipeline decides (1) which dataset it accepts, (2) which samples make each batch, (3) how the images
are randomized on the fly, and (4) what it learns from the task's success (ADR). The training loop only
calls `check_dataset`, `batches`, `augment` (or `skip`), `report`, `state_dict`/`load_state_dict` and `card`.

Which dataset each pipeline expects and whether it randomizes images is the registry's word
(pose_model/registry.py); a dataset of another kind gets one warning.
- none:      images as rendered.
- dr, image-dr, oracle: randomizer.ImageRandomizer with the space's 'dr' image ranges, on the training device
             (dr on render-time-randomized data, image-dr on nominal renders, oracle on real photos).
- adr:       randomizer.ADR per Akkaya et al. 2019 Algorithm 1: render workers (render/adr_buffer.py) draw
             scenes from ADR's current ranges into the train split (a rolling buffer over a nominal dataset);
             boundary jobs are rendered at the boundary value, scored in eval mode on the whole pose task
             before they are trained on, and move the ranges (see ADRPipeline).
- simgan:    a dataset refined by refiner/ (its manifest has `refined_by`), images as stored.
- simgan+dr: the refined dataset plus the 'dr' image randomization.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict
from typing import Any, Iterator

import numpy as np
import torch

from core.io import UserError
from pose_model.registry import PipelineSpec, pipeline_spec


def warn(msg: str) -> None:
    """A one-line warning on stderr (not Python's warnings machinery, which also prints the source line)."""
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def dataset_level(manifest: dict) -> str:
    """What a dataset holds, in the registry's terms: its randomization level, or 'refined' for a SimGAN-refined
    set (render/dataset.py writes `randomization.level`; refiner/apply.py adds `refined_by`)."""
    if manifest.get("refined_by"):
        return "refined"
    return manifest["randomization"]["level"]


class Pipeline:
    """Base: images as stored (randomized on the fly when the registry says image_dr)."""

    def __init__(self, spec: PipelineSpec, space: tuple[Any, str], seed: int, device: torch.device) -> None:
        self.spec, self.name, self.randomize_images = spec, spec.name, spec.image_dr
        self.seed, self.device = seed, device
        self.space, self.space_source = None, space[1]
        self.randomizer = None
        if self.randomize_images:
            from randomizer import ImageRandomizer
            self.space = space[0]
            self.randomizer = ImageRandomizer(self.space, self.space.ranges("dr", acts_on="image")).to(device)

    # (1) ------------------------------------------------------------------------------------------
    def check_dataset(self, manifest: dict, data_dir: str) -> None:
        level = dataset_level(manifest)
        if level != self.spec.dataset:
            warn(f"{data_dir}: holds {level!r} data; pipeline {self.name!r} expects {self.spec.dataset!r} "
                 f"(see `sim2real train --help`)")

    # (2) ------------------------------------------------------------------------------------------
    def batches(self, train_idx: np.ndarray, batch_size: int, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, Any]]:
        perm = rng.permutation(train_idx)
        for i in range(0, len(perm) - batch_size + 1 if len(perm) >= batch_size else 1, batch_size):
            yield perm[i:i + batch_size], None

    def steps_per_epoch(self, n_train: int, batch_size: int) -> int:
        return max(1, n_train // batch_size)

    # (3) ------------------------------------------------------------------------------------------
    def set_epoch_seed(self, seed: int) -> None:
        if self.randomizer is not None and hasattr(self.randomizer, "set_seed"):
            self.randomizer.set_seed(seed)

    def augment(self, x: torch.Tensor, ctx: Any) -> torch.Tensor:
        if self.randomizer is None:
            return x
        return self.randomizer(x).clamp_(0, 1)

    def skip(self, n: int, height: int, width: int) -> None:
        """Draw what `augment` would for n images of height × width and apply nothing: a run that leaves out the
        crops (a shared, frozen regressor) keeps its frames' random stream where the full run has it."""
        if self.randomizer is not None:
            self.randomizer.sample_params(n, height, width)

    # (4) ------------------------------------------------------------------------------------------
    def report(self, ctx: Any, success: torch.Tensor) -> None:
        pass

    def end_epoch(self, out_dir) -> None:
        pass

    def close(self) -> None:
        """Release anything the pipeline started (ADR's render workers)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, d: dict) -> None:
        pass

    def card(self) -> dict:
        d: dict[str, Any] = {"pipeline": self.name}
        if self.space is not None:
            d["image_ranges"] = self.space.ranges("dr", acts_on="image")
            d["space"] = self.space_source
        return d


class NonePipeline(Pipeline):
    pass


class DRPipeline(Pipeline):
    pass


class SimGANPipeline(Pipeline):

    def check_dataset(self, manifest: dict, data_dir: str) -> None:
        if not manifest.get("refined_by"):
            raise UserError(f"{data_dir}/manifest.json: refined_by: pipeline {self.name} needs a dataset refined "
                            f"by a SimGAN refiner (`sim2real refine apply --refiner CKPT --data DIR --out DIR`)")


class SimGANDRPipeline(SimGANPipeline):
    pass


class ADRPipeline(Pipeline):
    """ADR per Akkaya et al. 2019, Algorithm 1, with render workers (render/adr_buffer.py).

    The train split of the (nominal) dataset is a rolling buffer: render workers draw scenes from ADR's current
    ranges and each finished job overwrites the oldest train slots, so training moves from nominal renders to
    ADR's ranges as they open. With probability p_b a job pins one boundary: it is rendered AT the boundary
    value (a render parameter) or rendered from the current ranges and scored with the image parameter pinned;
    such a job is first scored in eval mode on the whole pose task (localizer + regressor, success = rotation
    error < adr_success_deg and relative translation error < adr_success_depth), its success fraction goes to
    that boundary's buffer, and only then does it enter the training buffer.

    Schedule: at every training step the trainer submits `jobs_per_step` jobs per worker and collects the jobs
    submitted `lag_steps` steps earlier, in job order; the workers render them while it trains those steps (the
    paper's ADR eval workers run beside training the same way), and it waits only for a job that is late (the
    card reports that wait, and renderer samples/s against the trainer's consumption). Because which job lands
    at which step no longer depends on timing, one seed gives one ADR run, under either executor. (A free-running
    schedule, collecting whatever was ready, let the render worker's CPU share set how much ADR work a run did:
    under Ray it rendered and scored 1.6× as much as locally and the training took 22 % longer, measured.)
    """

    n_workers: int = 1          # render worker processes
    jobs_per_step: int = 3      # jobs submitted per worker per training step: with the default profile a
                                # free-running worker beside two trainings on 2 cores managed 2.8 jobs/step
    lag_steps: int = 4          # a job is collected this many steps after it was submitted (rendered meanwhile)
    scenes_per_job: int = 1     # scenes per job (each with the dataset's views_per_scene views): one ADR score
    adr_m: int = 2              # scores per boundary buffer: ~5 samples/s per worker on the 2-core box makes each
                                # decision cost m × (views) samples; m = 2 lets ranges move within a benchmark run

    def __init__(self, spec: PipelineSpec, space: tuple[Any, str], seed: int, device: torch.device) -> None:
        super().__init__(spec, space, seed, device)
        from randomizer import ADR, ADRConfig, ImageRandomizer
        self.space = space[0]
        self.adr = ADR(self.space, ADRConfig(m=self.adr_m), seed)
        self.randomizer = ImageRandomizer(self.space, self.space.ranges("nominal", acts_on="image")).to(device)
        self.log_rows: list[dict] = []
        self.step = 0
        self.buffer = None
        self.jobs: dict[int, tuple[int, int, Any]] = {}  # buffer job id → (job number, due step, draw)
        self.ready: dict[int, dict | None] = {}  # finished jobs not yet due: job id → arrays (None: failed)
        self.resubmit: list[tuple[int, int, Any]] = []  # a resumed run's jobs in flight at its checkpoint
        self.n_jobs = 0            # jobs submitted over the whole run (part of each job's seed key)
        self.cursor = 0            # next train slot to overwrite
        self.stats = {"samples_in": 0, "boundary_scored": 0, "service_s": 0.0, "wall_s": 0.0, "consumed": 0,
                      "wait_s": 0.0}

    def attach(self, params: list[dict], train_idx: np.ndarray) -> None:
        self.train_idx = np.asarray(train_idx, dtype=np.int64)

    def bind(self, model, data, cfg, manifest: dict) -> None:
        """Called by the trainer once the model exists: start the render workers with the dataset's renderer
        settings (so new samples match its frame size, crop size and cameras)."""
        from render.adr_buffer import RayRenderBuffer, RenderBuffer
        self.model, self.data, self.cfg = model, data, cfg
        gen_cfg = dict(manifest.get("config") or {})
        if not gen_cfg:
            raise UserError("--data: manifest.json: config: pipeline adr needs the renderer settings the dataset "
                            "was made with (render it with `sim2real generate`)")
        kind = RayRenderBuffer if cfg.render_backend == "ray" else RenderBuffer
        self.buffer = kind(gen_cfg, self.n_workers, space=self.space.to_dict())
        for number, due, draw in self.resubmit:  # resumed: the same jobs again, due at the same steps
            self._submit_job(number, due, draw)
        self.resubmit = []
        self.t0 = time.perf_counter()

    # ---- the rolling buffer ------------------------------------------------------------------
    def _submit_job(self, number: int, due: int, draw) -> None:
        job = self.buffer.submit((self.seed, 7919, number), draw.render_ranges, self.scenes_per_job)
        self.jobs[job] = (number, due, draw)

    def _submit(self) -> None:
        for _ in range(self.n_workers * self.jobs_per_step):
            self._submit_job(self.n_jobs, self.step + self.lag_steps, self.adr.propose())
            self.n_jobs += 1

    @torch.no_grad()
    def score(self, out: dict, draw) -> torch.Tensor:
        """Per-sample success of the whole pose task (eval mode) on rendered samples, images randomized
        inside the draw's image ranges (a pinned image parameter at its boundary value)."""
        from pose_model import geometry as G
        from pose_model.data import crops_from_rendered, to_float
        from randomizer import ImageRandomizer
        m, dev = self.model, self.device
        was = m.training
        m.eval()
        rand = ImageRandomizer(self.space, draw.image_ranges, seed=self.seed * 7_777 + self.n_jobs).to(dev)
        lab = out["labels"]
        f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(dev)  # noqa: E731
        frames = rand(to_float(torch.from_numpy(out["frames"]), dev)).clamp_(0, 1)
        crops = to_float(torch.from_numpy(out["crops"]), dev)
        cb, K, R, t = f32(lab["crop_box_full_px"]), f32(lab["K_full"]), f32(lab["R"]), f32(lab["t_m"])
        src = lambda box, n: rand(crops_from_rendered(crops, cb, box, n)).clamp_(0, 1)  # noqa: E731
        pred = m.infer(frames, src, K, self.cfg.refine_iters)
        re = G.sym_rotation_error_deg(pred["R"], R, m.syms)
        rel = (pred["t_m"] - t).norm(dim=-1) / t.norm(dim=-1)
        m.train(was)
        return (re < self.cfg.adr_success_deg) & (rel < self.cfg.adr_success_depth)

    def _write(self, out: dict) -> None:
        d, lab, n = self.data, out["labels"], len(out["frames"])
        slots = self.train_idx[(self.cursor + np.arange(n)) % len(self.train_idx)]
        self.cursor = (self.cursor + n) % len(self.train_idx)
        s = torch.as_tensor(slots)
        f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        d.frames[s] = torch.from_numpy(out["frames"])
        d.crops[s] = torch.from_numpy(out["crops"])
        d.R[s], d.t[s], d.K_full[s] = f32(lab["R"]), f32(lab["t_m"]), f32(lab["K_full"])
        d.centre[s], d.crop_box[s] = f32(lab["center_full_px"]), f32(lab["crop_box_full_px"])
        self.stats["samples_in"] += n

    def _collect(self, timeout: float = 0.0) -> None:
        for job_id, out, _ in self.buffer.poll(timeout):
            self.ready[job_id] = out

    def service(self, timeout_s: float = 600.0) -> int:
        """At the current step: collect the jobs due now, in job order (waiting for a late one, up to timeout_s),
        score boundary jobs (then report to ADR), write every job into the buffer, submit this step's jobs.
        Returns the number of jobs collected."""
        t0 = time.perf_counter()
        self._collect()
        self.last_jobs = []  # (draw, per-sample params, success or None) of the jobs just collected: for tests/logs
        for job_id in sorted(j for j, (_, due, _) in self.jobs.items() if due <= self.step):
            t_wait = time.perf_counter()
            while job_id not in self.ready:
                left = timeout_s - (time.perf_counter() - t_wait)
                if left <= 0:
                    raise RuntimeError(f"ADR: render job {self.jobs[job_id][0]} not back after {timeout_s:.0f} s")
                self._collect(timeout=min(left, 5.0))
            self.stats["wait_s"] += time.perf_counter() - t_wait
            out = self.ready.pop(job_id)
            _, _, draw = self.jobs.pop(job_id)
            if out is None:
                continue
            ok = None
            if draw.boundary is not None:
                ok = self.score(out, draw)
                self.stats["boundary_scored"] += len(ok)
                if self.adr.report(draw, float(ok.float().mean())):
                    self.log_rows.append(dict(self.adr.log_row(self.step)))
            self._write(out)
            self.last_jobs.append((draw, out["params"], ok))
        self._submit()
        self.stats["service_s"] += time.perf_counter() - t0
        return len(self.last_jobs)

    # ---- the training loop's hooks -------------------------------------------------------------
    def batches(self, train_idx, batch_size, rng):
        from randomizer.adr import ADRDraw
        for _ in range(self.steps_per_epoch(len(train_idx), batch_size)):
            if self.buffer is not None:
                self.service()
            # training samples are augmented inside ADR's current image ranges (nothing pinned)
            draw = ADRDraw(self.adr.ranges("image"), self.adr.ranges("render"))
            self.stats["consumed"] += batch_size
            yield rng.choice(train_idx, size=batch_size, replace=len(train_idx) < batch_size), draw

    def augment(self, x, draw):
        self.randomizer.set_ranges(draw.image_ranges)
        return self.randomizer(x).clamp_(0, 1)

    def report(self, draw, success):
        self.step += 1
        if self.step % 10 == 0:
            self.log_rows.append(dict(self.adr.log_row(self.step)))

    def end_epoch(self, out_dir) -> None:
        from randomizer import write_adr_log
        if self.buffer is not None:
            self.stats["wall_s"] = time.perf_counter() - self.t0
            self.stats["jobs_failed"] = self.buffer.n_failed
        if not self.log_rows or self.log_rows[-1]["step"] != self.step:
            self.log_rows.append(dict(self.adr.log_row(self.step)))
        if self.log_rows:
            write_adr_log(self.log_rows, out_dir)
            plot_adr_vs_dr(self.space, self.adr.ranges(), out_dir)

    def close(self) -> None:
        if self.buffer is not None:
            self.buffer.close()
            self.buffer = None

    def throughput(self) -> dict:
        wall = max(1e-9, self.stats["wall_s"])
        return {"renderer_samples_per_s": round(self.stats["samples_in"] / wall, 2),
                "trainer_samples_per_s": round(self.stats["consumed"] / wall, 2),
                "trainer_wait_s": round(self.stats["wait_s"], 2),  # waiting for late jobs
                "service_s": round(self.stats["service_s"], 2),  # waiting + scoring + copying into the buffer
                "jobs_per_step": self.n_workers * self.jobs_per_step, "lag_steps": self.lag_steps,
                "samples_rendered": self.stats["samples_in"],
                "jobs_failed": self.stats.get("jobs_failed", 0), "boundary_samples_scored": self.stats["boundary_scored"],
                "train_slots": int(len(getattr(self, "train_idx", []))), "n_workers": self.n_workers,
                "wall_s": round(wall, 2)}

    def state_dict(self) -> dict:
        in_flight = [[n, due, asdict(d)] for n, due, d in sorted(self.jobs.values(), key=lambda j: j[0])]
        return {"adr": self.adr.state_dict(), "log_rows": self.log_rows, "step": self.step, "n_jobs": self.n_jobs,
                "in_flight": in_flight}

    def load_state_dict(self, d: dict) -> None:
        # the rolling buffer's images are not saved: a resumed run starts from the dataset's images again
        self.adr.load_state_dict(d["adr"])
        self.log_rows = list(d["log_rows"])
        self.step = d["step"]
        self.n_jobs = int(d.get("n_jobs", 0))
        from randomizer.adr import ADRDraw
        self.resubmit = [(int(n), int(due), ADRDraw(**draw))
                         for n, due, draw in d.get("in_flight", [])]

    def card(self) -> dict:
        return {"pipeline": self.name, "adr_final_ranges": self.adr.ranges(), "adr_entropy": self.adr.entropy(),
                "adr_seed": self.seed, "adr_throughput": self.throughput(),
                "adr_note": "render jobs are collected at fixed steps (jobs_per_step, lag_steps): the same seed "
                            "replays the same ADR run, with worker processes or Ray actors alike",
                "space": self.space_source}


def plot_adr_vs_dr(space, adr_ranges: dict, out_dir) -> Any:
    """adr_vs_dr.png: per parameter, ADR's current range against DR's, each normalised to the hard limits'
    span (the x axis runs from one hard limit to the other; choices: options in use / all). Written
    atomically; returns the path."""
    import os
    from pathlib import Path

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in space.params if n in adr_ranges]
    fig, ax = plt.subplots(figsize=(7, 0.22 * len(names) + 1.0))
    for i, n in enumerate(names):
        p = space.params[n]
        dr = space.ranges("dr").get(n)
        if p.kind == "choice":
            k = len(p.choices)
            a, d = (0, len(adr_ranges[n]) / k), (0, len(dr) / k)
        else:
            span = max(p.high - p.low, 1e-12)
            a = ((adr_ranges[n][0] - p.low) / span, (adr_ranges[n][1] - p.low) / span)
            d = ((dr[0] - p.low) / span, (dr[1] - p.low) / span)
        ax.plot(d, [i + 0.15] * 2, color="tab:orange", lw=4, solid_capstyle="butt", label="DR" if i == 0 else None)
        ax.plot(a, [i - 0.15] * 2, color="tab:blue", lw=4, solid_capstyle="butt", label="ADR" if i == 0 else None)
        if a[0] == a[1]:
            ax.plot([a[0]], [i - 0.15], "|", color="tab:blue", ms=8)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("position within the hard limits (0 = low, 1 = high; choices: share of options)", fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = Path(out_dir) / "adr_vs_dr.png"
    tmp = out.with_name(".adr_vs_dr.png.tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    os.replace(tmp, out)
    return out


PIPELINE_CLASSES = {c.__name__: c for c in (NonePipeline, DRPipeline, ADRPipeline, SimGANPipeline, SimGANDRPipeline)}


def make_pipeline(name: str, space: tuple[Any, str] | None, seed: int, device: torch.device) -> Pipeline:
    """space: (randomizer.ParamSpace, where it came from) — see pose_model.train.space_for; None: the shipped
    default."""
    spec = pipeline_spec(name)
    if space is None:
        from randomizer.space import load_space
        space = (load_space(None), "randomizer/default.yaml")
    return PIPELINE_CLASSES[spec.cls](spec, space, seed, device)
