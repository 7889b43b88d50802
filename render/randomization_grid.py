"""CLI: `sim2real randomizer show` — what the randomization looks like at nominal, DR's and the hard limits'
ranges."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from core.io import UserError, atomic_savefig

# (row label, ParamSpace.ranges name): nominal renders, plain DR's ranges, the hard limits ADR may reach beyond DR
LEVELS = (("nominal", "nominal"), ("DR", "dr"), ("hard limits", "widest"))


def _test_card(size: int, rng: np.random.Generator) -> np.ndarray:
    """Stand-in image when the renderer is unavailable: grey ramp, colour patches and a black/white square."""
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = np.linspace(60, 200, size, dtype=np.uint8)[None, :, None]
    q = size // 4
    for i, c in enumerate([(200, 60, 60), (60, 180, 60), (60, 80, 200), (230, 220, 80)]):
        img[q // 2: q // 2 + q, q // 2 + i * q * 3 // 4: q // 2 + i * q * 3 // 4 + q // 2] = c
    img[2 * q: 3 * q + q // 2, q: 3 * q] = 245
    img[2 * q + q // 4: 3 * q + q // 4, q + q // 4: 2 * q] = 15
    return img


def render_grid(space, object_name: str, seed: int, n_cols: int, crop_px: int, use_renderer: bool = True
                ) -> tuple[np.ndarray, str]:
    """(grid uint8 RGB, what was rendered). Rows: LEVELS; columns: samples. Column j uses the same random
    stream in every row, so a column shows one scene getting more randomized."""
    import torch

    from randomizer.image import ImageRandomizer

    renderer, source = None, "image-level only (test card; renderer unavailable)"
    if use_renderer:
        try:
            from core.objects import load_object_spec
            from render.scene import DEFAULT_CAMERA, SceneRenderer, SceneSpec
            spec = load_object_spec(object_name)
            renderer = SceneRenderer(spec, SceneSpec(), DEFAULT_CAMERA, space, (160, 120), crop_px, 2.0)
            source = f"render-time + image-level ({object_name} crops, PyBullet)"
        except ImportError:
            renderer = None
    rows = []
    try:
        for _, level in LEVELS:
            render_ranges = space.ranges(level, "render")
            aug = ImageRandomizer(space, space.ranges(level, "image"))
            cells = []
            for j in range(n_cols):
                if renderer is not None:  # same key in every row: one scene, more and more randomized
                    img = renderer.render_scene((seed, j), 1, render_ranges)[0].crop
                else:
                    img = _test_card(crop_px, np.random.default_rng([seed, j]))
                aug.set_seed(seed * 1000 + j)
                x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255
                y = aug(x)[0].permute(1, 2, 0).clamp(0, 1).numpy()
                cells.append((y * 255 + 0.5).astype(np.uint8))
            rows.append(cells)
    finally:
        if renderer is not None:
            renderer.close()
    pad = 4
    h = w = crop_px
    grid = np.full((len(rows) * (h + pad) + pad, n_cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, cells in enumerate(rows):
        for j, c in enumerate(cells):
            grid[pad + i * (h + pad): pad + i * (h + pad) + h, pad + j * (w + pad): pad + j * (w + pad) + w] = c
    return grid, source


def _save_png(path: Path, grid: np.ndarray, labels: list[str]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_w = max(4.0, grid.shape[1] / 100 + 1.0)
    fig, ax = plt.subplots(figsize=(fig_w, grid.shape[0] / 100 + 0.4))
    ax.imshow(grid, interpolation="nearest")
    n = len(labels)
    ax.set_yticks([(i + 0.5) * grid.shape[0] / n for i in range(n)], labels, fontsize=9)
    ax.set_xticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


@click.group("randomizer")
def randomizer_group() -> None:
    """The randomization parameter space (render-time and image-level) and ADR."""


@randomizer_group.command("show")
@click.option("--config", "config", type=click.Path(), default=None,
              help="Parameter-space YAML (default: the shipped randomizer/default.yaml).")
@click.option("--out", required=True, type=click.Path(), help="Output PNG (rows: nominal, DR, hard limits).")
@click.option("--object", "object_name", default="aruco-cube", show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--n", "n_cols", type=click.IntRange(min=1), default=6, show_default=True, help="Samples per row.")
@click.option("--size", "crop_px", type=click.IntRange(min=1), default=128, show_default=True, help="Cell size in px (the crop).")
@click.option("--image-only", is_flag=True, help="Skip the renderer: image-level randomization on a test card.")
def show_cmd(config, out, object_name, seed, n_cols, crop_px, image_only) -> None:
    """Render samples at the nominal, DR's and the hard limits' ranges of every parameter."""
    from randomizer.space import load_space
    if not 1 <= n_cols <= 32:
        raise UserError(f"--n: expected 1..32 samples per row, got {n_cols}")
    if not 16 <= crop_px <= 512:
        raise UserError(f"--size: expected 16..512 px, got {crop_px}")
    if not str(out).lower().endswith(".png"):
        raise UserError(f"--out {out}: expected a .png path")
    space = load_space(config)
    grid, source = render_grid(space, object_name, seed, n_cols, crop_px, use_renderer=not image_only)
    _save_png(Path(out), grid, [name for name, _ in LEVELS])
    click.echo(f"wrote {out}: rows nominal / DR / hard limits, {n_cols} samples each; {source}")


COMMANDS = [randomizer_group]
