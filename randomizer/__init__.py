"""Randomization: one declared parameter space shared by render time and train time, image-level
randomization with kornia, and Automatic Domain Randomization.

Public surface:
- space:  load_space(path|None) -> ParamSpace, Param  (randomizer/default.yaml is the shipped space)
- image:  ImageRandomizer(space, ranges) — batched, seeded, replayable kornia image randomization
- adr:    ADR(space, ADRConfig, seed), ADRConfig, ADRDraw, write_adr_log(rows, out_dir),
          interpolate_ranges(space, level) (nominal 0 → widest 1, grown as ADR grows them)
- ADR's render workers live in render/adr_buffer.py (they render scenes; the adr pipeline uses them)
- pool:   pool_indices(params, space, render_ranges, boundary=None, tol=0.05, min_count=0),
          pool_sample_params(space, rng, q_nominal) — the earlier pre-rendered-pool approach (no longer used by
          the adr pipeline: a pool has almost no sample at a render boundary; kept for `generate --randomization
          adr-pool`)
- CLI:    `sim2real randomizer show` lives in render/randomization_grid.py (it renders scenes)
"""
from randomizer.space import Param, ParamSpace, load_space

# The torch-based parts load on first use: render workers import randomizer.space and stay torch-free.
_LAZY = {"ImageRandomizer": "randomizer.image", "ADR": "randomizer.adr", "ADRConfig": "randomizer.adr",
         "ADRDraw": "randomizer.adr", "interpolate_ranges": "randomizer.adr", "write_adr_log": "randomizer.adr",
         "pool_indices": "randomizer.pool", "pool_sample_params": "randomizer.pool"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'randomizer' has no attribute {name!r}")

__all__ = ["Param", "ParamSpace", "load_space", "ImageRandomizer", "ADR", "ADRConfig", "ADRDraw",
           "write_adr_log", "interpolate_ranges", "pool_indices", "pool_sample_params"]
