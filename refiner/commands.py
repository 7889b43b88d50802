"""`sim2real refine train|apply|check`."""
from __future__ import annotations

import click

from core.io import UserError
from core.profiles import PROFILE_NAMES


@click.group("refine")
def refine_group() -> None:
    """SimGAN: refine synthetic images to look like your (unlabelled) real photos, keeping labels."""


@refine_group.command("train")
@click.option("--synthetic", required=True, type=click.Path(file_okay=False), help="Synthetic dataset dir.")
@click.option("--real", required=True, help="Real images: a folder (searched recursively for jpg/png), "
              "a BOP root, or a real-set name (e.g. aruco-cube). Labels are never read.")
@click.option("--out", default="runs/refiner", show_default=True, type=click.Path(file_okay=False))
@click.option("--profile", type=click.Choice(PROFILE_NAMES), default="default", show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto|cpu|cuda[:N]")
@click.option("--resume", is_flag=True, help="Continue the run in --out.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="CPU threads for torch (default: torch's choice).")
@click.option("--sessions", default="", help="Comma-separated real sessions the refiner may see (e.g. data); "
              "keep the sessions you report scores on out of it.")
@click.option("--include", multiple=True, help="Only real files matching this glob (relative path); repeatable.")
@click.option("--exclude", multiple=True, help="Skip real files matching this glob (relative path); repeatable.")
@click.option("--lam", type=click.FloatRange(min=0), default=None, help="Self-regularization weight λ (default: the profile's).")
@click.option("--lam-cube", type=click.FloatRange(min=0), default=None,
              help="Extra self-regularization on the cube's pixels (default: the profile's).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Adversarial iterations (default: the profile's).")
def train_cmd(synthetic, real, out, profile, seed, device, resume, threads, sessions, include, exclude, lam, lam_cube, steps) -> None:
    """Train a refiner (R) and patch discriminator on synthetic crops vs real photos."""
    from refiner.train import make_config, train_refiner
    cfg = make_config(profile, synthetic=synthetic, real=real, out=out, seed=seed, device=device, resume=resume,
                      sessions=tuple(s for s in sessions.split(",") if s), include=tuple(include),
                      exclude=tuple(exclude), lam=lam, lam_cube=lam_cube, steps=steps,
                      num_threads=threads)
    path = train_refiner(cfg)
    click.echo(f"refiner: {path}  (grids and log.csv in {path.parent})")


@refine_group.command("apply")
@click.option("--refiner", "ckpt", required=True, type=click.Path(), help="refiner.pt (or its run folder).")
@click.option("--data", required=True, type=click.Path(file_okay=False), help="Synthetic dataset to refine.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="New dataset dir.")
@click.option("--device", default="auto", show_default=True)
@click.option("--frames", type=click.Choice(["copy", "refine"]), default="copy", show_default=True,
              help="Low-res full frames: copy unchanged (default; the refiner learned crop-scale statistics) "
                   "or refine them too.")
def apply_cmd(ckpt, data, out, device, frames) -> None:
    """Write a refined copy of a dataset: same labels, refined crops; manifest records the refiner."""
    from refiner.apply import refine_dataset
    path = refine_dataset(ckpt, data, out, device=device, frames=frames)
    click.echo(f"refined dataset: {path}")


@refine_group.command("check")
@click.option("--refiner", "ckpt", required=True, type=click.Path())
@click.option("--data", required=True, type=click.Path(file_okay=False),
              help="Synthetic dataset (preferably not the refiner's training set).")
@click.option("--real", required=True, help="Held-out real images (folder, BOP root or name).")
@click.option("--sessions", default="", help="Comma-separated real sessions for the realism test "
              "(use ones the refiner did not see).")
@click.option("--include", multiple=True)
@click.option("--exclude", multiple=True)
@click.option("--n", "n_samples", type=click.IntRange(min=1), default=300, show_default=True, help="Synthetic samples used.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Report folder.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--device", default="auto", show_default=True)
def check_cmd(ckpt, data, real, sessions, include, exclude, n_samples, out, seed, device) -> None:
    """Label preservation (edges, silhouette, ArUco corners) and realism (domain classifier, KID)."""
    from refiner.report import check_refiner
    rep = check_refiner(ckpt, data, real, out, sessions=tuple(s for s in sessions.split(",") if s),
                        include=tuple(include), exclude=tuple(exclude), n=n_samples, seed=seed, device=device)
    click.echo(rep["summary"])


COMMANDS = [refine_group]

__all__ = ["COMMANDS", "refine_group", "UserError"]
