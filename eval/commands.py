"""CLI of eval/: `real import|fetch`, `score`, `baseline mean-pose`."""
from __future__ import annotations

from pathlib import Path

import click

from core.io import UserError

REAL_NAMES = ("aruco-cube", "trifinger")


def _split(values: tuple[str, ...]) -> list[str] | None:
    """--opt a,b --opt c → [a, b, c]; nothing given → None."""
    out = [v.strip() for val in values for v in val.split(",") if v.strip()]
    return out or None


def _err(msg: str) -> None:
    click.echo(msg, err=True)


def _scene_ids_for(real_root: Path, sessions: list[str] | None, scenes: list[str] | None) -> list[int] | None:
    from core.bop import read_scene_groups
    ids: set[int] = set()
    if sessions:
        groups = read_scene_groups(real_root)
        for s in sessions:
            if s not in groups:
                raise UserError(f"--session {s}: unknown session (this set has {', '.join(groups)})")
            ids.update(groups[s])
    if scenes:
        try:
            ids.update(int(s) for s in scenes)
        except ValueError:
            raise UserError(f"--scenes: expected integer scene ids, got {','.join(scenes)}") from None
    return sorted(ids) if ids else None


@click.group("real")
def real_group() -> None:
    """Real image sets: import them into BOP format (with marker-derived ground truth) or fetch them."""


@real_group.command("import")
@click.argument("name", type=click.Choice(REAL_NAMES))
@click.option("--src", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Upstream tree (aruco-cube: the folder holding src2/; trifinger: the trifinger_object_tracking "
                   "tree). Default: ../shared/real/<set> next to the project, when present.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="BOP dataset root to write. Default: the cache, so that --real NAME finds it.")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cache root (default $SIM2REAL_CACHE or ~/.cache/sim2real).")
@click.option("--sessions", multiple=True, help="Sessions to import (aruco-cube: data,test1; trifinger: cube_v2,cube_v1).")
@click.option("--cameras", multiple=True, help="aruco-cube only: cameras to import (cam0,cam1,cam2).")
def real_import(name: str, src: Path | None, out: Path | None, cache: Path | None, sessions, cameras) -> None:
    """Import a real set into BOP format. For aruco-cube the ground truth comes from the ArUco markers
    (multi-marker PnP); single-marker frames are ambiguous and kept unlabelled."""
    from core.real_sets import SHARED_REAL, SHARED_SUBDIR, cached_real_dir
    if src is None:
        src = SHARED_REAL / SHARED_SUBDIR[name]
        if not src.is_dir():
            raise UserError(f"--src: required (no local copy at {src}); for aruco-cube `sim2real real fetch "
                            f"aruco-cube` downloads it")
    out = out if out is not None else cached_real_dir(name, cache)
    if name == "aruco-cube":
        from eval.import_aruco import format_summary, import_aruco_cube
        man = import_aruco_cube(src, out, sessions=_split(sessions), cameras=_split(cameras), log=_err)
        click.echo(format_summary(man["summary"]))
    else:
        if cameras:
            raise UserError("--cameras: only for aruco-cube")
        from eval.import_trifinger import import_trifinger
        man = import_trifinger(src, out, sessions=_split(sessions), log=_err)
        for s, v in man["summary"].items():
            click.echo(f"{s}: {v['images']} images, poses approximate (~1 cm, <0.2 rad)")
    click.echo(f"wrote {out}  (scenes by session: {man['scene_groups']})")


@real_group.command("fetch")
@click.argument("name", type=click.Choice(["aruco-cube"]))
@click.option("--from", "from_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Use a local copy of the upstream tree (the folder holding src2/) instead of downloading.")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cache root (default $SIM2REAL_CACHE or ~/.cache/sim2real).")
def real_fetch(name: str, from_dir: Path | None, cache: Path | None) -> None:
    """Download the real set from its public upstream at the pinned commit (or take --from), check
    sha256 sums, and import it into the cache: afterwards `--real aruco-cube` works."""
    from eval.fetch import fetch_aruco_cube
    from eval.import_aruco import format_summary
    from core.real_sets import cached_real_dir
    man = fetch_aruco_cube(from_dir, cache, log=_err)
    click.echo(format_summary(man["summary"]))
    click.echo(f"wrote {cached_real_dir(name, cache)}")


@click.command("score")
@click.option("--pred", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="BOP results CSV (scene_id,im_id,obj_id,score,R,t,time; t in mm).")
@click.option("--real", "real", required=True, help="Real set name (aruco-cube, trifinger) or BOP dataset root.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--session", "sessions", multiple=True, help="Score only these sessions' scenes (e.g. test1).")
@click.option("--scenes", multiple=True, help="Score only these scene ids (comma-separated or repeated).")
@click.option("--object", "object_name", default=None,
              help="Object spec (built-in name or file); default: the one recorded by the import.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the bootstrap intervals.")
@click.option("--n-boot", type=click.IntRange(min=1), default=1000, show_default=True, help="Bootstrap resamples.")
def score(pred: Path, real: str, out: Path, sessions, scenes, object_name, seed: int, n_boot: int) -> None:
    """Score pose predictions against a real set's ground truth: prints a table and writes metrics.json,
    per_image.csv, cdf.png and overlays.png. A missing prediction counts as a failure."""
    from core.objects import load_object_spec
    from core.bop import read_results_csv
    from core.real_sets import resolve_real
    from eval.score import format_table, score_predictions, spec_for_real, write_score_outputs
    root = resolve_real(real)
    rows = read_results_csv(pred)
    spec = load_object_spec(object_name) if object_name else spec_for_real(root)
    ids = _scene_ids_for(root, _split(sessions), _split(scenes))
    metrics, per_image = score_predictions(rows, root, spec, ids, seed=seed, n_boot=n_boot)
    metrics["pred_csv"] = str(pred)
    paths = write_score_outputs(out, metrics, per_image, root, spec, rows, name=pred.stem)
    click.echo(format_table(metrics))
    click.echo(f"wrote {', '.join(str(p) for p in paths.values())}")


@click.group("baseline")
def baseline_group() -> None:
    """Baselines without learning (the floor every report shows)."""


@baseline_group.command("mean-pose")
@click.option("--data", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Synthetic dataset whose labels give the mean pose.")
@click.option("--real", "real", required=True, help="Real set name or BOP dataset root to predict for.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Results CSV to write.")
@click.option("--session", "sessions", multiple=True, help="Predict only these sessions' scenes.")
def baseline_mean_pose(data: Path, real: str, out: Path, sessions) -> None:
    """Predict the mean training pose (chordal mean rotation, mean translation) for every real image."""
    from render.dataset import SyntheticDataset
    from eval.baseline import mean_pose, mean_pose_predictions
    from core.bop import write_results_csv
    from core.real_sets import resolve_real
    root = resolve_real(real)
    ds = SyntheticDataset(data)
    R, t = mean_pose(ds.labels["R"], ds.labels["t_m"], ds.spec)
    rows = mean_pose_predictions(R, t, root, ds.spec.obj_id, _scene_ids_for(root, _split(sessions), None))
    write_results_csv(out, rows)
    click.echo(f"mean pose over {len(ds)} training samples: t = {(t * 1000).round(1).tolist()} mm; "
               f"wrote {len(rows)} rows to {out}")


COMMANDS = [real_group, score, baseline_group]
