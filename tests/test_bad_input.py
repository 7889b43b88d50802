"""Every class of bad input a new user may give, fed to every command that takes it (issue 10, item 7).

Each case runs the CLI in-process (`cli.main([...])`) and asserts: exit status 2, one line on stderr naming
the file or option, no traceback, and nothing left at the output path. Also: a crafted pickle is never
executed, a manifest cannot make a command write outside its folder, two `generate` runs into one folder.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

import cli
from tests.conftest import SHARED_REAL

ARUCO = SHARED_REAL / "aruco_cube"
MARKER = "pwned.txt"  # a crafted pickle would create this file


class _Evil:
    """Unpickling this calls Path.touch(MARKER_PATH): code execution, if the loader allowed it."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def _run(argv: list[str], capsys) -> tuple[int, str]:
    try:
        cli.main([str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    """A tiny dataset, its BOP export (a "real" set for score/predict), and every bad file the cases use."""
    import torch
    d = tmp_path_factory.mktemp("bad")
    os.environ.setdefault("SIM2REAL_CACHE", str(d / "cache"))
    assert cli.main(["generate", "--n", "8", "--shard-size", "4", "--out", str(d / "ds"), "--frame-width", "64",
                     "--crop-px", "64"]) is None
    assert cli.main(["export", "--data", str(d / "ds"), "--out", str(d / "bop")]) is None
    assert cli.main(["train", "--data", str(d / "ds"), "--out", str(d / "model"), "--profile", "quick", "--epochs",
                     "1", "--quiet"]) is None
    ok, png = cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))
    (d / "img.png").write_bytes(png.tobytes())
    (d / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (d / "nan.csv").write_text("scene_id,im_id,obj_id,score,R,t,time\n1,0,1,nan,1 0 0 0 1 0 0 0 1,0 0 300,0.1\n")
    (d / "file.txt").write_text("a file, not a folder\n")
    (d / "good.csv").write_text("scene_id,im_id,obj_id,score,R,t,time\n1,0,1,1.0,1 0 0 0 1 0 0 0 1,0 0 300,0.1\n")
    (d / "folder").mkdir()
    (d / "space_dr.yaml").write_text("params:\n  ambient: {kind: continuous, acts_on: render, nominal: 0.6, "
                                     "bounds: [0.2, 0.9], dr: [\"a\", \"b\"]}\n")
    (d / "space_missing.yaml").write_text("params:\n  noise_std: {kind: continuous, acts_on: image, nominal: 0.0, "
                                          "bounds: [0.0, 0.1]}\n")
    (d / "scene_scalar.yaml").write_text("camera_distance_m: 0.3\n")
    (d / "scene_settle.yaml").write_text("settle_steps: -5\n")
    # datasets damaged in one way each
    man = json.loads((d / "ds" / "manifest.json").read_text())

    def variant(name: str, manifest=None, truncate: str | None = None) -> Path:
        p = d / name
        shutil.copytree(d / "ds", p)
        if manifest is not None:
            (p / "manifest.json").write_text(json.dumps(manifest))
        if truncate:
            f = p / "shards" / "000000" / truncate
            f.write_bytes(f.read_bytes()[:100])
        return p

    variant("ds_trunc", truncate="frames.npy")
    variant("ds_noobj", {k: v for k, v in man.items() if k != "object"})
    variant("ds_list", [man])
    variant("ds_unknown", {**man, "colour": "blue"})
    evil = json.loads(json.dumps(man))
    evil["shards"][0]["name"] = "../../escaped"
    variant("ds_traversal", evil)
    # checkpoints: a crafted pickle, a truncated file
    torch.save({"format": "sim2real-pose/1", "x": _Evil(str(d / MARKER))}, d / "evil.pt")
    torch.save({"format": "sim2real-pose/1", "w": torch.zeros(1000)}, d / "good.pt")
    (d / "trunc.pt").write_bytes((d / "good.pt").read_bytes()[:200])
    for run in ("run_evil", "ref_evil"):
        (d / run).mkdir()
    shutil.copy(d / "evil.pt", d / "run_evil" / "model.pt")
    shutil.copy(d / "evil.pt", d / "ref_evil" / "state.pt")
    (d / "ref_trunc").mkdir()
    shutil.copy(d / "trunc.pt", d / "ref_trunc" / "state.pt")
    (d / "run_trunc").mkdir()
    shutil.copy(d / "trunc.pt", d / "run_trunc" / "model.pt")
    (d / "images").mkdir()
    (d / "images" / "a.png").write_bytes(png.tobytes())
    # real import trees: files linked from the shared set, one thing broken in each
    if (ARUCO / "src2").is_dir():
        for name in ("src_npz", "src_stray"):
            shutil.copytree(ARUCO / "src2" / "test1_result", d / name / "src2" / "test1_result",
                            copy_function=os.symlink)
        npz = d / "src_npz" / "src2" / "test1_result" / "intrinsics" / "cam0.npz"
        data = npz.read_bytes()
        npz.unlink()
        npz.write_bytes(data[:len(data) // 2])
        shutil.copy(ARUCO / "src2" / "test1_result" / "data" / "cube_session_01" / "cam0" / "rgb_00000.jpg",
                    d / "src_stray" / "src2" / "test1_result" / "data" / "cube_session_01" / "cam0" / "rgb_x.jpg")
    return d


# (case id, argv with {d} = the fixture folder and {o} = a fresh output path, text stderr must contain)
CASES = [
    # --- numbers out of range ---
    ("generate seed -1", ["generate", "--n", "4", "--seed", "-1", "--out", "{o}"], "--seed"),
    ("generate n 0", ["generate", "--n", "0", "--out", "{o}"], "--n"),
    ("generate workers 0", ["generate", "--n", "4", "--workers", "0", "--out", "{o}"], "--workers"),
    ("train seed -1", ["train", "--data", "{d}/ds", "--out", "{o}", "--seed", "-1"], "--seed"),
    ("train batch 0", ["train", "--data", "{d}/ds", "--out", "{o}", "--batch-size", "0"], "--batch-size"),
    ("train batch -4", ["train", "--data", "{d}/ds", "--out", "{o}", "--batch-size", "-4"], "--batch-size"),
    ("train threads -1", ["train", "--data", "{d}/ds", "--out", "{o}", "--threads", "-1"], "--threads"),
    ("train max-samples -3", ["train", "--data", "{d}/ds", "--out", "{o}", "--max-samples", "-3"], "--max-samples"),
    ("train epochs 0", ["train", "--data", "{d}/ds", "--out", "{o}", "--epochs", "0"], "--epochs"),
    ("refine steps 0", ["refine", "train", "--synthetic", "{d}/ds", "--real", "{d}/bop", "--out", "{o}",
                        "--steps", "0"], "--steps"),
    ("refine lam -1", ["refine", "train", "--synthetic", "{d}/ds", "--real", "{d}/bop", "--out", "{o}",
                       "--lam", "-1"], "--lam"),
    ("refine seed -1", ["refine", "train", "--synthetic", "{d}/ds", "--real", "{d}/bop", "--out", "{o}",
                        "--seed", "-1"], "--seed"),
    ("refine threads -1", ["refine", "train", "--synthetic", "{d}/ds", "--real", "{d}/bop", "--out", "{o}",
                           "--threads", "-1"], "--threads"),
    ("score n-boot 0", ["score", "--pred", "{d}/nan.csv", "--real", "{d}/bop", "--out", "{o}", "--n-boot", "0"],
     "--n-boot"),
    ("score seed -1", ["score", "--pred", "{d}/nan.csv", "--real", "{d}/bop", "--out", "{o}", "--seed", "-1"],
     "--seed"),
    ("randomizer seed -1", ["randomizer", "show", "--out", "{o}", "--seed", "-1"], "--seed"),
    ("randomizer n 0", ["randomizer", "show", "--out", "{o}", "--n", "0"], "--n"),
    ("benchmark seeds 0", ["benchmark", "--seeds", "0", "--out", "{o}"], "--seeds"),
    ("benchmark epochs 0", ["benchmark", "--epochs", "0", "--out", "{o}"], "--epochs"),
    # --- output of the wrong kind ---
    ("train out is a file", ["train", "--data", "{d}/ds", "--out", "{d}/file.txt"], "file.txt"),
    ("generate out is a file", ["generate", "--n", "4", "--out", "{d}/file.txt"], "file.txt"),
    ("predict out is a folder", ["predict", "--model", "{d}/good.pt", "--real", "{d}/bop", "--out", "{d}/folder"],
     "folder"),
    ("show out is a folder", ["show", "--data", "{d}/ds", "--out", "{d}/folder"], "folder"),
    ("export out is a file", ["export", "--data", "{d}/ds", "--out", "{d}/file.txt"], "file.txt"),
    ("score out is a file", ["score", "--pred", "{d}/nan.csv", "--real", "{d}/bop", "--out", "{d}/file.txt"],
     "file.txt"),
    ("generate read-only out", ["generate", "--n", "4", "--out", "/proc/sim2real-test/ds"], "/proc/sim2real-test"),
    *[(f"{argv[0]} read-only out", argv, "/proc/sim2real-test") for argv in (
        ["train", "--data", "{d}/ds", "--out", "/proc/sim2real-test/run", "--profile", "quick"],
        ["export", "--data", "{d}/ds", "--out", "/proc/sim2real-test/bop"],
        ["show", "--data", "{d}/ds", "--out", "/proc/sim2real-test/sheet.png"],
        ["score", "--pred", "{d}/good.csv", "--real", "{d}/bop", "--out", "/proc/sim2real-test/score"],
        ["predict", "--model", "{d}/model/model.pt", "--real", "{d}/bop", "--out", "/proc/sim2real-test/p.csv"],
        ["baseline", "mean-pose", "--data", "{d}/ds", "--real", "{d}/bop", "--out", "/proc/sim2real-test/p.csv"],
        ["refine", "train", "--synthetic", "{d}/ds", "--real", "{d}/bop", "--out", "/proc/sim2real-test/r",
         "--profile", "quick"],
        ["randomizer", "show", "--image-only", "--out", "/proc/sim2real-test/grid.png"],
    )],
    # --- damaged datasets, to every command that reads one ---
    *[(f"{cmd} {kind}", argv, key)
      for kind, key in (("ds_trunc", "frames.npy"), ("ds_noobj", "object"), ("ds_list", "top level"),
                        ("ds_unknown", "colour"), ("ds_traversal", "shards[0].name"))
      for cmd, argv in (
          ("show", ["show", "--data", "{d}/" + kind, "--out", "{o}.png"]),
          ("export", ["export", "--data", "{d}/" + kind, "--out", "{o}"]),
          ("train", ["train", "--data", "{d}/" + kind, "--out", "{o}", "--profile", "quick"]),
          ("baseline", ["baseline", "mean-pose", "--data", "{d}/" + kind, "--real", "{d}/bop", "--out", "{o}.csv"]),
          ("refine-train", ["refine", "train", "--synthetic", "{d}/" + kind, "--real", "{d}/bop", "--out", "{o}",
                            "--profile", "quick"]),
      )],
    # --- the wrong kind of file ---
    ("generate object png", ["generate", "--n", "4", "--object", "{d}/img.png", "--out", "{o}"], "img.png"),
    ("generate space png", ["generate", "--n", "4", "--space", "{d}/img.png", "--out", "{o}"], "img.png"),
    ("generate scene png", ["generate", "--n", "4", "--scene", "{d}/img.png", "--out", "{o}"], "img.png"),
    ("generate camera png", ["generate", "--n", "4", "--camera", "{d}/img.png", "--out", "{o}"], "img.png"),
    ("randomizer config png", ["randomizer", "show", "--config", "{d}/img.png", "--out", "{o}.png"], "img.png"),
    ("train space png", ["train", "--data", "{d}/ds", "--out", "{o}", "--space", "{d}/img.png"], "img.png"),
    ("score pred png", ["score", "--pred", "{d}/img.png", "--real", "{d}/bop", "--out", "{o}"], "img.png"),
    ("score pred binary", ["score", "--pred", "{d}/binary.csv", "--real", "{d}/bop", "--out", "{o}"], "binary.csv"),
    ("score pred NaN", ["score", "--pred", "{d}/nan.csv", "--real", "{d}/bop", "--out", "{o}"], "score"),
    ("predict model png", ["predict", "--model", "{d}/img.png", "--real", "{d}/bop", "--out", "{o}.csv"], "img.png"),
    ("predict camera png", ["predict", "--model", "{d}/good.pt", "--images", "{d}/images", "--camera",
                            "{d}/img.png", "--out", "{o}.csv"], "img.png"),
    ("refine apply refiner png", ["refine", "apply", "--refiner", "{d}/img.png", "--data", "{d}/ds", "--out", "{o}"],
     "img.png"),
    ("train data png", ["train", "--data", "{d}/img.png", "--out", "{o}"], "img.png"),
    ("show data png", ["show", "--data", "{d}/img.png", "--out", "{o}.png"], "img.png"),
    ("export data png", ["export", "--data", "{d}/img.png", "--out", "{o}"], "img.png"),
    ("refine apply data png", ["refine", "apply", "--refiner", "{d}/good.pt", "--data", "{d}/img.png",
                               "--out", "{o}"], "img.png"),
    ("score real png", ["score", "--pred", "{d}/nan.csv", "--real", "{d}/img.png", "--out", "{o}"], "img.png"),
    ("predict real png", ["predict", "--model", "{d}/good.pt", "--real", "{d}/img.png", "--out", "{o}.csv"],
     "img.png"),
    ("generate like-real png", ["generate", "--n", "4", "--like-real", "{d}/img.png", "--out", "{o}"], "img.png"),
    ("baseline real png", ["baseline", "mean-pose", "--data", "{d}/ds", "--real", "{d}/img.png", "--out",
                           "{o}.csv"], "img.png"),
    ("refine train real png", ["refine", "train", "--synthetic", "{d}/ds", "--real", "{d}/img.png", "--out",
                               "{o}", "--profile", "quick"], "img.png"),
    ("predict images missing", ["predict", "--model", "{d}/good.pt", "--images", "{d}/nope", "--camera",
                                "{d}/img.png", "--out", "{o}.csv"], None),
    # --- bad YAML content ---
    ("generate space dr strings", ["generate", "--n", "4", "--space", "{d}/space_dr.yaml", "--out", "{o}"],
     "space_dr.yaml"),
    ("generate space missing param", ["generate", "--n", "4", "--space", "{d}/space_missing.yaml", "--out", "{o}"],
     "space_missing.yaml"),
    ("randomizer space dr strings", ["randomizer", "show", "--config", "{d}/space_dr.yaml", "--out", "{o}.png"],
     "space_dr.yaml"),
    ("train space dr strings", ["train", "--data", "{d}/ds", "--out", "{o}", "--pipeline", "dr",
                                "--space", "{d}/space_dr.yaml"], "space_dr.yaml"),
    ("generate scene scalar range", ["generate", "--n", "4", "--scene", "{d}/scene_scalar.yaml", "--out", "{o}"],
     "camera_distance_m"),
    ("generate scene settle -5", ["generate", "--n", "4", "--scene", "{d}/scene_settle.yaml", "--out", "{o}"],
     "settle_steps"),
    # --- damaged or crafted checkpoints (the crafted one must not run: see test_crafted_pickle_never_runs) ---
    ("predict model crafted", ["predict", "--model", "{d}/evil.pt", "--real", "{d}/bop", "--out", "{o}.csv"],
     "evil.pt"),
    ("predict model truncated", ["predict", "--model", "{d}/trunc.pt", "--real", "{d}/bop", "--out", "{o}.csv"],
     "trunc.pt"),
    ("refine apply crafted", ["refine", "apply", "--refiner", "{d}/evil.pt", "--data", "{d}/ds", "--out", "{o}"],
     "evil.pt"),
    ("refine apply truncated", ["refine", "apply", "--refiner", "{d}/trunc.pt", "--data", "{d}/ds", "--out", "{o}"],
     "trunc.pt"),
    ("train out holds a run", ["train", "--data", "{d}/ds", "--out", "{d}/run_evil", "--profile", "quick"],
     "--resume"),
    ("train resume crafted", ["train", "--data", "{d}/ds", "--out", "{d}/run_evil", "--resume", "--profile", "quick"],
     "model.pt"),
    ("train resume truncated", ["train", "--data", "{d}/ds", "--out", "{d}/run_trunc", "--resume", "--profile",
                                "quick"], "model.pt"),
    ("refine resume crafted", ["refine", "train", "--synthetic", "{d}/ds", "--real", "{d}/bop", "--out",
                               "{d}/ref_evil", "--resume", "--profile", "quick"], "state.pt"),
    ("refine resume truncated", ["refine", "train", "--synthetic", "{d}/ds", "--real", "{d}/bop", "--out",
                                 "{d}/ref_trunc", "--resume", "--profile", "quick"], "state.pt"),
    # --- a manifest that points outside its folder ---
    ("refine apply traversal", ["refine", "apply", "--refiner", "{d}/good.pt", "--data", "{d}/ds_traversal",
                                "--out", "{o}"], None),
    # --- benchmark checks its inputs before creating --out ---
    ("benchmark bad real", ["benchmark", "--real", "{d}/no-such-set", "--out", "{o}"], "no-such-set"),
    ("benchmark bad from", ["benchmark", "--from", "{d}/no-such-tree", "--out", "{o}"], "no-such-tree"),
    # --- real import: a truncated intrinsics file, a stray image name ---
    ("real import truncated npz", ["real", "import", "aruco-cube", "--src", "{d}/src_npz", "--sessions", "test1",
                                   "--cameras", "cam0", "--out", "{o}"], "cam0.npz"),
    ("real import stray jpg", ["real", "import", "aruco-cube", "--src", "{d}/src_stray", "--sessions", "test1",
                               "--cameras", "cam0", "--out", "{o}"], "rgb_x.jpg"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_answered(case, w, tmp_path, capsys):
    name, argv, key = case
    if "{d}/src_" in " ".join(argv) and not (w / "src_npz").is_dir():
        pytest.skip("shared real data not found")
    o = tmp_path / "out"
    args = [a.replace("{d}", str(w)).replace("{o}", str(o)) for a in argv]
    code, err = _run(args, capsys)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, f"{name}: exit {code}, stderr: {err[-800:]}"
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{name}: stderr is not one error line: {err!r}"
    if key is not None:
        assert key in lines[0], f"{name}: the error does not name {key!r}: {lines[0]}"
    left = [p.name for p in tmp_path.iterdir()]
    assert left == [], f"{name}: left {left} behind"
    assert not (w / MARKER).exists(), "a crafted pickle ran code"


def test_crafted_pickle_never_runs(w, capsys):
    """Every loader of a user-given .pt uses weights_only=True: the crafted file is refused, nothing runs."""
    from core.io import UserError, load_torch_file
    from pose_model.model import load_checkpoint
    from refiner.apply import load_refiner
    for load in (lambda: load_checkpoint(w / "evil.pt"), lambda: load_refiner(w / "evil.pt"),
                 lambda: load_torch_file(w / "evil.pt", "file")):
        with pytest.raises(UserError, match="evil.pt: .*refusing to unpickle"):
            load()
    assert not (w / MARKER).exists()
    # and the pickle really is live: an unsafe load would have run it
    import torch
    torch.load(w / "evil.pt", weights_only=False)
    assert (w / MARKER).exists()
    (w / MARKER).unlink()


def test_path_traversal_manifest_is_refused(w):
    """A shard name like ../../x never reaches a path join: the manifest reader refuses it."""
    from core.io import UserError
    from render.dataset import SyntheticDataset
    with pytest.raises(UserError, match=r"shards\[0\]\.name"):
        SyntheticDataset(w / "ds_traversal")
    assert not (w.parent / "escaped").exists()


def test_shard_hash_mismatch_is_refused(w, tmp_path):
    """A shard whose bytes differ from the manifest's record (same size) is refused when loaded."""
    from core.io import UserError
    from render.dataset import SyntheticDataset
    p = tmp_path / "ds"
    shutil.copytree(w / "ds", p)
    f = p / "shards" / "000001" / "crops.npy"
    b = bytearray(f.read_bytes())
    b[-1] ^= 0xFF
    f.write_bytes(bytes(b))
    ds = SyntheticDataset(p)
    ds.frames  # untouched file: fine
    with pytest.raises(UserError, match="crops.npy: sha256"):
        ds.crops


def _generate(out: str, q) -> None:
    import io
    import contextlib
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            cli.main(["generate", "--n", "48", "--shard-size", "4", "--frame-width", "64", "--crop-px", "32",
                      "--out", out])
            q.put((0, ""))
        except SystemExit as e:
            q.put((e.code, err.getvalue()))


def test_two_generates_into_one_folder(tmp_path):
    """The second of two concurrent runs gets a clear error; the dataset left behind is whole and consistent."""
    from render.dataset import SyntheticDataset
    out = str(tmp_path / "ds")
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_generate, args=(out, q)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    results = sorted([q.get(timeout=5) for _ in procs], key=lambda r: r[0])
    codes = [r[0] for r in results]
    print("concurrent generate exit codes:", codes)
    # either they overlapped (one refused) or the second found the finished dataset
    assert codes in ([0, 0], [0, 2]), results
    if codes == [0, 2]:
        assert "another `sim2real generate`" in results[1][1]
    ds = SyntheticDataset(out)
    assert len(ds.labels) == 48 and len(ds.crops) == 48
    assert not [p for p in (tmp_path / "ds" / "shards").iterdir() if p.name.startswith(".")]


def test_generate_refuses_a_locked_folder(tmp_path, capsys):
    """While one run holds OUT's lock, another `generate` into OUT exits 2 with a clear line."""
    from render.generate import output_lock
    out = tmp_path / "ds"
    out.mkdir()
    with output_lock(out):
        code, err = _run(["generate", "--n", "4", "--out", out], capsys)
    assert code == 2 and "another `sim2real generate`" in err, err
    assert sorted(p.name for p in out.iterdir()) == [".generate.lock"]
