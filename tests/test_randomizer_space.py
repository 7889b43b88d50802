"""Parameter-space validation: every mistake in a space YAML is a UserError naming the file and field."""
from __future__ import annotations

import pytest
import yaml

from core.io import UserError
from randomizer import ADR, ADRConfig, ImageRandomizer, load_space
from randomizer.image import IMAGE_PARAMS


def _write(tmp_path, params: dict) -> str:
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump({"params": params}))
    return str(p)


GOOD = {"kind": "continuous", "acts_on": "image", "nominal": 1.0, "bounds": [0.5, 1.5]}


@pytest.mark.parametrize("entry, field, words", [
    ({**GOOD, "bounds": [1.5, 0.5]}, "params.contrast.bounds", "low 1.5 > high 0.5"),
    ({**GOOD, "bounds": [0.5]}, "params.contrast.bounds", "expected [low, high]"),
    ({**GOOD, "nominal": 2.0}, "params.contrast.nominal", "inside the bounds"),
    ({**GOOD, "kind": "gaussian"}, "params.contrast.kind", "expected one of continuous"),
    ({**GOOD, "acts_on": "gpu"}, "params.contrast.acts_on", "expected one of render, image"),
    ({**GOOD, "bonds": [0, 1]}, "params.contrast.bonds", "unknown field"),
    ({**GOOD, "dr": [0.0, 1.0]}, "params.contrast.dr", "inside the bounds"),
    ({"kind": "choice", "acts_on": "render", "nominal": "x", "choices": ["a", "b"]}, "params.contrast.nominal",
     "not one of the choices"),
    ({"kind": "choice", "acts_on": "render", "nominal": "a", "choices": []}, "params.contrast.choices",
     "non-empty list"),
])
def test_bad_entries_name_file_and_field(tmp_path, entry, field, words):
    path = _write(tmp_path, {"contrast": entry})
    with pytest.raises(UserError) as e:
        load_space(path)
    msg = str(e.value)
    assert msg.startswith(path) and field in msg and words in msg, msg


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_space(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("params: {a: [1, 2\n")
    with pytest.raises(UserError, match="malformed YAML"):
        load_space(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("foo: 1\n")
    with pytest.raises(UserError, match="'params' mapping"):
        load_space(empty)


def test_shipped_space_loads_and_every_image_parameter_has_an_op():
    space = load_space()
    assert set(space.names("image")) == set(IMAGE_PARAMS)
    for name in space.names():
        p = space.params[name]
        assert p.contains(p.nominal, p.widest), name


def test_unknown_names_in_ranges_and_configs():
    space = load_space()
    with pytest.raises(UserError, match="ranges.brightnes: unknown parameter"):
        ImageRandomizer(space, {"brightnes": (0.0, 0.1)})
    with pytest.raises(UserError, match="low 0.2 > high 0.1"):
        ImageRandomizer(space, {"brightness": (0.2, 0.1)})
    with pytest.raises(UserError, match="foo: unknown parameter"):
        ADR(space, ADRConfig(params=("foo",)))
    with pytest.raises(UserError, match="t_L < t_H"):
        ADR(space, ADRConfig(t_L=0.8, t_H=0.7))
    with pytest.raises(UserError, match="p_b"):
        ADR(space, ADRConfig(p_b=1.5))


def test_image_param_without_an_op_is_rejected(tmp_path):
    path = _write(tmp_path, {"sharpness": GOOD})
    space = load_space(path)
    with pytest.raises(UserError, match="params.sharpness: no image op implements it"):
        ImageRandomizer(space, space.ranges("dr", "image"))
