"""Automatic Domain Randomization (OpenAI et al. 2019, "Solving Rubik's Cube with a Robot Hand", §5).

Every controlled parameter has a current range that starts at its nominal point. Each training step asks
for a draw: with probability `p_b` one boundary (parameter, low|high) is pinned — that parameter takes
exactly its current boundary value, every other one its current range. The task's score on the pinned
batch goes into that boundary's buffer; when the buffer holds `m` scores it is averaged and cleared:
mean >= t_H widens the boundary by Δ, mean <= t_L narrows it by Δ.

Choices made here (the paper leaves them open):
- A range always contains the nominal point (narrowing stops there) and never leaves the widest bounds
  (hard limits), which lie beyond plain DR's range where the space allows: ADR can reach DR's range and go
  beyond it. Δ is a fraction of the parameter's DR span (`ADRConfig.delta_frac`, per-parameter overrides in
  `ADRConfig.delta`), so widening the hard limits leaves ADR's steps as they were; integer parameters move by
  whole units (at least 1).
- A choice parameter has one boundary ("high"): its range is the nominal option plus the next options in
  declared order; widening adds the next option, narrowing drops the last one added. Pinning it means
  sampling only the newest option.
- A boundary that cannot move either way (its nominal point is its hard limit) is never pinned.
- Scores reported for a boundary that has moved since the draw are stale and dropped.
- Entropy (the paper's ADR entropy, mean log range width per dimension) is measured in units of each
  parameter's widest span, so parameters with different units weigh the same:
      H = mean_i log(max(w_i / W_i, eps)),  eps = ENTROPY_EPS = 1e-3
  w_i the current width (choice: options in use − 1), W_i the widest one (choice: all options − 1).
  Zero width (a parameter at its nominal point) would be −inf; the floor eps makes it log(1e-3) ≈ −6.9,
  so H runs from −6.9 (everything nominal) to 0 (everything at its widest).
- Parameters not controlled (not in `ADRConfig.params` / `acts_on`) stay at their nominal point.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.io import UserError, atomic_savefig
from randomizer.space import Param, ParamSpace, Range

ENTROPY_EPS = 1e-3
SIDES = ("low", "high")


@dataclass
class ADRConfig:
    # Defaults sized for a CPU budget of a few thousand steps: with the shipped space's 44 boundaries one
    # decision per boundary takes 44 * m / p_b = 352 steps, and 1 / delta_frac = 5 widenings reach DR's
    # range on a side that DR spans from the nominal point. Each score is a batch's success fraction, so
    # m = 4 averages ~256 samples.
    p_b: float = 0.5            # probability that a draw pins one boundary
    m: int = 4                  # scores per boundary buffer before a decision
    t_L: float = 0.4            # mean score <= t_L: narrow that boundary
    t_H: float = 0.7            # mean score >= t_H: widen it
    delta_frac: float = 0.2     # Δ as a fraction of DR's span (integer params: at least 1 unit)
    delta: dict[str, float] = field(default_factory=dict)  # per-parameter Δ overrides (fraction of DR span)
    params: tuple[str, ...] | None = None       # parameters ADR moves (None: all that act on `acts_on`)
    acts_on: tuple[str, ...] = ("image", "render")

    def validate(self, space: ParamSpace) -> "ADRConfig":
        where = "ADRConfig"
        if not 0.0 <= self.p_b <= 1.0:
            raise UserError(f"{where}: p_b: expected a probability in [0, 1], got {self.p_b}")
        if not (isinstance(self.m, int) and self.m >= 1):
            raise UserError(f"{where}: m: expected a positive integer, got {self.m!r}")
        if not self.t_L < self.t_H:
            raise UserError(f"{where}: t_L/t_H: expected t_L < t_H, got {self.t_L} >= {self.t_H}")
        for name, d in {"delta_frac": self.delta_frac, **{f"delta.{k}": v for k, v in self.delta.items()}}.items():
            if not 0.0 < d <= 1.0:
                raise UserError(f"{where}: {name}: expected a fraction in (0, 1], got {d}")
        for name in list(self.delta) + list(self.params or ()):
            if name not in space.params:
                raise UserError(f"{where}: {name}: unknown parameter (known: {', '.join(space.params)})")
        for a in self.acts_on:
            if a not in ("image", "render"):
                raise UserError(f"{where}: acts_on: expected image and/or render, got {a!r}")
        return self


@dataclass
class ADRDraw:
    """What one training step uses. boundary: (name, "low"|"high") pinned at `value`, or None."""
    image_ranges: dict[str, Range]
    render_ranges: dict[str, Range]
    boundary: tuple[str, str] | None = None
    value: Any = None

    @property
    def ranges(self) -> dict[str, Range]:
        return {**self.render_ranges, **self.image_ranges}


class ADR:
    def __init__(self, space: ParamSpace, cfg: ADRConfig | None = None, seed: int = 0) -> None:
        self.space = space
        self.cfg = (cfg or ADRConfig()).validate(space)
        self.rng = np.random.default_rng(seed)
        names = self.cfg.params if self.cfg.params is not None else space.names()
        self.controlled = [n for n in space.params if n in names and space.params[n].acts_on in self.cfg.acts_on]
        self.lo: dict[str, float] = {}
        self.hi: dict[str, float] = {}
        self.k: dict[str, int] = {}      # choice parameters: number of options in use
        for n in self.controlled:
            p = space.params[n]
            if p.kind == "choice":
                self.k[n] = 1
            else:
                self.lo[n] = self.hi[n] = float(p.nominal)
        self.boundaries = [(n, s) for n in self.controlled for s in SIDES if self._movable(n, s)]
        self.buffers: dict[tuple[str, str], list[float]] = {b: [] for b in self.boundaries}
        self.n_draws = self.n_reports = self.n_widen = self.n_narrow = self.n_stale = 0

    # ---- helpers -------------------------------------------------------------------------------
    def _options(self, p: Param) -> tuple[str, ...]:
        """A choice's options in widening order: the nominal one first, then the others as declared."""
        return (p.nominal,) + tuple(c for c in p.choices if c != p.nominal)

    def _movable(self, name: str, side: str) -> bool:
        p = self.space.params[name]
        if p.kind == "choice":
            return side == "high" and len(p.choices) > 1
        return (p.low < p.nominal) if side == "low" else (p.high > p.nominal)

    def _delta(self, p: Param) -> float:
        lo, hi = p.dr_range if p.dr_range[1] > p.dr_range[0] else (p.low, p.high)  # DR pinned: the bounds' span
        d = self.cfg.delta.get(p.name, self.cfg.delta_frac) * (hi - lo)
        return float(max(1, round(d))) if p.kind == "integer" else d

    def _range(self, name: str) -> Range:
        p = self.space.params[name]
        if p.kind == "choice":
            return self._options(p)[: self.k[name]]
        return (self.lo[name], self.hi[name])

    def _boundary_value(self, name: str, side: str) -> Any:
        p = self.space.params[name]
        if p.kind == "choice":
            return self._options(p)[self.k[name] - 1]
        return self.lo[name] if side == "low" else self.hi[name]

    # ---- public API ----------------------------------------------------------------------------
    def ranges(self, acts_on: str | None = None) -> dict[str, Range]:
        """Current ranges of every parameter of the space (uncontrolled ones at their nominal point)."""
        out = {}
        for n, p in self.space.params.items():
            if acts_on is not None and p.acts_on != acts_on:
                continue
            out[n] = self._range(n) if n in self.controlled else p.nominal_range
        return out

    def propose(self) -> ADRDraw:
        self.n_draws += 1
        ranges = self.ranges()
        boundary, value = None, None
        if self.boundaries and self.rng.random() < self.cfg.p_b:
            boundary = self.boundaries[int(self.rng.integers(len(self.boundaries)))]
            value = self._boundary_value(*boundary)
            ranges[boundary[0]] = (value,) if self.space.params[boundary[0]].kind == "choice" else (value, value)
        split = {a: {n: r for n, r in ranges.items() if self.space.params[n].acts_on == a} for a in ("image", "render")}
        return ADRDraw(split["image"], split["render"], boundary, value)

    def report(self, draw: ADRDraw, score: float) -> str | None:
        """Record the task score (higher = better) of a draw. Returns "widen"/"narrow" when a boundary
        moved, else None. Draws without a pinned boundary are ignored."""
        if draw.boundary is None:
            return None
        b = (draw.boundary[0], draw.boundary[1])
        if b not in self.buffers:
            raise ValueError(f"ADR.report: {b} is not a boundary of this ADR")
        if self._boundary_value(*b) != draw.value:
            self.n_stale += 1
            return None
        self.n_reports += 1
        buf = self.buffers[b]
        buf.append(float(score))
        if len(buf) < self.cfg.m:
            return None
        mean = sum(buf) / len(buf)
        buf.clear()
        if mean >= self.cfg.t_H:
            self._move(*b, widen=True)
            self.n_widen += 1
            return "widen"
        if mean <= self.cfg.t_L:
            self._move(*b, widen=False)
            self.n_narrow += 1
            return "narrow"
        return None

    def _move(self, name: str, side: str, widen: bool) -> None:
        p = self.space.params[name]
        if p.kind == "choice":
            self.k[name] = min(len(p.choices), self.k[name] + 1) if widen else max(1, self.k[name] - 1)
            return
        d, nom = self._delta(p), float(p.nominal)
        if side == "low":
            v = max(p.low, self.lo[name] - d) if widen else min(nom, self.lo[name] + d)
            self.lo[name] = round(v, 12)
        else:
            v = min(p.high, self.hi[name] + d) if widen else max(nom, self.hi[name] - d)
            self.hi[name] = round(v, 12)

    def relative_widths(self) -> dict[str, float]:
        """Current width / widest width per movable controlled parameter (0 = nominal, 1 = widest)."""
        out = {}
        movable = {n for n, _ in self.boundaries}
        for n in self.controlled:  # a parameter that cannot move (zero span) says nothing: left out
            if n not in movable:
                continue
            p = self.space.params[n]
            if p.kind == "choice":
                out[n] = (self.k[n] - 1) / max(1, len(p.choices) - 1)
            else:
                span = p.high - p.low
                out[n] = (self.hi[n] - self.lo[n]) / span if span > 0 else 0.0
        return out

    def entropy(self) -> float:
        """ADR entropy in nats per dimension (see the module docstring for the units and the floor)."""
        w = self.relative_widths()
        if not w:
            return 0.0
        return float(np.mean([math.log(max(v, ENTROPY_EPS)) for v in w.values()]))

    def log_row(self, step: int | None = None) -> dict[str, Any]:
        """One row of the ADR log: step, entropy, counters, and every controlled range
        (`name.lo`/`name.hi`; choices: `name.n_options`)."""
        row: dict[str, Any] = {"step": self.n_draws if step is None else int(step), "entropy": self.entropy(),
                               "n_reports": self.n_reports, "n_widen": self.n_widen, "n_narrow": self.n_narrow}
        for n in self.controlled:
            if n in self.k:
                row[f"{n}.n_options"] = self.k[n]
            else:
                row[f"{n}.lo"], row[f"{n}.hi"] = self.lo[n], self.hi[n]
        return row

    # ---- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-able state: ranges, buffers, counters and the RNG state."""
        return {"version": 1, "controlled": list(self.controlled),
                "lo": dict(self.lo), "hi": dict(self.hi), "k": dict(self.k),
                "buffers": {f"{n}:{s}": list(v) for (n, s), v in self.buffers.items()},
                "counters": {"n_draws": self.n_draws, "n_reports": self.n_reports, "n_widen": self.n_widen,
                             "n_narrow": self.n_narrow, "n_stale": self.n_stale},
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        if d.get("version") != 1 or list(d.get("controlled", [])) != self.controlled:
            raise UserError("ADR checkpoint: its controlled parameters differ from this space/config "
                            f"(checkpoint: {d.get('controlled')}, now: {self.controlled})")
        self.lo = {k: float(v) for k, v in d["lo"].items()}
        self.hi = {k: float(v) for k, v in d["hi"].items()}
        self.k = {k: int(v) for k, v in d["k"].items()}
        self.buffers = {b: [] for b in self.boundaries}
        for key, v in d["buffers"].items():
            n, s = key.rsplit(":", 1)
            self.buffers[(n, s)] = [float(x) for x in v]
        for k, v in d["counters"].items():
            setattr(self, k, int(v))
        self.rng.bit_generator.state = d["rng"]


def interpolate_ranges(space: ParamSpace, level: float, acts_on: str | None = None) -> dict[str, Range]:
    """Ranges a fraction `level` of the way from the nominal point (0) to the widest bounds (1), grown the
    way ADR grows them: numeric bounds move linearly away from nominal; a choice takes the nominal option
    plus the first round(level × (K−1)) others in declared order."""
    if not 0.0 <= level <= 1.0:
        raise UserError(f"level: expected a fraction in [0, 1], got {level}")
    out: dict[str, Range] = {}
    for n, p in space.params.items():
        if acts_on is not None and p.acts_on != acts_on:
            continue
        if p.kind == "choice":
            opts = (p.nominal,) + tuple(c for c in p.choices if c != p.nominal)
            out[n] = opts[: 1 + int(round(level * (len(opts) - 1)))]
        else:
            nom = float(p.nominal)
            out[n] = (nom + level * (p.low - nom), nom + level * (p.high - nom))
    return out


def write_adr_log(rows: list[dict[str, Any]], out_dir) -> tuple[Any, Any]:
    """adr_ranges.csv (one row per log_row) and adr.png (each range over training + the entropy),
    both written atomically. Returns (csv_path, png_path)."""
    import csv
    import io
    from pathlib import Path

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from core.io import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    csv_path = out / "adr_ranges.csv"
    atomic_write_text(csv_path, buf.getvalue())

    steps = [r.get("step", i) for i, r in enumerate(rows)]
    names = []
    for c in cols:
        base = c.rsplit(".", 1)[0] if c.endswith((".lo", ".hi", ".n_options")) else None
        if base and base not in names:
            names.append(base)
    panels = ["entropy"] + names
    ncol = min(6, len(panels))
    nrow = math.ceil(len(panels) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 1.9 * nrow), squeeze=False, sharex=True)
    for ax, name in zip(axes.flat, panels):
        if name == "entropy":
            ax.plot(steps, [r.get("entropy", np.nan) for r in rows], color="k")
            ax.set_title("ADR entropy (nats/dim)", fontsize=8)
        elif f"{name}.n_options" in cols:
            ax.step(steps, [r.get(f"{name}.n_options", np.nan) for r in rows], where="post", color="tab:purple")
            ax.set_title(f"{name} (options)", fontsize=8)
        else:
            lo = np.array([r.get(f"{name}.lo", np.nan) for r in rows], dtype=float)
            hi = np.array([r.get(f"{name}.hi", np.nan) for r in rows], dtype=float)
            ax.fill_between(steps, lo, hi, step="post", alpha=0.35, color="tab:blue")
            ax.step(steps, lo, where="post", color="tab:blue", lw=0.8)
            ax.step(steps, hi, where="post", color="tab:blue", lw=0.8)
            ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=6)
        ax.yaxis.set_major_locator(MaxNLocator(3))  # few ticks: tick drawing dominates the cost
        ax.xaxis.set_major_locator(MaxNLocator(3))
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.supxlabel("training step", fontsize=8)
    # fixed margins: tight_layout over ~30 axes costs seconds, and this runs every epoch
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.09 if nrow < 3 else 0.05, top=0.93 if nrow < 3 else 0.96,
                        wspace=0.35, hspace=0.6)
    png_path = out / "adr.png"
    atomic_savefig(fig, png_path, dpi=110)
    plt.close(fig)
    return csv_path, png_path
