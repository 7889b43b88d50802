"""The synthetic-dataset manifest read back strictly (issue 10, item 4) and the I/O helpers (item 5):
no spurious warnings for ADR on its own pool or the oracle on its real-photo set, the parameter space taken
from the manifest unless --space says otherwise, files written with normal permissions."""
from __future__ import annotations

import json
import os
import stat

import pytest
import yaml

from core.io import UMASK, atomic_torch_save, atomic_write_json, atomic_write_png
from pose_model.config import make_config
from pose_model.train import train
from render.generate import GenerateConfig, generate_dataset


def _gen(out, level="nominal", space=None, n=16):
    generate_dataset(GenerateConfig(object="aruco-cube", n=n, seed=1, randomization=level, space_file=space,
                                    frame_width=64, crop_px=64, shard_size=8), out, workers=1, progress=False)
    return out


def _train(data, out, pipeline, **kw):
    cfg = make_config("quick", data=str(data), out=str(out), pipeline=pipeline, device="cpu", epochs=1,
                      max_samples=16, batch_size=8, **kw)
    train(cfg, progress=False)
    return json.loads((out / "model_card.json").read_text())


def test_adr_on_its_pool_and_oracle_on_real_photos_warn_nothing(tmp_path, capsys):
    from eval.real_dataset import real_to_dataset
    from core.objects import load_object_spec
    from render.dataset import SyntheticDataset
    from render.export import export_bop
    pool = _gen(tmp_path / "pool", "adr-pool")
    capsys.readouterr()
    _train(pool, tmp_path / "adr", "adr")
    assert "warning" not in capsys.readouterr().err
    # the oracle's dataset: labelled "real" photos (here a BOP export of renders) turned into a dataset
    bop = export_bop(SyntheticDataset(pool), tmp_path / "bop")
    real = real_to_dataset(bop, [1], load_object_spec("aruco-cube"), tmp_path / "oracle_data", frame_width=64,
                           crop_px=64)
    capsys.readouterr()
    card = _train(real, tmp_path / "oracle", "oracle")
    assert "warning" not in capsys.readouterr().err
    assert card["space"] == "randomizer/default.yaml"  # a real-photo set records no space
    # a dataset of another kind still gets its one warning
    _train(pool, tmp_path / "none", "none")
    assert capsys.readouterr().err.count("warning") == 1


def test_training_takes_the_space_from_the_manifest(tmp_path):
    from randomizer.space import DEFAULT_CONFIG
    d = yaml.safe_load(DEFAULT_CONFIG.read_text())
    d["params"]["brightness"]["dr"] = [-0.05, 0.05]
    custom = tmp_path / "space.yaml"
    custom.write_text(yaml.safe_dump(d))
    data = _gen(tmp_path / "ds", "dr", space=str(custom))
    card = _train(data, tmp_path / "run", "dr")
    assert card["space"].endswith("manifest.json: randomization.space")
    assert card["image_ranges"]["brightness"] == [-0.05, 0.05]
    card = _train(data, tmp_path / "run2", "dr", space=str(DEFAULT_CONFIG))  # --space wins
    assert card["space"] == str(DEFAULT_CONFIG) and card["image_ranges"]["brightness"] == [-0.3, 0.3]


def test_written_files_get_normal_permissions(tmp_path):
    import numpy as np
    atomic_write_json(tmp_path / "a.json", {"a": 1})
    atomic_write_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    atomic_torch_save({"a": 1}, tmp_path / "a.pt")
    for name in ("a.json", "a.png", "a.pt"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o666 & ~UMASK, name
    assert sorted(os.listdir(tmp_path)) == ["a.json", "a.png", "a.pt"]  # no temp files left
    from core.real_sets import staging_dir
    assert stat.S_IMODE(os.stat(staging_dir(tmp_path / "x")).st_mode) == 0o777 & ~UMASK


def test_checkpoint_loading_imports_no_training_code():
    import subprocess
    import sys
    code = ("import sys, pose_model.predict, refiner.apply, refiner.report; "
            "print([m for m in sys.modules if m in ('pose_model.train', 'refiner.train')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(__file__))).stdout.strip()
    assert out == "[]"


def test_manifest_missing_or_unknown_key_names_file_and_key(tmp_path):
    from core.io import UserError
    from render.dataset import read_manifest
    ds = _gen(tmp_path / "ds", n=8)
    m = json.loads((ds / "manifest.json").read_text())
    assert read_manifest(ds)["n"] == 8
    for key in ("object", "n", "shards", "randomization"):
        (ds / "manifest.json").write_text(json.dumps({k: v for k, v in m.items() if k != key}))
        with pytest.raises(UserError, match=rf"manifest.json: {key}: expected this key"):
            read_manifest(ds)
    (ds / "manifest.json").write_text(json.dumps({**m, "randomisation": {}}))
    with pytest.raises(UserError, match="manifest.json: randomisation: expected no such key"):
        read_manifest(ds)
