"""ADR for render-time parameters through a pre-rendered pool.

Rendering inside the training loop is too slow on a CPU, so ADR's render-time ranges are honoured by
rendering a pool once (each sample's drawn parameters recorded in the dataset's params.json) and, at each
step, training only on pool samples whose recorded parameters lie inside the draw's current ranges.

A caveat worth knowing: ADR starts every range at its nominal point (zero width). A pool drawn uniformly
from the widest bounds has (almost) no sample exactly at the nominal point of all ~18 render parameters at
once, so early on nothing is "inside". `pool_sample_params` draws a pool that works with ADR: every
parameter sits at its nominal value with probability `q_nominal`, else anywhere in its widest range — so
a fraction q_nominal**d of the pool is fully nominal and every partially widened state has samples.
`pool_indices(..., min_count=k)` can also top up with the k nearest samples (see there).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from randomizer.space import ParamSpace, Range

_CACHE: list[tuple[Any, int, dict[str, np.ndarray]]] = []  # (params list, len, columns), a few entries


def _columns(params: list[dict], space: ParamSpace) -> dict[str, np.ndarray]:
    """params.json as one array per render parameter (a missing value counts as the nominal one: the
    renderer did not vary it). Cached per list object: ADR asks every training step."""
    for ref, n, cols in _CACHE:
        if ref is params and n == len(params):
            return cols
    cols = {}
    for name in space.names("render"):
        p = space.params[name]
        vals = [rec.get(name, p.nominal) for rec in params]
        cols[name] = np.asarray(vals, dtype=object if p.kind == "choice" else np.float64)
    _CACHE.insert(0, (params, len(params), cols))
    del _CACHE[4:]
    return cols


def pool_indices(params: list[dict], space: ParamSpace, render_ranges: dict[str, Range],
                 boundary: tuple[str, str] | None = None, tol: float = 0.05, min_count: int = 0) -> np.ndarray:
    """Indices (sorted, int64) of pool samples whose recorded render parameters lie inside `render_ranges`.

    params: the dataset's per-sample parameter dicts (SyntheticDataset.params / params.json).
    render_ranges: name -> (lo, hi) or tuple of options; names that are not render parameters are ignored.
    boundary: (name, side) of a pinned parameter (its range is a single value v): that parameter matches
        when |value − v| <= tol × its widest span (a continuous value never equals v exactly); integers
        and choices must match exactly.
    min_count: if fewer than this many samples are inside, add the nearest outside ones (by the largest
        out-of-range distance over parameters, in units of each widest span; a wrong choice counts 1)
        until there are min_count. 0 (default): strictly inside only.
    """
    cols = _columns(params, space)
    n = len(params)
    inside = np.ones(n, dtype=bool)
    dist = np.zeros(n)
    for name, r in render_ranges.items():
        p = space.params.get(name)
        if p is None or p.acts_on != "render":
            continue
        v = cols[name]
        if p.kind == "choice":
            ok = np.isin(v, np.asarray(list(r), dtype=object))
            d = (~ok).astype(float)
        else:
            lo, hi = float(r[0]), float(r[1])
            span = max(p.high - p.low, 1e-12)
            if p.kind == "integer":  # what Param.sample can draw inside (lo, hi); a pinned one: exactly
                lo, hi = np.floor(lo), np.floor(hi)
            elif boundary is not None and boundary[0] == name:
                lo, hi = lo - tol * span, hi + tol * span
            d = np.maximum(np.maximum(lo - v, v - hi), 0.0) / span
            ok = d <= 1e-9
        inside &= ok
        dist = np.maximum(dist, d)
    idx = np.nonzero(inside)[0]
    if len(idx) < min_count:
        outside = np.nonzero(~inside)[0]
        extra = outside[np.argsort(dist[outside], kind="stable")[: min_count - len(idx)]]
        idx = np.sort(np.concatenate([idx, extra]))
    return idx.astype(np.int64)


def pool_sample_params(space: ParamSpace, rng: np.random.Generator, q_nominal: float = 0.85) -> dict[str, Any]:
    """Render parameters for one pool sample meant for ADR (see the module docstring): each parameter is
    its nominal value with probability q_nominal, else drawn from its widest range. Declaration order,
    two draws per parameter, so streams are replayable."""
    out: dict[str, Any] = {}
    for name in space.names("render"):
        p = space.params[name]
        keep = rng.random() < q_nominal
        v = p.sample(rng, p.widest)
        out[name] = p.nominal if keep else v
    return out
