"""CLI commands of the render stage: generate, show, export, cube print."""
from __future__ import annotations

import click

from core.io import UserError


@click.command()
@click.option("--object", "object_", default="aruco-cube", show_default=True,
              help="Built-in object (aruco-cube, trifinger-cube, plain-cube) or a spec YAML/JSON file.")
@click.option("--n", type=click.IntRange(min=1), required=True, help="Number of samples.")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Output dataset folder.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Render processes (same bytes for any N).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: --workers processes here; ray: each shard a Ray task (same bytes).")
@click.option("--ray-address", default=None,
              help="With --executor ray: auto, HOST:PORT or ray://HOST:PORT (default: start a local Ray).")
@click.option("--like-real", type=click.Path(), default=None,
              help="Real BOP set (or a name such as aruco-cube) whose cameras (K, size) to imitate.")
@click.option("--camera", "camera_file", type=click.Path(), default=None,
              help='JSON file {"cam_K": [9 numbers], "width": W, "height": H}.')
@click.option("--randomization", type=click.Choice(["nominal", "dr", "widest", "adr-pool"]), default="nominal",
              show_default=True, help="Render-time ranges: nominal (plain renders), dr (plain DR's), widest "
                                      "(the hard limits ADR may reach, beyond DR's), or adr-pool (the hard "
                                      "limits, each parameter mostly nominal: a pool for ADR).")
@click.option("--space", "space_file", type=click.Path(), default=None, help="Randomization parameter space YAML.")
@click.option("--scene", "scene_file", type=click.Path(), default=None, help="Scene spec YAML (camera/cube ranges).")
@click.option("--drop", type=click.Choice(["bottom", "any", "free"]), default=None,
              help="Cube orientation: settled bottom-down (default), settled on any face, or free in the air.")
@click.option("--frame-width", type=int, default=160, show_default=True, help="Working width of the full frame (px).")
@click.option("--crop-px", type=int, default=128, show_default=True, help="Side of the zoomed crop (px).")
@click.option("--crop-scale", type=float, default=2.0, show_default=True, help="Crop side / cube's projected size.")
@click.option("--shard-size", type=click.IntRange(min=1), default=256, show_default=True, help="Samples per shard file.")
@click.option("--views-per-scene", type=click.IntRange(min=1), default=4, show_default=True,
              help="Camera views rendered per built-and-settled scene.")
def generate(object_, n, out, seed, workers, executor, ray_address, like_real, camera_file, randomization, space_file, scene_file, drop,
             frame_width, crop_px, crop_scale, shard_size, views_per_scene):
    """Render a synthetic dataset of the cube with exact pose labels (resumable: rerun to continue)."""
    from render.generate import (GenerateConfig, cameras_from_k_file, cameras_like_real, generate_dataset,
                                 load_scene_file)
    if like_real and camera_file:
        raise UserError("--like-real and --camera are exclusive")
    cfg = GenerateConfig(object=object_, n=n, seed=seed, randomization=randomization, space_file=space_file,
                         frame_width=frame_width, crop_px=crop_px, crop_scale=crop_scale, shard_size=shard_size,
                         views_per_scene=views_per_scene)
    if scene_file:
        cfg.scene = load_scene_file(scene_file)
    if drop:
        cfg.scene["drop_orientation"] = drop
    if like_real:
        from core.real_sets import resolve_real
        cfg.cameras = cameras_like_real(str(resolve_real(like_real)))
    elif camera_file:
        cfg.cameras = cameras_from_k_file(camera_file)
    cfg.validate()  # user mistakes before a cluster is joined
    from core.executor import make_executor
    with make_executor(executor, workers, ray_address) as ex:
        path = generate_dataset(cfg, out, workers=workers, executor=ex)
    click.echo(f"dataset: {path}")


@click.command()
@click.option("--data", type=click.Path(), required=True, help="Dataset folder.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="PNG contact sheet to write.")
@click.option("--n", type=click.IntRange(min=1), default=24, show_default=True)
def show(data, out, n):
    """Contact sheet of frames and crops with the labelled pose drawn (a visual label check)."""
    from render.dataset import SyntheticDataset
    from render.show import contact_sheet
    if n <= 0:
        raise UserError(f"--n: expected a positive number, got {n}")
    contact_sheet(SyntheticDataset(data), out, n=n)
    click.echo(f"contact sheet: {out}")


@click.command()
@click.option("--data", type=click.Path(), required=True, help="Dataset folder.")
@click.option("--format", "fmt", type=click.Choice(["bop"]), default="bop", show_default=True)
@click.option("--images", type=click.Choice(["frames", "crops"]), default="frames", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), required=True)
def export(data, fmt, images, out):
    """Export a synthetic dataset (frames or crops with their K) as a BOP dataset."""
    from render.dataset import SyntheticDataset
    from render.export import export_bop
    click.echo(f"BOP dataset: {export_bop(SyntheticDataset(data), out, images=images)}")


@click.group("cube")
def cube_group() -> None:
    """The physical cube: print a net to cut, fold and glue."""


@cube_group.command("print")
@click.option("--object", "object_", default="aruco-cube", show_default=True,
              help="Built-in object (aruco-cube, trifinger-cube, plain-cube) or a spec YAML/JSON file.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="cube.pdf, cube.svg or cube.png.")
@click.option("--dpi", type=int, default=300, show_default=True, help="Pixels per inch of a PNG.")
def cube_print(object_, out, dpi):
    """A printable net (cross layout, glue tabs) with each face's marker at the spec's dictionary, id, size
    and roll, a scale bar to check the printer's scaling, and the spec printed on it."""
    from core.objects import load_object_spec
    from render.cube_print import print_cube
    spec = load_object_spec(object_)
    layout = print_cube(spec, out, dpi=dpi)
    click.echo(f"wrote {out} ({layout['paper']} page, {len(layout['markers'])} markers); print at 100 % and "
               f"check the scale bar")


COMMANDS = [generate, show, export, cube_group]
