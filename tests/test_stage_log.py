"""The benchmark's stage log: a rerun skips finished stages; more seeds extend a run; other changes are refused."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.run import StageLog
from core.io import UserError

ARGS = {"real": "aruco-cube", "from": None, "profile": "quick", "seeds": 1, "pipelines": ["none"], "epochs": 1}


def test_rerun_skips_finished_stages(tmp_path):
    calls = []
    log = StageLog(tmp_path, ARGS)
    assert log.run("train:none:s0", lambda: calls.append(1) or {"dir": "a"}, log=lambda *a: None) == {"dir": "a"}
    again = StageLog(tmp_path, ARGS)
    assert again.seeds_before is None
    assert again.run("train:none:s0", lambda: calls.append(2) or {"dir": "b"}, log=lambda *a: None) == {"dir": "a"}
    assert calls == [1]


def test_more_seeds_extend_the_run_and_keep_its_stages(tmp_path):
    StageLog(tmp_path, ARGS).record("train:none:s0", {"dir": "a"}, 1.0)
    more = StageLog(tmp_path, {**ARGS, "seeds": 3})
    assert more.seeds_before == 1 and more.done() == {"train:none:s0": {"dir": "a"}}
    assert json.loads((tmp_path / "stages.json").read_text())["args"]["seeds"] == 1  # written with the next stage
    more.record("train:none:s1", {"dir": "b"}, 1.0)
    assert json.loads((tmp_path / "stages.json").read_text())["args"]["seeds"] == 3
    with pytest.raises(UserError, match="seeds: 3 there, 2 now"):        # fewer seeds: not a subset run
        StageLog(tmp_path, {**ARGS, "seeds": 2})


@pytest.mark.parametrize("change", [{"epochs": 2}, {"pipelines": ["none", "dr"]}, {"seeds": 5, "epochs": 2}])
def test_other_changes_are_refused(tmp_path, change):
    StageLog(tmp_path, ARGS).record("train:none:s0", {"dir": "a"}, 1.0)
    with pytest.raises(UserError, match="holds a benchmark run with other arguments"):
        StageLog(tmp_path, {**ARGS, **change})


def test_a_run_is_not_resumed_with_another_head(tmp_path, shared_real):
    """Its scores used each model's own head: with --head its stage log is refused, the difference named, before
    anything runs (and a run without --head keeps what runs from before the option wrote)."""
    args = {**ARGS, "from": str((shared_real / "aruco_cube").resolve())}
    StageLog(tmp_path, args).record("train:none:s0", {"dir": "a"}, 1.0)
    r = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "cli.py"), "benchmark", "--from",
                        args["from"], "--profile", "quick", "--pipelines", "none", "--head", "pnp-mean", "--out",
                        str(tmp_path)], capture_output=True, text=True)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "head: not recorded there, pnp-mean now" in r.stderr + r.stdout
