"""Finished (pipeline, seed) rows → the numbers the report stands on: a per-pipeline summary over seeds, paired
differences between every two pipelines, the control effects, the ranking and a verdict written from them.

Every row was scored on the same labelled report-session images (per_image.csv in its score_dir), so the
pipelines are compared image by image. Intervals come from eval/stats.py: a bootstrap over training seeds and
capture instants (the cameras of one instant see one pose: their images are resampled together)."""
from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from core.bop import read_capture_instants
from eval import metrics as M
from eval import stats as S
from pose_model.registry import FINETUNE_FROM

PAIRED_METRICS = ("te_mm_median", "re_deg_median", "ar")
HIGHER_IS_BETTER = {"ar", "ar_mssd", "ar_mspd"} | {k for k in M.METRICS if k.startswith(("acc_", "auc_"))}
# the rows that use the tune session's labels (benchmark/run.py trains them from FINETUNE_FROM)
FINETUNE_ROW = f"sim→real fine-tune ({FINETUNE_FROM})"
DEPTH_SCALE_ROW = f"sim→real depth scale ({FINETUNE_FROM})"
# (label, a, b): each effect is a − b on the same images
CONTROLS = (("refiner (simgan − render-dr)", "simgan", "render-dr"),
            ("refiner under image DR (simgan+dr − dr)", "simgan+dr", "dr"),
            ("image DR on DR renders (dr − render-dr)", "dr", "render-dr"),
            ("render-time DR (dr − image-dr)", "dr", "image-dr"),
            ("render-DR localizer (hybrid-dr − image-dr)", "hybrid-dr", "image-dr"),
            ("ADR vs DR (adr − dr)", "adr", "dr"),
            # issue 12's two comparisons as it named them; each confounds the refiner with render-time DR
            ("SimGAN pipeline vs nominal renders (simgan − none; refiner + render-time DR)", "simgan", "none"),
            ("SimGAN+DR vs image DR (simgan+dr − image-dr; refiner + render-time DR)", "simgan+dr", "image-dr"),
            (f"fine-tune on tune-session labels (fine-tune − {FINETUNE_FROM})", FINETUNE_ROW, FINETUNE_FROM),
            (f"depth scale from tune-session labels (depth scale − {FINETUNE_FROM})", DEPTH_SCALE_ROW, FINETUNE_FROM))
METRIC_WORDS = {"te_mm_median": ("median te", " mm", "{:+.1f}"), "re_deg_median": ("median re", "°", "{:+.1f}"),
                "ar": ("AR", "", "{:+.3f}")}


def read_per_image(score_dir: str | Path) -> list[dict[str, Any]]:
    """The per_image.csv of a score folder, numbers parsed ('inf' = missing prediction)."""
    p = Path(score_dir) / "per_image.csv"
    if not p.is_file():
        return []

    def num(v: str) -> Any:
        try:
            return int(v)
        except ValueError:
            try:
                return float(v)
            except ValueError:
                return v
    with open(p) as f:
        return [{k: num(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


def pipeline_columns(rows: list[dict[str, Any]], real_root: str | Path
                     ) -> tuple[list[tuple[int, int]], list[str], dict[str, dict[str, np.ndarray]]]:
    """(image keys, their capture instants, pipeline → per-image column → (seeds, n) values), images aligned."""
    by_p: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: r["seed"]):
        by_p.setdefault(r["pipeline"], []).append(r)
    keys: list[tuple[int, int]] | None = None
    cols: dict[str, dict[str, np.ndarray]] = {}
    for p, rs in by_p.items():
        mats: dict[str, list[np.ndarray]] = {}
        for r in rs:
            per = sorted(read_per_image(r["score_dir"]), key=lambda x: (x["scene_id"], x["im_id"]))
            k = [(int(x["scene_id"]), int(x["im_id"])) for x in per]
            if keys is None:
                keys = k
            elif k != keys:
                raise ValueError(f"{r['score_dir']}: scored on other images than the first row; "
                                 f"paired statistics need the same images")
            c = M.per_image_columns(per, r["diameter_mm"], symmetric=r.get("add_kind") == "ADD-S")
            for name, v in c.items():
                mats.setdefault(name, []).append(v)
        cols[p] = {name: np.stack(v) for name, v in mats.items()}
    keys = keys or []
    return keys, read_capture_instants(real_root, keys), cols


def summarize_pipelines(cols: dict[str, dict[str, np.ndarray]], instants: list[str],
                        n_boot: int) -> dict[str, dict[str, Any]]:
    """pipeline → metric → {mean, sd, min, max, ci95, per_seed, n_seeds}: mean and sd over seeds of the
    per-seed value; ci95 from the bootstrap over seeds and capture instants."""
    out: dict[str, dict[str, Any]] = {}
    for p, c in cols.items():
        out[p] = {}
        for metric, (col, red) in M.METRICS.items():
            b = S.bootstrap_statistic(c[col], instants, red, n_boot=n_boot, seed=0)
            out[p][metric] = {"mean": b["mean"], "sd": b["sd"], "min": float(min(b["per_seed"])),
                              "max": float(max(b["per_seed"])), "ci95": b["ci95"], "per_seed": b["per_seed"],
                              "n_seeds": b["n_seeds"]}
        out[p]["n_clusters"] = S.cluster_index(instants)[1]
        out[p]["n_images"] = len(instants)
    return out


def paired_all(cols: dict[str, dict[str, np.ndarray]], instants: list[str], n_boot: int,
               metrics: tuple[str, ...] = PAIRED_METRICS) -> list[dict[str, Any]]:
    """Every pair of pipelines (a listed before b) on every metric: {a, b, metric, diff, ci95, ci95_seeds,
    resolved, resolved_bootstrap, p, p_perm} (eval.stats.paired_comparison)."""
    res = []
    for a, b in itertools.combinations(list(cols), 2):
        for metric in metrics:
            col, red = M.METRICS[metric]
            r = S.paired_comparison(cols[a][col], cols[b][col], instants, red, n_boot=n_boot, n_perm=n_boot, seed=0)
            res.append({"a": a, "b": b, "metric": metric, **_kept(r)})
    return res


def _kept(r: dict[str, Any]) -> dict[str, Any]:
    """What a stored comparison keeps of eval.stats.paired_comparison's result."""
    return {k: r[k] for k in ("diff", "ci95", "ci95_seeds", "resolved", "resolved_bootstrap", "p", "p_perm")}


def find_pair(paired: list[dict[str, Any]], a: str, b: str, metric: str) -> dict[str, Any] | None:
    """The comparison a − b (flipped from b − a when only that one is stored)."""
    for r in paired:
        if r["metric"] != metric:
            continue
        if (r["a"], r["b"]) == (a, b):
            return r
        if (r["a"], r["b"]) == (b, a):
            lo, hi = r["ci95"]
            seeds = r.get("ci95_seeds")
            return {**r, "a": a, "b": b, "diff": -r["diff"], "ci95": [-hi, -lo],
                    "ci95_seeds": [-seeds[1], -seeds[0]] if seeds else seeds}
    return None


def controls(paired: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The control effects present in this run (a pipeline left out → its effect is skipped)."""
    out = []
    for label, a, b in CONTROLS:
        effs = {m: find_pair(paired, a, b, m) for m in PAIRED_METRICS}
        if all(effs.values()):
            out.append({"effect": label, "a": a, "b": b, "metrics": effs})
    return out


def ranking(summary: dict[str, dict[str, Any]], paired: list[dict[str, Any]], key: str = "ar") -> list[dict[str, Any]]:
    """Pipelines by mean `key` over seeds (best first; ties broken by median te, then median re), each with its
    comparison to the next one down."""
    sign = -1.0 if key in HIGHER_IS_BETTER else 1.0
    order = sorted(summary, key=lambda p: (sign * summary[p][key]["mean"], summary[p]["te_mm_median"]["mean"],
                                           summary[p]["re_deg_median"]["mean"]))
    out = []
    for i, p in enumerate(order):
        nxt = find_pair(paired, p, order[i + 1], key) if i + 1 < len(order) else None
        out.append({"rank": i + 1, "pipeline": p, "vs_next": nxt})
    return out


def _better(metric: str, diff: float) -> bool:
    return diff > 0 if metric in HIGHER_IS_BETTER else diff < 0


def signed(fmt: str, x: float) -> str:
    """A signed number, with no '-0.000' for a difference that rounds to zero."""
    s = fmt.format(x)
    return fmt.format(0.0).lstrip("+") if np.isfinite(x) and float(s) == 0 else s


def describe(r: dict[str, Any]) -> str:
    """'median te −4.2 mm [−7.9, −0.8] (resolved, better)' for one a − b comparison."""
    word, unit, fmt = METRIC_WORDS[r["metric"]]
    lo, hi = r["ci95"]
    s = f"{word} {signed(fmt, r['diff'])}{unit} [{signed(fmt, lo)}, {signed(fmt, hi)}]"
    if not r["resolved"]:
        seeds = r.get("ci95_seeds")
        if r.get("resolved_bootstrap") and seeds:  # the seeds' spread says otherwise: say so, with its interval
            return s + f" (not resolved: over seeds [{signed(fmt, seeds[0])}, {signed(fmt, seeds[1])}])"
        return s + " (not resolved)"
    return s + (" (resolved, better)" if _better(r["metric"], r["diff"]) else " (resolved, worse)")


def verdict(summary: dict[str, dict[str, Any]], paired: list[dict[str, Any]], rank: list[dict[str, Any]],
            floor: str = "mean-pose") -> list[str]:
    """The verdict paragraph, sentence by sentence, generated from the numbers (no hand-written claims)."""
    if not rank:
        return ["No pipeline was scored."]
    best = rank[0]["pipeline"]
    sb = summary[best]
    lines = [f"Ranked by AR (mean of AR_MSSD and AR_MSPD over seeds), **{best}** comes first: AR "
             f"{sb['ar']['mean']:.3f} [{sb['ar']['ci95'][0]:.3f}, {sb['ar']['ci95'][1]:.3f}], median te "
             f"{sb['te_mm_median']['mean']:.1f} mm, median re {sb['re_deg_median']['mean']:.1f}°."]
    if len(rank) > 1:
        second = rank[1]["pipeline"]
        comps = [find_pair(paired, best, second, m) for m in PAIRED_METRICS]
        n_res = sum(1 for c in comps if c and c["resolved"] and _better(c["metric"], c["diff"]))
        lead = ("its lead over" if n_res else "it is not resolved from") + f" **{second}**"
        lines.append(f"Against the runner-up, {lead}: " + "; ".join(describe(c) for c in comps if c) + ".")
    if floor in summary and floor != best:
        c = find_pair(paired, best, floor, "ar")
        if c:
            lines.append(f"Against the {floor} floor: {describe(c)}.")
    for ctl in controls(paired):
        effs = list(ctl["metrics"].values())
        better = [e for e in effs if e["resolved"] and _better(e["metric"], e["diff"])]
        worse = [e for e in effs if e["resolved"] and not _better(e["metric"], e["diff"])]
        if not better and not worse:
            head = "no difference is resolved on these images and seeds"
        else:
            head = ", ".join(x for x in (
                f"{ctl['a']} is better on " + ", ".join(METRIC_WORDS[e['metric']][0] for e in better) if better else "",
                "worse on " + ", ".join(METRIC_WORDS[e['metric']][0] for e in worse) if worse else "") if x)
        lines.append(f"{ctl['effect'][0].upper() + ctl['effect'][1:]}: {head} — "
                     + "; ".join(describe(e) for e in effs) + ".")
    return lines


def rig_analysis(rows: list[dict[str, Any]], rig_rows: list[dict[str, Any]], real_root: str | Path, n_boot: int,
                 suffix: str) -> dict[str, Any] | None:
    """The rig rows (each pipeline's predictions fused over the rig's cameras, named `<pipeline><suffix>`): their
    summary over seeds and, per pipeline, rig − single view on the same images and seeds (paired). None without
    rig rows. Kept apart from `analyse`: a rig row is never ranked against single-view rows."""
    if not rig_rows:
        return None
    _, instants, cols = pipeline_columns(rows + rig_rows, real_root)
    names = list(dict.fromkeys(r["pipeline"] for r in rig_rows))
    summary = summarize_pipelines({p: cols[p] for p in names}, instants, n_boot)
    effects = []
    for p in names:
        single = p[:-len(suffix)] if p.endswith(suffix) else p
        if single not in cols or cols[single]["te_mm"].shape != cols[p]["te_mm"].shape:
            continue
        effs = {}
        for metric in PAIRED_METRICS:
            col, red = M.METRICS[metric]
            r = S.paired_comparison(cols[p][col], cols[single][col], instants, red, n_boot=n_boot, n_perm=n_boot,
                                    seed=0)
            effs[metric] = {"a": p, "b": single, "metric": metric, **_kept(r)}
        effects.append({"rig": p, "single_view": single, "metrics": effs})
    return {"summary": summary, "effects": effects}


def adr_ranges_reached(final_ranges: list[dict[str, Any]], space) -> dict[str, Any]:
    """How far ADR opened each parameter, per seed: width / the widest bounds' width (choices: options in use − 1 over
    all − 1), against plain DR's width the same way; `reached`: parameters at DR's width or beyond in every seed;
    `beyond`: numeric parameters whose range passes DR's on either side in at least one seed (the hard limits lie
    beyond DR's); `not_absorbed`: parameters below a quarter of DR's width in every seed (the task could not absorb
    them within the run). final_ranges: each seed's model-card `adr_final_ranges`; space: the
    randomizer.space.ParamSpace used."""
    def frac(name: str, rng) -> float:
        p = space.params[name]
        if p.kind == "choice":
            return (len(rng) - 1) / max(1, len(p.choices) - 1)
        span = p.high - p.low
        return (float(rng[1]) - float(rng[0])) / span if span > 0 else 0.0
    dr = space.ranges("dr")
    names = [n for n in space.params if all(n in fr for fr in final_ranges) and frac(n, dr[n]) > 0]
    table = {n: {"dr": frac(n, dr[n]), "adr_per_seed": [frac(n, fr[n]) for fr in final_ranges]} for n in names}
    reached = [n for n, t in table.items() if min(t["adr_per_seed"]) >= t["dr"] - 1e-9]
    low = [n for n, t in table.items() if max(t["adr_per_seed"]) < 0.25 * t["dr"]]
    beyond = [n for n in names if space.params[n].kind != "choice"
              and any(float(fr[n][0]) < dr[n][0] - 1e-9 or float(fr[n][1]) > dr[n][1] + 1e-9 for fr in final_ranges)]
    return {"fraction_of_widest": table, "reached": reached, "beyond": beyond, "not_absorbed": low,
            "n_seeds": len(final_ranges)}


def spearman_rho(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of two equally long sequences (average ranks for ties); nan below 3 items."""
    if len(a) < 3:
        return float("nan")
    def ranks(x):
        x = np.asarray(x, float)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x), dtype=float)
        for v in np.unique(x):  # ties share their mean rank
            r[x == v] = r[x == v].mean()
        return r
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


MISSED_MM = 50.0  # a photo whose translation error exceeds this: the cube was not found (the localizer's miss)


def missed_share(per_image: list[dict[str, Any]]) -> float:
    """Share of the photos of a per_image.csv (read_per_image) whose te_mm exceeds MISSED_MM (or was not predicted);
    nan without photos."""
    te = np.array([float(r.get("te_mm", float("inf"))) for r in per_image])
    return float(np.mean(te > MISSED_MM)) if len(te) else float("nan")


def tune_vs_report(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Per sim pipeline, the seed means of AR, median te and re and the share of photos where the cube was missed
    (missed_share, None where a row lacks it) on the tune session (rows' `tune_session`) and on the report session,
    and Spearman's ρ between the two sessions' orders of the pipelines (AR; te): a setting chosen on the tune
    session carries over only as far as the two agree. None when no row has tune metrics."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("tune_session"):
            by.setdefault(r["pipeline"], []).append(r)
    if not by:
        return None
    keys = ("ar", "te_mm_median", "re_deg_median", "missed_share")
    mean = lambda xs: float(np.mean(xs)) if all(x is not None for x in xs) else None  # noqa: E731
    per = {p: {"tune": {k: mean([r["tune_session"].get(k) for r in rs]) for k in keys},
               "report": {k: mean([r.get(k) for r in rs]) for k in keys}, "seeds": len(rs)}
           for p, rs in by.items()}
    names = list(per)
    rho = {k: spearman_rho([per[p]["tune"][k] for p in names], [per[p]["report"][k] for p in names])
           for k in ("ar", "te_mm_median")}
    return {"pipelines": per, "spearman_rho": rho, "n_pipelines": len(names)}


def analyse(rows: list[dict[str, Any]], real_root: str | Path, n_boot: int) -> dict[str, Any]:
    """summary, paired, controls, ranking and verdict for results.json and the report."""
    keys, instants, cols = pipeline_columns(rows, real_root)
    summary = summarize_pipelines(cols, instants, n_boot)
    paired = paired_all(cols, instants, n_boot)
    rank = ranking(summary, paired)
    return {"summary": summary, "paired": paired, "controls": controls(paired), "ranking": rank,
            "verdict": verdict(summary, paired, rank),
            "statistics": {"n_images": len(keys), "n_capture_instants": S.cluster_index(instants)[1],
                           "n_boot": n_boot, "n_perm": n_boot,
                           "interval": "percentile 95 %, bootstrap over seeds and capture instants",
                           "seed_interval": "Welch t 95 % over the two pipelines' per-seed values (on the same "
                                            "images); a difference is resolved when it and the bootstrap interval "
                                            "both exclude 0",
                           "paired_test": "two-sided paired bootstrap p (the same replicates as the interval); "
                                          "p_perm in results.json: permutation test swapping two pipelines' "
                                          "values of whole instants",
                           "ar": "mean of AR_MSSD and AR_MSPD (BOP 2019); no AR_VSD: the real set has no depth"}}
