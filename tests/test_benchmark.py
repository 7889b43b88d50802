"""The main job end to end: `sim2real benchmark --profile quick` on the shared ArUco photos."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
ROWS = {"none", "image-dr", "render-dr", "dr", "adr", "hybrid-dr", "simgan", "simgan+dr",
        "oracle (real, other session)", "mean-pose", "sim→real fine-tune (render-dr)",
        "sim→real depth scale (render-dr)"}


def _bench(*args):
    return subprocess.run([sys.executable, str(REPO / "cli.py"), "benchmark", *args], cwd=REPO,
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def quick_report(shared_real, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick"
    r = _bench("--from", str(shared_real / "aruco_cube"), "--profile", "quick", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_quick_benchmark_writes_a_complete_report(quick_report):
    for name in ("report.md", "report.html", "results.json", "cdf.png", "seeds.png"):
        assert (quick_report / name).is_file(), name
    md = (quick_report / "report.md").read_text()
    assert md.splitlines()[0].startswith("> **QUICK PROFILE") and "not meaningful" in md.splitlines()[0]
    res = json.loads((quick_report / "results.json").read_text())
    assert {r["pipeline"] for r in res["rows"]} == ROWS
    for r in res["rows"]:
        for k in ("te_mm_median", "re_deg_median", "acc_5deg_5cm", "acc_add_01d", "auc_adds_10cm", "train_seconds"):
            assert math.isfinite(r[k]), (r["pipeline"], k, r[k])
        assert r["n_images"] > 50
        # checkpoints are recorded relative to the report (or absolute): loadable wherever the report moves
        assert r["pipeline"] == "mean-pose" or (quick_report / r["checkpoint"]).is_file()
    meta = res["meta"]
    assert meta["tune_session"] != meta["report_session"]
    assert not set(meta["tune_scenes"]) & set(meta["report_scenes"])
    assert "data:nominal" in meta["stage_seconds"] and "refiner:s0" in meta["stage_seconds"]
    who = meta["who_saw_what"]
    assert who["report_session"]["scenes"] == meta["report_scenes"]
    # the refiner read unlabelled images of the tune session only (from its own card)
    ref = who["refiner (SimGAN), one per seed"]
    assert ref["scenes read (refiner cards)"] and set(ref["scenes read (refiner cards)"]) <= set(meta["tune_scenes"])
    html = (quick_report / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3  # self-contained: figures inlined
    # both heads of every trained model on the same images, and the refiner's own check with its figures
    for r in res["rows"]:
        if r["pipeline"] != "mean-pose":
            assert set(r["direct_head"]) == {"ar", "te_mm_median", "re_deg_median", "acc_add_01d"}, r["pipeline"]
    assert "## Pose heads on the same images" in md
    # every row names the head it reports (each model's own without --head: pnp-rot)
    assert {r.get("head") for r in res["rows"] if r["pipeline"] != "mean-pose"} == {"pnp-rot"}
    # every sim-trained model scored on the tune session too (its photos only), the two sessions' orders compared
    from pose_model.registry import SIM_PIPELINES
    for r in res["rows"]:
        assert ("tune_session" in r) == (r["pipeline"] in SIM_PIPELINES), r["pipeline"]
    tvr = res["tune_vs_report"]
    assert set(tvr["pipelines"]) == set(SIM_PIPELINES) and set(tvr["spearman_rho"]) == {"ar", "te_mm_median"}
    for v in tvr["pipelines"].values():
        assert 0.0 <= v["tune"]["missed_share"] <= 1.0 and 0.0 <= v["report"]["missed_share"] <= 1.0
    csv = quick_report / "runs" / "render-dr_s0" / "preds_tune_session.csv"
    assert {int(line.split(",")[0]) for line in csv.read_text().splitlines()[1:]} == set(meta["tune_scenes"])
    assert "## Tune session against report session" in md
    chk = meta["refiner_check"]
    assert 0.0 <= chk["realism"]["refined"]["domain_classifier_accuracy"] <= 1.0
    # realism on the tune session's held-back scene, which no refiner read
    held = ref["held back for the refiner check (never read by a refiner)"]
    assert held == meta["tune_scenes"][-1:] and not set(held) & set(ref["scenes read (refiner cards)"])
    assert chk["session"] == meta["tune_session"] and chk["n_real_images"] > 0
    assert chk["data_level"] == "dr"  # the refiner refines the render-time-DR set (registry.REFINED_FROM)
    assert "## SimGAN refiner check (seed 0)" in md
    # rig rows: every sim-trained model's predictions fused over the three cameras, kept out of the ranking
    rig = {r["pipeline"] for r in res["rig_rows"]}
    assert rig == {p + " (rig)" for p in ROWS - {"mean-pose", "oracle (real, other session)"}}
    assert set(res["rig"]["summary"]) == rig and not rig & set(res["summary"])
    assert {e["single_view"] for e in res["rig"]["effects"]} == {p[:-6] for p in rig}
    single = {r["pipeline"]: r for r in res["rows"]}
    for r in res["rig_rows"]:
        assert r["fusion"]["instants_multi_view"] > 0 and r["n_images"] == single[r["pipeline"][:-6]]["n_images"]
    assert "## Rig rows" in md and (quick_report / "cdf_rig.png").is_file()
    # ADR's final ranges against DR's, per seed, with the parameters the task could not absorb named
    adr = res["adr_ranges"]
    assert adr["n_seeds"] == 1 and adr["fraction_of_widest"]
    for t in adr["fraction_of_widest"].values():
        assert 0.0 <= t["adr_per_seed"][0] <= 1.0 + 1e-9 and 0.0 < t["dr"] <= 1.0 + 1e-9
    assert set(adr["not_absorbed"]) | set(adr["reached"]) <= set(adr["fraction_of_widest"])
    assert "## ADR: the ranges reached" in md
    assert "SimGAN (seed 0) on frames" in md and "SimGAN (seed 0) on crops" in md
    # hybrid-dr's regressor is image-dr's of the same seed, trained once and shared (the localizer alone trains)
    import torch
    ck = {p: torch.load(quick_report / single[p]["checkpoint"], weights_only=True) for p in ("image-dr", "hybrid-dr")}
    twin = (quick_report / single["image-dr"]["checkpoint"]).resolve()
    assert Path(ck["hybrid-dr"]["config"]["regressor_from"]).resolve() == twin
    reg = [k for k in ck["image-dr"]["model"] if k.startswith("regressor.")]
    assert reg and all(torch.equal(ck["image-dr"]["model"][k], ck["hybrid-dr"]["model"][k]) for k in reg)
    # the depth-scale row: render-dr's weights, its distances × one number fitted on the tune session's labels only
    assert who["sim→real fine-tune (render-dr); sim→real depth scale (render-dr)"]["scenes"] == meta["tune_scenes"]
    src, cal = (torch.load(quick_report / single[p]["checkpoint"], weights_only=True)
                for p in ("render-dr", "sim→real depth scale (render-dr)"))
    assert all(torch.equal(src["model"][k], cal["model"][k]) for k in src["model"])
    scale, calib = cal["meta"]["depth_scale"], cal["depth_calibration"]
    assert calib["scene_ids"] == meta["tune_scenes"] and calib["depth_scale"] == pytest.approx(scale)
    assert (calib["n_used"] >= 5) != bool(calib["not_calibrated"])   # a quick model may not find the cube
    from core.bop import read_results_csv
    preds = [{(r["scene_id"], r["im_id"]): r
              for r in read_results_csv(quick_report / "runs" / d / "preds_report_session.csv")}
             for d in ("render-dr_s0", "depth-scale_s0")]
    assert preds[0].keys() == preds[1].keys()
    for k, a in preds[0].items():
        b = preds[1][k]
        np.testing.assert_allclose(b["R"], a["R"], atol=1e-6)
        np.testing.assert_allclose(b["t_mm"], scale * a["t_mm"], rtol=1e-5, atol=1e-3)


def test_results_schema_rows_summary_paired(quick_report):
    from eval.metrics import METRICS
    res = json.loads((quick_report / "results.json").read_text())
    assert sorted((r["pipeline"], r["seed"]) for r in res["rows"]) == sorted((p, 0) for p in ROWS)
    for r in res["rows"]:
        for k in ("ar", "ar_mssd", "ar_mspd", "acc_5deg_5mm", "acc_5deg_2cm", "auc_adds_01d"):
            assert 0.0 <= r[k] <= 1.0, (r["pipeline"], k)
        assert r["bootstrap"]["unit"] == "capture instant"
    assert set(res["summary"]) == ROWS
    for p, s in res["summary"].items():
        for k in METRICS:
            st = s[k]
            assert set(st) >= {"mean", "sd", "ci95", "per_seed", "n_seeds"} and st["n_seeds"] == 1
            row = next(r for r in res["rows"] if r["pipeline"] == p)
            assert st["mean"] == pytest.approx(row[k]), (p, k)      # one seed: the row's own value
            assert st["ci95"][0] <= st["mean"] <= st["ci95"][1] or not math.isfinite(st["mean"])
    n = len(ROWS)
    assert len(res["paired"]) == n * (n - 1) // 2 * 3
    for c in res["paired"]:
        assert set(c) >= {"a", "b", "metric", "diff", "ci95", "ci95_seeds", "resolved", "resolved_bootstrap", "p"}
        assert c["metric"] in ("te_mm_median", "re_deg_median", "ar")
        assert c["resolved_bootstrap"] == (c["ci95"][0] > 0 or c["ci95"][1] < 0)
        # one seed a side here: no seed-level interval, so the bootstrap alone decides
        assert c["ci95_seeds"] is None and c["resolved"] == c["resolved_bootstrap"]
        a, b = res["summary"][c["a"]][c["metric"]]["mean"], res["summary"][c["b"]][c["metric"]]["mean"]
        assert c["diff"] == pytest.approx(a - b)
    assert [c["effect"] for c in res["controls"]] == [
        "refiner (simgan − render-dr)", "refiner under image DR (simgan+dr − dr)",
        "image DR on DR renders (dr − render-dr)", "render-time DR (dr − image-dr)",
        "render-DR localizer (hybrid-dr − image-dr)", "ADR vs DR (adr − dr)",
        "SimGAN pipeline vs nominal renders (simgan − none; refiner + render-time DR)",
        "SimGAN+DR vs image DR (simgan+dr − image-dr; refiner + render-time DR)",
        "fine-tune on tune-session labels (fine-tune − render-dr)",
        "depth scale from tune-session labels (depth scale − render-dr)"]
    md = (quick_report / "report.md").read_text()
    heads = [ln for ln in md.splitlines() if ln.startswith("## ")]
    assert heads[:3] == ["## Ranking", "## Verdict", "## Controls: what each method adds"]
    best = res["ranking"][0]["pipeline"]
    assert f"**{best}** comes first" in md and "Who saw what" in md


def test_two_seeds_train_two_refiners(shared_real, tmp_path):
    out = tmp_path / "two"
    r = _bench("--from", str(shared_real / "aruco_cube"), "--profile", "quick", "--seeds", "2",
               "--pipelines", "simgan", "--epochs", "1", "--renders", "64", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    # --renders: every synthetic dataset has that many renders (the quick profile's 96 otherwise), and it is recorded
    assert {d["n"] for k, d in res["meta"]["datasets"].items() if not k.startswith("refined")} == {64}
    assert res["meta"]["command"]["renders"] == 64 and "--renders 64" in (out / "report.md").read_text()
    for row in res["rows"]:               # --epochs: the sim pipelines' trainings only (quick trains 2 otherwise)
        if row["pipeline"] == "simgan":
            card = json.loads((out / row["checkpoint"]).with_name("model_card.json").read_text())
            assert card["epochs_done"] == card["config"]["epochs"] == 1
    assert "--epochs 1" in (out / "report.md").read_text() and "--pipelines simgan" in (out / "report.md").read_text()
    # not a terminal: no training progress bars (a log file filled up with them), the epoch lines still printed
    assert "step/s" not in r.stderr and "epoch 1/1: loss" in r.stdout
    n_tasks = r.stdout.count("[done] ")                # and one line per finished task, counting up to all of them
    assert n_tasks > 10 and f"({n_tasks}/{n_tasks} tasks)" in r.stdout and "[done] train:simgan:s1 in " in r.stdout
    assert sorted((r["pipeline"], r["seed"]) for r in res["rows"]) == [
        ("mean-pose", 0), ("oracle (real, other session)", 0), ("oracle (real, other session)", 1),
        ("simgan", 0), ("simgan", 1)]
    assert {"refiner:s0", "refiner:s1"} <= set(res["meta"]["stage_seconds"])
    s = res["summary"]["simgan"]["te_mm_median"]
    vals = sorted(r["te_mm_median"] for r in res["rows"] if r["pipeline"] == "simgan")
    assert s["n_seeds"] == 2 and sorted(s["per_seed"]) == pytest.approx(vals)
    assert s["sd"] == pytest.approx(abs(vals[1] - vals[0]) / math.sqrt(2))
    assert res["controls"] == []          # the control rows were not asked for


def test_rerun_does_no_training(quick_report, shared_real):
    before = {p: p.stat().st_mtime_ns for p in quick_report.rglob("*.pt")}
    res_before = json.loads((quick_report / "results.json").read_text())
    r = _bench("--from", str(shared_real / "aruco_cube"), "--profile", "quick", "--out", str(quick_report))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "[run ] train" not in r.stdout and "[skip] train:none:s0" in r.stdout
    assert before and {p: p.stat().st_mtime_ns for p in quick_report.rglob("*.pt")} == before
    res = json.loads((quick_report / "results.json").read_text())
    for k in ("summary", "paired", "controls", "ranking", "verdict"):      # the same numbers again
        assert res[k] == res_before[k], k


def test_rerun_with_other_epochs_is_refused(quick_report, shared_real):
    """The effective epochs are part of a run's arguments, given or not: a run made under another default is
    never resumed into a mix of trainings."""
    log = json.loads((quick_report / "stages.json").read_text())
    assert log["args"]["epochs"] == 2                       # the quick profile's, though --epochs was not given
    r = _bench("--from", str(shared_real / "aruco_cube"), "--profile", "quick", "--epochs", "1",
               "--out", str(quick_report))
    assert r.returncode == 2 and "epochs: 2 there, 1 now" in r.stderr and "Traceback" not in r.stderr
    r = _bench("--from", str(shared_real / "aruco_cube"), "--profile", "quick", "--renders", "64",
               "--out", str(quick_report))                 # nor one of other renders (its datasets are others)
    assert r.returncode == 2 and "renders: not recorded there, 64 now" in r.stderr and "Traceback" not in r.stderr
    assert json.loads((quick_report / "stages.json").read_text()) == log


@pytest.mark.parametrize("args, msg", [
    (["--real", "no-such-set"], "no-such-set"),
    (["--from", "WRONG_TREE"], "src2/ not found"),
    (["--seeds", "0"], "--seeds"),
])
def test_benchmark_bad_input(tmp_path, args, msg):
    args = [a.replace("WRONG_TREE", str(tmp_path)) for a in args]
    r = _bench(*args, "--profile", "quick", "--out", str(tmp_path / "rep"))
    assert r.returncode == 2, r.stderr
    assert msg in r.stderr and "Traceback" not in r.stderr
