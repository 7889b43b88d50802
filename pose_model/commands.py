"""CLI: `sim2real train`, `sim2real predict` and `sim2real calibrate-depth`."""
from __future__ import annotations

import os
import sys

import click

from core.io import UserError
from core.profiles import PROFILE_NAMES
from pose_model.registry import HEADS, PIPELINES


@click.command("train")
@click.option("--data", required=True, help="Synthetic dataset directory (sim2real generate / refine apply).")
@click.option("--pipeline", type=click.Choice(tuple(PIPELINES)), default="none", show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Run directory: model.pt, model_card.json, curves.csv/png.")
@click.option("--profile", type=click.Choice(PROFILE_NAMES), default="default", show_default=True,
              help="quick: CI smoke (< 1 min); default: 2-core CPU (≤ 15 min); full: GPU sizes.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the profile's number of epochs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Override the profile's batch size.")
@click.option("--max-samples", type=click.IntRange(min=1), default=None, help="Use only the first N samples.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto | cpu | cuda[:N]")
@click.option("--threads", "num_threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (default: 1 for quick/default, torch's choice for full).")
@click.option("--resume", is_flag=True, help="Continue OUT/model.pt from its last finished epoch.")
@click.option("--space", type=click.Path(), default=None,
              help="Parameter space YAML for dr/adr (default: the space recorded in the dataset's manifest).")
@click.option("--loc-data", type=click.Path(), default=None,
              help="Train the localizer on this dataset's frames (same object and camera; e.g. a dr set for "
                   "--pipeline hybrid-dr) while the regressor trains on --data's crops.")
@click.option("--regressor-from", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Take the crop regressor of this model.pt, frozen, and train the localizer only. It must be the "
                   "regressor this run would train (same --data, seed and settings: e.g. image-dr's for hybrid-dr), "
                   "so the result equals a full run in less time.")
@click.option("--kp-head", type=click.Choice(("fc", "dense")), default=None,
              help="The keypoints PnP reads: fc (regressed with the pose) or dense (each cell of a stride-8 map "
                   "votes with a weight and an offset) [default: the profile's, fc].")
@click.option("--precision", type=click.Choice(("fp32", "bf16")), default=None,
              help="The training forward's precision: bf16 autocasts the networks' bodies where the device has "
                   "native bf16 (output layers stay fp32; elsewhere it trains in fp32) [default: bf16].")
@click.option("--val-every", type=click.IntRange(min=1), default=None,
              help="Validate on the held-out renders every N epochs and at the last; the weights do not depend on "
                   "it [default: 4].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_cmd(data, pipeline, out, profile, epochs, batch_size, max_samples, seed, device, num_threads, resume,
              space, loc_data, regressor_from, kp_head, precision, val_every, quiet):
    """Train the two-stage cube pose model (localizer + crop regressor) on synthetic data.

    Several GPUs (or CPU processes): `torchrun --nproc_per_node N cli.py train ...` trains one model with
    DDP; --batch-size stays the global batch."""
    from pose_model.config import make_config
    from pose_model.train import train
    cfg = make_config(profile, data=data, out=out, pipeline=pipeline, epochs=epochs, batch_size=batch_size,
                      max_samples=max_samples, seed=seed, device=device, resume=resume, space=space,
                      num_threads=num_threads, loc_data=loc_data, regressor_from=regressor_from, kp_head=kp_head,
                      precision=precision, val_every=val_every)
    path = train(cfg, progress=not quiet and sys.stderr.isatty())
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 writes
        click.echo(f"wrote {path} (+ model_card.json, curves.csv, curves.png in {path.parent})")


@click.command("predict")
@click.option("--model", "ckpt", required=True, help="Checkpoint (runs/NAME/model.pt).")
@click.option("--real", default=None, help="Real set name (aruco-cube, trifinger) or a BOP dataset root.")
@click.option("--images", default=None, help="A plain folder of images (with --camera).")
@click.option("--camera", default=None, help='K.json for --images: {"cam_K": 9 numbers or 3×3}.')
@click.option("--object", "object_name", default=None, help="With --images: refuse unless the model is for this object.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="BOP results CSV to write.")
@click.option("--scenes", default=None, help="Comma-separated BOP scene ids (default: all).")
@click.option("--overlays", default=None, help="Folder for images with the predicted cube drawn on them.")
@click.option("--device", default="auto", show_default=True)
@click.option("--diagnostic-gt-crop", is_flag=True,
              help="DIAGNOSTIC: crop around the labelled pose instead of the localizer's estimate (--real only).")
@click.option("--head", type=click.Choice(HEADS), default=None,
              help="Pose head: PnP's rotation with the direct translation, keypoints + PnP, the direct 6-D/depth "
                   "regression, or PnP's rotation with the mean of both translations (default: the one the model "
                   "was trained to report).")
@click.option("--hypotheses", type=click.IntRange(min=1), default=None,
              help="Look at this many peaks of the localizer's map and refine the one whose keypoints agree best "
                   "(helps on cluttered desks; default: the model's setting — 3 for models trained with the default "
                   "profile, 1 for quick ones and older checkpoints).")
def predict_cmd(ckpt, real, images, camera, object_name, out, scenes, overlays, device, diagnostic_gt_crop, head,
                hypotheses):
    """Predict cube poses on real images → BOP results CSV (scene_id,im_id,obj_id,score,R,t,time)."""
    from pose_model.predict import predict_bop, predict_images
    if (real is None) == (images is None):
        raise UserError("predict: give exactly one of --real NAME|BOPDIR or --images DIR (with --camera K.json)")
    if images is not None:
        if camera is None:
            raise UserError("--images needs --camera K.json (the intrinsics of the images)")
        path = predict_images(ckpt, images, camera, out, device, overlays, object_name, head=head,
                              hypotheses=hypotheses)
    else:
        from core.real_sets import resolve_real
        try:
            scene_ids = [int(s) for s in scenes.split(",") if s.strip()] if scenes else None
        except ValueError:
            raise UserError(f"--scenes {scenes}: expected comma-separated integers") from None
        path = predict_bop(ckpt, resolve_real(real), out, scene_ids, device, overlays, progress=sys.stderr.isatty(),
                           diagnostic_gt_crop=diagnostic_gt_crop, head=head, hypotheses=hypotheses)
    click.echo(f"wrote {path}")


@click.command("calibrate-depth")
@click.option("--model", "ckpt", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A sim-trained checkpoint (runs/NAME/model.pt).")
@click.option("--real", required=True, help="Real set name (aruco-cube) or a BOP dataset root with labelled photos.")
@click.option("--session", default="data", show_default=True,
              help="The session whose labelled photos fit the scale: your tune session, never the one you report on.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Run directory: model.pt, model_card.json.")
@click.option("--device", default="auto", show_default=True)
@click.option("--head", type=click.Choice(HEADS), default=None,
              help="The pose head the scale is fitted through; the new checkpoint reports it (default: the model's).")
def calibrate_depth_cmd(ckpt, real, session, out, device, head):
    """The smallest sim→real fine-tune: one number. Predicts the session's labelled photos, then scales every
    distance the model reports by the median ratio of labelled to estimated distance (photos where it found the
    cube). The weights, and so the rotations, are the sim model's."""
    from core.real_sets import resolve_real
    from core.io import read_json
    from pose_model.finetune import calibrate_depth
    path = calibrate_depth(ckpt, resolve_real(real), out, session, device, progress=sys.stderr.isatty(), head=head)
    c = read_json(os.path.join(out, "model_card.json"), "model card")["depth_calibration"]
    click.echo(f"depth scale {c['fitted_factor']:.4f} from {c['n_used']} of {c['n_labelled']} labelled photos of "
               f"session {session!r} (their ratios' IQR {c['ratio_iqr'][0]:.3f}–{c['ratio_iqr'][1]:.3f}); wrote {path}")


COMMANDS = [train_cmd, predict_cmd, calibrate_depth_cmd]
