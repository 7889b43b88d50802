"""CLI of eval/: `real import|fetch|check-size`, `camera board|calibrate`, `score`, `fuse`, `finetune`,
`baseline mean-pose`."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

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
                   "tree), or for aruco-cube a plain folder of your photos (jpg/png; subfolders = sessions). "
                   "Default: ../shared/real/<set> next to the project, when present.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="BOP dataset root to write. Default: the cache, so that --real NAME finds it (your own photos: "
                   "<cache>/real/own-<folder name>).")
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cache root (default $SIM2REAL_CACHE or ~/.cache/sim2real).")
@click.option("--sessions", "--session", "sessions", multiple=True,
              help="Sessions to import (aruco-cube: data,test1; trifinger: cube_v2,cube_v1; a plain folder: its "
                   "subfolders, or the name given to a folder of loose photos).")
@click.option("--cameras", multiple=True, help="aruco-cube only: cameras to import (cam0,cam1,cam2).")
@click.option("--camera", "camera_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help='Plain folder: K.json of the photos ({"cam_K", "width", "height", optional "dist"}); default: '
                   "a K.json in each session folder or in --src.")
@click.option("--object", "object_name", default=None,
              help="Plain folder: the marker cube's spec (built-in name or YAML); default: the set's name.")
def real_import(name: str, src: Path | None, out: Path | None, cache: Path | None, sessions, cameras,
                camera_file: Path | None, object_name: str | None) -> None:
    """Import a real set into BOP format. For aruco-cube the ground truth comes from the ArUco markers
    (multi-marker PnP); single-marker frames are ambiguous and kept unlabelled. `--src` may also be a
    plain folder of your own photos of a printed cube (`sim2real cube print`), with `--camera K.json`."""
    from core.real_sets import SHARED_REAL, SHARED_SUBDIR, cached_real_dir
    if src is None:
        src = SHARED_REAL / SHARED_SUBDIR[name]
        if not src.is_dir():
            raise UserError(f"--src: required (no local copy at {src}); for aruco-cube `sim2real real fetch "
                            f"aruco-cube` downloads it")
    # a folder without src2/ is a plain folder of photos (a missing folder gets the upstream importer's message)
    plain = name == "aruco-cube" and src.is_dir() and (camera_file is not None or object_name is not None
                                                       or not (src / "src2").is_dir())
    if plain:
        from core.objects import load_object_spec
        from eval.import_aruco import format_summary
        from eval.import_folder import format_problems, import_photo_folder
        if cameras:
            raise UserError("--cameras: only for the upstream aruco-cube tree (a plain folder has one camera "
                            "per session: --camera or K.json)")
        out = out if out is not None else cached_real_dir(f"own-{src.resolve().name}", cache)
        man = import_photo_folder(src, out, load_object_spec(object_name or name), camera_file,
                                  sessions=_split(sessions), log=_err)
        click.echo(format_summary(man["summary"]))
        if man["problem_frames"]:
            click.echo(format_problems(man))
        click.echo(f"wrote {out}  (scenes by session: {man['scene_groups']}); use it as --real {out}")
        return
    if object_name is not None:
        raise UserError("--object: only for a plain folder of photos")
    out = out if out is not None else cached_real_dir(name, cache)
    if name == "aruco-cube":
        from eval.import_aruco import format_summary, import_aruco_cube
        man = import_aruco_cube(src, out, sessions=_split(sessions), cameras=_split(cameras), log=_err)
        click.echo(format_summary(man["summary"]))
    else:
        if cameras or camera_file:
            raise UserError("--cameras/--camera: only for aruco-cube")
        from eval.import_trifinger import import_trifinger
        man = import_trifinger(src, out, sessions=_split(sessions), log=_err)
        for s, v in man["summary"].items():
            click.echo(f"{s}: {v['images']} images, poses approximate (~1 cm, <0.2 rad)")
    click.echo(f"wrote {out}  (scenes by session: {man['scene_groups']})")


@real_group.command("check-size")
@click.option("--real", "real", required=True, help="Real set name (aruco-cube, trifinger) or BOP dataset root.")
@click.option("--session", "sessions", multiple=True,
              help="Measure on these sessions' photos only (e.g. your tune session). Default: every labelled photo.")
@click.option("--object", "object_name", default=None,
              help="Object spec (built-in name or file) to check; default: the one recorded by the import.")
def real_check_size(real: str, sessions, object_name: str | None) -> None:
    """Is the object in the photos the size its spec says? From the labelled photos' marker-derived poses: the
    size factor whose outline lies on the photos' edges (median over photos), and the markers' own factor as
    the method's check. A cube folded from card is often 1-3 % larger than printed; renders of the wrong size
    bias a sim-trained model's depth by as much (set size_m in the spec to what this prints)."""
    from core.bop import load_bop_scenes, read_scene_groups
    from core.objects import load_object_spec
    from core.real_sets import resolve_real
    from eval.object_size import check_object_size, format_size_check
    from eval.score import spec_for_real
    root = resolve_real(real)
    spec = load_object_spec(object_name) if object_name else spec_for_real(root)
    ids = _scene_ids_for(root, _split(sessions), None) or sorted(i for v in read_scene_groups(root).values() for i in v)
    images = [im for im in load_bop_scenes(root, ids) if im.labelled]
    if not images:
        raise UserError(f"{root}: no labelled photos in scenes {ids} to measure the object on")
    click.echo(format_size_check(check_object_size(images, spec).summary(), spec.name))


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


@click.command("fuse")
@click.option("--pred", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="BOP results CSV of single-view predictions (every camera of the rig).")
@click.option("--real", "real", required=True,
              help="Real set name or BOP root with rig extrinsics (cam_R_w2c/cam_t_w2c) and capture instants.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Fused BOP results CSV to write (one pose per image, in that image's camera).")
@click.option("--session", "sessions", multiple=True, help="Fuse only these sessions' scenes.")
@click.option("--object", "object_name", default=None,
              help="Object spec (built-in name or file); default: the one recorded by the import.")
def fuse(pred: Path, real: str, out: Path, sessions, object_name) -> None:
    """Fuse the cameras of a calibrated rig: the single-view estimates of one capture instant → one pose per
    image (outlier views get the consensus pose). Score the output with `sim2real score` like any prediction."""
    from core.bop import read_results_csv, write_results_csv
    from core.objects import load_object_spec
    from core.real_sets import resolve_real
    from eval.fuse import fuse_predictions
    from eval.score import spec_for_real
    root = resolve_real(real)
    rows = read_results_csv(pred)
    spec = load_object_spec(object_name) if object_name else spec_for_real(root)
    fused, counts = fuse_predictions(rows, root, spec.symmetries, spec.obj_id, _scene_ids_for(root, _split(sessions), None))
    write_results_csv(out, fused)
    click.echo(f"{counts['images']} images, {counts['instants_multi_view']} multi-view instants: "
               f"{counts['instants_fused']} fused ({counts['views_in_consensus']} views in consensus, "
               f"{counts['outlier_views_replaced']} outlier views given the consensus pose)")
    click.echo(f"wrote {out}")


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


def _board_options(f):
    for opt in reversed([
        click.option("--squares", default="5x7", show_default=True, help="Chessboard squares, columns x rows."),
        click.option("--square-mm", type=float, default=30.0, show_default=True,
                     help="Side of a square (measure the print: it wins over the nominal size)."),
        click.option("--marker-mm", type=float, default=22.0, show_default=True, help="Side of a marker."),
        click.option("--dictionary", default="DICT_5X5_100", show_default=True, help="OpenCV ArUco dictionary."),
    ]):
        f = opt(f)
    return f


def _board_spec(squares: str, square_mm: float, marker_mm: float, dictionary: str):
    from eval.calibrate import BoardSpec
    try:
        sx, sy = (int(v) for v in squares.lower().split("x"))
    except ValueError:
        raise UserError(f"--squares {squares}: expected COLUMNSxROWS, e.g. 5x7") from None
    return BoardSpec(sx, sy, square_mm, marker_mm, dictionary).validate()


@click.group("camera")
def camera_group() -> None:
    """Your camera's intrinsics: print a ChArUco board, photograph it, calibrate → K.json."""


@camera_group.command("board")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="board.pdf, board.svg or board.png.")
@click.option("--dpi", type=int, default=300, show_default=True, help="Pixels per inch of a PNG.")
@_board_options
def camera_board(out, dpi, squares, square_mm, marker_mm, dictionary) -> None:
    """A printable ChArUco calibration board (vector), with a scale bar and its parameters printed on it."""
    from eval.calibrate import write_board
    layout = write_board(_board_spec(squares, square_mm, marker_mm, dictionary), out, dpi)
    click.echo(f"wrote {out} ({layout['paper']} page); print at 100 %, tape it flat, take 10–20 photos from "
               f"different angles, then `sim2real camera calibrate --images DIR --out K.json`")


@camera_group.command("calibrate")
@click.option("--images", type=click.Path(path_type=Path), required=True,
              help="Folder of photos of the printed board (one camera, one resolution).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="K.json to write.")
@click.option("--free-k3/--fix-k3", default=False, show_default=True,
              help="Estimate the 3rd radial coefficient too (wide-angle lenses, many views).")
@_board_options
def camera_calibrate(images, out, free_k3, squares, square_mm, marker_mm, dictionary) -> None:
    """OpenCV ChArUco calibration → K.json (cam_K, width, height, dist) with the reprojection RMS."""
    from eval.calibrate import write_calibration
    res = write_calibration(images, out, _board_spec(squares, square_mm, marker_mm, dictionary),
                            fix_k3=not free_k3, log=_err)
    K = np.asarray(res["cam_K"]).reshape(3, 3)
    click.echo(f"{res['n_views']} views ({len(res['rejected'])} rejected), {res['width']}x{res['height']}: "
               f"fx {K[0, 0]:.2f} fy {K[1, 1]:.2f} cx {K[0, 2]:.2f} cy {K[1, 2]:.2f}, "
               f"dist {np.round(res['dist'], 4).tolist()}, reprojection RMS {res['reproj_rms_px']:.3f} px")
    click.echo(f"wrote {out}")


@click.command("finetune")
@click.option("--model", "ckpt", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A sim-trained checkpoint (runs/NAME/model.pt).")
@click.option("--real", "real", required=True,
              help="Real set name (aruco-cube) or a BOP root with labelled photos (e.g. yours, `real import`).")
@click.option("--session", default="data", show_default=True,
              help="The session whose labelled photos it trains on: your tune session, never the one you report on.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory: model.pt, model_card.json, curves; the photos as a dataset in OUT/photos_SESSION.")
@click.option("--epochs", type=click.IntRange(min=1), default=15, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-4, show_default=True,
              help="Peak learning rate (the sim training's is 1e-3).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:N]")
@click.option("--depth-only", is_flag=True,
              help="Fit the centre and the depth only (rotation, keypoint, classifier and localizer losses off: the "
                   "earlier default, whose rotation drifted). Default: every loss of the sim training.")
@click.option("--photos-only", is_flag=True,
              help="Train on the photos alone (default: every epoch adds as many of the sim model's own renders, "
                   "its config.data, which must still be there).")
def finetune_cmd(ckpt: Path, real: str, session: str, out: Path, epochs: int, lr: float, seed: int, device: str,
                 depth_only: bool, photos_only: bool) -> None:
    """Fine-tune a sim-trained model on the labelled photos of one session (the benchmark's "sim→real fine-tune"
    row): every loss of the sim training, a lower learning rate, co-trained with the model's own renders. Only
    that session's scenes are read; rerun with the same --out to resume. Score it on another session."""
    import sys
    from core.io import read_json
    from core.real_sets import resolve_real
    from eval.real_dataset import finetune_on_session
    flags = {"train_rotation": False, "train_classifier": False, "train_localizer": False} if depth_only else {}
    path = finetune_on_session(ckpt, resolve_real(real), out, session, epochs=epochs, lr=lr, seed=seed,
                               device=device, progress=sys.stderr.isatty(), co_train=not photos_only, **flags)
    card = read_json(out / "model_card.json", "model card")
    n = (card.get("dataset") or {}).get("n")
    click.echo(f"fine-tuned on {n} labelled photos of session {session!r} for {card.get('epochs_done')} epochs; "
               f"wrote {path}")


COMMANDS = [real_group, camera_group, score, fuse, finetune_cmd, baseline_group]
