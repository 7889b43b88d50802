"""Figures of `sim2real score` and the benchmark report: error CDFs, the seeds' spread and wireframe overlays."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from core.io import atomic_savefig, atomic_write_bytes

# (column, axis label, x limit) of the CDF panels
CDF_PANELS = (("re_deg", "rotation error (deg)", 90.0), ("te_mm", "translation error (mm)", 100.0),
              ("add_mm", "ADD (mm)", 100.0))




def _save_fig(fig, out_png: str | Path) -> None:
    atomic_savefig(fig, out_png, dpi=110)


def plot_error_cdfs(curves: dict[str, Sequence[dict[str, Any]]], out_png: str | Path,
                    title: str | None = None) -> Path:
    """One panel per error (rotation, translation, ADD); one CDF per named set of per-image rows.
    A missing prediction (inf) never counts as reached, so a curve may stay below 1."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(CDF_PANELS), figsize=(4.2 * len(CDF_PANELS), 3.4))
    for ax, (col, label, xmax) in zip(axes, CDF_PANELS):
        for name, rows in curves.items():
            e = np.sort(np.array([float(r[col]) for r in rows], dtype=float))
            if e.size == 0:
                continue
            y = np.arange(1, e.size + 1) / e.size
            fin = np.isfinite(e)
            med = np.median(e)
            ax.step(np.concatenate([[0.0], e[fin], [xmax]]),
                    np.concatenate([[0.0], y[fin], [y[fin][-1] if fin.any() else 0.0]]), where="post",
                    label=f"{name} (median {med:.1f})")
        ax.set_xlim(0, xmax)
        ax.set_ylim(0, 1)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of images")
    axes[0].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save_fig(fig, out_png)
    plt.close(fig)
    return Path(out_png)


# (summary metric, axis label) of the seed-spread panels
SEED_PANELS = (("te_mm_median", "median te (mm)"), ("re_deg_median", "median re (deg)"))


def plot_seed_spread(summary: dict[str, dict[str, Any]], order: Sequence[str], out_png: str | Path,
                     max_te_mm: float = 60.0, title: str | None = None) -> Path:
    """One panel per metric: each pipeline's per-seed medians (dots), their mean (bar) and 95 % interval (line),
    pipelines top to bottom in `order`. Rows whose mean te exceeds max_te_mm (no cube found) are left out and named
    in the title, so the scale stays readable. summary: benchmark.analysis.summarise's (per_seed, mean, ci95)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keep = [p for p in order if p in summary and summary[p]["te_mm_median"]["mean"] <= max_te_mm]
    left = [p for p in order if p in summary and p not in keep]
    fig, axes = plt.subplots(1, len(SEED_PANELS), figsize=(5.2 * len(SEED_PANELS), 0.45 * len(keep) + 1.4),
                             sharey=True)
    for ax, (metric, label) in zip(axes, SEED_PANELS):
        for y, p in enumerate(keep):
            st = summary[p][metric]
            seeds = st.get("per_seed") or [st["mean"]]
            ax.scatter(seeds, [y] * len(seeds), s=14, color="tab:blue", alpha=0.7, zorder=3)
            if "ci95" in st:
                ax.plot(st["ci95"], [y, y], color="0.4", lw=1.5, zorder=2)
            ax.plot([st["mean"]] * 2, [y - 0.3, y + 0.3], color="tab:red", lw=2, zorder=4)
        ax.set_xlabel(label)
        ax.set_xlim(left=0)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(keep)), keep, fontsize=8)
    axes[0].invert_yaxis()
    note = f"; left out (mean te > {max_te_mm:g} mm): {', '.join(left)}" if left else ""
    fig.suptitle((title or "seeds") + " — dots: seeds, red: mean, grey: 95 % interval" + note, fontsize=8)
    fig.tight_layout()
    _save_fig(fig, out_png)
    plt.close(fig)
    return Path(out_png)


def cuboid_edges() -> list[tuple[int, int]]:
    """Edges of ObjectSpec.corners_m() (index = 4·[x>0] + 2·[y>0] + [z>0]): corner pairs one bit apart."""
    return [(i, j) for i in range(8) for j in range(i + 1, 8) if bin(i ^ j).count("1") == 1]


def draw_wireframe(img: np.ndarray, corners_m: np.ndarray, R: np.ndarray, t_m: np.ndarray, K: np.ndarray,
                   color_bgr: tuple[int, int, int], thickness: int = 1) -> None:
    cam = corners_m @ np.asarray(R).T + np.asarray(t_m).reshape(1, 3)
    if np.any(cam[:, 2] <= 1e-3):
        return  # behind the camera: nothing sensible to draw
    uv = cam @ np.asarray(K).T
    uv = uv[:, :2] / uv[:, 2:3]
    if not np.all(np.abs(uv) < 1e5):
        return
    pts = np.round(uv * 16).astype(np.int64)  # 4 fractional bits: sub-pixel lines
    for i, j in cuboid_edges():
        cv2.line(img, tuple(map(int, pts[i])), tuple(map(int, pts[j])), color_bgr, thickness, cv2.LINE_AA, shift=4)
    # mark the +Z face's centre so a flipped prediction is visible on a symmetric-looking wireframe
    c = cam[[1, 3, 5, 7]].mean(0) @ np.asarray(K).T
    cv2.circle(img, (int(round(c[0] / c[2] * 16)), int(round(c[1] / c[2] * 16))), 3 * 16, color_bgr, thickness,
               cv2.LINE_AA, shift=4)


def overlay_grid(items: Sequence[dict[str, Any]], corners_m: np.ndarray, out_png: str | Path,
                 tile_px: int = 200, cols: int = 4) -> Path:
    """Grid of crops around the true cube: ground truth green, prediction red, caption in the tile.
    Each item: rgb_path, K, R_gt, t_gt_m, R_pred/t_pred_m (None when missing), caption."""
    tiles = []
    for it in items:
        bgr = cv2.imread(str(it["rgb_path"]), cv2.IMREAD_COLOR)
        if bgr is None:
            continue
        K = np.asarray(it["K"], float)
        # crop: a square around the projected GT cube, 3× its size, upsampled to tile_px
        cam = corners_m @ it["R_gt"].T + it["t_gt_m"]
        uv = (cam @ K.T)[:, :2] / (cam @ K.T)[:, 2:3]
        c = (uv.min(0) + uv.max(0)) / 2
        side = max(3.0 * float((uv.max(0) - uv.min(0)).max()), 64.0)
        s = tile_px / side
        A = np.array([[s, 0, tile_px / 2 - s * c[0]], [0, s, tile_px / 2 - s * c[1]]])
        tile = cv2.warpAffine(bgr, A, (tile_px, tile_px), flags=cv2.INTER_LINEAR, borderValue=(40, 40, 40))
        Kc = np.vstack([A, [0, 0, 1]]) @ K  # the crop's intrinsics
        draw_wireframe(tile, corners_m, it["R_gt"], it["t_gt_m"], Kc, (60, 220, 60))
        if it.get("R_pred") is not None:
            draw_wireframe(tile, corners_m, it["R_pred"], it["t_pred_m"], Kc, (60, 60, 240))
        for k, line in enumerate(str(it.get("caption", "")).split("\n")):
            y = 14 + 14 * k
            cv2.putText(tile, line, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(tile, line, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    if not tiles:
        tiles = [np.full((tile_px, tile_px, 3), 40, np.uint8)]
    while len(tiles) % cols:
        tiles.append(np.full_like(tiles[0], 40))
    grid = np.vstack([np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)])
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", grid)
    if not ok:
        raise OSError(f"could not encode {out_png}")
    atomic_write_bytes(out_png, buf.tobytes())
    return out_png
