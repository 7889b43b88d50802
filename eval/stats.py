"""Clustered, paired statistics for the benchmark (pure numpy).

Why clusters: the real rig's cameras shoot the same pose at the same instant, so the images of one capture
instant are not independent draws — a bootstrap that resamples images one by one makes intervals too narrow.
Here the resampling unit is the capture instant (core.bop.read_capture_instants; a set without instants
falls back to one cluster per image), and the training seed is a second resampling level.

Every per-pipeline statistic is a `reducer` ("median" or "mean") of one per-image column; a pipeline trained
with S seeds has a value matrix (S, n) over the same n images, and its statistic is the mean over seeds of
the per-seed reducer. A bootstrap replicate draws S seeds with replacement and the instants with replacement
(an instant's images stay together: they share one multiplicity weight), and recomputes the statistic with
those weights. Intervals are percentile 95 % intervals read off order statistics (a replicate may be inf when
predictions are missing). Paired comparisons use the SAME instant draw for both pipelines (the images are
shared; the seeds are not, so each pipeline's seeds are drawn independently) and a cluster-level
two-sided bootstrap p-value (plus a cluster label-swap permutation test as a second opinion).

Why a second, seed-level interval: with 3 seeds the bootstrap over seeds draws from 10 distinct multisets and its
percentile interval treats the seed spread as known. Two default benchmark runs that differ only by floating-point
rounding (the same settings, seeds and photos) had 3 of 27 bootstrap intervals exclude 0 (README, "The same settings
twice"). A paired comparison is therefore `resolved` only when the bootstrap interval AND a Welch t interval over
the two pipelines' per-seed statistics (`seed_interval`; conditional on the images) both exclude 0 — on that
replicate, 0 of 27.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

REDUCERS = ("median", "mean")


def cluster_index(cluster_ids: Sequence[Any]) -> tuple[np.ndarray, int]:
    """(per-image cluster number 0..C-1 in first-seen order, C)."""
    seen: dict[Any, int] = {}
    idx = np.array([seen.setdefault(c, len(seen)) for c in cluster_ids], dtype=np.int64)
    return idx, len(seen)


def cluster_weights(cluster_ids: Sequence[Any], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) image weights of a cluster bootstrap: C clusters drawn with replacement, each image weighted
    by how often its cluster was drawn (so the images of one instant always move together)."""
    idx, c = cluster_index(cluster_ids)
    if c == 0:
        return np.zeros((n_boot, 0))
    counts = np.stack([np.bincount(rng.integers(0, c, size=c), minlength=c) for _ in range(n_boot)])
    return counts[:, idx].astype(np.float64)


def weighted_reduce(values: np.ndarray, weights: np.ndarray, reducer: str) -> np.ndarray:
    """Reduce (..., n) values with (B, n) weights → (B, ...). median: the mean of the lower and upper weighted
    medians (equals np.median when all weights are 1); mean: Σ w v / Σ w (an inf value with weight 0 is ignored)."""
    v = np.asarray(values, np.float64)
    w = np.asarray(weights, np.float64)
    lead = v.shape[:-1]
    v2 = v.reshape(-1, v.shape[-1])                       # (K, n)
    out = np.empty((w.shape[0], v2.shape[0]))
    for k, row in enumerate(v2):
        if reducer == "mean":
            prod = w * np.where(w > 0, row[None], 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[:, k] = prod.sum(1) / w.sum(1)
        elif reducer == "median":
            order = np.argsort(row, kind="stable")
            vs, cw = row[order], np.cumsum(w[:, order], axis=1)
            half = cw[:, -1:] / 2.0
            lo = np.argmax(cw >= half, axis=1)
            hi = np.argmax(cw > half, axis=1)
            a, b = vs[lo], vs[hi]
            out[:, k] = np.where(a == b, a, (a + b) / 2.0)   # inf + inf stays inf, never nan
        else:
            raise ValueError(f"reducer {reducer!r}: expected one of {REDUCERS}")
    return out.reshape(w.shape[0], *lead)


def reduce(values: np.ndarray, reducer: str) -> np.ndarray:
    """The unweighted statistic over the last axis."""
    return _plain(np.asarray(values, np.float64), reducer)


def interval95(boots: np.ndarray) -> list[float]:
    """Percentile 95 % interval from order statistics (no interpolation: replicates may be inf)."""
    b = np.sort(np.asarray(boots, np.float64).ravel())
    n = b.size
    return [float(b[int(np.floor(0.025 * (n - 1)))]), float(b[int(np.ceil(0.975 * (n - 1)))])]


def _seed_draws(n_seeds: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, n_seeds, size=(n_boot, n_seeds))


def _boot_stat(values: np.ndarray, weights: np.ndarray, seed_idx: np.ndarray, reducer: str) -> np.ndarray:
    """(B,) statistic per replicate: mean over the drawn seeds of the weighted reducer."""
    per_seed = weighted_reduce(values, weights, reducer)          # (B, S)
    return np.take_along_axis(per_seed, seed_idx, axis=1).mean(axis=1)


def bootstrap_statistic(values: np.ndarray, cluster_ids: Sequence[Any], reducer: str, n_boot: int = 2000,
                        seed: int = 0) -> dict[str, Any]:
    """One pipeline's statistic over S seeds × n images (values (S, n) or (n,)) with an interval from a
    bootstrap over seeds and capture instants. Returns {value, ci95, per_seed, mean, sd, n_seeds, n_clusters}:
    value = mean over seeds of the per-seed statistic (= `mean`), sd over seeds (ddof 1; 0 for one seed)."""
    v = np.atleast_2d(np.asarray(values, np.float64))
    rng = np.random.default_rng(seed)
    per_seed = reduce(v, reducer)
    w = cluster_weights(cluster_ids, n_boot, rng)
    boots = _boot_stat(v, w, _seed_draws(v.shape[0], n_boot, rng), reducer)
    with np.errstate(invalid="ignore"):
        sd = float(np.std(per_seed, ddof=1)) if v.shape[0] > 1 else 0.0
    return {"value": float(per_seed.mean()), "ci95": interval95(boots), "per_seed": per_seed.tolist(),
            "mean": float(per_seed.mean()), "sd": sd, "n_seeds": int(v.shape[0]),
            "n_clusters": cluster_index(cluster_ids)[1]}


def _broadcast_seeds(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equal seed counts for the permutation test: a deterministic one-seed row (mean-pose) is repeated."""
    if a.shape[0] == b.shape[0]:
        return a, b
    if a.shape[0] == 1:
        return np.repeat(a, b.shape[0], 0), b
    if b.shape[0] == 1:
        return a, np.repeat(b, a.shape[0], 0)
    s = min(a.shape[0], b.shape[0])
    return a[:s], b[:s]


def paired_comparison(values_a: np.ndarray, values_b: np.ndarray, cluster_ids: Sequence[Any], reducer: str,
                      n_boot: int = 2000, n_perm: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Pipeline a − pipeline b on the same n images (values (S_a, n), (S_b, n), columns aligned).

    diff = stat(a) − stat(b); ci95 from the paired bootstrap (one instant draw shared by a and b, seeds drawn
    per pipeline); ci95_seeds = seed_interval of the per-seed statistics (None with one seed a side);
    resolved = ci95 excludes 0 and so does ci95_seeds where there is one (resolved_bootstrap: ci95 alone);
    p = the two-sided paired-bootstrap p-value (consistent with ci95: resolved_bootstrap ⇔ p ≲ 0.05); p_perm = a
    second opinion from a permutation test that swaps a's and b's values of whole instants at random ((1 +
    #|diff*| ≥ |diff|) / (1 + n_perm); exact under exchangeability, but weak for a difference of medians when two
    pipelines err alike image by image).
    Returns {diff, ci95, ci95_seeds, resolved, resolved_bootstrap, p, p_perm, a_value, b_value}."""
    a = np.atleast_2d(np.asarray(values_a, np.float64))
    b = np.atleast_2d(np.asarray(values_b, np.float64))
    if a.shape[1] != b.shape[1] or a.shape[1] != len(cluster_ids):
        raise ValueError(f"paired values need the same images: {a.shape}, {b.shape}, {len(cluster_ids)} clusters")
    rng = np.random.default_rng(seed)
    per_seed_a, per_seed_b = reduce(a, reducer), reduce(b, reducer)
    va, vb = per_seed_a.mean(), per_seed_b.mean()
    with np.errstate(invalid="ignore"):
        diff = float(va - vb)
    w = cluster_weights(cluster_ids, n_boot, rng)
    with np.errstate(invalid="ignore"):
        boots = (_boot_stat(a, w, _seed_draws(a.shape[0], n_boot, rng), reducer)
                 - _boot_stat(b, w, _seed_draws(b.shape[0], n_boot, rng), reducer))
    boots = np.where(np.isnan(boots), 0.0, boots)   # inf − inf: both failed alike in that replicate
    ci = interval95(boots)
    # the test that matches the interval: two-sided bootstrap p, the smallest level at which a percentile
    # interval would exclude 0 ((1 + count) / (1 + B) keeps it above 0 with a finite B)
    p_boot = float(min(1.0, 2.0 * (1 + min((boots <= 0).sum(), (boots >= 0).sum())) / (1 + n_boot)))
    # permutation test: under H0 (no difference) a's and b's values of one instant are exchangeable
    pa, pb = _broadcast_seeds(a, b)
    idx, c = cluster_index(cluster_ids)
    flips = rng.random((n_perm, c)) < 0.5
    flip_img = flips[:, idx][:, None, :]                            # (P, 1, n)
    perm_a = np.where(flip_img, pb[None], pa[None])                # (P, S, n)
    perm_b = np.where(flip_img, pa[None], pb[None])
    with np.errstate(invalid="ignore"):
        d_perm = (reduce(perm_a, reducer).mean(1) - reduce(perm_b, reducer).mean(1))
        d_obs = reduce(pa, reducer).mean() - reduce(pb, reducer).mean()
    if np.isfinite(d_obs):
        extreme = np.abs(np.nan_to_num(d_perm, nan=0.0)) >= abs(d_obs) - 1e-12
        p_perm = float((1 + extreme.sum()) / (1 + n_perm))
    else:
        p_perm = float("nan")   # one side always fails (inf): no finite test statistic
    ci_seeds = seed_interval(per_seed_a, per_seed_b)
    return {"diff": diff, "ci95": ci, "ci95_seeds": ci_seeds,
            "resolved": _excludes_0(ci) and (ci_seeds is None or _excludes_0(ci_seeds)),
            "resolved_bootstrap": _excludes_0(ci), "p": p_boot, "p_perm": p_perm,
            "a_value": float(va), "b_value": float(vb)}


def _excludes_0(interval: list[float]) -> bool:
    return bool(interval[0] > 0 or interval[1] < 0)


# Student's t two-sided 95 % quantiles; a fractional (Welch) df is interpolated linearly in 1/df, which errs a little
# on the wide side between the table's points (df 2.5: 3.63 against the exact 3.50)
_T975 = ((1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (5, 2.571), (6, 2.447), (7, 2.365), (8, 2.306),
         (9, 2.262), (10, 2.228), (12, 2.179), (15, 2.131), (20, 2.086), (30, 2.042), (60, 2.000), (120, 1.980))


def t975(df: float) -> float:
    """The 97.5 % quantile of Student's t with df ≥ 1 degrees of freedom (1.960 as df → ∞)."""
    if df < 1:
        raise ValueError(f"df {df}: expected ≥ 1")
    x = 1.0 / df
    pts = [(1.0 / d, q) for d, q in _T975] + [(0.0, 1.960)]      # x decreasing
    for (x0, q0), (x1, q1) in zip(pts, pts[1:]):
        if x1 <= x <= x0:
            return q0 + (q1 - q0) * (x0 - x) / (x0 - x1)
    return 1.960


def seed_interval(per_seed_a: Sequence[float], per_seed_b: Sequence[float]) -> list[float] | None:
    """Welch 95 % t interval of mean(a) − mean(b) over the two pipelines' per-seed statistics (on the same images,
    so it measures the seeds' spread alone). A side with one seed counts as fixed (mean-pose is deterministic).
    None when neither side has two seeds or a statistic is not finite (a pipeline with missing predictions)."""
    a, b = np.asarray(per_seed_a, np.float64), np.asarray(per_seed_b, np.float64)
    if (len(a) < 2 and len(b) < 2) or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return None
    va = a.var(ddof=1) / len(a) if len(a) > 1 else 0.0
    vb = b.var(ddof=1) / len(b) if len(b) > 1 else 0.0
    d = float(a.mean() - b.mean())
    se2 = va + vb
    if se2 == 0:
        return [d, d]
    df = se2 ** 2 / ((va ** 2 / (len(a) - 1) if len(a) > 1 else 0.0) + (vb ** 2 / (len(b) - 1) if len(b) > 1 else 0.0))
    hw = t975(df) * float(np.sqrt(se2))
    return [d - hw, d + hw]


def _plain(v: np.ndarray, reducer: str) -> np.ndarray:
    """Unweighted reducer over the last axis of any array (vectorised; inf-safe)."""
    if reducer == "median":
        return np.median(v, axis=-1)
    if reducer == "mean":
        return np.mean(v, axis=-1)
    raise ValueError(f"reducer {reducer!r}: expected one of {REDUCERS}")
