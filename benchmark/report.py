"""The benchmark report: report.md, a self-contained report.html (images inlined) and results.json."""
from __future__ import annotations

import base64
import csv
import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from core.io import atomic_write_json, atomic_write_text

COLUMNS = [  # (metrics key, header, format)
    ("te_mm_median", "median te (mm)", "{:.1f}"),
    ("re_deg_median", "median re (°)", "{:.1f}"),
    ("acc_5deg_5cm", "acc 5°/5 cm", "{:.3f}"),
    ("acc_add_01d", "acc ADD<0.1d", "{:.3f}"),
    ("auc_adds_10cm", "AUC ADD-S", "{:.3f}"),
]


def _fmt_ci(m: dict[str, Any], key: str, fmt: str) -> str:
    v = m.get(key)
    if v is None:
        return "–"
    s = fmt.format(v) if math.isfinite(v) else str(v)
    ci = m.get(f"{key}_ci95")
    if ci and all(isinstance(c, (int, float)) and math.isfinite(c) for c in ci):
        s += f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"
    return s


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    """One line per pipeline: the value with its bootstrap 95 % interval (one seed), or mean ± sd over seeds."""
    by_p: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_p.setdefault(r["pipeline"], []).append(r)
    out = []
    for p, rs in by_p.items():
        if len(rs) == 1:
            cells = [_fmt_ci(rs[0], k, f) for k, _, f in COLUMNS]
        else:
            cells = []
            for k, _, f in COLUMNS:
                vals = np.array([r[k] for r in rs], float)
                cells.append(f"{f.format(vals.mean())} ± {f.format(vals.std(ddof=1))}")
        n = rs[0].get("n_images", "?")
        out.append([p, *cells, str(n), f"{np.mean([r.get('train_seconds') or 0 for r in rs]):.0f}"])
    return out


def _read_per_image(score_dir: str) -> list[dict[str, Any]]:
    p = Path(score_dir) / "per_image.csv"
    if not p.is_file():
        return []
    def num(v: str) -> Any:
        try:
            return int(v)
        except ValueError:
            try:
                return float(v)  # 'inf' (missing prediction) included
            except ValueError:
                return v
    with open(p) as f:
        return [{k: num(v) for k, v in r.items() if v not in ("", None)} for r in csv.DictReader(f)]


def _img_b64(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def write_report(out: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    from eval.plots import plot_error_cdfs
    out = Path(out)
    figs: list[tuple[str, Path]] = []
    seed0 = [r for r in rows if r["seed"] == 0]
    cdf = plot_error_cdfs({r["pipeline"]: _read_per_image(r["score_dir"]) for r in seed0}, out / "cdf.png",
                          title=f"session {meta['report_session']}: error CDFs (seed 0)")
    figs.append(("Error CDFs per pipeline (seed 0)", cdf))
    for r in seed0:
        ov = Path(r["score_dir"]) / "overlays.png"
        if ov.is_file():
            figs.append((f"{r['pipeline']}: predictions (red) vs marker ground truth (green), best → worst by ADD", ov))
    adr = sorted((out / "runs").glob("adr_s0/**/adr*.png"))
    if adr:
        figs.append(("ADR: ranges and entropy over training", adr[0]))
    grids = sorted((out / "refiner").glob("grids/*.png"))
    if grids:
        figs.append(("SimGAN: synthetic | refined | 4·|difference| | real (last logged step)", grids[-1]))

    headers = ["pipeline", *[h for _, h, _ in COLUMNS], "n images", "train s"]
    trows = table_rows(rows)
    quick = meta["profile"] == "quick"
    cmd = "sim2real benchmark " + " ".join(
        f"--{k} {v}" for k, v in meta["command"].items() if v is not None and k != "pipelines")
    md: list[str] = []
    if quick:
        md.append("> **QUICK PROFILE — tiny sizes for a smoke test: these numbers are not meaningful.**")
        md.append("")
    md += [f"# sim2real benchmark — {meta['real']}", "",
           f"Command: `{cmd}`  ",
           f"Code version: `{meta['code_version']}` · device: `{meta['device']}` · seeds: {meta['seeds']}", "",
           "## Who saw what",
           f"- **Tune session `{meta['tune_session']}`** (scenes {meta['tune_scenes']}): the SimGAN refiner sees its "
           f"images without labels; the oracle baseline trains on its labelled images.",
           f"- **Report session `{meta['report_session']}`** (scenes {meta['report_scenes']}): every number below. "
           f"No model or setting was fitted on it.",
           "- Sim-only pipelines train on synthetic images only. Ambiguous (single-marker) frames are excluded; "
           "a missing prediction counts as a failure.", "",
           "## Results (report session; brackets: bootstrap 95 % intervals)", "",
           "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    md += ["| " + " | ".join(r) + " |" for r in trows]
    md += ["", "Synthetic validation (held-out renders of each pipeline's own training data, end to end through "
           "the localizer; seed 0): " + "; ".join(
               f"{r['pipeline']} {r['synthetic_val']['val_re_med_deg']:.1f}° / {r['synthetic_val']['val_te_med_mm']:.1f} mm"
               for r in seed0 if r.get("synthetic_val", {}).get("val_re_med_deg") is not None) + "."]
    md += ["", "## Wall time per stage", "", "| stage | seconds |", "|---|---|"]
    md += [f"| {k} | {v:.0f} |" for k, v in meta["stage_seconds"].items()]
    md += ["", f"Machine: {meta['machine']}", "", "## Data", "", "| dataset | samples | content hash | path |",
           "|---|---|---|---|"]
    for name, d in meta["datasets"].items():
        md.append(f"| {name} | {d.get('n', '')} | `{str(d.get('content_hash', ''))[:16]}` | `{d.get('path', '')}` |")
    md += ["", "## Figures", ""]
    for cap, p in figs:
        md += [f"**{cap}**", "", f"![{cap}]({Path(p).resolve().relative_to(out.resolve()) if Path(p).resolve().is_relative_to(out.resolve()) else p})", ""]
    atomic_write_text(out / "report.md", "\n".join(md) + "\n")

    h = ["<!doctype html><html><head><meta charset='utf-8'><title>sim2real benchmark</title><style>",
         "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}",
         "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}",
         "td:first-child,th:first-child{text-align:left}.warn{background:#fee;padding:.5em;border:1px solid #c00}",
         "img{max-width:100%}</style></head><body>"]
    if quick:
        h.append("<p class='warn'><b>QUICK PROFILE — tiny sizes for a smoke test: these numbers are not meaningful."
                 "</b></p>")
    h += [f"<h1>sim2real benchmark — {html.escape(meta['real'])}</h1>",
          f"<p>Command: <code>{html.escape(cmd)}</code><br>Code version: <code>{html.escape(meta['code_version'])}"
          f"</code> · device: {html.escape(meta['device'])} · seeds: {meta['seeds']}</p>",
          f"<p><b>Tune session</b> <code>{meta['tune_session']}</code> (refiner: unlabelled images; oracle: labelled). "
          f"<b>Report session</b> <code>{meta['report_session']}</code>: every number below.</p>",
          "<table><tr>" + "".join(f"<th>{html.escape(x)}</th>" for x in headers) + "</tr>"]
    h += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in trows]
    h.append("</table><h2>Wall time per stage</h2><table><tr><th>stage</th><th>seconds</th></tr>")
    h += [f"<tr><td>{html.escape(k)}</td><td>{v:.0f}</td></tr>" for k, v in meta["stage_seconds"].items()]
    h.append(f"</table><p>Machine: {html.escape(str(meta['machine']))}</p><h2>Figures</h2>")
    for cap, p in figs:
        h.append(f"<h3>{html.escape(cap)}</h3><img src='{_img_b64(Path(p))}'>")
    h.append("</body></html>")
    atomic_write_text(out / "report.html", "\n".join(h))

    results = {"meta": meta, "rows": [{k: v for k, v in r.items() if k != "synthetic_val"} | {
        "synthetic_val": r.get("synthetic_val", {})} for r in rows]}
    atomic_write_json(out / "results.json", results)
