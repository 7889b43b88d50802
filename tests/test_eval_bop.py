"""BOP dataset / results-CSV I/O: round trips and bad input (clear errors naming file and field)."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.io import UserError
from core.objects import load_object_spec
from core import bop
from core.real_sets import resolve_real

ROOT = Path(__file__).resolve().parents[1]
SPEC = load_object_spec("aruco-cube")


def _rand_R(rng):
    return cv2.Rodrigues(rng.normal(size=3))[0]


def _write_set(root: Path, rng) -> list[dict]:
    K = np.array([[500.0, 0, 31.5], [0, 510.0, 23.5], [0, 0, 1]])
    images = []
    for i in range(3):
        gts = [(1, _rand_R(rng), rng.normal([0, 0, 300], 20))] if i != 1 else []   # im 1: unlabelled
        images.append({"im_id": 10 + i, "K": K, "width": 64, "height": 48, "gts": gts, "source": f"up/{i}.jpg",
                       "rgb": rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), "label": {"status": "x"}})
    bop.write_models(root, [SPEC])
    bop.write_scene(root, 4, images, session="s1", camera="cam0")
    return images


def test_bop_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    written = _write_set(tmp_path, rng)
    ims = bop.load_bop_scenes(tmp_path)
    assert [(im.scene_id, im.im_id) for im in ims] == [(4, 10), (4, 11), (4, 12)]
    for w, im in zip(written, ims):
        assert np.allclose(im.K, w["K"]) and (im.width, im.height) == (64, 48)
        assert im.session == "s1"
        assert im.labelled == bool(w["gts"]) and len(im.gts) == len(w["gts"])
        for (obj_id, R, t), g in zip(w["gts"], im.gts):
            assert g.obj_id == obj_id and np.allclose(g.R, R, atol=1e-12) and np.allclose(g.t_mm, t)
        assert np.array_equal(cv2.imread(str(im.rgb_path))[:, :, ::-1], w["rgb"])  # PNG: lossless
    assert bop.read_scene_groups(tmp_path) == {"s1": [4]}
    info = bop.read_models_info(tmp_path)
    assert info[1]["diameter"] == pytest.approx(SPEC.diameter_m * 1000)
    assert (tmp_path / "models" / "obj_000001.ply").read_text().startswith("ply")
    assert resolve_real(str(tmp_path)) == tmp_path.resolve()


def test_results_csv_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    rows = [{"scene_id": s, "im_id": i, "obj_id": 1, "score": float(rng.random()), "R": _rand_R(rng),
             "t_mm": rng.normal(size=3) * 100, "time_s": 0.0123} for s in (1, 2) for i in range(3)]
    bop.write_results_csv(tmp_path / "r.csv", rows)
    assert (tmp_path / "r.csv").read_text().splitlines()[0] == "scene_id,im_id,obj_id,score,R,t,time"
    back = bop.read_results_csv(tmp_path / "r.csv")
    assert len(back) == len(rows)
    for a, b in zip(rows, back):
        assert (a["scene_id"], a["im_id"], a["obj_id"]) == (b["scene_id"], b["im_id"], b["obj_id"])
        assert a["score"] == b["score"] and a["time_s"] == b["time_s"]
        assert np.array_equal(a["R"], b["R"]) and np.array_equal(a["t_mm"], b["t_mm"])  # repr: exact


def test_bop_dir_without_scene_gt(tmp_path):
    _write_set(tmp_path, np.random.default_rng(0))
    os.remove(tmp_path / "test" / "000004" / "scene_gt.json")
    with pytest.raises(UserError, match=r"scene_gt\.json"):
        bop.load_bop_scenes(tmp_path)


def test_bop_bad_rotation_in_scene_gt(tmp_path):
    _write_set(tmp_path, np.random.default_rng(0))
    p = tmp_path / "test" / "000004" / "scene_gt.json"
    import json
    d = json.loads(p.read_text())
    d["10"][0]["cam_R_m2c"] = [2, 0, 0, 0, 1, 0, 0, 0, 1]
    p.write_text(json.dumps(d))
    with pytest.raises(UserError, match=r"scene_gt\.json: 10\[0\]: cam_R_m2c: not a rotation"):
        bop.load_bop_scenes(tmp_path)


def _csv(tmp_path, text):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    return p


def test_results_csv_bad_input(tmp_path):
    eye = "1 0 0 0 1 0 0 0 1"
    with pytest.raises(UserError, match="header: expected columns"):
        bop.read_results_csv(_csv(tmp_path, f"scene_id,im_id,obj_id,score,R,t,secs\n1,0,1,1,{eye},0 0 300,0\n"))
    with pytest.raises(UserError, match=r"line 2: R: not a rotation matrix"):
        bop.read_results_csv(_csv(tmp_path, "scene_id,im_id,obj_id,score,R,t,time\n1,0,1,1,1 0 0 0 2 0 0 0 1,0 0 300,0\n"))
    with pytest.raises(UserError, match=r"line 3: t: expected 3 values"):
        bop.read_results_csv(_csv(tmp_path, f"scene_id,im_id,obj_id,score,R,t,time\n1,0,1,1,{eye},0 0 300,0\n"
                                            f"1,1,1,1,{eye},0 300,0\n"))
    with pytest.raises(UserError, match=r"line 2: scene_id/im_id/obj_id"):
        bop.read_results_csv(_csv(tmp_path, f"scene_id,im_id,obj_id,score,R,t,time\nx,0,1,1,{eye},0 0 300,0\n"))
    with pytest.raises(UserError, match="not found"):
        bop.read_results_csv(tmp_path / "nope.csv")


def test_resolve_real_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("SIM2REAL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UserError, match="real fetch aruco-cube"):
        resolve_real("aruco-cube")
    with pytest.raises(UserError, match="known real set"):
        resolve_real("no-such-set")
    (tmp_path / "plain").mkdir()
    with pytest.raises(UserError, match="not a BOP dataset root"):
        resolve_real(str(tmp_path / "plain"))


def run_cli(args, capsys):
    """The real CLI entry point in-process (a subprocess would pay the ~10 s import of every stage)."""
    import cli
    code = 0
    try:
        cli.main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_score_cli_rejects_bad_csv_with_exit_2(tmp_path, capsys):
    _write_set(tmp_path / "set", np.random.default_rng(0))
    bad = _csv(tmp_path, "scene_id,im_id,obj_id,score,R,t,time\n4,10,1,1,1 0 0 0 2 0 0 0 1,0 0 300,0\n")
    code, _, err = run_cli(["score", "--pred", bad, "--real", tmp_path / "set", "--out", tmp_path / "out"], capsys)
    assert code == 2
    assert err.startswith("error: ") and "line 2: R: not a rotation matrix" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "metrics.json").exists()
