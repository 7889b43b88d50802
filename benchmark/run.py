"""`sim2real benchmark`: every pipeline side by side on a real set, resumably, with a report to trust.

Stages (each recorded in OUT/stages.json when done; a rerun skips finished ones):
  real            the real set (imported from --from into the cache if needed); sessions split into
                  TUNE (refiner, oracle training, any tuning) and REPORT (every number in the table)
  data:<level>    synthetic datasets (nominal, dr, adr-pool), cached by config hash, reused across runs
  refiner:s<k>    SimGAN (seed k) trained on REFINED_FROM (dr) frames vs UNLABELLED tune-session images, then applied;
                  the SimGAN pipelines of seed k train on its output
  train:<p>:s<k>  the pose model for pipeline p, seed k (pose_model/registry.py: none, image-dr, render-dr, dr, adr,
                  hybrid-dr, simgan, simgan+dr, oracle), and
                  finetune: the FINETUNE_FROM model of seed k fine-tuned on the tune session's labelled photos;
                  depth-scale: the same model with its distances scaled by one number fitted on those photos
  score:<p>:s<k>  predictions on the report session → metrics (mean-pose baseline too)
  tune:<p>:s<k>   the same sim-trained model on the TUNE session's labelled photos → metrics: how far the tune
                  session's ranking (where settings are chosen) agrees with the report session's
  fuse:<p>:s<k>   a calibrated rig (extrinsics + capture instants in the real set): the same predictions fused
                  over the cameras of each instant (eval/fuse.py) → the rig rows, reported apart from the rest
  report          report.md, report.html, results.json (rows per (pipeline, seed), summary, paired)

Structure: `plan_jobs` lists the (pipeline, seed) jobs, `job_tasks` turns them into core.executor tasks (each
seed's refiner, trainings, scorings; a stage log entry each), `job_row` reads a finished job's row, `finish`
turns the rows into the analysis and the report.
Seeds vary everything trained (pose model, refiner); the synthetic datasets are rendered once (seed 0).
"""
from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from core.io import UserError, atomic_write_json, code_version, read_json
from core.profiles import pick_profile
from benchmark.analysis import DEPTH_SCALE_ROW, FINETUNE_ROW
from pose_model.registry import FINETUNE_FROM, HEADS, PIPELINES, REFINED_FROM, SIM_PIPELINES
TUNE_SESSION, REPORT_SESSION = "data", "test1"
# The sim pipeline the fine-tune row starts from: the best source inside the TUNE session, split by capture instants
# (fit on half of the instants, score the other half, both ways; seeds 0–2 of the 2e1a777 run; co-trained fine-tune
# of pose_model/finetune.py): mean over seeds of the median te / re after the fine-tune: hybrid-dr 13.7 mm / 20.9°,
# dr 19.2 / 32.7, simgan+dr 48.5 / 29.1, image-dr 107.1 / 24.2 (its localizer, trained on nominal frames, misses the
# cube on the tune session's desk). Re-checked the same way with the 16-epoch models of the a74091a run: hybrid-dr
# 14.0 mm / 13.4°, adr 12.3 / 13.9, dr 15.1 / 13.2, simgan+dr 27.7 / 17.9, image-dr 51.2 / 19.8; against hybrid-dr
# no source is resolved better (adr te −1.7 mm [−5.8, +3.2], re +0.5° [−7.2, +9.2]). With the render-dr row and
# SimGAN on dr renders (3d2f9e3 run): render-dr 12.0 mm / 7.8°, simgan 13.7 / 9.1; render-dr − hybrid-dr te −2.0 mm
# [−6.8, +5.9], re −5.6° [−10.9, −2.0] (resolved better), so render-dr it is (simgan − render-dr te +1.8, re +1.2,
# not resolved). Never chosen on the report session (disclosure: render-dr's report-session rows were already
# written). The constant lives in pose_model/registry.py (FINETUNE_FROM); the depth-scale row starts from it too.
SHARES_REGRESSOR_WITH = "image-dr"  # hybrid-dr's regressor trains on image-dr's data with image-dr's settings
HEAD_KEYS = ("ar", "te_mm_median", "re_deg_median", "acc_add_01d")  # what the direct-head comparison records
TUNE_SCORE_DIR = "score_tune_session"  # beside a run's report-session `score/`: its tune-session scores


@dataclass
class BenchProfile:
    n_synth: int                 # samples per synthetic dataset
    train_profile: str           # pose_model profile
    refiner_profile: str
    workers: int = 2
    train_overrides: dict[str, Any] = field(default_factory=dict)
    oracle_overrides: dict[str, Any] = field(default_factory=dict)
    finetune_overrides: dict[str, Any] = field(default_factory=dict)
    refiner_overrides: dict[str, Any] = field(default_factory=dict)
    refiner_check: dict[str, Any] = field(default_factory=lambda: {"n": 200, "n_patches": 400, "classifier_steps": 200})
    n_boot: int = 1000
    seeds: int = 1               # training seeds per pipeline when --seeds is not given


PROFILES = {
    # CI smoke test: every stage runs on tiny sizes; the numbers mean nothing
    "quick": BenchProfile(n_synth=96, train_profile="quick", refiner_profile="quick", n_boot=200,
                          oracle_overrides={"max_samples": 64}, finetune_overrides={"epochs": 1},
                          refiner_check={"n": 32, "n_patches": 64, "classifier_steps": 20}),
    # 2-core CPU, 3 seeds of every row, two trainings at once (README: measured time). 24 epochs: chosen on the
    # tune session only (README, "Training precision and length"; bf16, render-dr seeds 0–4 + image-dr 0–2, 24 − 16:
    # AR +0.043 [+0.005, +0.083], re −1.6° [−3.7, −0.1]) — at bf16 about the time 16 fp32 epochs took;
    # `--epochs 16` or `--epochs 8` for a quicker, less accurate run.
    # (a 16-map refiner: labels preserved as well as with 32 maps, refining 4× faster — refiner/README.md)
    "default": BenchProfile(n_synth=3072, train_profile="default", refiner_profile="default",
                            train_overrides={"epochs": 24}, oracle_overrides={"epochs": 60},
                            refiner_overrides={"ch": 16, "steps": 300}, seeds=3),
    # a GPU
    "full": BenchProfile(n_synth=40000, train_profile="full", refiner_profile="default",
                         oracle_overrides={"epochs": 150}, seeds=3),
}


class StageLog:
    """Finished stages with their results and wall time, persisted after each stage."""

    def __init__(self, out: Path, args: dict[str, Any]):
        self.path = out / "stages.json"
        self.state = read_json(self.path, "stage log") if self.path.is_file() else {"args": args, "stages": {}}
        old = self.state.get("args") or {}
        self.seeds_before: int | None = None  # set when this run adds seeds to a finished one
        if old != args and {**old, "seeds": args.get("seeds")} == args and args["seeds"] > old.get("seeds", 0):
            # more seeds, all else equal: every finished stage is one seed's (or shared by all), so it stays valid
            self.seeds_before, self.state["args"] = old["seeds"], args
        elif old != args:
            diff = "; ".join(f"{k}: {old.get(k, 'not recorded')} there, {args.get(k, 'not recorded')} now"
                             for k in sorted(set(old) | set(args)) if old.get(k) != args.get(k))
            raise UserError(f"{out}: holds a benchmark run with other arguments ({diff}); use another --out or "
                            f"delete it")

    def run(self, name: str, fn: Callable[[], dict[str, Any]], log=print) -> dict[str, Any]:
        done = self.state["stages"].get(name)
        if done is not None:
            log(f"[skip] {name} (done in {done['seconds']:.0f} s)")
            return done["result"]
        log(f"[run ] {name}")
        t0 = time.time()
        result = fn()
        self.record(name, result, time.time() - t0)
        return result

    def done(self) -> dict[str, Any]:
        """{stage: result} of the finished stages (what a resumed run skips)."""
        return {k: v["result"] for k, v in self.state["stages"].items()}

    def record(self, name: str, result: dict[str, Any], seconds: float) -> None:
        """Record a stage that ran elsewhere (an executor task); written at once, like run()."""
        self.state["stages"][name] = {"result": result, "seconds": round(seconds, 2),
                                      "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write_json(self.path, self.state)

    def seconds(self) -> dict[str, float]:
        """Wall time of each finished stage, in the order they finished."""
        items = sorted(self.state["stages"].items(), key=lambda kv: kv[1].get("finished_utc", ""))
        return {k: v["seconds"] for k, v in items}


def check_real_args(real: str, from_dir: str | None) -> None:
    """The cheap checks of --real/--from, done before --out is created."""
    from core.real_sets import KNOWN_REAL_SETS
    if from_dir is not None:
        if real != "aruco-cube":
            raise UserError(f"--from is supported for the aruco-cube real set, not {real!r}")
        if not (Path(from_dir) / "src2").is_dir():
            raise UserError(f"--from {from_dir}: src2/ not found (expected the upstream ArUco-cube tree, "
                            f"e.g. ../shared/real/aruco_cube)")
    elif real not in KNOWN_REAL_SETS and not Path(real).is_dir():
        raise UserError(f"--real {real}: unknown real set (expected one of {', '.join(KNOWN_REAL_SETS)} or a BOP folder)")


def prepare_real(real: str, from_dir: str | None, log=print) -> Path:
    from core.bop import has_capture_instants, has_world_cameras
    from core.objects import load_object_spec
    from core.real_sets import cached_real_dir, resolve_real
    from eval.score import spec_for_real
    check_real_args(real, from_dir)
    if from_dir is not None:
        root = cached_real_dir(real)
        try:
            if not (has_capture_instants(resolve_real(real)) and has_world_cameras(root)):
                # an import from before scene_instants.json / the rig's extrinsics: the statistics need the
                # instants, the rig rows the extrinsics
                log(f"{root}: imported before capture instants and rig extrinsics were recorded; importing again")
            elif spec_for_real(root).to_dict() != load_object_spec(real).to_dict():
                # the labels were solved with the markers' positions of another spec (e.g. the cube's size)
                log(f"{root}: imported with another {real} object spec than this version's; importing again")
            else:
                return root
        except UserError:
            pass  # not imported yet
        from eval.fetch import fetch_aruco_cube
        fetch_aruco_cube(from_dir=from_dir, log=log)
        return root
    return resolve_real(real)


def session_split(real_root: Path, tune: str = TUNE_SESSION, report: str = REPORT_SESSION
                  ) -> tuple[list[int], list[int]]:
    """Scene ids of the tune and the report session (any imported set's named sessions)."""
    from core.bop import read_scene_groups
    groups = read_scene_groups(real_root)
    if tune == report:
        raise UserError(f"--tune/--report: both are {tune!r}; the benchmark tunes on one session and reports on "
                        f"another (this set has {', '.join(sorted(groups))})")
    for opt, name in (("--tune", tune), ("--report", report)):
        if name not in groups:
            raise UserError(f"{opt} {name}: no such session in {real_root} (it has {', '.join(sorted(groups))})")
    return groups[tune], groups[report]


def synth_object(real_root: Path) -> str:
    """The object to render for a real set: its built-in name, else the spec file its import recorded."""
    from core.objects import BUILTIN_OBJECTS
    from core.real_sets import MANIFEST
    from eval.score import spec_for_real
    spec = spec_for_real(real_root)
    if spec.name in BUILTIN_OBJECTS:
        return spec.name
    src = (read_json(real_root / MANIFEST) if (real_root / MANIFEST).is_file() else {}).get("object_source", "")
    if src and Path(src).is_file():
        return src
    raise UserError(f"{real_root}: object {spec.name!r} is not built in and its spec file is not recorded/found")


def synth_dataset(level: str, prof: BenchProfile, real_root: Path, seed: int, log=print, executor=None) -> dict[str, Any]:
    """Generate (or reuse, keyed by the config hash) the synthetic dataset at one randomization level."""
    from core.io import sha256_of_json
    from core.objects import load_object_spec
    from core.real_sets import cache_dir
    from render.generate import GenerateConfig, cameras_like_real, generate_dataset
    obj = synth_object(real_root)
    cfg = GenerateConfig(object=obj, n=prof.n_synth, seed=seed, randomization=level,
                         cameras=cameras_like_real(str(real_root)), shard_size=min(256, ((prof.n_synth + 3) // 4) * 4))
    from render.dataset import FORMAT, read_manifest
    # a new dataset format or a changed object spec (its size, its faces): a new cache entry
    key = sha256_of_json({**asdict(cfg), "format": FORMAT, "object": load_object_spec(obj).to_dict()})[:12]
    out = cache_dir() / "synth" / f"{Path(obj).stem}-{level}-{prof.n_synth}-{key}"
    generate_dataset(cfg, out, workers=prof.workers, progress=True, executor=executor)
    m = read_manifest(out)
    return {"path": str(out), "content_hash": m["content_hash"], "n": m["n"], "randomization": level}


def _bars() -> bool:
    """Progress bars for a task's training only on a terminal: in a log file two tasks' bars at once were ≈ 1.5 MB
    of carriage returns per run, burying the stage and epoch lines (which are printed either way)."""
    return sys.stderr.isatty()


def _train(data: str | dict[str, Any], out: Path, pipeline: str, prof: BenchProfile, seed: int, device: str,
           overrides: dict[str, Any], regressor_from: dict[str, Any] | None = None) -> dict[str, Any]:
    """One (pipeline, seed) training (an executor task); data: a dataset folder or a data stage's result;
    regressor_from: the training stage whose regressor this one shares (hybrid-dr: image-dr's)."""
    from pose_model.config import make_config
    from pose_model.train import train
    data = data["path"] if isinstance(data, dict) else data
    if regressor_from is not None:
        overrides = {**overrides, "regressor_from": regressor_from["checkpoint"]}
    cfg = make_config(prof.train_profile, data=data, out=str(out), pipeline=pipeline, seed=seed, device=device,
                      resume=(out / "model.pt").is_file() or (out / "last.pt").is_file(), **overrides)
    t0 = time.time()
    ckpt = train(cfg, progress=_bars())
    card = read_json(out / "model_card.json", "model card") if (out / "model_card.json").is_file() else {}
    return {"checkpoint": str(ckpt), "train_seconds": round(card.get("train_time_s", time.time() - t0), 1),
            "val": card.get("val_metrics", {})}


def _score(pred_csv: Path, real_root: Path, scene_ids: list[int], out: Path, n_boot: int) -> dict[str, Any]:
    from core.bop import read_results_csv
    from eval.score import score_predictions, spec_for_real, write_score_outputs
    spec = spec_for_real(real_root)
    rows = read_results_csv(pred_csv)
    metrics, per_image = score_predictions(rows, real_root, spec, scene_ids=scene_ids, n_boot=n_boot)
    write_score_outputs(out, metrics, per_image, real_root, spec, rows)
    return {"metrics": metrics, "score_dir": str(out), "pred_csv": str(pred_csv)}


def run_benchmark(real: str = "aruco-cube", from_dir: str | None = None, profile: str = "default",
                  seeds: int | None = None, out: str | os.PathLike = "reports/latest", device: str = "auto",
                  pipelines: tuple[str, ...] = SIM_PIPELINES, log=print, executor: str = "local",
                  workers: int | None = None, ray_address: str | None = None, tune: str = TUNE_SESSION,
                  report: str = REPORT_SESSION, epochs: int | None = None, head: str | None = None,
                  renders: int | None = None) -> Path:
    """Run (or resume) the benchmark. The grid of refiner, trainings and scorings runs as tasks of a
    core.executor (--executor local with --workers N tasks at once, or ray); the stage log stays the
    single record: this process writes it as each task finishes. epochs: the sim pipelines' training
    epochs (None: the profile's); the oracle and the fine-tune keep theirs. renders: samples per synthetic dataset
    (None: the profile's n_synth). head: the pose head every row reports (one of pose_model.registry.HEADS; None:
    each checkpoint's own, pnp-rot for every model trained here). A head
    chosen per model on the tune session's labelled photos (best AR) was tried at 72d3717: it did not carry over
    to the report session (README, "Depth")."""
    prof = pick_profile(PROFILES, profile)
    seeds = prof.seeds if seeds is None else seeds
    if epochs is not None:
        if epochs < 1:
            raise UserError(f"--epochs {epochs}: expected at least 1")
        prof = replace(prof, train_overrides={**prof.train_overrides, "epochs": epochs})
    if renders is not None:
        if renders < 16:
            raise UserError(f"--renders {renders}: expected at least 16")
        prof = replace(prof, n_synth=renders)
    if seeds < 1:
        raise UserError(f"--seeds {seeds}: expected at least 1")
    if head is not None and head not in HEADS:
        raise UserError(f"--head {head}: expected one of {', '.join(HEADS)}")
    bad = [p for p in pipelines if p not in SIM_PIPELINES]
    if bad:
        raise UserError(f"--pipelines: unknown {bad[0]!r} (expected {', '.join(SIM_PIPELINES)})")
    check_real_args(real, from_dir)
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if from_dir is None:  # a bad session name fails before anything is written
        session_split(prepare_real(real, None, log), tune, report)
    from core.executor import make_executor
    with make_executor(executor, workers or prof.workers, ray_address) as ex:  # joins a cluster before writing
        return _run(ex, real, from_dir, profile, prof, seeds, Path(out), device, pipelines, log, tune, report, head)


def sim_epochs(prof: BenchProfile) -> int:
    """The sim pipelines' training epochs under a benchmark profile (its override, else the train profile's)."""
    from pose_model.config import PROFILE_SIZES, TrainConfig
    default = PROFILE_SIZES[prof.train_profile].get("epochs", TrainConfig.epochs)
    return int(prof.train_overrides.get("epochs", default))


def _device_for(ex, device: str) -> tuple[str, float]:
    """The tasks' device and GPUs per training task. On Ray, 'auto' means: CUDA if the cluster has GPUs
    (the driver itself may be a CPU-only head node)."""
    from core.device import pick_device
    if ex.kind == "ray":
        if device == "auto":
            device = "cuda" if ex.cluster_gpus() > 0 else "cpu"
        elif device not in ("cpu",) and not device.startswith("cuda"):
            pick_device(device)  # the one error message for a bad --device
    else:
        device = str(pick_device(device))
    return device, (1.0 if device.startswith("cuda") else 0.0)


def _run(ex, real: str, from_dir: str | None, profile: str, prof: BenchProfile, seeds: int, out: Path,
         device: str, pipelines: tuple[str, ...], log, tune: str = TUNE_SESSION,
         report: str = REPORT_SESSION, head: str | None = None) -> Path:
    dev, gpus = _device_for(ex, device)
    out.mkdir(parents=True, exist_ok=True)
    # --from as an absolute path: `../shared/...` and `/work/shared/...` are the same run (resume matches either)
    args = {"real": real, "from": str(Path(from_dir).resolve()) if from_dir else None, "profile": profile, "seeds": seeds,
            "pipelines": list(pipelines)}
    if (tune, report) != (TUNE_SESSION, REPORT_SESSION):  # only then: earlier runs' stage logs stay valid
        args.update(tune=tune, report=report)
    # the effective epochs, given or not: a run of an older default (8) is not resumed with another
    args["epochs"] = sim_epochs(prof)
    if head is not None:  # only when given: runs from before --head stay resumable
        args["head"] = head
    if prof.n_synth != pick_profile(PROFILES, profile).n_synth:  # only when not the profile's: older runs resume
        args["renders"] = prof.n_synth
    stages = StageLog(out, args)
    if stages.seeds_before is not None:
        log(f"{out}: adding seeds {stages.seeds_before}–{seeds - 1} to a run of {stages.seeds_before} seed(s); "
            f"its finished stages are kept")
    t_start = time.time()

    real_root = Path(stages.run("real", lambda: {"root": str(prepare_real(real, from_dir, log))}, log)["root"])
    tune_scenes, report_scenes = session_split(real_root, tune, report)

    # nominal is always needed: the mean-pose baseline starts from it; the SimGAN rows refine REFINED_FROM renders
    levels = sorted({"nominal"} | {REFINED_FROM if PIPELINES[p].dataset == "refined" else PIPELINES[p].dataset
                                   for p in pipelines}
                    | {PIPELINES[p].loc_dataset for p in pipelines if PIPELINES[p].loc_dataset})
    data: dict[str, Any] = {
        lv: stages.run(f"data:{lv}", lambda lv=lv: synth_dataset(lv, prof, real_root, seed=0, log=log, executor=ex),
                       log) for lv in levels}
    # the oracle's real training set, made once here (cached on disk) so that seeds can train at once
    from eval.real_dataset import real_to_dataset
    from eval.score import spec_for_real
    oracle_data = str(real_to_dataset(real_root, tune_scenes, spec_for_real(real_root), out / "data_oracle"))

    from core.bop import has_capture_instants, has_world_cameras
    ctx = Context(prof, out, dev, gpus, real_root, tune_scenes, report_scenes, data, oracle_data, tune, report,
                  render_backend="ray" if ex.kind == "ray" else "process",
                  rig=has_world_cameras(real_root) and has_capture_instants(real_root), head=head)
    jobs = plan_jobs(pipelines, seeds)
    tasks = job_tasks(jobs, ctx)
    done = stages.done()
    for t in tasks:
        if t.name in done:
            log(f"[skip] {t.name} (done in {stages.state['stages'][t.name]['seconds']:.0f} s)")
    n_done = sum(t.name in done for t in tasks)

    def finished(t, r, sec: float) -> None:  # recorded at once; one line per task, so a log shows where the run is
        nonlocal n_done
        stages.record(t.name, r, sec)
        n_done += 1
        log(f"[done] {t.name} in {sec:.0f} s ({n_done}/{len(tasks)} tasks)")
    res = ex.run(tasks, known={t.name: done[t.name] for t in tasks if t.name in done},
                 on_start=lambda t: log(f"[run ] {t.name}"), on_done=finished)
    for seed in range(seeds):
        if f"refiner:s{seed}" in res:
            data[f"refined_s{seed}"] = res[f"refiner:s{seed}"]
    rows = [job_row(j, res) for j in jobs]
    rig_rows = [rig_row(j, res) for j in jobs if j.fuse_stage in res]
    executor_info = ex.describe()
    ex.release()  # no more tasks: a private Ray shuts down while the report is written

    stages_s = stages.seconds()
    log("wall time per stage (s):\n" + "\n".join(f"  {k:<28}{v:>9.1f}" for k, v in stages_s.items())
        + f"\n  {'total (stages)':<28}{sum(stages_s.values()):>9.1f}")
    finish(ctx, rows, {
        "profile": profile, "real": real, "real_root": str(real_root), "tune_session": tune,
        "report_session": report, "tune_scenes": tune_scenes, "report_scenes": report_scenes,
        "seeds": list(range(seeds)), "code_version": code_version(), "device": dev, "machine": machine_info(dev),
        "executor": executor_info, "datasets": data, "stage_seconds": stages_s,
        "wall_seconds_this_run": round(time.time() - t_start, 1), "command": args,
        "who_saw_what": who_saw_what(ctx, pipelines), "refiner_check": res.get(REFINER_CHECK),
        "seed_policy": "each seed retrains every pose model and the refiner; synthetic datasets rendered once "
                       "(seed 0); the bootstrap seed of every interval is 0",
    }, rig_rows)
    log(f"report: {out / 'report.md'}")
    return out


ORACLE, MEAN_POSE, FINETUNE, DEPTH_SCALE = "oracle", "mean-pose", "finetune", "depth-scale"
REFINER_CHECK = "check:refiner:s0"
ROW_NAMES = {ORACLE: "oracle (real, other session)", MEAN_POSE: "mean-pose", FINETUNE: FINETUNE_ROW,
             DEPTH_SCALE: DEPTH_SCALE_ROW}
RIG_SUFFIX = " (rig)"  # a rig row: the pipeline's predictions fused over the cameras of each capture instant


@dataclass(frozen=True)
class Job:
    """One row of the results: pipeline `pipeline` (a registry pipeline, ORACLE or MEAN_POSE) at seed `seed`."""
    pipeline: str
    seed: int

    @property
    def row_name(self) -> str:
        return ROW_NAMES.get(self.pipeline, self.pipeline)

    @property
    def run_dir_name(self) -> str:
        return "mean_pose" if self.pipeline == MEAN_POSE else f"{self.pipeline.replace('+', '_')}_s{self.seed}"

    @property
    def train_stage(self) -> str | None:
        return None if self.pipeline == MEAN_POSE else f"train:{self.pipeline}:s{self.seed}"

    @property
    def score_stage(self) -> str:
        return "score:mean-pose" if self.pipeline == MEAN_POSE else f"score:{self.pipeline}:s{self.seed}"

    @property
    def tune_stage(self) -> str | None:
        """Sim rows: the model scored on the tune session too (not the rows trained or fitted on its photos)."""
        return f"tune:{self.pipeline}:s{self.seed}" if self.pipeline in SIM_PIPELINES else None

    @property
    def fuse_stage(self) -> str | None:
        """Rig rows: the sim-trained models' predictions fused over the rig (not the floor, not the oracle)."""
        return None if self.pipeline in (MEAN_POSE, ORACLE) else f"fuse:{self.pipeline}:s{self.seed}"

    @property
    def refiner_stage(self) -> str | None:
        """The refiner this job trains on (SimGAN pipelines: the refiner of the same seed)."""
        spec = PIPELINES.get(self.pipeline)
        return f"refiner:s{self.seed}" if spec is not None and spec.dataset == "refined" else None


def plan_jobs(pipelines: tuple[str, ...], seeds: int) -> list[Job]:
    """Every (pipeline, seed) job, seed by seed (a seed's rows are complete before the next seed starts), the
    oracle and the real-label rows (fine-tune, depth scale: when FINETUNE_FROM is among the pipelines) per seed,
    then the mean-pose floor (deterministic: one row)."""
    extra = (ORACLE, FINETUNE, DEPTH_SCALE) if FINETUNE_FROM in pipelines else (ORACLE,)
    return [Job(p, s) for s in range(seeds) for p in (*pipelines, *extra)] + [Job(MEAN_POSE, 0)]


@dataclass
class Context:
    """What every job needs: the profile, where to write, the device, the real set's session split, the data."""
    prof: BenchProfile
    out: Path
    dev: str
    gpus: float                  # GPUs per training task (0 on CPU)
    real_root: Path
    tune_scenes: list[int]
    report_scenes: list[int]
    data: dict[str, dict[str, Any]]
    oracle_data: str
    tune_session: str = TUNE_SESSION      # --tune: refiner (unlabelled) and oracle
    report_session: str = REPORT_SESSION  # --report: every number
    render_backend: str = "process"       # ADR's render workers: Ray actors under --executor ray
    head: str | None = None               # --head: the pose head every row reports (None: each checkpoint's own)
    rig: bool = False                     # the real set has rig extrinsics and capture instants: fuse stages run

    @property
    def refiner_holdout(self) -> list[int]:
        """Tune-session scenes the refiners never see: the refiner check measures realism on them (its last
        scene, when the session has two or more; else none, and the check reads the report session)."""
        return self.tune_scenes[-1:] if len(self.tune_scenes) > 1 else []

    @property
    def refiner_check_session(self) -> str:
        return self.tune_session if self.refiner_holdout else self.report_session


def job_tasks(jobs: list[Job], ctx: Context) -> list:
    """The executor tasks of the jobs, in the order a single worker runs them: each seed's refiner just before
    that seed's first SimGAN pipeline (so the other rows come first), then the training, then the scoring."""
    from core.executor import After, Task
    prof, cpus = ctx.prof, 1.0  # the quick/default profiles train on one torch thread
    tasks: list[Task] = []
    for j in jobs:
        run_dir = ctx.out / "runs" / j.run_dir_name
        if j.pipeline == MEAN_POSE:
            tasks.append(Task(j.score_stage, _mean_pose, (ctx.data["nominal"]["path"], ctx.real_root,
                                                          ctx.report_scenes, ctx.out, prof.n_boot)))
            continue
        if j.refiner_stage and not any(t.name == j.refiner_stage for t in tasks):
            tasks.append(Task(j.refiner_stage, _refine, (ctx.data[REFINED_FROM]["path"], str(ctx.real_root),
                                                         str(ctx.out), prof, ctx.dev, j.seed, ctx.tune_session,
                                                         ctx.refiner_holdout), num_cpus=cpus, num_gpus=ctx.gpus))
            if j.seed == 0:  # the report's realism / label-preservation figures, for the seed-0 refiner
                tasks.append(Task(REFINER_CHECK, _check_refiner,
                                  (After(j.refiner_stage), ctx.data[REFINED_FROM], str(ctx.real_root),
                                   str(ctx.out), ctx.refiner_check_session, prof.refiner_check, ctx.dev),
                                  num_cpus=cpus, num_gpus=ctx.gpus))
        if j.pipeline == FINETUNE:
            tasks.append(Task(j.train_stage, _finetune, (After(f"train:{FINETUNE_FROM}:s{j.seed}"), ctx.oracle_data,
                                                          run_dir, ctx.real_root, ctx.tune_session, j.seed, ctx.dev,
                                                          prof.finetune_overrides), num_cpus=cpus, num_gpus=ctx.gpus))
        elif j.pipeline == DEPTH_SCALE:
            tasks.append(Task(j.train_stage, _calibrate_depth, (After(f"train:{FINETUNE_FROM}:s{j.seed}"), run_dir,
                                                                 ctx.real_root, ctx.tune_session, ctx.dev, ctx.head),
                              num_cpus=cpus, num_gpus=ctx.gpus))
        elif j.pipeline == ORACLE:
            tasks.append(Task(j.train_stage, _train, (ctx.oracle_data, run_dir, j.pipeline, prof, j.seed, ctx.dev,
                                                      prof.oracle_overrides), num_cpus=cpus, num_gpus=ctx.gpus))
        else:
            src = After(j.refiner_stage) if j.refiner_stage else ctx.data[PIPELINES[j.pipeline].dataset]
            over = prof.train_overrides
            if j.pipeline == "adr" and ctx.render_backend != "process":
                over = {**over, "render_backend": ctx.render_backend}
            loc_level, shared = PIPELINES[j.pipeline].loc_dataset, None
            if loc_level:  # the localizer's frames from another rendered set
                over = {**over, "loc_data": ctx.data[loc_level]["path"]}
                # its regressor is image-dr's, step for step (same data, seed, settings): trained once, shared
                twin = f"train:{SHARES_REGRESSOR_WITH}:s{j.seed}"
                shared = After(twin) if any(x.train_stage == twin for x in jobs) else None
            tasks.append(Task(j.train_stage, _train, (src, run_dir, j.pipeline, prof, j.seed, ctx.dev, over, shared),
                              num_cpus=cpus, num_gpus=ctx.gpus))
        tasks.append(Task(j.score_stage, _predict_and_score, (After(j.train_stage), ctx.real_root,
                                                              ctx.report_scenes, run_dir, ctx.dev, prof.n_boot,
                                                              ctx.head),
                          num_cpus=1.0, num_gpus=ctx.gpus / 4))
        if j.tune_stage:
            tasks.append(Task(j.tune_stage, _score_tune_session, (After(j.train_stage), ctx.real_root, ctx.tune_scenes,
                                                                  run_dir, ctx.dev, ctx.head),
                              num_cpus=1.0, num_gpus=ctx.gpus / 4))
        if ctx.rig and j.fuse_stage:
            tasks.append(Task(j.fuse_stage, _fuse_and_score, (After(j.score_stage), ctx.real_root, ctx.report_scenes,
                                                              run_dir, prof.n_boot), num_cpus=1.0))
    return tasks


def job_row(job: Job, results: dict[str, Any]) -> dict[str, Any]:
    """The results row of a finished job (results: stage name → that stage's result)."""
    sc = results[job.score_stage]
    if job.train_stage is None:
        return {"pipeline": job.row_name, "seed": job.seed, "train_seconds": 0.0, "checkpoint": None,
                **sc["metrics"], "score_dir": sc["score_dir"]}
    tr = results[job.train_stage]
    return {"pipeline": job.row_name, "seed": job.seed, "train_seconds": tr["train_seconds"],
            "checkpoint": tr["checkpoint"],
            **({"synthetic_val": tr.get("val", {})} if job.pipeline in PIPELINES else {}),
            **sc["metrics"], "score_dir": sc["score_dir"],
            **({"head": sc["head"]} if "head" in sc else {}),
            **({"tune_session": results[job.tune_stage]["metrics"]} if job.tune_stage in results else {}),
            **({"direct_head": sc["direct_head"]} if "direct_head" in sc else {})}


def rig_row(job: Job, results: dict[str, Any]) -> dict[str, Any]:
    """The rig row of a finished job: its report-session predictions fused over the rig's cameras."""
    sc, tr = results[job.fuse_stage], results[job.train_stage]
    return {"pipeline": job.row_name + RIG_SUFFIX, "seed": job.seed, "train_seconds": tr["train_seconds"],
            "checkpoint": tr["checkpoint"], **sc["metrics"], "score_dir": sc["score_dir"], "fusion": sc["fusion"]}


def who_saw_what(ctx: Context, pipelines: tuple[str, ...]) -> dict[str, Any]:
    """What each trained or tuned thing saw, from what this run actually passed to it."""
    sims = [p for p in pipelines if PIPELINES[p].dataset != "refined"]
    simgans = [p for p in pipelines if PIPELINES[p].dataset == "refined"]
    d: dict[str, Any] = {
        "report_session": {"session": ctx.report_session, "scenes": ctx.report_scenes,
                           "seen_by": "scoring only: every number in the report"
                                      + ("" if ctx.refiner_holdout else ", including the refiner check's realism "
                                         "scores (its photos; the cube-centred windows use their labelled cube centres)")
                                      + "; nothing is trained, tuned or selected on it by this run"},
        "oracle": {"session": ctx.tune_session, "scenes": ctx.tune_scenes, "labels": True},
        "mean-pose": "labels of the nominal synthetic set only",
    }
    if sims:
        d["pose models " + ", ".join(sims)] = "synthetic renders only (labels from the renderer)"
    if FINETUNE_FROM in pipelines:
        d[f"{FINETUNE_ROW}; {DEPTH_SCALE_ROW}"] = {"session": ctx.tune_session, "scenes": ctx.tune_scenes,
                                                   "labels": True, "starts from": f"{FINETUNE_FROM}, same seed"}
    if simgans:
        seen = {k: v for k, v in ctx.data.items() if k.startswith("refined_s")}
        d["refiner (SimGAN), one per seed"] = {
            "session": ctx.tune_session, "labels": False,
            "scenes read (refiner cards)": sorted({s for v in seen.values() for s in v.get("real_scenes_seen", [])}),
            "images read per seed": [v.get("real_images_seen") for _, v in sorted(seen.items())],
            "held back for the refiner check (never read by a refiner)": ctx.refiner_holdout}
        d["pose models " + ", ".join(simgans)] = "refined synthetic renders (renderer labels)"
        d["refiner settings"] = {"fixed in the profile": ctx.prof.refiner_overrides,
                                 "how they were chosen": "refiner/README.md"}
    return d


def finish(ctx: Context, rows: list[dict[str, Any]], meta: dict[str, Any],
           rig_rows: list[dict[str, Any]] | None = None) -> Path:
    """Finished rows → analysis (summary over seeds, paired differences, controls, ranking, verdict; the rig rows
    apart, against their single-view rows) and the report (report.md, report.html, results.json)."""
    from benchmark.analysis import analyse, missed_share, read_per_image, rig_analysis, tune_vs_report
    from benchmark.report import write_report
    for r in rows:  # the share of photos where the cube was missed, on both sessions (the report compares them)
        if r.get("tune_session"):
            r["missed_share"] = missed_share(read_per_image(r["score_dir"]))
            r["tune_session"] = {**r["tune_session"], "missed_share": missed_share(
                read_per_image(Path(r["score_dir"]).parent / TUNE_SCORE_DIR))}
    an = analyse(rows, ctx.real_root, ctx.prof.n_boot)
    an["rig"] = rig_analysis(rows, rig_rows or [], ctx.real_root, ctx.prof.n_boot, RIG_SUFFIX)
    an["adr_ranges"] = _adr_ranges(ctx, rows)
    an["tune_vs_report"] = tune_vs_report(rows)
    write_report(ctx.out, rows, meta, an, rig_rows or [])
    return ctx.out / "report.md"


def _adr_ranges(ctx: Context, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """ADR's final ranges per seed (the adr rows' model cards) against DR's, in the space ADR trained with (the
    nominal dataset's manifest: the benchmark passes no --space). None without adr rows."""
    from benchmark.analysis import adr_ranges_reached
    from randomizer.space import space_from_dict
    cards = [Path(r["checkpoint"]).parent / "model_card.json" for r in sorted(rows, key=lambda r: r["seed"])
             if r["pipeline"] == "adr" and r.get("checkpoint")]
    cards = [read_json(c, "model card") for c in cards if c.is_file()]
    if not cards or "nominal" not in ctx.data:
        return None
    man = Path(ctx.data["nominal"]["path"]) / "manifest.json"
    space = space_from_dict({"params": read_json(man, "dataset manifest")["randomization"]["space"]}, str(man))
    return adr_ranges_reached([c["adr_final_ranges"] for c in cards], space)


def _refine(synthetic: str, real_root: str, out: str, prof: BenchProfile, dev: str, seed: int = 0,
            tune: str = TUNE_SESSION, holdout: list[int] = ()) -> dict[str, Any]:
    """SimGAN (seed `seed`) on the `synthetic` set's frames (REFINED_FROM renders) vs UNLABELLED tune-session
    images, less the `holdout` scenes (kept for the refiner check), then applied to that set (an executor task).
    Seed 0 keeps the folder names refiner/ and data_refined/."""
    from refiner.apply import refine_dataset
    from refiner.train import make_config, train_refiner
    sfx = "" if seed == 0 else f"_s{seed}"
    rdir = Path(out) / f"refiner{sfx}"
    cfg = make_config(prof.refiner_profile, synthetic=synthetic, real=real_root, out=str(rdir), seed=seed,
                      device=dev, sessions=(tune,), exclude=tuple(f"test/{sid:06d}/*" for sid in holdout),
                      resume=(rdir / "state.pt").is_file(),
                      **prof.refiner_overrides)
    ckpt = train_refiner(cfg, progress=_bars())
    refined = Path(out) / f"data_refined{sfx}"
    refine_dataset(ckpt, synthetic, refined, device=dev)
    from render.dataset import read_manifest
    m = read_manifest(refined)
    # what it actually read, from its card (BOP paths test/<scene>/rgb/<im>.jpg): the report's "who saw what"
    card = read_json(rdir / "refiner_card.json", "refiner card")
    files = card.get("real", {}).get("files", [])
    scenes = sorted({int(f.split("/")[1]) for f in files if f.count("/") >= 2 and f.split("/")[1].isdigit()})
    return {"checkpoint": str(ckpt), "path": str(refined), "content_hash": m["content_hash"],
            "trained_on_session": tune, "seed": seed, "real_images_seen": len(files),
            "real_scenes_seen": scenes}


def _check_refiner(refined: dict[str, Any], synthetic: dict[str, Any], real_root: str, out: str, session: str,
                   sizes: dict[str, Any], dev: str) -> dict[str, Any]:
    """Label preservation (frames and crops) and realism of the seed-0 refiner (an executor task). Realism is
    measured against the photos of `session` that the refiner did not read: the tune session's held-back scene
    (Context.refiner_holdout; its cube-centred windows are centred by their labels — the tune session may be
    used for anything), or the report session when the tune session has one scene only. A measurement chooses
    nothing (the refiner's settings were chosen on held-back tune images, refiner/README.md). `synthetic`: the
    data stage's result for the set the refiner refines (its path and randomization level)."""
    from refiner.report import check_refiner
    cdir = Path(out) / "refiner" / "check"
    rep = check_refiner(refined["checkpoint"], synthetic["path"], real_root, cdir, sessions=(session,), seed=0,
                        device=dev, **sizes)
    return {"dir": str(cdir), "summary": rep["summary"], "realism": rep["realism"],
            "realism_cube_centred": rep["realism_cube_centred"], "label_preservation": rep["label_preservation"],
            "label_preservation_frames": rep["label_preservation_frames"], "session": session,
            "n_real_images": rep["realism_real"]["n_images"], "data_level": synthetic["randomization"],
            "n_samples": rep["n_samples"]}


def _finetune(trained: dict[str, Any], oracle_data: str, out: Path, real_root: Path, tune_session: str, seed: int,
              dev: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The practitioner's row: a sim-trained model fine-tuned on the tune session's labelled photos."""
    from pose_model.finetune import finetune
    path = finetune(trained["checkpoint"], oracle_data, out, real_root, tune_session, seed=seed, device=dev,
                    **overrides)
    card = read_json(Path(out) / "model_card.json", "model card")
    return {"checkpoint": str(path), "train_seconds": round(card.get("train_time_s", 0.0), 1),
            "from": trained["checkpoint"], "val": card.get("val_metrics", {})}


def _calibrate_depth(trained: dict[str, Any], out: Path, real_root: Path, tune_session: str, dev: str,
                     head: str | None = None) -> dict[str, Any]:
    """The smallest real-label row: the FINETUNE_FROM model with one number fitted on the tune session's labelled
    photos, the scale of its distances (pose_model.finetune.calibrate_depth), read through `head` (the source
    model's, so that the row differs from it by the scale alone)."""
    from pose_model.finetune import calibrate_depth
    t0 = time.time()
    path = calibrate_depth(trained["checkpoint"], real_root, out, tune_session, device=dev, strict=False,
                           head=head)
    calib = read_json(Path(out) / "model_card.json", "model card")["depth_calibration"]
    return {"checkpoint": str(path), "train_seconds": round(time.time() - t0, 1), "from": trained["checkpoint"],
            "depth_scale": calib["depth_scale"], "n_photos_used": calib["n_used"],
            "not_calibrated": calib["not_calibrated"], "val": {}}


def _mean_pose(nominal: str, real_root: Path, report_scenes: list[int], out: Path, n_boot: int) -> dict[str, Any]:
    from core.bop import write_results_csv
    from eval.baseline import mean_pose, mean_pose_predictions
    from render.dataset import SyntheticDataset
    ds = SyntheticDataset(nominal)
    R, t = mean_pose(ds.labels["R"], ds.labels["t_m"], ds.spec)
    bdir = out / "runs" / "mean_pose"
    bdir.mkdir(parents=True, exist_ok=True)
    csv = bdir / "preds.csv"
    write_results_csv(csv, mean_pose_predictions(R, t, real_root, ds.spec.obj_id, report_scenes))
    return _score(csv, real_root, report_scenes, bdir / "score", n_boot)


def _fuse_and_score(scored: dict[str, Any], real_root: Path, scene_ids: list[int], run_dir: Path,
                    n_boot: int) -> dict[str, Any]:
    """A score stage's predictions fused over the rig's cameras (eval/fuse.py) → metrics (an executor task)."""
    from core.bop import read_results_csv, write_results_csv
    from eval.fuse import fuse_predictions
    from eval.score import spec_for_real
    spec = spec_for_real(real_root)
    fused, counts = fuse_predictions(read_results_csv(scored["pred_csv"]), real_root, spec.symmetries, spec.obj_id,
                                     scene_ids)
    csv = run_dir / "preds_report_session_rig.csv"
    write_results_csv(csv, fused)
    res = _score(csv, real_root, scene_ids, run_dir / "score_rig", n_boot)
    res["fusion"] = counts
    return res


def _predict_and_score(trained: str | dict[str, Any], real_root: Path, scene_ids: list[int], run_dir: Path, dev: str,
                       n_boot: int, head: str | None = None) -> dict[str, Any]:
    """Predictions on the report session → metrics (an executor task); trained: a checkpoint or _train's result;
    head: the pose head reported (None: the checkpoint's own)."""
    from pose_model.model import load_checkpoint
    from pose_model.predict import predict_bop
    ckpt = trained["checkpoint"] if isinstance(trained, dict) else trained
    csv = run_dir / "preds_report_session.csv"
    predict_bop(ckpt, real_root, csv, scene_ids=scene_ids, device=dev, head=head)
    res = _score(csv, real_root, scene_ids, run_dir / "score", n_boot)
    res["head"] = head or load_checkpoint(ckpt)["config"].get("head", "pnp-rot")
    # the same model with its direct 6-D/depth head, on the same images: how much the PnP rotation adds
    csv_d = run_dir / "preds_report_session_direct.csv"
    predict_bop(ckpt, real_root, csv_d, scene_ids=scene_ids, device=dev, head="direct")
    direct = _score(csv_d, real_root, scene_ids, run_dir / "score_direct", 100)
    res["direct_head"] = {k: direct["metrics"][k] for k in HEAD_KEYS}
    return res


def _score_tune_session(trained: dict[str, Any], real_root: Path, tune_scenes: list[int], run_dir: Path, dev: str,
                        head: str | None = None) -> dict[str, Any]:
    """The model on the TUNE session's photos (an executor task): a few metrics, for the report's comparison of the
    two sessions' rankings. Nothing is chosen from them."""
    from pose_model.predict import predict_bop
    csv = run_dir / "preds_tune_session.csv"
    predict_bop(trained["checkpoint"], real_root, csv, scene_ids=tune_scenes, device=dev, head=head)
    m = _score(csv, real_root, tune_scenes, run_dir / TUNE_SCORE_DIR, 100)["metrics"]
    return {"metrics": {k: m[k] for k in HEAD_KEYS}, "pred_csv": str(csv)}


def machine_info(device: str) -> dict[str, Any]:
    import torch
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "device": device, "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
