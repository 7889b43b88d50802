"""The main job end to end: `sim2real benchmark --profile quick` on the shared ArUco photos."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROWS = {"none", "image-dr", "dr", "adr", "simgan", "simgan+dr", "oracle (real, other session)", "mean-pose",
        "sim→real fine-tune (simgan+dr)"}


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
    for name in ("report.md", "report.html", "results.json", "cdf.png"):
        assert (quick_report / name).is_file(), name
    md = (quick_report / "report.md").read_text()
    assert md.splitlines()[0].startswith("> **QUICK PROFILE") and "not meaningful" in md.splitlines()[0]
    res = json.loads((quick_report / "results.json").read_text())
    assert {r["pipeline"] for r in res["rows"]} == ROWS
    for r in res["rows"]:
        for k in ("te_mm_median", "re_deg_median", "acc_5deg_5cm", "acc_add_01d", "auc_adds_10cm", "train_seconds"):
            assert math.isfinite(r[k]), (r["pipeline"], k, r[k])
        assert r["n_images"] > 50
        assert r["pipeline"] == "mean-pose" or Path(r["checkpoint"]).is_file()
    meta = res["meta"]
    assert meta["tune_session"] != meta["report_session"]
    assert not set(meta["tune_scenes"]) & set(meta["report_scenes"])
    assert "data:nominal" in meta["stage_seconds"] and "refiner" in meta["stage_seconds"]
    html = (quick_report / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3  # self-contained: figures inlined


def test_rerun_does_no_training(quick_report, shared_real):
    before = {p: p.stat().st_mtime_ns for p in quick_report.rglob("*.pt")}
    r = _bench("--from", str(shared_real / "aruco_cube"), "--profile", "quick", "--out", str(quick_report))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "[run ] train" not in r.stdout and "[skip] train:none:s0" in r.stdout
    assert before and {p: p.stat().st_mtime_ns for p in quick_report.rglob("*.pt")} == before


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
