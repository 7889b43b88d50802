"""`sim2real benchmark`: the main job."""
from __future__ import annotations

import click

from core.profiles import PROFILE_NAMES
from pose_model.registry import SIM_PIPELINES


@click.command()
@click.option("--real", default="aruco-cube", show_default=True, help="Real set name (aruco-cube) or a BOP folder.")
@click.option("--from", "from_dir", type=click.Path(), default=None,
              help="Local copy of the upstream ArUco tree (holding src2/), e.g. ../shared/real/aruco_cube.")
@click.option("--profile", type=click.Choice(PROFILE_NAMES), default="default", show_default=True,
              help="quick: minutes, numbers not meaningful (CI); default: < 1 h on a 2-core CPU; full: a GPU.")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True, help="Training seeds per pipeline.")
@click.option("--out", type=click.Path(file_okay=False), default="reports/latest", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--pipelines", default=",".join(SIM_PIPELINES), show_default=True,
              help="Comma-separated subset of the pipelines.")
def benchmark(real, from_dir, profile, seeds, out, device, pipelines):
    """Train every sim-to-real pipeline (none, image-dr, dr, adr, simgan, simgan+dr) and the baselines (mean-pose, oracle), score
    them on the real photos, and write report.md / report.html / results.json. Resumable: rerun to continue."""
    from benchmark.run import run_benchmark
    run_benchmark(real=real, from_dir=from_dir, profile=profile, seeds=seeds, out=out, device=device,
                  pipelines=tuple(p.strip() for p in pipelines.split(",") if p.strip()))


COMMANDS = [benchmark]
