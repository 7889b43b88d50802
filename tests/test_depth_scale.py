"""The depth calibration (the smallest sim→real fine-tune): the fit on hand-made cases, then end to end on a BOP set
of renders whose labels put the cube 5 % farther than a trained model says."""
import json

import cv2
import numpy as np
import pytest

from core.io import UserError
from pose_model.finetune import depth_scale_fit


def test_depth_scale_fit_is_the_median_ratio_of_usable_photos():
    t_true = np.array([[0.0, 0.0, 0.30], [0.02, -0.01, 0.35], [-0.03, 0.02, 0.28], [0.0, 0.01, 0.40],
                       [0.01, 0.0, 0.33], [0.0, 0.0, 0.31]])
    t_pred = t_true / np.array([1.04, 1.05, 1.06, 1.05, 1.0, 1.0])[:, None]
    t_pred[4] += [0.05, 0.0, 0.0]      # 50 mm off across the ray (the localizer found clutter): not used
    t_pred[5] *= 0.7                    # 1/0.7 = 1.43× off in distance: not used
    scale, usable = depth_scale_fit(t_pred, t_true, size_m=0.03)
    assert usable.tolist() == [True, True, True, True, False, False]
    assert scale == pytest.approx(1.05)
    scale, usable = depth_scale_fit(-t_true, t_true, size_m=0.03)   # behind the camera: nothing usable
    assert not usable.any() and np.isnan(scale)


@pytest.fixture(scope="module")
def bop_of_renders(tmp_path_factory):
    """A quick model, and a BOP set of its training renders (scenes 1–2: session data; 3: test1) whose labels are
    the model's own estimates with the distance × 1.05."""
    from core.bop import write_models, write_scene
    from pose_model.config import make_config
    from pose_model.predict import PoseEstimator
    from pose_model.train import train
    from render.dataset import SyntheticDataset
    from render.generate import GenerateConfig, generate_dataset
    tmp = tmp_path_factory.mktemp("depth_scale")
    generate_dataset(GenerateConfig(object="aruco-cube", n=16, seed=7, frame_width=96, crop_px=64), tmp / "ds",
                     workers=1, progress=False)
    ckpt = train(make_config("quick", data=str(tmp / "ds"), out=str(tmp / "sim"), device="cpu", epochs=1,
                             max_samples=16), progress=False)
    ds = SyntheticDataset(tmp / "ds")
    H, W = ds.manifest["full_hw"]
    est = PoseEstimator.load(ckpt, "cpu")
    root = tmp / "bop"
    for sid, session, ids in ((1, "data", range(0, 6)), (2, "data", range(6, 12)), (3, "test1", range(12, 16))):
        images = []
        for i in ids:
            rgb = cv2.resize(ds.frames[i], (W, H), interpolation=cv2.INTER_LINEAR)
            R, t_m, _ = est.predict(rgb, ds.labels[i]["K_full"])
            images.append({"im_id": i, "K": ds.labels[i]["K_full"], "width": W, "height": H, "rgb": rgb,
                           "gts": [(ds.spec.obj_id, R, 1.05 * t_m * 1000)]})
        write_scene(root, sid, images, session=session)
    write_models(root, [ds.spec])
    return ckpt, root, est


def test_calibrate_depth_fits_the_labels_and_keeps_the_weights(bop_of_renders, tmp_path):
    import torch
    from core.bop import load_bop_scenes
    from pose_model.finetune import calibrate_depth
    from pose_model.predict import PoseEstimator, read_rgb
    ckpt, root, est = bop_of_renders
    out = calibrate_depth(ckpt, root, tmp_path / "cal", session="data", device="cpu")
    card = json.loads((out.parent / "model_card.json").read_text())["depth_calibration"]
    assert card["scene_ids"] == [1, 2] and card["n_labelled"] == 12 and card["n_used"] == 12
    assert card["fitted_factor"] == pytest.approx(1.05, abs=1e-5) and card["not_calibrated"] is None
    src, cal = torch.load(ckpt, weights_only=True), torch.load(out, weights_only=True)
    assert all(torch.equal(src["model"][k], cal["model"][k]) for k in src["model"])
    # on images it never saw (the other session): the source's rotation, its distance × 1.05, the same ray
    new = PoseEstimator.load(out, "cpu")
    for im in load_bop_scenes(root, [3]):
        rgb = read_rgb(im.rgb_path)
        (R0, t0, _), (R1, t1, _) = est.predict(rgb, im.K), new.predict(rgb, im.K)
        np.testing.assert_allclose(R1, R0, atol=1e-9)
        np.testing.assert_allclose(t1, 1.05 * t0, rtol=1e-5)
    # calibrating the calibrated model again finds nothing more to correct
    again = calibrate_depth(out, root, tmp_path / "again", session="data", device="cpu")
    c2 = json.loads((again.parent / "model_card.json").read_text())["depth_calibration"]
    assert c2["fitted_factor"] == pytest.approx(1.0, abs=1e-5) and c2["depth_scale"] == pytest.approx(1.05, abs=1e-5)


def test_calibrate_depth_refuses_what_it_cannot_fit(bop_of_renders, tmp_path):
    from pose_model.finetune import calibrate_depth
    ckpt, root, _ = bop_of_renders
    with pytest.raises(UserError, match="no session 'kitchen'"):
        calibrate_depth(ckpt, root, tmp_path / "x", session="kitchen", device="cpu")
    with pytest.raises(UserError, match="needs at least 5"):                     # 4 labelled photos only
        calibrate_depth(ckpt, root, tmp_path / "x", session="test1", device="cpu")
    assert not (tmp_path / "x").exists()
    out = calibrate_depth(ckpt, root, tmp_path / "keep", session="test1", device="cpu", strict=False)
    card = json.loads((out.parent / "model_card.json").read_text())["depth_calibration"]
    assert card["depth_scale"] == 1.0 and "needs at least 5" in card["not_calibrated"]


def test_calibrate_depth_cli(bop_of_renders, tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    cli = Path(__file__).resolve().parents[1] / "cli.py"
    ckpt, root, _ = bop_of_renders
    r = subprocess.run([sys.executable, str(cli), "calibrate-depth", "--model", str(ckpt), "--real", str(root),
                        "--out", str(tmp_path / "c"), "--device", "cpu"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "depth scale 1.0500 from 12 of 12 labelled photos of session 'data'" in r.stdout
    r = subprocess.run([sys.executable, str(cli), "calibrate-depth", "--model", str(ckpt), "--real", str(root),
                        "--session", "nope", "--out", str(tmp_path / "d")], capture_output=True, text=True)
    assert r.returncode == 2 and "no session 'nope'" in r.stderr and "Traceback" not in r.stderr


def test_calibrate_depth_through_another_head_reports_that_head(bop_of_renders, tmp_path):
    """head="direct": the scale is fitted on the direct head's distances and the new checkpoint reports that head
    (the benchmark's depth-scale row under `--head`), so it differs from the source read the same way by the scale."""
    from core.bop import load_bop_scenes
    from pose_model.finetune import calibrate_depth
    from pose_model.predict import PoseEstimator, read_rgb
    ckpt, root, _ = bop_of_renders
    out = calibrate_depth(ckpt, root, tmp_path / "cal", session="data", device="cpu", head="direct")
    card = json.loads((out.parent / "model_card.json").read_text())
    assert card["depth_calibration"]["head"] == card["config"]["head"] == "direct"
    src, new = PoseEstimator.load(ckpt, "cpu", head="direct"), PoseEstimator.load(out, "cpu")
    assert new.head == "direct"
    f = card["depth_calibration"]["fitted_factor"]
    for im in load_bop_scenes(root, [3]):
        rgb = read_rgb(im.rgb_path)
        np.testing.assert_allclose(new.predict(rgb, im.K)[1], f * src.predict(rgb, im.K)[1], rtol=1e-5)


def test_finetune_cli_trains_on_one_session_and_refuses_a_missing_one(bop_of_renders, tmp_path):
    """`sim2real finetune`: the session's labelled photos cut at the sim model's own sizes, every loss on, co-trained
    with its renders; a session the set does not have: one line, exit 2, nothing written."""
    import subprocess
    import sys
    from pathlib import Path
    cli = Path(__file__).resolve().parents[1] / "cli.py"
    ckpt, root, _ = bop_of_renders
    out = tmp_path / "ft"
    r = subprocess.run([sys.executable, str(cli), "finetune", "--model", str(ckpt), "--real", str(root), "--out",
                        str(out), "--epochs", "1", "--device", "cpu"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "fine-tuned on 12 labelled photos of session 'data' for 1 epochs" in r.stdout
    photos = json.loads((out / "photos_data" / "manifest.json").read_text())
    sim = json.loads((Path(json.loads((ckpt.parent / "model_card.json").read_text())["dataset"]["path"])
                      / "manifest.json").read_text())
    assert photos["real_source"]["scene_ids"] == [1, 2]                   # session data only, never test1's scene 3
    assert (photos["frame_hw"], photos["crop_px"]) == (sim["frame_hw"], sim["crop_px"])
    card = json.loads((out / "model_card.json").read_text())
    assert card["init_from"] == str(ckpt) and card["mix_dataset"] is not None
    assert card["config"]["w_loc"] > 0 and card["config"]["w_rot"] > 0 and card["config"]["w_kp"] > 0
    r = subprocess.run([sys.executable, str(cli), "finetune", "--model", str(ckpt), "--real", str(root), "--out",
                        str(tmp_path / "bad"), "--session", "nope", "--epochs", "1", "--device", "cpu"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no session 'nope'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "bad").exists()
    # an --out whose photos came from other scenes: refused, they are not silently reused
    man = json.loads((out / "photos_data" / "manifest.json").read_text())
    man["real_source"]["scene_ids"] = [3]
    (out / "photos_data" / "manifest.json").write_text(json.dumps(man))
    r = subprocess.run([sys.executable, str(cli), "finetune", "--model", str(ckpt), "--real", str(root), "--out",
                        str(out), "--epochs", "1", "--device", "cpu"], capture_output=True, text=True)
    assert r.returncode == 2 and "holds photos of" in r.stderr and "Traceback" not in r.stderr
