"""Object specs: built-ins, marker geometry against the real cube's geometry file, validation errors."""
import json

import numpy as np
import pytest

from core.io import UserError
from core.objects import BUILTIN_OBJECTS, cube_symmetries, load_object_spec


def test_builtins_load():
    assert set(BUILTIN_OBJECTS) == {"aruco-cube", "trifinger-cube", "plain-cube"}
    assert len(load_object_spec("plain-cube").symmetries) == 24
    assert len(load_object_spec("aruco-cube").symmetries) == 1
    assert load_object_spec("trifinger-cube").size_m == (0.0652,) * 3


def test_aruco_cube_matches_cube_geometry_json(shared_real):
    geo = json.loads((shared_real / "aruco_cube" / "cube_geometry.json").read_text())
    got = load_object_spec("aruco-cube").marker_corners_m()
    assert sorted(got) == [0, 1, 2, 3, 4]
    for mid, corners in geo["corners_m"].items():
        np.testing.assert_allclose(got[int(mid)], np.array(corners), atol=1e-9)


def test_cube_symmetries_are_the_rotation_group():
    g = cube_symmetries()
    assert len({tuple(m.round().astype(int).ravel()) for m in g}) == 24
    for m in g:
        np.testing.assert_allclose(m @ m.T, np.eye(3))
        assert np.linalg.det(m) == pytest.approx(1.0)


@pytest.mark.parametrize("text, msg", [
    ("name: x\nsize_m: -1\n", "size_m"),
    ("name: x\nsize_m: 0.03\nfaces: {+Q: {}}\n", "faces.+Q"),
    ("name: x\nsize_m: 0.03\nfaces: {+X: {marker: {id: 99, size_m: 0.02}}}\n", "faces.+X.marker.id"),
    ("name: x\nsize_m: 0.03\nfaces: {+X: {marker: {id: 1, size_m: 0.05}}}\n", "faces.+X.marker.size_m"),
    ("name: x\nsize_m: 0.03\nfaces: {+X: {color: [2, 0, 0]}}\n", "faces.+X.color"),
    ("name: x\nsize_m: [0.03, 0.02, 0.03]\nsymmetries: cube24\n", "symmetries"),
    ("name: x\nsize_m: 0.03\n  bad: [\n", "malformed"),
])
def test_bad_specs_name_the_field(tmp_path, text, msg):
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    with pytest.raises(UserError, match=msg.replace("+", r"\+")) as e:
        load_object_spec(p)
    assert str(p) in str(e.value)


def test_unknown_object_name():
    with pytest.raises(UserError, match="unknown object"):
        load_object_spec("no-such-cube")
