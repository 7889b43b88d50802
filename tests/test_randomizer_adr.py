"""ADR controller against synthetic score functions: widens when the task copes, narrows when it does not,
never leaves the hard limits, and its entropy follows."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from randomizer import ADR, ADRConfig, load_space, write_adr_log
from randomizer.adr import ENTROPY_EPS

SPACE = load_space()


def _inside_hard_limits(adr: ADR) -> None:
    for n, r in adr.ranges().items():
        p = SPACE.params[n]
        if p.kind == "choice":
            assert set(r) <= set(p.choices) and p.nominal in r
        else:
            assert p.low <= r[0] <= float(p.nominal) <= r[1] <= p.high, (n, r)


def test_starts_at_nominal():
    adr = ADR(SPACE, ADRConfig(), seed=0)
    assert adr.ranges() == SPACE.ranges("nominal")
    assert adr.entropy() == pytest.approx(np.log(ENTROPY_EPS))


def test_high_scores_widen_to_hard_limits_and_low_scores_narrow_back():
    adr = ADR(SPACE, ADRConfig(p_b=1.0, m=3, t_L=0.3, t_H=0.7), seed=1)
    entropies = [adr.entropy()]
    for _ in range(4000):
        d = adr.propose()
        assert d.boundary is not None
        adr.report(d, 1.0)
        _inside_hard_limits(adr)
        entropies.append(adr.entropy())
    assert adr.ranges() == SPACE.ranges("widest")  # every bound reached its hard limit, none passed it
    # the hard limits lie beyond plain DR's range: ADR went past DR's on every parameter whose bounds allow it
    dr = SPACE.ranges("dr")
    past = [n for n, p in SPACE.params.items() if p.kind != "choice" and (adr.ranges()[n][0] < dr[n][0]
                                                                        or adr.ranges()[n][1] > dr[n][1])]
    assert len(past) >= 20 and {"contrast", "noise_std", "distractor_count"} <= set(past)
    assert adr.entropy() == pytest.approx(0.0)
    assert all(b >= a for a, b in zip(entropies, entropies[1:]))  # widening never lowers the entropy
    for _ in range(4000):
        adr.report(adr.propose(), 0.0)
        _inside_hard_limits(adr)
        entropies.append(adr.entropy())
    assert adr.ranges() == SPACE.ranges("nominal")
    assert all(b <= a for a, b in zip(entropies[4001:], entropies[4002:]))
    assert adr.n_widen > 0 and adr.n_narrow > 0


def test_converges_to_the_region_where_the_task_succeeds():
    """Score = 1 while the pinned value stays within 0.3 of nominal: contrast's range must settle there."""
    cfg = ADRConfig(p_b=1.0, m=4, t_L=0.3, t_H=0.7, delta_frac=0.05, params=("contrast",))
    adr = ADR(SPACE, cfg, seed=2)
    for _ in range(3000):
        d = adr.propose()
        adr.report(d, float(abs(d.value - 1.0) <= 0.3 + 1e-9))
    lo, hi = adr.ranges()["contrast"]
    step = 0.05 * (1.5 - 0.5)
    assert 0.7 - step - 1e-9 <= lo <= 0.7 + 1e-9 and 1.3 - 1e-9 <= hi <= 1.3 + step + 1e-9, (lo, hi)
    # only contrast moves; everything else stays nominal
    rest = {k: v for k, v in adr.ranges().items() if k != "contrast"}
    assert rest == {k: v for k, v in SPACE.ranges("nominal").items() if k != "contrast"}
    assert -1.0 < adr.entropy() < 0.0


def test_scores_between_thresholds_and_unpinned_draws_change_nothing():
    adr = ADR(SPACE, ADRConfig(p_b=1.0, m=2), seed=3)
    for _ in range(500):
        adr.report(adr.propose(), 0.5)
    assert adr.ranges() == SPACE.ranges("nominal")
    adr0 = ADR(SPACE, ADRConfig(p_b=0.0), seed=3)
    for _ in range(100):
        d = adr0.propose()
        assert d.boundary is None and adr0.report(d, 1.0) is None
    assert adr0.ranges() == SPACE.ranges("nominal")


def test_choices_widen_in_declared_order_and_integers_by_whole_units():
    cfg = ADRConfig(p_b=1.0, m=1, params=("table_texture", "distractor_count"), delta_frac=0.05)
    adr = ADR(SPACE, cfg, seed=4)
    seen = []
    for _ in range(200):
        d = adr.propose()
        adr.report(d, 1.0)
        seen.append(adr.ranges()["table_texture"])
        lo, hi = adr.ranges()["distractor_count"]
        assert hi == int(hi) and lo == 0
    choices = SPACE.params["table_texture"].choices
    for r in seen:
        assert r == choices[: len(r)]  # nominal (wood) first, then the declared order
    assert seen[-1] == choices


def test_pinned_draw_and_stale_reports():
    adr = ADR(SPACE, ADRConfig(p_b=1.0, m=1, params=("brightness",)), seed=5)
    d = adr.propose()
    assert d.boundary[0] == "brightness" and d.image_ranges["brightness"] == (d.value, d.value)
    assert set(d.render_ranges) == set(SPACE.names("render"))
    d2 = adr.propose()
    if d2.boundary == d.boundary:
        assert adr.report(d, 1.0) == "widen"
        assert adr.report(d2, 1.0) is None and adr.n_stale == 1  # that bound has moved since d2


def test_state_dict_round_trip_through_json():
    cfg = ADRConfig(p_b=0.7, m=3)
    a = ADR(SPACE, cfg, seed=6)
    for i in range(300):
        a.report(a.propose(), float(i % 3 != 0))
    b = ADR(SPACE, cfg, seed=99)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.ranges() == a.ranges() and b.entropy() == a.entropy() and b.log_row() == a.log_row()
    for i in range(100):
        da, db = a.propose(), b.propose()
        assert da == db
        a.report(da, float(i % 2))
        b.report(db, float(i % 2))
    assert b.state_dict() == a.state_dict()


def test_write_adr_log(tmp_path):
    adr = ADR(SPACE, ADRConfig(p_b=1.0, m=2, params=("contrast", "table_texture", "light_azimuth_deg")), seed=7)
    rows = []
    for i in range(100):
        adr.report(adr.propose(), 1.0)
        if i % 10 == 0:
            rows.append(adr.log_row())
    csv_path, png_path = write_adr_log(rows, tmp_path / "run")
    with open(csv_path) as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(rows)
    assert {"step", "entropy", "contrast.lo", "contrast.hi", "table_texture.n_options"} <= set(table[0])
    assert float(table[-1]["entropy"]) > float(table[0]["entropy"])
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "run").glob(".*tmp"))


def test_delta_is_a_fraction_of_drs_span_not_of_the_hard_limits():
    """Widening the hard limits beyond DR's range must not change ADR's steps: Δ = delta_frac × DR's span."""
    p = SPACE.params["contrast"]
    assert p.dr_range == (0.5, 1.5) and p.widest[0] < 0.5 and p.widest[1] > 1.5
    adr = ADR(SPACE, ADRConfig(p_b=1.0, m=1, delta_frac=0.2, params=("contrast",)), seed=8)
    for _ in range(2):
        d = adr.propose()
        assert adr.report(d, 1.0) == "widen"
    lo, hi = adr.ranges()["contrast"]
    assert (hi - 1.0) + (1.0 - lo) == pytest.approx(2 * 0.2 * (1.5 - 0.5))
    for _ in range(40):  # keeps widening past DR's range, stops at the hard limits
        adr.report(adr.propose(), 1.0)
    assert adr.ranges()["contrast"] == p.widest
