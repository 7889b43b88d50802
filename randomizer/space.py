"""One declared randomization parameter space, shared by render time and train time.

Each parameter has a name, a kind (continuous / integer / choice), where it acts (render or image), a
nominal value and the widest bounds. A *range* is what is sampled from now: `(low, high)` for numeric
parameters, a tuple of allowed options for a choice. ADR starts every range at the nominal point and
moves it between the nominal point and the widest bounds; plain DR samples from `dr` ranges (the widest
bounds unless the config narrows them).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import yaml

from core.io import UserError

KINDS = ("continuous", "integer", "choice")
ACTS_ON = ("render", "image")
DEFAULT_CONFIG = Path(__file__).parent / "default.yaml"

Range = Union[tuple[float, float], tuple[str, ...]]


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    acts_on: str
    nominal: Any
    low: float = 0.0
    high: float = 0.0
    choices: tuple[str, ...] = ()
    dr: Range | None = None  # the range plain DR uses; defaults to the widest bounds
    doc: str = ""

    @property
    def widest(self) -> Range:
        return self.choices if self.kind == "choice" else (self.low, self.high)

    @property
    def nominal_range(self) -> Range:
        return (self.nominal,) if self.kind == "choice" else (float(self.nominal), float(self.nominal))

    @property
    def dr_range(self) -> Range:
        return self.dr if self.dr is not None else self.widest

    def sample(self, rng: np.random.Generator, rng_range: Range) -> Any:
        if self.kind == "choice":
            return str(rng_range[int(rng.integers(len(rng_range)))])
        lo, hi = rng_range
        if self.kind == "integer":
            return int(rng.integers(int(math.floor(lo)), int(math.floor(hi)) + 1))
        return float(lo + (hi - lo) * rng.random())

    def contains(self, value: Any, rng_range: Range) -> bool:
        if self.kind == "choice":
            return value in rng_range
        lo, hi = rng_range
        return lo - 1e-9 <= value <= hi + 1e-9


@dataclass
class ParamSpace:
    params: dict[str, Param]
    source: str = "<space>"

    def names(self, acts_on: str | None = None) -> list[str]:
        return [n for n, p in self.params.items() if acts_on is None or p.acts_on == acts_on]

    def ranges(self, which: str = "dr", acts_on: str | None = None) -> dict[str, Range]:
        """which: 'nominal', 'dr' or 'widest'."""
        attr = {"nominal": "nominal_range", "dr": "dr_range", "widest": "widest"}[which]
        return {n: getattr(p, attr) for n, p in self.params.items() if acts_on is None or p.acts_on == acts_on}

    def sample(self, rng: np.random.Generator, ranges: dict[str, Range]) -> dict[str, Any]:
        """One value per parameter named in `ranges`, in declaration order (so streams are replayable)."""
        return {n: self.params[n].sample(rng, ranges[n]) for n in self.params if n in ranges}

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for n, p in self.params.items():
            d: dict[str, Any] = {"kind": p.kind, "acts_on": p.acts_on, "nominal": p.nominal}
            if p.kind == "choice":
                d["choices"] = list(p.choices)
            else:
                d["bounds"] = [p.low, p.high]
            if p.dr is not None:
                d["dr"] = list(p.dr)
            out[n] = d
        return out


def _bad(src: str, name: str, msg: str) -> UserError:
    return UserError(f"{src}: {name}: {msg}")


def space_from_dict(d: Any, src: str = "<space>") -> ParamSpace:
    if not isinstance(d, dict) or not isinstance(d.get("params"), dict):
        raise UserError(f"{src}: expected a mapping with a 'params' mapping")
    params: dict[str, Param] = {}
    for name, pd in d["params"].items():
        f = f"params.{name}"
        if not isinstance(pd, dict):
            raise _bad(src, f, "expected a mapping with kind, acts_on, nominal and bounds/choices")
        unknown = set(pd) - {"kind", "acts_on", "nominal", "bounds", "choices", "dr", "doc"}
        if unknown:
            raise _bad(src, f"{f}.{sorted(unknown)[0]}", "unknown field")
        kind = pd.get("kind")
        if kind not in KINDS:
            raise _bad(src, f + ".kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
        acts = pd.get("acts_on")
        if acts not in ACTS_ON:
            raise _bad(src, f + ".acts_on", f"expected one of {', '.join(ACTS_ON)}, got {acts!r}")
        nominal = pd.get("nominal")
        dr = pd.get("dr")
        if kind == "choice":
            choices = pd.get("choices")
            if not (isinstance(choices, list) and choices and all(isinstance(c, str) for c in choices)):
                raise _bad(src, f + ".choices", "expected a non-empty list of strings")
            if nominal not in choices:
                raise _bad(src, f + ".nominal", f"{nominal!r} is not one of the choices {choices}")
            if dr is not None and not (isinstance(dr, list) and dr and set(dr) <= set(choices)):
                raise _bad(src, f + ".dr", "expected a non-empty subset of the choices")
            params[name] = Param(name, kind, acts, nominal, choices=tuple(choices),
                                 dr=tuple(dr) if dr is not None else None, doc=pd.get("doc", ""))
        else:
            b = pd.get("bounds")
            if not (isinstance(b, list) and len(b) == 2 and all(isinstance(x, (int, float)) for x in b)):
                raise _bad(src, f + ".bounds", f"expected [low, high] numbers, got {b!r}")
            lo, hi = float(b[0]), float(b[1])
            if not lo <= hi:
                raise _bad(src, f + ".bounds", f"low {lo} > high {hi}")
            if not isinstance(nominal, (int, float)) or not lo <= nominal <= hi:
                raise _bad(src, f + ".nominal", f"expected a number inside the bounds [{lo}, {hi}], got {nominal!r}")
            if dr is not None:
                if not (isinstance(dr, list) and len(dr) == 2 and all(isinstance(x, (int, float)) for x in dr)
                        and lo <= dr[0] <= dr[1] <= hi):
                    raise _bad(src, f + ".dr", f"expected [low, high] inside the bounds [{lo}, {hi}], got {dr!r}")
                dr = (float(dr[0]), float(dr[1]))
            params[name] = Param(name, kind, acts, nominal, lo, hi, dr=dr, doc=pd.get("doc", ""))
    return ParamSpace(params, src)


def load_space(path: str | os.PathLike | None = None) -> ParamSpace:
    """Load a parameter-space YAML (the shipped default when path is None)."""
    p = Path(path) if path is not None else DEFAULT_CONFIG
    if not p.is_file():
        raise UserError(f"{p}: randomization config not found")
    try:
        d = yaml.safe_load(p.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:  # a binary file given as YAML, too
        raise UserError(f"{p}: malformed YAML ({str(e).splitlines()[0][:100]})") from None
    return space_from_dict(d, str(p))
