"""The benchmark report: report.md, a self-contained report.html (images inlined) and results.json.

The report opens with the ranking (by AR) and which of its steps are resolved, then the verdict — sentences
generated from the paired differences (benchmark/analysis.py), never written by hand — then the control
effects, the table over seeds, per-seed rows, who saw what, wall times, data and figures."""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.analysis import (HIGHER_IS_BETTER, METRIC_WORDS, MISSED_MM, PAIRED_METRICS, find_pair, read_per_image,
                                signed)
from core.io import atomic_write_json, atomic_write_text
from pose_model.registry import SIM_PIPELINES

COLUMNS = [  # (metrics key, header, format): the main table (mean over seeds [seed + instant bootstrap 95 %])
    ("ar", "AR", "{:.3f}"),
    ("te_mm_median", "median te (mm)", "{:.1f}"),
    ("re_deg_median", "median re (°)", "{:.1f}"),
    ("ar_mssd", "AR_MSSD", "{:.3f}"),
    ("ar_mspd", "AR_MSPD", "{:.3f}"),
    ("acc_5deg_5mm", "acc 5°/5 mm", "{:.3f}"),
    ("acc_5deg_2cm", "acc 5°/2 cm", "{:.3f}"),
    ("acc_add_01d", "acc ADD(-S)<0.1d", "{:.3f}"),
    ("auc_adds_01d", "AUC ADD-S 0–0.1d", "{:.3f}"),
]


def _num(fmt: str, v: float) -> str:
    return fmt.format(v) if math.isfinite(v) else str(v)


def _cell(st: dict[str, Any], fmt: str) -> str:
    """'mean [lo, hi]' (± sd over seeds when there are several)."""
    s = _num(fmt, st["mean"])
    if st.get("n_seeds", 1) > 1 and math.isfinite(st.get("sd", float("nan"))):
        s += f" ± {_num(fmt, st['sd'])}"
    lo, hi = st["ci95"]
    return s + f" [{_num(fmt, lo)}, {_num(fmt, hi)}]"


def table_rows(summary: dict[str, dict[str, Any]], rows: list[dict[str, Any]],
               order: list[str]) -> list[list[str]]:
    """One line per pipeline (in `order`): every COLUMNS metric as mean ± sd over seeds [95 % interval]."""
    out = []
    for p in order:
        rs = [r for r in rows if r["pipeline"] == p]
        cells = [_cell(summary[p][k], f) for k, _, f in COLUMNS]
        out.append([p, *cells, str(len(rs)), str(summary[p]["n_images"]),
                    f"{np.mean([r.get('train_seconds') or 0 for r in rs]):.0f}"])
    return out


def head_rows(rows: list[dict[str, Any]], order: list[str]) -> list[list[str]]:
    """[headers, one line per pipeline]: the heads its seeds reported, and AR, median te and re of the reported
    head vs the direct head (seed means); [] when no row has a direct-head score."""
    out = [["pipeline", "reported head (seeds)", "AR (reported)", "AR (direct)", "te mm (reported)",
            "te mm (direct)", "re ° (reported)", "re ° (direct)"]]
    for p in order:
        rs = [r for r in rows if r["pipeline"] == p and "direct_head" in r]
        if not rs:
            continue
        heads = [r.get("head", "pnp-rot") for r in sorted(rs, key=lambda r: r["seed"])]
        cells = [", ".join(f"{h} ×{heads.count(h)}" for h in dict.fromkeys(heads))]
        for k, fmt in (("ar", "{:.3f}"), ("te_mm_median", "{:.1f}"), ("re_deg_median", "{:.1f}")):
            cells += [_num(fmt, float(np.mean([r[k] for r in rs]))),
                      _num(fmt, float(np.mean([r["direct_head"][k] for r in rs])))]
        out.append([p, *cells])
    return out if len(out) > 1 else []


def _diff_cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "–"
    word, unit, fmt = METRIC_WORDS[r["metric"]]
    lo, hi = r["ci95"]
    mark = " **resolved**" if r["resolved"] else ""
    p = f", p {r['p']:.3f}" if math.isfinite(r.get("p", float("nan"))) else ""
    seeds = r.get("ci95_seeds")
    over_seeds = f", seeds [{signed(fmt, seeds[0])}, {signed(fmt, seeds[1])}]" if seeds else ""
    return f"{signed(fmt, r['diff'])} [{signed(fmt, lo)}, {signed(fmt, hi)}]{over_seeds}{p}{mark}"


def _img_b64(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)] + ["| " + " | ".join(r) + " |" for r in rows]


def _sections(rows: list[dict[str, Any]], meta: dict[str, Any], an: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]] | None, list[str]]]:
    """The report's text sections as (title, paragraphs before, table or None [first row = headers], after);
    markdown and HTML are both rendered from this one list."""
    summary, paired = an["summary"], an["paired"]
    order = [r["pipeline"] for r in an["ranking"]]
    st = an["statistics"]
    rank_rows = [["rank", "pipeline", "AR [95 %]", "median te (mm)", "median re (°)",
                  "AR − next below (paired)", "te − next below", "re − next below"]]
    for r in an["ranking"]:
        p, sp = r["pipeline"], summary[r["pipeline"]]
        nxt = order[r["rank"]] if r["rank"] < len(order) else None
        rank_rows.append([str(r["rank"]), p, _cell(sp["ar"], "{:.3f}"), _cell(sp["te_mm_median"], "{:.1f}"),
                          _cell(sp["re_deg_median"], "{:.1f}"),
                          *[_diff_cell(find_pair(paired, p, nxt, m)) if nxt else "–" for m in ("ar", "te_mm_median",
                                                                                               "re_deg_median")]])
    secs = [("Ranking", [
        f"Report session `{meta['report_session']}`: {st['n_images']} labelled images from "
        f"{st['n_capture_instants']} capture instants; seeds {meta['seeds']}. Values: mean over seeds ± sd over "
        f"seeds [95 % interval from a bootstrap over seeds and capture instants]. A difference is **resolved** "
        f"when its paired 95 % interval excludes 0 and so does a Welch t interval over the two pipelines' per-seed "
        f"values (at 3 seeds the bootstrap alone is too narrow: README, \"The same settings twice\"; p: "
        f"{st['paired_test']}). AR = {st['ar']}."],
        rank_rows, [])]
    secs.append(("Verdict", [" ".join(an["verdict"])], None, []))
    ctl_rows = [["effect", *[METRIC_WORDS[m][0] + (f" ({METRIC_WORDS[m][1].strip()})" if METRIC_WORDS[m][1] else "")
                             for m in PAIRED_METRICS]]]
    for c in an["controls"]:
        ctl_rows.append([c["effect"], *[_diff_cell(c["metrics"][m]) for m in PAIRED_METRICS]])
    secs.append(("Controls: what each method adds", [
        "Each effect is a difference of two rows on the same images: image-dr = nominal renders + image-level "
        "randomization only (no refiner, no render-time randomization); render-dr = the render-time-DR renders "
        "without image-level randomization; simgan and simgan+dr train on those renders refined. The last two use the "
        "tune session's labels: the fine-tune trains on them, the depth scale fits one number (the model's distances "
        "× the median ratio of labelled to estimated distance) and keeps every weight. Lower te/re and higher AR "
        "are better."],
        ctl_rows if len(ctl_rows) > 1 else None, [] if len(ctl_rows) > 1 else
        ["(a control needs its two pipelines in --pipelines)"]))
    headers = ["pipeline", *[h for _, h, _ in COLUMNS], "seeds", "n images", "train s"]
    secs.append(("Results over seeds", [], [headers] + table_rows(summary, rows, order), [
        "Synthetic validation (held-out renders of each pipeline's own training data, end to end through "
        "the localizer; seed 0): " + "; ".join(
            f"{r['pipeline']} {r['synthetic_val']['val_re_med_deg']:.1f}° / {r['synthetic_val']['val_te_med_mm']:.1f} mm"
            for r in rows if r["seed"] == 0 and r.get("synthetic_val", {}).get("val_re_med_deg") is not None) + "."]))
    rig = an.get("rig")
    if rig:
        fus = meta.get("rig_fusion") or {}
        rig_tab = [["rig row", "AR", "median te (mm)", "median re (°)", "acc ADD(-S)<0.1d",
                    "rig − single view: AR", "te (mm)", "re (°)", "instants fused / outlier views replaced"]]
        effs = {e["rig"]: e["metrics"] for e in rig["effects"]}
        for p, sp in rig["summary"].items():
            e, f = effs.get(p, {}), fus.get("per_row", {}).get(p, {})
            rig_tab.append([p, _cell(sp["ar"], "{:.3f}"), _cell(sp["te_mm_median"], "{:.1f}"),
                            _cell(sp["re_deg_median"], "{:.1f}"), _num("{:.3f}", sp["acc_add_01d"]["mean"]),
                            *[_diff_cell(e.get(m)) for m in ("ar", "te_mm_median", "re_deg_median")],
                            f"{f.get('instants_fused', '?')} of {f.get('instants_multi_view', '?')} / "
                            f"{f.get('outlier_views_replaced', '?')} (seed mean)"])
        secs.append(("Rig rows: the cameras of each instant fused (not ranked with the rows above)", [
            "The same models and predictions, fused over the calibrated rig (eval/fuse.py): the single-view estimates "
            "of one capture instant are moved into the rig's frame, the largest subset that agrees is the consensus, "
            "each view keeps its own sideways position and gains depth from the others, and an outlier view (a "
            "localizer on clutter) gets the consensus pose. Scored per image on the same images; the last three "
            "columns are paired differences against the same pipeline's single-view row. These rows use the rig's "
            "calibration, which a single camera does not have, so they are never ranked with single-view rows. "
            "Noise model and gates (measured on the tune session): "
            + ", ".join(f"{k} {v}" for k, v in fus.get("config", {}).items()) + "."],
            rig_tab, []))
    adr = an.get("adr_ranges")
    if adr:
        tab = [["parameter", "DR", *[f"ADR seed {k}" for k in range(adr["n_seeds"])]]]
        for n, t in adr["fraction_of_widest"].items():
            tab.append([n, f"{t['dr']:.2f}", *[f"{x:.2f}" for x in t["adr_per_seed"]]])
        secs.append(("ADR: the ranges reached", [
            "Each parameter's range at the end of the adr training, as a fraction of its hard limits (choices: "
            "options in use − 1 over all − 1), against plain DR's range, which lies inside the hard limits "
            "(figure `adr_vs_dr.png`).",
            "At DR's width or wider in every seed: " + (", ".join(adr["reached"]) or "none") + ". "
            "Past DR's range on a side (the hard limits lie beyond DR's), in at least one seed: "
            + (", ".join(adr.get("beyond", [])) or "none") + ". "
            "Below a quarter of DR's range in every seed — what the task could not absorb within this run: "
            + (", ".join(adr["not_absorbed"]) or "none") + "."], tab, []))
    tvr = an.get("tune_vs_report")
    if tvr:
        names = [p for p in order if p in tvr["pipelines"]]
        by = tvr["pipelines"]
        tab = [["pipeline", "AR tune", "AR report", "te mm tune", "te mm report", "re ° tune", "re ° report",
                "missed tune", "missed report"]]
        for p in names:
            cells = []
            for k, fmt in (("ar", "{:.3f}"), ("te_mm_median", "{:.1f}"), ("re_deg_median", "{:.1f}"),
                           ("missed_share", "{:.2f}")):
                cells += ["—" if by[p][s][k] is None else _num(fmt, by[p][s][k]) for s in ("tune", "report")]
            tab.append([p, *cells])
        rho = tvr["spearman_rho"]
        secs.append(("Tune session against report session", [
            "Every sim-trained model scored on the tune session's labelled photos too (seed means). Settings are "
            "chosen on the tune session; they carry over only as far as its order of the pipelines agrees with the "
            f"report session's: Spearman's ρ over {tvr['n_pipelines']} pipelines "
            f"{_num('{:+.2f}', rho['ar'])} on AR, {_num('{:+.2f}', rho['te_mm_median'])} on median te. \"missed\": "
            f"the share of photos with te > {MISSED_MM:.0f} mm (the localizer did not find the cube). Nothing in "
            "this run is chosen from these numbers."], tab, []))
    heads = head_rows(rows, order)
    if heads:
        secs.append(("Pose heads on the same images", [
            "Each trained model scored twice on the report session: with its reported head and with the direct "
            "6-D/depth head alone. Heads: pnp-rot (PnP's rotation from the 9 predicted keypoints, the direct "
            "translation), pnp (PnP's pose), direct, pnp-mean (PnP's rotation, the mean of both translations; "
            "`benchmark --head` sets one for every row). "
            "Mean over seeds."], heads, []))
    seed_rows = [["pipeline", "seed", "head", "AR", "median te (mm)", "median re (°)", "acc 5°/2 cm", "train s"]]
    for r in sorted(rows, key=lambda r: (order.index(r["pipeline"]), r["seed"])):
        seed_rows.append([r["pipeline"], str(r["seed"]), r.get("head", "—"), f"{r['ar']:.3f}",
                          _num("{:.1f}", r["te_mm_median"]),
                          _num("{:.1f}", r["re_deg_median"]), f"{r['acc_5deg_2cm']:.3f}",
                          f"{r.get('train_seconds') or 0:.0f}"])
    secs.append(("Per seed", ["Each row: one trained model scored on the report session."], seed_rows, []))
    chk = meta.get("refiner_check")
    if chk:
        secs.append(("SimGAN refiner check (seed 0)", [
            f"`refiner/report.check_refiner` on {chk.get('n_samples', '?')} {chk.get('data_level', 'nominal')} "
            f"renders; realism against "
            f"{chk.get('n_real_images', '?')} photos of session `{chk['session']}` that no refiner read "
            + ("(the tune session's held-back scene" if chk["session"] == meta["tune_session"] else "(the report session")
            + "; the cube-centred windows are centred by the photos' labels; a score, nothing is chosen by it). "
            f"Target (issue 12): "
            f"cube-centred domain-classifier accuracy ≤ 0.75 with median marker-corner shift ≤ 0.3 px."]
            + [f"- {line}" for line in chk["summary"].splitlines()], None, []))
    who = meta.get("who_saw_what", {})
    secs.append(("Who saw what", [f"- **{k}**: {v if isinstance(v, str) else ', '.join(f'{a}: {b}' for a, b in v.items())}"
                                  for k, v in who.items()]
                 + ["- Ambiguous (single-marker) frames are excluded; a missing prediction counts as a failure."],
                 None, []))
    secs.append(("Wall time per stage", [], [["stage", "seconds"]] + [[k, f"{v:.0f}"] for k, v in
                                                                          meta["stage_seconds"].items()]
                 + [["total (stages)", f"{sum(meta['stage_seconds'].values()):.0f}"]],
                 [f"Machine: {meta['machine']}"]))
    secs.append(("Data", [], [["dataset", "samples", "content hash", "path"]] + [
        [name, str(d.get("n", "")), f"`{str(d.get('content_hash', ''))[:16]}`", f"`{d.get('path', '')}`"]
        for name, d in meta["datasets"].items()], []))
    pair_rows = [["a", "b", "metric", "a − b [95 %], p"]] + [
        [r["a"], r["b"], r["metric"], _diff_cell(r)] for r in paired]
    secs.append(("All paired differences", [], pair_rows, []))
    return secs


def portable_path(path: str | None, out: Path) -> str | None:
    """A path as results.json records it: relative to the report's folder when inside it (the folder can move),
    else absolute — never relative to the directory the benchmark happened to run from."""
    if not path:
        return path
    p, o = Path(path).resolve(), Path(out).resolve()
    return str(p.relative_to(o)) if p.is_relative_to(o) else str(p)


def write_report(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any], analysis: dict[str, Any],
                 rig_rows: list[dict[str, Any]] | None = None) -> None:
    """report.md, report.html and results.json from the finished rows, the run's meta and the analysis
    (benchmark.analysis.analyse, with `rig` from rig_analysis); rig_rows: the rig rows, reported apart."""
    from eval.plots import plot_error_cdfs, plot_seed_spread
    out = Path(out)
    rig_rows = rig_rows or []
    if rig_rows:  # what the fusion did, per rig row (mean over seeds), and its settings
        per_row = {}
        for p in dict.fromkeys(r["pipeline"] for r in rig_rows):
            fs = [r["fusion"] for r in rig_rows if r["pipeline"] == p]
            per_row[p] = {k: round(float(np.mean([f[k] for f in fs])), 1)
                          for k in ("instants_multi_view", "instants_fused", "outlier_views_replaced")}
        meta = {**meta, "rig_fusion": {"config": rig_rows[0]["fusion"]["config"], "per_row": per_row}}
    figs: list[tuple[str, Path]] = []
    seed0 = [r for r in rows if r["seed"] == 0]
    cdf = plot_error_cdfs({r["pipeline"]: read_per_image(r["score_dir"]) for r in seed0}, out / "cdf.png",
                          title=f"session {meta['report_session']}: error CDFs (seed 0)")
    figs.append(("Error CDFs per pipeline (seed 0)", cdf))
    order = [x["pipeline"] for x in analysis["ranking"]]
    figs.append(("Each seed's median errors per pipeline (the spread behind the intervals)", plot_seed_spread(
        analysis["summary"], order, out / "seeds.png", title=f"session {meta['report_session']}")))
    rig0 = {r["pipeline"]: r for r in rig_rows if r["seed"] == 0}
    for p in order:   # the best-ranked pipeline that has a rig row
        single = next((r for r in seed0 if r["pipeline"] == p), None)
        rig = next((r for name, r in rig0.items() if name.startswith(p + " ")), None)
        if single and rig:
            figs.append((f"{p} (seed 0): single view vs the rig's cameras fused, error CDFs", plot_error_cdfs(
                {p: read_per_image(single["score_dir"]), rig["pipeline"]: read_per_image(rig["score_dir"])},
                out / "cdf_rig.png", title=f"session {meta['report_session']}: {p}, single view vs rig (seed 0)")))
            break
    for r in seed0:
        ov = Path(r["score_dir"]) / "overlays.png"
        if ov.is_file():
            figs.append((f"{r['pipeline']}: predictions (red) vs marker ground truth (green), best → worst by ADD", ov))
    for name, cap in (("adr.png", "ADR (seed 0): ranges and entropy over training"),
                      ("adr_vs_dr.png", "ADR (seed 0): the ranges reached against plain DR's ranges")):
        if (out / "runs" / "adr_s0" / name).is_file():
            figs.append((cap, out / "runs" / "adr_s0" / name))
    grids = sorted((out / "refiner").glob("grids/*.png"))
    if grids:
        figs.append(("SimGAN (seed 0) in training: synthetic | refined | 4·|difference| | real (last logged step)",
                     grids[-1]))
    chk = meta.get("refiner_check") or {}
    for name, cap in (("samples_frames.png", "SimGAN (seed 0) on frames (the localizer's input)"),
                      ("samples.png", "SimGAN (seed 0) on crops (the regressor's input)")):
        if chk and (Path(chk["dir"]) / name).is_file():
            figs.append((cap + ": synthetic | refined | difference | real", Path(chk["dir"]) / name))

    quick = meta["profile"] == "quick"
    cmd = "sim2real benchmark " + " ".join(
        f"--{k} {','.join(v) if isinstance(v, list) else v}" for k, v in meta["command"].items()
        if v is not None and not (k == "pipelines" and tuple(v) == tuple(SIM_PIPELINES)))
    secs = _sections(rows, meta, analysis)
    md: list[str] = []
    if quick:
        md += ["> **QUICK PROFILE — tiny sizes for a smoke test: these numbers are not meaningful.**", ""]
    md += [f"# sim2real benchmark — {meta['real']}", "", f"Command: `{cmd}`  ",
           f"Code version: `{meta['code_version']}` · device: `{meta['device']}` · seeds: {meta['seeds']}", ""]
    for title, before, table, after in secs:
        md += [f"## {title}", ""] + [x for b in before for x in (b, "")]
        if table:
            md += _md_table(table[0], table[1:]) + [""]
        md += [x for a in after for x in (a, "")]
    md += ["## Figures", ""]
    for cap, p in figs:
        rel = (Path(p).resolve().relative_to(out.resolve()) if Path(p).resolve().is_relative_to(out.resolve())
               else p)
        md += [f"**{cap}**", "", f"![{cap}]({rel})", ""]
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")

    def inline(t: str) -> str:   # the markdown bits used above: **bold** and `code`
        t = html.escape(t)
        parts = t.split("**")
        t = "".join(f"<b>{x}</b>" if i % 2 else x for i, x in enumerate(parts))
        parts = t.split("`")
        return "".join(f"<code>{x}</code>" if i % 2 else x for i, x in enumerate(parts))
    h = ["<!doctype html><html><head><meta charset='utf-8'><title>sim2real benchmark</title><style>",
         "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}",
         "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}",
         "td:first-child,th:first-child{text-align:left}.warn{background:#fee;padding:.5em;border:1px solid #c00}",
         "img{max-width:100%}</style></head><body>"]
    if quick:
        h.append("<p class='warn'><b>QUICK PROFILE — tiny sizes for a smoke test: these numbers are not meaningful."
                 "</b></p>")
    h += [f"<h1>sim2real benchmark — {html.escape(meta['real'])}</h1>",
          f"<p>Command: <code>{html.escape(cmd)}</code><br>Code version: <code>{html.escape(meta['code_version'])}"
          f"</code> · device: {html.escape(meta['device'])} · seeds: {meta['seeds']}</p>"]
    for title, before, table, after in secs:
        h.append(f"<h2>{html.escape(title)}</h2>")
        h += [f"<p>{inline(b)}</p>" for b in before]
        if table:
            h.append("<table><tr>" + "".join(f"<th>{inline(x)}</th>" for x in table[0]) + "</tr>")
            h += ["<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in table[1:]]
            h.append("</table>")
        h += [f"<p>{inline(a)}</p>" for a in after]
    h.append("<h2>Figures</h2>")
    for cap, p in figs:
        h.append(f"<h3>{html.escape(cap)}</h3><img src='{_img_b64(Path(p))}'>")
    h.append("</body></html>")
    atomic_write_text(out / "report.html", "\n".join(h))

    def portable(r: dict[str, Any]) -> dict[str, Any]:  # checkpoints must load for whoever re-scores them
        return {**r, **{k: portable_path(r.get(k), out) for k in ("checkpoint", "score_dir") if k in r}}
    results = {"meta": meta,
               "paths": "checkpoint and score_dir: relative to this file's folder, or absolute",
               "rows": [portable({k: v for k, v in r.items() if k != "synthetic_val"})
                        | {"synthetic_val": r.get("synthetic_val", {})} for r in rows],
               "rig_rows": [portable(r) for r in rig_rows], "rig": analysis.get("rig"),
               "adr_ranges": analysis.get("adr_ranges"), "tune_vs_report": analysis.get("tune_vs_report"),
               "summary": analysis["summary"], "paired": analysis["paired"], "controls": analysis["controls"],
               "ranking": analysis["ranking"], "verdict": analysis["verdict"], "statistics": analysis["statistics"],
               "higher_is_better": sorted(HIGHER_IS_BETTER)}
    atomic_write_json(out / "results.json", results)
