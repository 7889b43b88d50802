"""Render-time ADR through a pool: pool_indices returns exactly the samples inside the current ranges."""
from __future__ import annotations

import numpy as np
import pytest

from randomizer import ADR, ADRConfig, load_space, pool_indices, pool_sample_params

SPACE = load_space()


def _inside(rec, ranges):
    return all(SPACE.params[n].contains(rec[n], r) if SPACE.params[n].kind != "integer"
               else int(np.floor(r[0])) <= rec[n] <= int(np.floor(r[1])) for n, r in ranges.items())


@pytest.fixture(scope="module")
def pool():
    rng = np.random.default_rng(0)
    return [pool_sample_params(SPACE, rng, q_nominal=0.85) for _ in range(3000)]


def _adr_after(steps, seed=0):
    adr = ADR(SPACE, ADRConfig(p_b=1.0, m=2, acts_on=("render",)), seed=seed)
    for _ in range(steps):
        adr.report(adr.propose(), 1.0)
    return adr


@pytest.mark.parametrize("steps", [0, 60, 200, 2000])
def test_only_and_all_samples_inside_the_current_ranges(pool, steps):
    ranges = _adr_after(steps).ranges("render")
    idx = pool_indices(pool, SPACE, ranges)
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
    chosen = set(idx.tolist())
    for i, rec in enumerate(pool):
        assert (i in chosen) == _inside(rec, ranges), (i, steps)
    assert len(idx) > 0  # a pool drawn by pool_sample_params has samples even at the nominal point


def test_pinned_boundary_matches_within_tolerance(pool):
    adr = _adr_after(300, seed=1)
    for _ in range(50):
        d = adr.propose()
        name, _side = d.boundary
        p = SPACE.params[name]
        idx = pool_indices(pool, SPACE, d.render_ranges, d.boundary, tol=0.05)
        others = {n: r for n, r in d.render_ranges.items() if n != name}
        for i in idx:
            rec = pool[i]
            assert _inside(rec, others)
            if p.kind == "choice":
                assert rec[name] == d.value
            elif p.kind == "integer":
                assert rec[name] == int(np.floor(d.value))
            else:
                assert abs(rec[name] - d.value) <= 0.05 * (p.high - p.low) + 1e-9


def test_min_count_tops_up_with_the_nearest(pool):
    ranges = SPACE.ranges("nominal", "render")
    strict = pool_indices(pool, SPACE, ranges)
    topped = pool_indices(pool, SPACE, ranges, min_count=len(strict) + 25)
    assert len(topped) == len(strict) + 25 and set(strict.tolist()) <= set(topped.tolist())
    widest = pool_indices(pool, SPACE, SPACE.ranges("widest", "render"))
    assert len(widest) == len(pool)


def test_params_recorded_by_the_renderer_are_pool_compatible():
    """Real renders: the renderer's params.json entries carry every render parameter under its name."""
    scene = pytest.importorskip("render.scene")
    from core.objects import load_object_spec
    r = scene.SceneRenderer(load_object_spec("aruco-cube"), scene.SceneSpec(), scene.DEFAULT_CAMERA, SPACE,
                            (32, 24), 16, 2.0)
    try:
        recs = [s.params for s in r.render_scene((0, 0), 2, SPACE.ranges("widest", "render"))]
        recs.append(r.render_scene((0, 1), 1, SPACE.ranges("nominal", "render"))[0].params)
    finally:
        r.close()
    assert set(SPACE.names("render")) <= set(recs[0])
    assert pool_indices(recs, SPACE, SPACE.ranges("widest", "render")).tolist() == [0, 1, 2]
    assert 2 in pool_indices(recs, SPACE, SPACE.ranges("nominal", "render")).tolist()
