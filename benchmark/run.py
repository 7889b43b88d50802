"""`sim2real benchmark`: every pipeline side by side on a real set, resumably, with a report to trust.

Stages (each recorded in OUT/stages.json when done; a rerun skips finished ones):
  real            the real set (imported from --from into the cache if needed); sessions split into
                  TUNE (refiner, oracle training, any tuning) and REPORT (every number in the table)
  data:<level>    synthetic datasets (nominal, dr, adr-pool), cached by config hash, reused across runs
  refiner         SimGAN trained on synthetic crops vs UNLABELLED tune-session images, then applied
  train:<p>:s<k>  the pose model for pipeline p, seed k (none, dr, adr, simgan, simgan+dr, oracle), and
                  finetune: the FINETUNE_FROM model fine-tuned on the tune session's labelled photos
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
FINETUNE_FROM = "simgan+dr"  # the sim pipeline the fine-tune row starts from (the best in the last default run)


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
    n_boot: int = 1000


PROFILES = {
    # CI smoke test: every stage runs on tiny sizes; the numbers mean nothing
    "quick": BenchProfile(n_synth=96, train_profile="quick", refiner_profile="quick", n_boot=200,
                          oracle_overrides={"max_samples": 64}, finetune_overrides={"epochs": 1}),
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
        self.state["stages"][name] = {"result": result, "seconds": round(time.time() - t0, 2),
                                      "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write_json(self.path, self.state)
        return result

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
    from core.real_sets import cached_real_dir, resolve_real
    check_real_args(real, from_dir)
    if from_dir is not None:
        try:
            return resolve_real(real)
        except UserError:
            from eval.fetch import fetch_aruco_cube
            fetch_aruco_cube(from_dir=from_dir, log=log)
            return cached_real_dir(real)
    return resolve_real(real)


def session_split(real_root: Path) -> tuple[list[int], list[int]]:
    from core.bop import read_scene_groups
    groups = read_scene_groups(real_root)
    if TUNE_SESSION not in groups or REPORT_SESSION not in groups:
        raise UserError(f"{real_root}: expected sessions {TUNE_SESSION!r} and {REPORT_SESSION!r}, found "
                        f"{sorted(groups)} (the benchmark tunes on one session and reports on the other)")
    return groups[TUNE_SESSION], groups[REPORT_SESSION]


def synth_dataset(level: str, prof: BenchProfile, real_root: Path, seed: int, log=print) -> dict[str, Any]:
    """Generate (or reuse, keyed by the config hash) the synthetic dataset at one randomization level."""
    from core.io import sha256_of_json
    from core.real_sets import cache_dir
    from render.generate import GenerateConfig, cameras_like_real, generate_dataset
    cfg = GenerateConfig(object="aruco-cube", n=prof.n_synth, seed=seed, randomization=level,
                         cameras=cameras_like_real(str(real_root)), shard_size=min(256, ((prof.n_synth + 3) // 4) * 4))
    from render.dataset import FORMAT, read_manifest
    key = sha256_of_json({**asdict(cfg), "format": FORMAT})[:12]  # a new dataset format: a new cache entry
    out = cache_dir() / "synth" / f"aruco-cube-{level}-{prof.n_synth}-{key}"
    generate_dataset(cfg, out, workers=prof.workers, progress=True)
    m = read_manifest(out)
    return {"path": str(out), "content_hash": m["content_hash"], "n": m["n"], "randomization": level}


def _train(data: str, out: Path, pipeline: str, prof: BenchProfile, seed: int, device: str,
           overrides: dict[str, Any]) -> dict[str, Any]:
    from pose_model.config import make_config
    from pose_model.train import train
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
                  pipelines: tuple[str, ...] = SIM_PIPELINES, log=print) -> Path:
    prof = pick_profile(PROFILES, profile)
    if seeds < 1:
        raise UserError(f"--seeds {seeds}: expected at least 1")
    bad = [p for p in pipelines if p not in SIM_PIPELINES]
    if bad:
        raise UserError(f"--pipelines: unknown {bad[0]!r} (expected {', '.join(SIM_PIPELINES)})")
    from core.device import pick_device
    dev = str(pick_device(device))
    out = Path(out)
    check_real_args(real, from_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    args = {"real": real, "from": str(from_dir) if from_dir else None, "profile": profile, "seeds": seeds,
            "pipelines": list(pipelines)}
    stages = StageLog(out, args)
    t_start = time.time()

    real_root = Path(stages.run("real", lambda: {"root": str(prepare_real(real, from_dir, log))}, log)["root"])
    tune_scenes, report_scenes = session_split(real_root)

    # nominal is always needed: the mean-pose baseline and the refiner start from it
    levels = sorted({"nominal"} | {PIPELINES[p].dataset for p in pipelines if PIPELINES[p].dataset != "refined"})
    data = {lv: stages.run(f"data:{lv}", lambda lv=lv: synth_dataset(lv, prof, real_root, seed=0, log=log), log)
            for lv in levels}

    # the refiner runs when the first SimGAN pipeline needs it, so the other rows come first
    def refine_stage() -> dict[str, Any]:
        from refiner.apply import refine_dataset
        from refiner.train import make_config, train_refiner
        from render.dataset import read_manifest
        rdir = out / "refiner"
        cfg = make_config(prof.refiner_profile, synthetic=data["nominal"]["path"], real=str(real_root),
                          out=str(rdir), seed=0, device=dev, sessions=(TUNE_SESSION,),
                          resume=(rdir / "state.pt").is_file(), **prof.refiner_overrides)
        ckpt = train_refiner(cfg)
        refined = out / "data_refined"
        refine_dataset(ckpt, data["nominal"]["path"], refined, device=dev)
        m = read_manifest(refined)
        return {"checkpoint": str(ckpt), "path": str(refined), "content_hash": m["content_hash"],
                "trained_on_session": TUNE_SESSION}

    rows: list[dict[str, Any]] = []
    for seed in range(seeds):
        for p in pipelines:
            if PIPELINES[p].dataset == "refined" and "refined" not in data:
                data["refined"] = stages.run("refiner", refine_stage, log)
            run_dir = out / "runs" / f"{p.replace('+', '_')}_s{seed}"
            tr = stages.run(f"train:{p}:s{seed}", lambda p=p, run_dir=run_dir, seed=seed: _train(
                data[PIPELINES[p].dataset]["path"], run_dir, p, prof, seed, dev, prof.train_overrides), log)
            sc = stages.run(f"score:{p}:s{seed}", lambda tr=tr, run_dir=run_dir: _predict_and_score(
                tr["checkpoint"], real_root, report_scenes, run_dir, dev, prof.n_boot), log)
            rows.append({"pipeline": p, "seed": seed, "train_seconds": tr["train_seconds"],
                         "checkpoint": tr["checkpoint"], "synthetic_val": tr.get("val", {}), **sc["metrics"],
                         "score_dir": sc["score_dir"]})
        # oracle: real labelled images of the tune session, scored on the report session
        odir = out / "runs" / f"oracle_s{seed}"

        def oracle_train(odir=odir, seed=seed) -> dict[str, Any]:
            from eval.real_dataset import real_to_dataset
            from eval.score import spec_for_real
            ds = real_to_dataset(real_root, tune_scenes, spec_for_real(real_root), out / "data_oracle")
            return _train(str(ds), odir, "oracle", prof, seed, dev, prof.oracle_overrides)
        tr = stages.run(f"train:oracle:s{seed}", oracle_train, log)
        sc = stages.run(f"score:oracle:s{seed}", lambda tr=tr, odir=odir: _predict_and_score(
            tr["checkpoint"], real_root, report_scenes, odir, dev, prof.n_boot), log)
        rows.append({"pipeline": "oracle (real, other session)", "seed": seed, "train_seconds": tr["train_seconds"],
                     "checkpoint": tr["checkpoint"], **sc["metrics"], "score_dir": sc["score_dir"]})
        # the practitioner's row: a sim-trained model (chosen before any score) fine-tuned on the tune session
        src = FINETUNE_FROM if FINETUNE_FROM in pipelines else pipelines[-1]
        fdir = out / "runs" / f"finetune_s{seed}"

        def finetune_train(fdir=fdir, seed=seed, src=src) -> dict[str, Any]:
            from eval.real_dataset import real_to_dataset
            from eval.score import spec_for_real
            from pose_model.finetune import finetune
            ckpt = stages.state["stages"][f"train:{src}:s{seed}"]["result"]["checkpoint"]
            ds = real_to_dataset(real_root, tune_scenes, spec_for_real(real_root), out / "data_oracle")
            path = finetune(ckpt, ds, fdir, real_root, TUNE_SESSION, seed=seed, device=dev,
                            **prof.finetune_overrides)
            card = read_json(fdir / "model_card.json", "model card")
            return {"checkpoint": str(path), "train_seconds": round(card.get("train_time_s", 0.0), 1),
                    "from": src, "val": card.get("val_metrics", {})}
        tr = stages.run(f"train:finetune:s{seed}", finetune_train, log)
        sc = stages.run(f"score:finetune:s{seed}", lambda tr=tr, fdir=fdir: _predict_and_score(
            tr["checkpoint"], real_root, report_scenes, fdir, dev, prof.n_boot), log)
        rows.append({"pipeline": f"sim→real fine-tune ({tr['from']})", "seed": seed,
                     "train_seconds": tr["train_seconds"], "checkpoint": tr["checkpoint"], **sc["metrics"],
                     "score_dir": sc["score_dir"]})

    def mean_pose_stage() -> dict[str, Any]:
        from eval.baseline import mean_pose, mean_pose_predictions
        from core.bop import write_results_csv
        from render.dataset import SyntheticDataset
        ds = SyntheticDataset(data["nominal"]["path"])
        R, t = mean_pose(ds.labels["R"], ds.labels["t_m"], ds.spec)
        bdir = out / "runs" / "mean_pose"
        bdir.mkdir(parents=True, exist_ok=True)
        csv = bdir / "preds.csv"
        write_results_csv(csv, mean_pose_predictions(R, t, real_root, ds.spec.obj_id, report_scenes))
        return _score(csv, real_root, report_scenes, bdir / "score", prof.n_boot)
    mp = stages.run("score:mean-pose", mean_pose_stage, log)
    rows.append({"pipeline": "mean-pose", "seed": 0, "train_seconds": 0.0, "checkpoint": None, **mp["metrics"],
                 "score_dir": mp["score_dir"]})

    from benchmark.report import write_report
    stages_s = stages.seconds()
    write_report(out, rows, {
        "profile": profile, "real": real, "real_root": str(real_root), "tune_session": TUNE_SESSION,
        "report_session": REPORT_SESSION, "tune_scenes": tune_scenes, "report_scenes": report_scenes,
        "seeds": list(range(seeds)), "code_version": code_version(), "device": dev, "machine": machine_info(dev),
        "datasets": data, "stage_seconds": stages_s, "wall_seconds_this_run": round(time.time() - t_start, 1),
        "command": args,
    })
    log(f"report: {out / 'report.md'}")
    return out


def _predict_and_score(ckpt: str, real_root: Path, scene_ids: list[int], run_dir: Path, dev: str,
                       n_boot: int) -> dict[str, Any]:
    from pose_model.predict import predict_bop
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
