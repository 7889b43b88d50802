"""SimGAN refiner end to end on tiny real cases: render → train (few steps) → apply; buffer; bad input."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core.io import UserError
from refiner.data import list_real_images
from refiner.model import HistoryBuffer, Refiner
from refiner.train import make_config, train_refiner

REAL = Path(__file__).resolve().parents[2] / "shared" / "real"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The CI box is shared: OpenMP threads spinning against each other make tiny nets 10× slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from render.generate import GenerateConfig, generate_dataset
    out = tmp_path_factory.mktemp("refiner") / "ds"
    generate_dataset(GenerateConfig(object="aruco-cube", n=12, seed=5, frame_width=64, crop_px=48, shard_size=8),
                     out, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def real_dir(tmp_path_factory):
    """A small folder of 'real' photos (noisy, bluish, JPEG) in two sessions, like the upstream layout."""
    root = tmp_path_factory.mktemp("real")
    rng = np.random.default_rng(0)
    for sess in ("data", "test1_result/data"):
        d = root / sess / "cam0"
        d.mkdir(parents=True)
        for i in range(3):
            im = np.clip(rng.normal([150, 140, 120], 25, (96, 128, 3)), 0, 255).astype(np.uint8)
            cv2.imwrite(str(d / f"rgb_{i:05d}.jpg"), im, [cv2.IMWRITE_JPEG_QUALITY, 60])
    return root


def tiny_cfg(data, real, out, **kw):
    base = dict(synthetic=str(data), real=str(real), out=str(out), device="cpu", ch=8, n_blocks=1, patch_px=32,
                batch=4, pretrain_r_steps=2, pretrain_d_steps=2, steps=6, buffer_capacity=8, log_every=2,
                grid_every=5, ckpt_every=5, grid_rows=3, sessions=("data",), lam_cube=2.0)
    base.update(kw)
    return make_config("quick", **base)


@pytest.fixture(scope="module")
def tiny_refiner(tiny_data, real_dir, tmp_path_factory):
    return train_refiner(tiny_cfg(tiny_data, real_dir, tmp_path_factory.mktemp("run") / "r"), progress=False)


def test_train_writes_checkpoint_grid_log_and_real_file_list(tiny_refiner):
    run = tiny_refiner.parent
    assert tiny_refiner.name == "refiner.pt" and tiny_refiner.is_file()
    grids = sorted((run / "grids").glob("step_*.png"))
    assert [g.name for g in grids] == ["step_000005.png", "step_000010.png"]
    grid = cv2.imread(str(grids[-1]))
    assert grid.shape[0] == 3 * (48 + 2) and grid.shape[1] == 4 * (48 + 2)  # 3 rows × (syn|refined|diff|real)
    log = (run / "log.csv").read_text().strip().splitlines()
    assert log[0].startswith("step,phase,loss_reg,loss_adv,loss_d,d_acc_real,d_acc_refined")
    assert len(log) == 1 + 5 and "adversarial" in log[-1]
    card = json.loads((run / "refiner_card.json").read_text())
    # only session "data" may be seen; the file list is recorded
    assert card["real"]["sessions"] == ["data"]
    assert card["real"]["files"] == [f"data/cam0/rgb_{i:05d}.jpg" for i in range(3)]
    assert card["crop_px"] == 48 and card["lam"] == make_config("default").lam and card["steps_done"] == 10
    ck = torch.load(tiny_refiner, weights_only=True)
    assert ck["format"] == "sim2real-refiner/1" and set(ck["state_dict"]) == set(Refiner(8, 1).state_dict())


def test_resume_reproduces_uninterrupted_run(tiny_data, real_dir, tiny_refiner, tmp_path):
    out = tmp_path / "r"
    with pytest.raises(UserError, match="--resume"):  # refuses to clobber a finished run
        train_refiner(tiny_cfg(tiny_data, real_dir, tiny_refiner.parent), progress=False)
    st = train_refiner(tiny_cfg(tiny_data, real_dir, out, stop_at=5), progress=False)
    assert st.name == "state.pt" and not (out / "refiner.pt").exists()
    with pytest.raises(UserError, match="different settings"):
        train_refiner(tiny_cfg(tiny_data, real_dir, out, resume=True, lam=99.0), progress=False)
    final = train_refiner(tiny_cfg(tiny_data, real_dir, out, resume=True), progress=False)
    a = torch.load(final, weights_only=True)["state_dict"]
    b = torch.load(tiny_refiner, weights_only=True)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_history_buffer_capacity_and_half_from_buffer():
    buf = HistoryBuffer(capacity=10, seed=0)
    batches = [torch.full((4, 3, 2, 2), float(k)) for k in range(6)]
    out0 = buf.query(batches[0])
    assert torch.equal(out0, batches[0]) and len(buf) == 4
    buf.query(batches[1]); buf.query(batches[2])
    assert len(buf) == 10 and buf.full  # capacity respected (2 of batch 2 did not fit)
    for k in range(3, 6):
        out = buf.query(batches[k])
        assert out.shape == batches[k].shape and len(buf) == 10
        vals = out[:, 0, 0, 0]
        assert int((vals == k).sum()) == 2   # half current
        assert int((vals < k).sum()) == 2    # half from earlier batches (the buffer)
        assert int((buf.images[:, 0, 0, 0] == k).sum()) == 2  # b/2 random slots now hold current images


def test_apply_keeps_labels_byte_identical(tiny_refiner, tiny_data, tmp_path):
    from render.dataset import SyntheticDataset
    from refiner.apply import refine_dataset
    out = refine_dataset(tiny_refiner, tiny_data, tmp_path / "refined", device="cpu")
    src, ref = SyntheticDataset(tiny_data), SyntheticDataset(out)
    for s in src.manifest["shards"]:
        for name in ("labels.npy", "params.json", "crop_masks.npy", "frame_masks.npy", "frames.npy"):
            assert (tiny_data / "shards" / s["name"] / name).read_bytes() == (out / "shards" / s["name"] / name).read_bytes()
    assert ref.crops.shape == src.crops.shape and ref.crops.dtype == np.uint8
    assert ref.frames.shape == src.frames.shape and ref.frames.dtype == np.uint8
    rb = ref.manifest["refined_by"]
    assert rb["frames"] == "copied" and rb["crops"] == "refined" and rb["trained_on"]["real_sessions"] == ["data"]
    assert rb["trained_on"]["n_real_files"] == 3 and ref.manifest["derived_from"]["content_hash"] == src.manifest["content_hash"]
    assert len(ref) == len(src) and ref.manifest["format"] == src.manifest["format"]


def test_apply_leaves_nothing_on_failure(tiny_refiner, tiny_data, tmp_path):
    """A shard that fails its hash check halfway through: refine apply raises and leaves no output at all."""
    import shutil
    from core.io import UserError
    from refiner.apply import refine_dataset
    from render.dataset import read_manifest
    src = tmp_path / "src"
    shutil.copytree(tiny_data, src)
    last = read_manifest(src)["shards"][-1]["name"]
    f = src / "shards" / last / "crops.npy"
    b = bytearray(f.read_bytes())
    b[-1] ^= 0xFF
    f.write_bytes(bytes(b))
    with pytest.raises(UserError, match="crops.npy: sha256"):
        refine_dataset(tiny_refiner, src, tmp_path / "refined", device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_bad_inputs_are_user_errors(tiny_data, real_dir, tiny_refiner, tmp_path):
    from refiner.apply import refine_dataset
    from render.generate import GenerateConfig, generate_dataset
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("no images")
    with pytest.raises(UserError, match="no images"):
        train_refiner(tiny_cfg(tiny_data, empty, tmp_path / "a", sessions=()), progress=False)
    gray = tmp_path / "gray"
    gray.mkdir()
    cv2.imwrite(str(gray / "g.png"), np.full((64, 64), 128, np.uint8))
    with pytest.raises(UserError, match="3-channel"):
        train_refiner(tiny_cfg(tiny_data, gray, tmp_path / "b", sessions=()), progress=False)
    with pytest.raises(UserError, match="unknown session"):
        train_refiner(tiny_cfg(tiny_data, real_dir, tmp_path / "c", sessions=("nope",)), progress=False)
    other = tmp_path / "ds32"
    generate_dataset(GenerateConfig(object="aruco-cube", n=2, seed=1, frame_width=32, crop_px=32), other,
                     workers=1, progress=False)
    with pytest.raises(UserError, match="48-px crops"):
        refine_dataset(tiny_refiner, other, tmp_path / "out32", device="cpu")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="refiner checkpoint"):
        refine_dataset(tmp_path / "junk.pt", tiny_data, tmp_path / "out_junk", device="cpu")


def test_cli_bad_real_folder_exits_2_with_one_line(tiny_data, tmp_path, capsys):
    from cli import main
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as e:
        main(["refine", "train", "--synthetic", str(tiny_data), "--real", str(tmp_path / "empty"),
              "--out", str(tmp_path / "o"), "--profile", "quick", "--device", "cpu"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no images" in err and "\n" not in err


@pytest.mark.skipif(not (REAL / "aruco_cube").is_dir(), reason="../shared/real/aruco_cube not present")
def test_sessions_split_the_aruco_photos_without_overlap():
    a, sa = list_real_images(str(REAL / "aruco_cube"), sessions=("data",))
    b, sb = list_real_images(str(REAL / "aruco_cube"), sessions=("test1",))
    assert len(a) == 156 and len(b) == 108 and not set(a) & set(b)
    assert sa["sessions_available"] == ["data", "test1"]
    assert all(f.startswith("src2/data/") for f in sa["files"])
    assert all(f.startswith("src2/test1_result/") for f in sb["files"])
