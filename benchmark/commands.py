"""`sim2real benchmark`: the main job."""
from __future__ import annotations

import click

from core.profiles import PROFILE_NAMES
from pose_model.registry import HEADS, SIM_PIPELINES


@click.command()
@click.option("--real", default="aruco-cube", show_default=True, help="Real set name (aruco-cube) or a BOP folder (e.g. your own photos imported with `real import`).")
@click.option("--from", "from_dir", type=click.Path(), default=None,
              help="Local copy of the upstream ArUco tree (holding src2/), e.g. ../shared/real/aruco_cube.")
@click.option("--profile", type=click.Choice(PROFILE_NAMES), default="default", show_default=True,
              help="quick: minutes, numbers not meaningful (CI); default: about 54 min on a 2-core CPU, 3 seeds "
                   "(measured, README); full: a GPU.")
@click.option("--seeds", type=click.IntRange(min=1), default=None,
              help="Training seeds per pipeline (and refiner) [default: 3 for default/full, 1 for quick]. More seeds on "
                   "a finished --out add the missing ones (its finished stages are kept).")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Training epochs of every sim pipeline [default: the profile's, 24 for default]. 16 or 8 train "
                   "in 2/3 or 1/3 of the time; on the tune session they localized and oriented the cube worse "
                   "(README).")
@click.option("--renders", type=click.IntRange(min=16), default=None,
              help="Renders per synthetic dataset [default: the profile's, 3,072 for default]. More renders and "
                   "epochs fit better and cost more: --renders 6144 trains each model 2× as long, with --epochs 48 "
                   "4× (far more accurate on the photos: README, \"Training compute\").")
@click.option("--out", type=click.Path(file_okay=False), default="reports/latest", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--pipelines", default=",".join(SIM_PIPELINES), show_default=True,
              help="Comma-separated subset of the pipelines.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: --workers tasks at once on this machine; ray: every shard, refiner, training and "
                   "scoring a Ray task (docs/cluster.md). Same results either way.")
@click.option("--workers", type=int, default=None,
              help="--executor local: tasks at once (render shards, trainings, scorings) [default: the profile's, 2].")
@click.option("--ray-address", default=None,
              help="With --executor ray: auto, HOST:PORT or ray://HOST:PORT (default: start a local Ray).")
@click.option("--tune", default="data", show_default=True,
              help="Session for the refiner (unlabelled), the oracle and any tuning (a session of --real).")
@click.option("--report", default="test1", show_default=True, help="Session every reported number is on.")
@click.option("--head", type=click.Choice(HEADS), default=None,
              help="One pose head for every row [default: each model's own, pnp-rot]. A head chosen per model on the "
                   "tune session did not carry over to the report session (README, \"Depth\").")
def benchmark(real, from_dir, profile, seeds, epochs, renders, out, device, pipelines, executor, workers, ray_address,
              tune, report, head):
    """Train every sim-to-real pipeline (none, image-dr, dr, adr, simgan, simgan+dr) and the baselines (mean-pose, oracle), score
    them on the real photos, and write report.md / report.html / results.json. Resumable: rerun to continue."""
    from benchmark.run import run_benchmark
    run_benchmark(real=real, from_dir=from_dir, profile=profile, seeds=seeds, epochs=epochs, renders=renders, out=out,
                  device=device, pipelines=tuple(p.strip() for p in pipelines.split(",") if p.strip()),
                  executor=executor, workers=workers, ray_address=ray_address, tune=tune, report=report, head=head)


COMMANDS = [benchmark]
