"""`sim2real randomizer show`: a PNG grid of samples at nominal / DR / hard-limit ranges."""
from __future__ import annotations

import numpy as np
import pytest

import cli
from randomizer import load_space
from render.randomization_grid import render_grid


def test_show_image_only_writes_png(tmp_path, capsys):
    out = tmp_path / "grid.png"
    cli.main(["randomizer", "show", "--out", str(out), "--n", "2", "--size", "32", "--image-only"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "image-level only" in capsys.readouterr().out


def test_grid_rows_get_more_randomized_with_the_renderer():
    pytest.importorskip("render.scene")
    grid, source = render_grid(load_space(), "aruco-cube", seed=0, n_cols=2, crop_px=32)
    assert "render-time" in source
    pad, h = 4, 32
    rows = [grid[pad + i * (h + pad): pad + i * (h + pad) + h].astype(float) for i in range(3)]
    # same random stream per column: the nominal and hard-limit rows differ, and DR's row lies in between
    assert np.abs(rows[2] - rows[0]).mean() > 5.0 and np.abs(rows[1] - rows[0]).mean() > 1.0


def test_show_bad_input_is_a_one_line_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["randomizer", "show", "--out", str(tmp_path / "g.jpg"), "--image-only"])
    assert e.value.code == 2
    assert "expected a .png path" in capsys.readouterr().err
    bad = tmp_path / "space.yaml"
    bad.write_text("params: {x: {kind: continuous, acts_on: image, nominal: 3, bounds: [0, 1]}}\n")
    with pytest.raises(SystemExit) as e:
        cli.main(["randomizer", "show", "--config", str(bad), "--out", str(tmp_path / "g.png"), "--image-only"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "params.x.nominal" in err and err.count("\n") == 1
