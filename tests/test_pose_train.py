"""Pose model end to end on tiny real cases: render → train → predict on a BOP set; resume; bad input."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core.io import UserError
from core.objects import load_object_spec
from pose_model.config import make_config
from pose_model.predict import PoseEstimator, predict_bop, predict_images
from pose_model.train import CURVE_KEYS, train


def run_cli(argv: list[str]) -> int:
    from cli import main
    try:
        main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from render.generate import GenerateConfig, generate_dataset
    out = tmp_path_factory.mktemp("pose") / "ds"
    generate_dataset(GenerateConfig(object="aruco-cube", n=40, seed=3, frame_width=96, crop_px=64), out,
                     workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def tiny_model(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("pose") / "run"
    cfg = make_config("quick", data=str(tiny_data), out=str(out), device="cpu", epochs=2, max_samples=40)
    return train(cfg, progress=False)


def _bop_from_synthetic(ds_dir: Path, root: Path, n: int, spec_name: str = "aruco-cube") -> list:
    """A small labelled BOP set: the synthetic frames upsampled to the camera resolution."""
    from core.bop import write_models, write_scene
    from render.dataset import SyntheticDataset
    ds = SyntheticDataset(ds_dir)
    H, W = ds.manifest["full_hw"]
    images = []
    for i in range(n):
        lab = ds.labels[i]
        rgb = cv2.resize(ds.frames[i], (W, H), interpolation=cv2.INTER_LINEAR)
        images.append({"im_id": i, "K": lab["K_full"], "width": W, "height": H, "rgb": rgb,
                       "gts": [(ds.spec.obj_id, lab["R"], lab["t_m"] * 1000)]})
    write_scene(root, 1, images, session="synthetic")
    write_models(root, [load_object_spec(spec_name)])
    return images


def test_end_to_end_predict_bop(tiny_data, tiny_model, tmp_path):
    from core.bop import read_results_csv
    card = json.loads((tiny_model.parent / "model_card.json").read_text())
    assert card["pipeline"] == "none" and card["dataset"]["content_hash"]
    assert np.isfinite(card["val_metrics"]["val_re_med_deg"])
    assert (tiny_model.parent / "curves.csv").read_text().count("\n") == 3  # header + 2 epochs
    # the GT-crop diagnostic (a second validation pass) only every GT_CROP_EVERY epochs and at the last one
    hist = torch.load(tiny_model, weights_only=True)["history"]
    assert "val_re_med_deg_gtcrop" not in hist[0] and np.isfinite(hist[-1]["val_re_med_deg_gtcrop"])
    assert np.isfinite(card["val_metrics"]["val_te_med_mm_gtcrop"])
    assert (tiny_model.parent / "curves.png").is_file()
    root = tmp_path / "bop"
    _bop_from_synthetic(tiny_data, root, 5)
    out = predict_bop(tiny_model, root, tmp_path / "preds.csv", device="cpu", overlays=tmp_path / "ov")
    rows = read_results_csv(out)
    assert sorted((r["scene_id"], r["im_id"]) for r in rows) == [(1, i) for i in range(5)]
    for r in rows:
        assert np.allclose(r["R"] @ r["R"].T, np.eye(3), atol=1e-4) and r["t_mm"][2] > 0 and r["time_s"] > 0
    assert len(list((tmp_path / "ov").glob("*.jpg"))) == 5
    # the CLI does the same, and the Python API agrees with the CSV
    assert run_cli(["predict", "--model", str(tiny_model), "--real", str(root), "--out", str(tmp_path / "p2.csv"),
                    "--scenes", "1", "--device", "cpu"]) == 0
    rows2 = read_results_csv(tmp_path / "p2.csv")
    assert np.allclose([r["t_mm"] for r in rows2], [r["t_mm"] for r in rows], atol=1e-6)


def test_predict_images_folder(tiny_data, tiny_model, tmp_path):
    from core.bop import read_results_csv
    from render.dataset import SyntheticDataset
    ds = SyntheticDataset(tiny_data)
    (tmp_path / "imgs").mkdir()
    for i in range(3):
        cv2.imwrite(str(tmp_path / "imgs" / f"shot_{i}.png"), cv2.resize(ds.frames[i], (640, 480))[..., ::-1])
    (tmp_path / "K.json").write_text(json.dumps({"cam_K": np.asarray(ds.labels[0]["K_full"]).tolist()}))
    out = predict_images(tiny_model, tmp_path / "imgs", tmp_path / "K.json", tmp_path / "p.csv", device="cpu")
    assert [r["im_id"] for r in read_results_csv(out)] == [0, 1, 2]
    est = PoseEstimator.load(tiny_model, "cpu")
    R, t, score = est.predict(cv2.resize(ds.frames[0], (640, 480)), ds.labels[0]["K_full"])
    assert R.shape == (3, 3) and t.shape == (3,) and 0 <= score <= 1


def test_resume_continues_identically(tiny_data, tmp_path):
    """…and how often it validates does not change the weights (a validated every 2nd epoch and at the last, b every
    epoch)."""
    kw = dict(data=str(tiny_data), device="cpu", max_samples=24, batch_size=8)
    a = train(make_config("quick", out=str(tmp_path / "a"), epochs=3, val_every=2, **kw), progress=False)
    train(make_config("quick", out=str(tmp_path / "b"), epochs=1, val_every=1, **kw), progress=False)
    b = train(make_config("quick", out=str(tmp_path / "b"), epochs=3, val_every=1, resume=True, **kw), progress=False)
    sa, sb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert sb["epoch"] == 2 and len(sb["history"]) == 3
    for k, v in sa["model"].items():
        assert torch.equal(v, sb["model"][k]), k
    assert sa["history"][-1]["train_loss"] == sb["history"][-1]["train_loss"]
    assert [("val_re_med_deg" in r) for r in sb["history"]] == [True, True, True]
    assert [("val_re_med_deg" in r) for r in sa["history"]] == [False, True, True]
    assert [("val_re_med_deg_gtcrop" in r) for r in sa["history"]] == [False, False, True]  # GT_CROP_EVERY 8, last
    assert sa["history"][-1]["val_re_med_deg"] == sb["history"][-1]["val_re_med_deg"]
    card = json.loads((tmp_path / "a" / "model_card.json").read_text())
    assert card["val_epoch"] == 3 and card["val_metrics"]["val_re_med_deg"] == sa["history"][-1]["val_re_med_deg"]
    rows = (tmp_path / "a" / "curves.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[1].split(",")[CURVE_KEYS.index("val_re_med_deg")] == ""  # epoch 1: no validation
    with pytest.raises(UserError, match="--val-every 0"):
        make_config("quick", out=str(tmp_path / "d"), val_every=0, **kw)
    # a different seed really changes the run (the comparison above can fail)
    c = train(make_config("quick", out=str(tmp_path / "c"), epochs=2, seed=1, **kw), progress=False)
    sc = torch.load(c, weights_only=True)
    assert not torch.equal(sc["model"]["regressor.head.weight"], sa["model"]["regressor.head.weight"])


def test_bad_inputs(tiny_data, tiny_model, tmp_path):
    (tmp_path / "imgs").mkdir()
    good_K = tmp_path / "K.json"
    good_K.write_text(json.dumps({"cam_K": [[600, 0, 320], [0, 600, 240], [0, 0, 1]]}))
    # missing and corrupt checkpoints
    with pytest.raises(UserError, match="not found"):
        PoseEstimator.load(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(UserError, match="not a readable"):
        PoseEstimator.load(bad)
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not a sim2real pose-model checkpoint"):
        PoseEstimator.load(tmp_path / "other.pt")
    # an image folder with no images
    with pytest.raises(UserError, match="no images"):
        predict_images(tiny_model, tmp_path / "imgs", good_K, tmp_path / "p.csv", device="cpu")
    cv2.imwrite(str(tmp_path / "imgs" / "a.png"), np.zeros((48, 64, 3), np.uint8))
    # K files with the wrong shape
    for bad_K in ({"cam_K": [1, 2, 3, 4]}, {"cam_K": [[1, 2], [3, 4]]}, {"K": [1] * 9}):
        (tmp_path / "Kbad.json").write_text(json.dumps(bad_K))
        with pytest.raises(UserError, match="cam_K"):
            predict_images(tiny_model, tmp_path / "imgs", tmp_path / "Kbad.json", tmp_path / "p.csv", device="cpu")
    # a checkpoint for another object
    with pytest.raises(UserError, match="trifinger-cube"):
        predict_images(tiny_model, tmp_path / "imgs", good_K, tmp_path / "p.csv", device="cpu",
                       object_name="trifinger-cube")
    root = tmp_path / "bop_tri"
    _bop_from_synthetic(tiny_data, root, 1, spec_name="trifinger-cube")
    with pytest.raises(UserError, match="aruco-cube"):
        predict_bop(tiny_model, root, tmp_path / "p.csv", device="cpu")
    assert not (tmp_path / "p.csv").exists()
    # the CLI turns them into one line and exit code 2
    assert run_cli(["predict", "--model", str(bad), "--images", str(tmp_path / "imgs"), "--camera", str(good_K),
                    "--out", str(tmp_path / "p.csv")]) == 2
    # simgan needs a refined dataset
    with pytest.raises(UserError, match="refined_by"):
        train(make_config("quick", data=str(tiny_data), out=str(tmp_path / "s"), pipeline="simgan"), progress=False)


def test_adr_run_is_reproducible_from_its_seed(tiny_data, tmp_path, train_tiny_adr):
    """Jobs are collected at fixed steps (waiting for a late one), so one seed gives one ADR run: the same
    boundary decisions and the same weights, however fast the render worker happened to be."""
    (ca, a), (cb, b) = (train_tiny_adr(tiny_data, tmp_path / f"adr{i}", "process") for i in range(2))
    assert a["pipeline_state"]["adr"] == b["pipeline_state"]["adr"]  # same draws, same boundary decisions
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    ta, tb = ca["adr_throughput"], cb["adr_throughput"]
    assert ta["boundary_samples_scored"] == tb["boundary_samples_scored"] > 0
    assert ta["samples_rendered"] == tb["samples_rendered"] > 0


def test_adr_and_dr_pipelines_plug_in(tiny_data, tmp_path):
    """ADR draws ranges every step, reports the task score, logs ranges/entropy and stores the final ranges;
    dr randomizes the images it trains on."""
    kw = dict(data=str(tiny_data), device="cpu", max_samples=24, batch_size=8, epochs=1)
    ck = train(make_config("quick", out=str(tmp_path / "adr"), pipeline="adr", **kw), progress=False)
    card = json.loads((tmp_path / "adr" / "model_card.json").read_text())
    assert card["pipeline"] == "adr" and "adr_final_ranges" in card and np.isfinite(card["adr_entropy"])
    assert (tmp_path / "adr" / "adr_ranges.csv").is_file()
    state = torch.load(ck, weights_only=True)["pipeline_state"]
    assert state["step"] > 0 and state["adr"]["counters"]["n_draws"] == state["n_jobs"] > 0  # jobs went to workers
    assert card["adr_throughput"]["trainer_samples_per_s"] > 0 and (tmp_path / "adr" / "adr_vs_dr.png").is_file()
    from pose_model.pipelines import make_pipeline
    pipe = make_pipeline("dr", None, 0, torch.device("cpu"))
    pipe.set_epoch_seed(0)
    x = torch.rand(4, 3, 32, 32)
    assert not torch.equal(pipe.augment(x.clone(), None), x)
    assert torch.equal(make_pipeline("none", None, 0, torch.device("cpu")).augment(x, None), x)


def test_simgan_pipelines_take_a_refined_dataset(tiny_data, tmp_path):
    """simgan / simgan+dr train on a dataset whose manifest says `refined_by` (here: images inverted, a
    stand-in for a refiner), with the original labels."""
    from render.dataset import SyntheticDataset, write_derived
    ref = write_derived(SyntheticDataset(tiny_data), tmp_path / "refined", lambda x: 255 - x, lambda x: 255 - x,
                        {"refined_by": {"checkpoint": "stand-in"}})
    kw = dict(data=str(ref), device="cpu", max_samples=16, batch_size=8, epochs=1)
    for p in ("simgan", "simgan+dr"):
        train(make_config("quick", out=str(tmp_path / p), pipeline=p, **kw), progress=False)
        card = json.loads((tmp_path / p / "model_card.json").read_text())
        assert card["pipeline"] == p and card["dataset"]["refined_by"] == {"checkpoint": "stand-in"}


def test_loc_data_feeds_the_localizer_only(tiny_data, tmp_path):
    """--loc-data (pipeline hybrid-dr): the localizer trains on another set's frames, the regressor on --data's
    crops exactly as without it; the card records the set; a set of another camera or object is refused.
    --regressor-from: the localizer alone trains beside a shared, frozen regressor — the same model bit for bit."""
    from render.generate import GenerateConfig, generate_dataset
    other = tmp_path / "other"  # same object and camera, other scenes (render-time randomization)
    generate_dataset(GenerateConfig(object="aruco-cube", n=24, seed=9, frame_width=96, crop_px=64,
                                    randomization="dr"), other, workers=1, progress=False)
    kw = dict(data=str(tiny_data), device="cpu", max_samples=24, batch_size=8, epochs=1, pipeline="none")
    plain = torch.load(train(make_config("quick", out=str(tmp_path / "a"), **kw), progress=False),
                       weights_only=True)
    mixed = torch.load(train(make_config("quick", out=str(tmp_path / "b"), loc_data=str(other), **kw),
                             progress=False), weights_only=True)
    reg = [k for k in plain["model"] if k.startswith("regressor.")]
    loc = [k for k in plain["model"] if k.startswith("localizer.") and plain["model"][k].is_floating_point()]
    assert reg and all(torch.equal(plain["model"][k], mixed["model"][k]) for k in reg)
    assert any(not torch.equal(plain["model"][k], mixed["model"][k]) for k in loc)
    # --regressor-from (the benchmark's hybrid-dr): image-dr's regressor, frozen; the localizer alone trains — and
    # comes out bit for bit the one the full hybrid-dr run trains (the image randomizer's stream is kept in step)
    rkw = {**kw, "pipeline": "image-dr"}
    image_dr = train(make_config("quick", out=str(tmp_path / "i"), **rkw), progress=False)
    rkw["pipeline"] = "hybrid-dr"
    full = torch.load(train(make_config("quick", out=str(tmp_path / "h"), loc_data=str(other), **rkw),
                            progress=False), weights_only=True)
    shared = torch.load(train(make_config("quick", out=str(tmp_path / "s"), loc_data=str(other),
                                          regressor_from=str(image_dr), **rkw), progress=False), weights_only=True)
    assert all(torch.equal(full["model"][k], shared["model"][k]) for k in full["model"])
    assert (tmp_path / "s" / "curves.png").is_file()  # its curves have no regressor losses to plot
    assert any(not torch.equal(full["model"][k], mixed["model"][k]) for k in loc)  # the randomizer mattered
    # not a regressor this run would train: refused, naming the field
    with pytest.raises(UserError, match="--regressor-from .*config.seed"):
        train(make_config("quick", out=str(tmp_path / "t"), loc_data=str(other), **{**rkw, "seed": 1},
                          regressor_from=str(image_dr)), progress=False)
    with pytest.raises(UserError, match="--regressor-from .*another dataset"):
        train(make_config("quick", out=str(tmp_path / "t"), **{**kw, "data": str(other)},
                          regressor_from=str(image_dr)), progress=False)
    with pytest.raises(UserError, match="--regressor-from .*image_ranges"):  # none: no image randomization
        train(make_config("quick", out=str(tmp_path / "t"), **kw, regressor_from=str(image_dr)), progress=False)
    assert not (tmp_path / "t" / "model.pt").exists()
    card = json.loads((tmp_path / "b" / "model_card.json").read_text())
    assert card["loc_dataset"]["path"] == str(other)
    assert card["loc_dataset"]["content_hash"] == json.loads((other / "manifest.json").read_text())["content_hash"]
    # hybrid-dr needs it; another camera or object is refused, naming the flag and the field
    with pytest.raises(UserError, match="--loc-data is required"):
        make_config("quick", data=str(tiny_data), out=str(tmp_path / "c"), pipeline="hybrid-dr")
    wide = tmp_path / "wide"
    generate_dataset(GenerateConfig(object="aruco-cube", n=4, seed=9, frame_width=128, crop_px=64), wide,
                     workers=1, progress=False)
    with pytest.raises(UserError, match="--loc-data .*frame_hw"):
        train(make_config("quick", out=str(tmp_path / "d"), loc_data=str(wide), **kw), progress=False)
    tri = tmp_path / "tri"
    generate_dataset(GenerateConfig(object="trifinger-cube", n=4, seed=9, frame_width=96, crop_px=64), tri,
                     workers=1, progress=False)
    with pytest.raises(UserError, match="--loc-data .*object"):
        train(make_config("quick", out=str(tmp_path / "e"), loc_data=str(tri), **kw), progress=False)
    assert not (tmp_path / "d" / "model.pt").exists() and not (tmp_path / "e" / "model.pt").exists()


def test_dense_keypoints_hand_computed():
    """Votes on a 2×2 map: one cell outweighing the rest gives its centre plus its offset (in cells); equal
    weights and no offsets give the mean of the cell centres, the crop's centre."""
    from pose_model.nets import dense_keypoints
    v = torch.zeros(1, 3, 2, 2)                       # one keypoint: logit, dx, dy per cell
    v[0, 0, 1, 0] = 50.0                              # row 1, column 0
    v[0, 1, 1, 0], v[0, 2, 1, 0] = 0.25, -0.5
    kp = dense_keypoints(v, 1)
    assert kp.shape == (1, 1, 2)
    torch.testing.assert_close(kp[0, 0], torch.tensor([(0 + 0.5 + 0.25) / 2 - 0.5, (1 + 0.5 - 0.5) / 2 - 0.5]))
    torch.testing.assert_close(dense_keypoints(torch.zeros(2, 6, 4, 4), 2), torch.zeros(2, 2, 2))


def test_dense_keypoint_head_trains_loads_and_keeps_the_regressed_ones_as_auxiliary(tiny_data, tmp_path):
    """train --kp-head dense: the checkpoint records it and loads into the same architecture; PnP reads the voted
    keypoints, the regressed ones stay (kp_fc) and are trained too; an fc model's meta without the key loads as fc."""
    from pose_model.model import load_checkpoint, meta_from_dict
    from pose_model.predict import PoseEstimator
    kw = dict(data=str(tiny_data), device="cpu", max_samples=24, batch_size=8, epochs=1)
    path = train(make_config("quick", out=str(tmp_path / "d"), kp_head="dense", **kw), progress=False)
    ck = load_checkpoint(path)
    assert ck["meta"]["kp_head"] == "dense" and ck["config"]["kp_head"] == "dense"
    assert any(k.startswith("regressor.kp_vote.") for k in ck["model"])
    est = PoseEstimator.load(path, "cpu")
    out = est.model.regressor(torch.rand(2, 3, est.model.meta.crop_px, est.model.meta.crop_px))
    assert out["kp"].shape == out["kp_fc"].shape == (2, 9, 2) and not torch.equal(out["kp"], out["kp_fc"])
    fc = load_checkpoint(train(make_config("quick", out=str(tmp_path / "f"), **kw), progress=False))
    old = {k: v for k, v in fc["meta"].items() if k != "kp_head"}   # a checkpoint from before the field
    assert meta_from_dict(old).kp_head == "fc"
    with pytest.raises(UserError, match="--kp-head"):
        make_config("quick", out=str(tmp_path / "x"), kp_head="heatmap", **kw)


def test_bf16_training_keeps_the_output_layers_in_fp32_and_records_what_it_used(tiny_data, tmp_path):
    """--precision bf16 (the default): under autocast the nets' bodies run in bf16 where the CPU has it, their output layers in
    fp32 (millimetre-scale outputs); the run trains other weights than fp32's, records what it used, and the
    shared regressor of an fp32 run is refused to it (it is not the regressor a bf16 run would train)."""
    from core.device import bf16_supported
    from pose_model.model import load_checkpoint
    from pose_model.nets import CropRegressor, Localizer
    native = bf16_supported(torch.device("cpu"))
    reg, loc = CropRegressor(64, 8, 32, n_kp=9, n_cls=24, kp_head="dense").eval(), Localizer(8).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert reg.body(torch.rand(2, 3, 64, 64)).dtype == torch.bfloat16
        outs = [*reg(torch.rand(2, 3, 64, 64)).values(), *loc(torch.rand(2, 3, 48, 64)).values()]
    assert all(o.dtype == torch.float32 for o in outs)
    kw = dict(data=str(tiny_data), device="cpu", max_samples=24, batch_size=8, epochs=1)
    fp32 = train(make_config("quick", out=str(tmp_path / "fp32"), precision="fp32", **kw), progress=False)
    bf16 = train(make_config("quick", out=str(tmp_path / "bf16"), precision="bf16", **kw), progress=False)
    a, b = load_checkpoint(fp32), load_checkpoint(bf16)
    assert a["precision_used"] == "fp32" and b["precision_used"] == ("bf16" if native else "fp32")
    card = json.loads((tmp_path / "bf16" / "model_card.json").read_text())
    assert card["precision_used"] == b["precision_used"] and card["config"]["precision"] == "bf16"
    w = "regressor.body.0.0.weight"
    assert torch.equal(a["model"][w], b["model"][w]) != native
    with pytest.raises(UserError, match="config.precision"):
        train(make_config("quick", out=str(tmp_path / "shared"), precision="bf16", regressor_from=str(fp32),
                          **kw), progress=False)
    with pytest.raises(UserError, match="--precision"):
        make_config("quick", out=str(tmp_path / "x"), precision="fp16", **kw)
