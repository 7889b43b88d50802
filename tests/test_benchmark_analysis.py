"""benchmark.analysis: the ranking, the controls and the verdict are generated from the paired numbers."""
import pytest
from benchmark.analysis import controls, find_pair, ranking, verdict


def _summary(ar, te, re):
    return {"ar": {"mean": ar, "ci95": [ar - 0.05, ar + 0.05]}, "te_mm_median": {"mean": te, "ci95": [te - 1, te + 1]},
            "re_deg_median": {"mean": re, "ci95": [re - 1, re + 1]}}


def _pair(a, b, metric, diff, lo, hi):
    return {"a": a, "b": b, "metric": metric, "diff": diff, "ci95": [lo, hi], "resolved": lo > 0 or hi < 0, "p": 0.5}


SUMMARY = {"image-dr": _summary(0.30, 15.0, 10.0), "dr": _summary(0.20, 20.0, 25.0),
           "adr": _summary(0.10, 60.0, 50.0), "simgan+dr": _summary(0.32, 14.0, 10.5),
           "mean-pose": _summary(0.00, 85.0, 94.0)}
PAIRED = [
    _pair("image-dr", "dr", "ar", 0.10, 0.02, 0.18), _pair("image-dr", "dr", "te_mm_median", -5, -9, -1),
    _pair("image-dr", "dr", "re_deg_median", -15, -20, -9),
    _pair("simgan+dr", "image-dr", "ar", 0.02, -0.03, 0.07), _pair("simgan+dr", "image-dr", "te_mm_median", -1, -3, 2),
    _pair("simgan+dr", "image-dr", "re_deg_median", 0.5, -2, 3),
    _pair("simgan+dr", "dr", "ar", 0.12, 0.04, 0.20), _pair("simgan+dr", "dr", "te_mm_median", -6, -10, -2),
    _pair("simgan+dr", "dr", "re_deg_median", -14.5, -20, -9),
    _pair("adr", "dr", "ar", -0.10, -0.15, -0.04), _pair("adr", "dr", "te_mm_median", 40, 20, 60),
    _pair("adr", "dr", "re_deg_median", 25, 10, 40),
    _pair("simgan+dr", "mean-pose", "ar", 0.32, 0.25, 0.40),
    _pair("dr", "adr", "ar", 0.1, 0.04, 0.15),
    _pair("adr", "mean-pose", "ar", 0.1, 0.05, 0.15),
]


def test_find_pair_flips_the_direction():
    r = find_pair(PAIRED, "dr", "image-dr", "te_mm_median")
    assert r["diff"] == 5 and r["ci95"] == [1, 9] and r["resolved"]


def test_ranking_and_generated_verdict():
    rank = ranking(SUMMARY, PAIRED)
    assert [r["pipeline"] for r in rank] == ["simgan+dr", "image-dr", "dr", "adr", "mean-pose"]
    ctl = controls(PAIRED)
    assert [c["effect"].split(" ")[0] for c in ctl] == ["refiner", "render-time", "ADR", "SimGAN+DR"]
    text = " ".join(verdict(SUMMARY, PAIRED, rank))
    assert "**simgan+dr** comes first" in text and "it is not resolved from **image-dr**" in text
    # the refiner's control pairs it with dr (the same renders and image randomization, no refiner)
    assert "Refiner under image DR (simgan+dr − dr): simgan+dr is better on median te, median re, AR" in text
    # dr − image-dr: every difference resolved against dr
    assert "Render-time DR (dr − image-dr): worse on median te, median re, AR" in text
    assert "ADR vs DR (adr − dr): worse on" in text
    assert "mean-pose floor: AR +0.320 [+0.250, +0.400] (resolved, better)" in text


def test_adr_ranges_reached_by_hand():
    from benchmark.analysis import adr_ranges_reached
    from randomizer.space import space_from_dict
    space = space_from_dict({"params": {
        "a": {"kind": "continuous", "acts_on": "render", "nominal": 0.0, "bounds": [-1.0, 1.0]},
        "b": {"kind": "continuous", "acts_on": "image", "nominal": 1.0, "bounds": [0.0, 2.0], "dr": [0.5, 1.5]},
        "c": {"kind": "choice", "acts_on": "render", "nominal": "x", "choices": ["x", "y", "z"]},
        "d": {"kind": "continuous", "acts_on": "render", "nominal": 0.0, "bounds": [0.0, 1.0]}}})
    seeds = [{"a": [-1.0, 1.0], "b": [0.5, 1.6], "c": ["x"], "d": [0.0, 0.2]},
             {"a": [-0.5, 1.0], "b": [0.4, 1.6], "c": ["x", "y"], "d": [0.0, 0.1]}]
    r = adr_ranges_reached(seeds, space)
    t = r["fraction_of_widest"]
    assert t["a"] == {"dr": 1.0, "adr_per_seed": [1.0, 0.75]}
    assert t["b"]["dr"] == 0.5 and t["b"]["adr_per_seed"] == pytest.approx([0.55, 0.6])
    assert t["c"] == {"dr": 1.0, "adr_per_seed": [0.0, 0.5]}
    assert r["reached"] == ["b"]                 # at DR's width or beyond in every seed (beyond: 0.55, 0.6 > 0.5)
    assert r["not_absorbed"] == ["d"]            # below a quarter of DR's width in every seed
    assert r["beyond"] == ["b"]                  # past DR's range on a side (1.6 > 1.5; 0.4 < 0.5)


def test_spearman_rho_by_hand():
    from benchmark.analysis import spearman_rho
    assert spearman_rho([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman_rho([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks 1,2,3,4 against 2,1,4,3: d² = 1+1+1+1 → 1 − 6·4 / (4·15) = 0.6
    assert spearman_rho([0.1, 0.2, 0.3, 0.4], [2, 1, 4, 3]) == pytest.approx(0.6)
    assert spearman_rho([1, 2], [2, 1]) != spearman_rho([1, 2], [2, 1])          # nan: too few pipelines
    assert spearman_rho([1, 2, 3], [5, 5, 5]) != spearman_rho([1, 2, 3], [5, 5, 5])  # nan: one session has no order


def test_tune_vs_report_takes_seed_means_per_pipeline():
    from benchmark.analysis import tune_vs_report
    row = lambda p, s, ar_t, ar_r: {"pipeline": p, "seed": s, "ar": ar_r, "te_mm_median": 10 * (1 - ar_r),
                                    "re_deg_median": 5.0, "tune_session": {"ar": ar_t, "te_mm_median": 10 * (1 - ar_t),
                                                                           "re_deg_median": 6.0}}
    rows = [row("a", 0, 0.5, 0.8), row("a", 1, 0.7, 0.6), row("b", 0, 0.4, 0.5), row("c", 0, 0.2, 0.9),
            {"pipeline": "mean-pose", "seed": 0, "ar": 0.0}]
    t = tune_vs_report(rows)
    assert set(t["pipelines"]) == {"a", "b", "c"} and t["pipelines"]["a"]["seeds"] == 2
    assert t["pipelines"]["a"]["tune"]["ar"] == pytest.approx(0.6) and t["pipelines"]["a"]["report"]["ar"] == 0.7
    # tune order a > b > c, report order c > a > b: ranks (3,2,1) vs (2,1,3) → ρ = −0.5
    assert t["spearman_rho"]["ar"] == pytest.approx(-0.5) and t["spearman_rho"]["te_mm_median"] == pytest.approx(-0.5)
    assert t["pipelines"]["a"]["tune"]["missed_share"] is None  # rows from before the field: shown as "—"
    assert tune_vs_report([{"pipeline": "mean-pose", "seed": 0, "ar": 0.0}]) is None


def test_missed_share_by_hand():
    from benchmark.analysis import missed_share
    rows = [{"te_mm": 3.0}, {"te_mm": 49.9}, {"te_mm": 50.1}, {"te_mm": float("inf")}]
    assert missed_share(rows) == 0.5
    assert missed_share([]) != missed_share([])  # nan
