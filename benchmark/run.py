"""`sim2real benchmark`: every pipeline side by side on a real set, resumably, with a report to trust.

Stages (each recorded in OUT/stages.json when done; a rerun skips finished ones):
  real            the real set (imported from --from into the cache if needed); sessions split into
                  TUNE (refiner, oracle training, any tuning) and REPORT (every number in the table)
  data:<level>    synthetic datasets (nominal, dr, adr-pool), cached by config hash, reused across runs
  refiner         SimGAN trained on synthetic crops vs UNLABELLED tune-session images, then applied
  train:<p>:s<k>  the pose model for pipeline p, seed k (none, dr, adr, simgan, simgan+dr, oracle)
  score:<p>:s<k>  predictions on the report session → metrics (mean-pose baseline too)
  report          report.md, report.html, results.json
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from core.io import UserError, atomic_write_json, code_version, read_json
from core.profiles import pick_profile
from pose_model.registry import PIPELINES, SIM_PIPELINES
TUNE_SESSION, REPORT_SESSION = "data", "test1"


@dataclass
class BenchProfile:
    n_synth: int                 # samples per synthetic dataset
    train_profile: str           # pose_model profile
    refiner_profile: str
    workers: int = 2
    train_overrides: dict[str, Any] = field(default_factory=dict)
    oracle_overrides: dict[str, Any] = field(default_factory=dict)
    refiner_overrides: dict[str, Any] = field(default_factory=dict)
    n_boot: int = 1000


PROFILES = {
    # CI smoke test: every stage runs on tiny sizes; the numbers mean nothing
    "quick": BenchProfile(n_synth=96, train_profile="quick", refiner_profile="quick", n_boot=200,
                          oracle_overrides={"max_samples": 64}),
    # 2-core CPU, under an hour
    # (a 16-map refiner: labels preserved as well as with 32 maps, refining 6k crops 4× faster — refiner/README.md)
    "default": BenchProfile(n_synth=6144, train_profile="default", refiner_profile="default",
                            train_overrides={"epochs": 8}, oracle_overrides={"epochs": 60},
                            refiner_overrides={"ch": 16, "steps": 300}),
    # a GPU
    "full": BenchProfile(n_synth=40000, train_profile="full", refiner_profile="default",
                         oracle_overrides={"epochs": 150}),
}


class StageLog:
    """Finished stages with their results and wall time, persisted after each stage."""

    def __init__(self, out: Path, args: dict[str, Any]):
        self.path = out / "stages.json"
        self.state = read_json(self.path, "stage log") if self.path.is_file() else {"args": args, "stages": {}}
        if self.state.get("args") != args:
            raise UserError(f"{out}: holds a benchmark run with other arguments ({self.state.get('args')}); "
                            f"use another --out or delete it")

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


def prepare_real(real: str, from_dir: str | None, log=print) -> Path:
    from core.real_sets import KNOWN_REAL_SETS, cached_real_dir, resolve_real
    if from_dir is not None:
        if real != "aruco-cube":
            raise UserError(f"--from is supported for the aruco-cube real set, not {real!r}")
        if not (Path(from_dir) / "src2").is_dir():
            raise UserError(f"--from {from_dir}: src2/ not found (expected the upstream ArUco-cube tree, "
                            f"e.g. ../shared/real/aruco_cube)")
        try:
            return resolve_real(real)
        except UserError:
            from eval.fetch import fetch_aruco_cube
            fetch_aruco_cube(from_dir=from_dir, log=log)
            return cached_real_dir(real)
    if real not in KNOWN_REAL_SETS and not Path(real).is_dir():
        raise UserError(f"--real {real}: unknown real set (expected one of {', '.join(KNOWN_REAL_SETS)} or a BOP folder)")
    return resolve_real(real)


def session_split(real_root: Path) -> tuple[list[int], list[int]]:
    from core.bop import read_scene_groups
    groups = read_scene_groups(real_root)
    if TUNE_SESSION not in groups or REPORT_SESSION not in groups:
        raise UserError(f"{real_root}: expected sessions {TUNE_SESSION!r} and {REPORT_SESSION!r}, found "
                        f"{sorted(groups)} (the benchmark tunes on one session and reports on the other)")
    return groups[TUNE_SESSION], groups[REPORT_SESSION]


def synth_dataset(level: str, prof: BenchProfile, real_root: Path, seed: int, log=print, executor=None) -> dict[str, Any]:
    """Generate (or reuse, keyed by the config hash) the synthetic dataset at one randomization level."""
    from core.io import sha256_of_json
    from core.real_sets import cache_dir
    from render.generate import GenerateConfig, cameras_like_real, generate_dataset
    cfg = GenerateConfig(object="aruco-cube", n=prof.n_synth, seed=seed, randomization=level,
                         cameras=cameras_like_real(str(real_root)), shard_size=min(256, ((prof.n_synth + 3) // 4) * 4))
    key = sha256_of_json(asdict(cfg))[:12]
    out = cache_dir() / "synth" / f"aruco-cube-{level}-{prof.n_synth}-{key}"
    generate_dataset(cfg, out, workers=prof.workers, progress=True, executor=executor)
    m = read_json(out / "manifest.json", "manifest")
    return {"path": str(out), "content_hash": m["content_hash"], "n": m["n"], "randomization": level}


def _train(data: str | dict[str, Any], out: Path, pipeline: str, prof: BenchProfile, seed: int, device: str,
           overrides: dict[str, Any]) -> dict[str, Any]:
    """One (pipeline, seed) training (an executor task); data: a dataset folder or a data stage's result."""
    from pose_model.config import make_config
    from pose_model.train import train
    data = data["path"] if isinstance(data, dict) else data
    cfg = make_config(prof.train_profile, data=data, out=str(out), pipeline=pipeline, seed=seed, device=device,
                      resume=(out / "model.pt").is_file() or (out / "last.pt").is_file(), **overrides)
    t0 = time.time()
    ckpt = train(cfg)
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
                  seeds: int = 1, out: str | os.PathLike = "reports/latest", device: str = "auto",
                  pipelines: tuple[str, ...] = SIM_PIPELINES, log=print, executor: str = "local",
                  workers: int | None = None, ray_address: str | None = None) -> Path:
    """Run (or resume) the benchmark. The grid of refiner, trainings and scorings runs as tasks of a
    core.executor (--executor local with --workers N tasks at once, or ray); the stage log stays the
    single record: this process writes it as each task finishes."""
    prof = pick_profile(PROFILES, profile)
    if seeds < 1:
        raise UserError(f"--seeds {seeds}: expected at least 1")
    bad = [p for p in pipelines if p not in SIM_PIPELINES]
    if bad:
        raise UserError(f"--pipelines: unknown {bad[0]!r} (expected {', '.join(SIM_PIPELINES)})")
    from core.executor import make_executor
    with make_executor(executor, workers or prof.workers, ray_address) as ex:  # joins a cluster before writing
        return _run(ex, real, from_dir, profile, prof, seeds, Path(out), device, pipelines, log)


def _device_for(ex, device: str) -> tuple[str, float]:
    """The tasks' device and GPUs per training task. On Ray, 'auto' means: CUDA if the cluster has GPUs
    (the driver itself may be a CPU-only head node)."""
    from core.device import pick_device
    if ex.kind == "ray":
        if device == "auto":
            device = "cuda" if ex.describe()["cluster_gpus"] > 0 else "cpu"
        elif device not in ("cpu",) and not device.startswith("cuda"):
            pick_device(device)  # the one error message for a bad --device
    else:
        device = str(pick_device(device))
    return device, (1.0 if device.startswith("cuda") else 0.0)


def _run(ex, real: str, from_dir: str | None, profile: str, prof: BenchProfile, seeds: int, out: Path,
         device: str, pipelines: tuple[str, ...], log) -> Path:
    from core.executor import After, Task
    dev, gpus = _device_for(ex, device)
    out.mkdir(parents=True, exist_ok=True)
    args = {"real": real, "from": str(from_dir) if from_dir else None, "profile": profile, "seeds": seeds,
            "pipelines": list(pipelines)}
    stages = StageLog(out, args)
    t_start = time.time()

    real_root = Path(stages.run("real", lambda: {"root": str(prepare_real(real, from_dir, log))}, log)["root"])
    tune_scenes, report_scenes = session_split(real_root)

    # nominal is always needed: the mean-pose baseline and the refiner start from it
    levels = sorted({"nominal"} | {PIPELINES[p].dataset for p in pipelines if PIPELINES[p].dataset != "refined"})
    data: dict[str, Any] = {
        lv: stages.run(f"data:{lv}", lambda lv=lv: synth_dataset(lv, prof, real_root, seed=0, log=log, executor=ex),
                       log) for lv in levels}
    # the oracle's real training set, made once here (cached on disk) so that seeds can train at once
    from eval.real_dataset import real_to_dataset
    from eval.score import spec_for_real
    oracle_data = str(real_to_dataset(real_root, tune_scenes, spec_for_real(real_root), out / "data_oracle"))

    # the grid as tasks, listed in the order a single worker runs them: the refiner just before the first
    # SimGAN pipeline, so the other rows come first
    cpus = 1.0  # the quick/default profiles train on one torch thread
    tasks: list[Task] = []
    grid: list[tuple[str, int, str, str]] = []  # (row label, seed, train stage, score stage)
    for seed in range(seeds):
        for p in pipelines:
            if PIPELINES[p].dataset == "refined" and not any(t.name == "refiner" for t in tasks):
                tasks.append(Task("refiner", _refine, (data["nominal"]["path"], str(real_root), str(out), prof, dev),
                                  num_cpus=cpus, num_gpus=gpus))
            run_dir = out / "runs" / f"{p.replace('+', '_')}_s{seed}"
            src = After("refiner") if PIPELINES[p].dataset == "refined" else data[PIPELINES[p].dataset]
            tasks.append(Task(f"train:{p}:s{seed}", _train, (src, run_dir, p, prof, seed, dev, prof.train_overrides),
                              num_cpus=cpus, num_gpus=gpus))
            tasks.append(Task(f"score:{p}:s{seed}", _predict_and_score, (
                After(f"train:{p}:s{seed}"), real_root, report_scenes, run_dir, dev, prof.n_boot), num_cpus=1.0,
                num_gpus=gpus / 4))
            grid.append((p, seed, f"train:{p}:s{seed}", f"score:{p}:s{seed}"))
        # oracle: real labelled images of the tune session, scored on the report session
        odir = out / "runs" / f"oracle_s{seed}"
        tasks.append(Task(f"train:oracle:s{seed}", _train, (oracle_data, odir, "oracle", prof, seed, dev,
                                                            prof.oracle_overrides), num_cpus=cpus, num_gpus=gpus))
        tasks.append(Task(f"score:oracle:s{seed}", _predict_and_score, (
            After(f"train:oracle:s{seed}"), real_root, report_scenes, odir, dev, prof.n_boot), num_gpus=gpus / 4))
        grid.append(("oracle (real, other session)", seed, f"train:oracle:s{seed}", f"score:oracle:s{seed}"))
    tasks.append(Task("score:mean-pose", _mean_pose, (data["nominal"]["path"], real_root, report_scenes, out,
                                                      prof.n_boot)))

    done = stages.done()
    for t in tasks:
        if t.name in done:
            log(f"[skip] {t.name} (done in {stages.state['stages'][t.name]['seconds']:.0f} s)")
    res = ex.run(tasks, known={t.name: done[t.name] for t in tasks if t.name in done},
                 on_start=lambda t: log(f"[run ] {t.name}"),
                 on_done=lambda t, r, sec: stages.record(t.name, r, sec))
    if "refiner" in res:
        data["refined"] = res["refiner"]

    rows: list[dict[str, Any]] = []
    for label, seed, tr_name, sc_name in grid:
        tr, sc = res[tr_name], res[sc_name]
        rows.append({"pipeline": label, "seed": seed, "train_seconds": tr["train_seconds"],
                     "checkpoint": tr["checkpoint"], **({"synthetic_val": tr.get("val", {})} if label in PIPELINES else {}),
                     **sc["metrics"], "score_dir": sc["score_dir"]})
    mp = res["score:mean-pose"]
    rows.append({"pipeline": "mean-pose", "seed": 0, "train_seconds": 0.0, "checkpoint": None, **mp["metrics"],
                 "score_dir": mp["score_dir"]})

    from benchmark.report import write_report
    stages_s = stages.seconds()
    write_report(out, rows, {
        "profile": profile, "real": real, "real_root": str(real_root), "tune_session": TUNE_SESSION,
        "report_session": REPORT_SESSION, "tune_scenes": tune_scenes, "report_scenes": report_scenes,
        "seeds": list(range(seeds)), "code_version": code_version(), "device": dev, "machine": machine_info(dev),
        "executor": ex.describe(), "datasets": data, "stage_seconds": stages_s,
        "wall_seconds_this_run": round(time.time() - t_start, 1), "command": args,
    })
    log(f"report: {out / 'report.md'}")
    return out


def _refine(nominal: str, real_root: str, out: str, prof: BenchProfile, dev: str) -> dict[str, Any]:
    """SimGAN on synthetic crops vs unlabelled tune-session images, then applied (an executor task)."""
    from refiner.apply import refine_dataset
    from refiner.train import make_config, train_refiner
    rdir = Path(out) / "refiner"
    cfg = make_config(prof.refiner_profile, synthetic=nominal, real=real_root, out=str(rdir), seed=0, device=dev,
                      sessions=(TUNE_SESSION,), resume=(rdir / "state.pt").is_file(), **prof.refiner_overrides)
    ckpt = train_refiner(cfg)
    refined = Path(out) / "data_refined"
    refine_dataset(ckpt, nominal, refined, device=dev)
    m = read_json(refined / "manifest.json", "manifest")
    return {"checkpoint": str(ckpt), "path": str(refined), "content_hash": m["content_hash"],
            "trained_on_session": TUNE_SESSION}


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


def _predict_and_score(trained: str | dict[str, Any], real_root: Path, scene_ids: list[int], run_dir: Path, dev: str,
                       n_boot: int) -> dict[str, Any]:
    """Predictions on the report session → metrics (an executor task); trained: a checkpoint or _train's result."""
    from pose_model.predict import predict_bop
    ckpt = trained["checkpoint"] if isinstance(trained, dict) else trained
    csv = run_dir / "preds_report_session.csv"
    predict_bop(ckpt, real_root, csv, scene_ids=scene_ids, device=dev)
    return _score(csv, real_root, scene_ids, run_dir / "score", n_boot)


def machine_info(device: str) -> dict[str, Any]:
    import torch
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "device": device, "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
