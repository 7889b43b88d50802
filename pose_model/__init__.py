"""pose_model/: the two-stage cube pose estimator, trained on synthetic data only.

1. Localizer (nets.Localizer): the full frame resized to the dataset's working resolution (160×120) →
   CenterNet-style: a softmax over stride-8 cells (one cube per image) + sub-cell offset + log size
   (the side of the renderer's crop, 2 × the projected cube size, relative to the image width). Outputs are
   in normalised image coordinates, so a photo of any size works (resized with an area filter).
2. Crop regressor (nets.CropRegressor): a square crop of the FULL-resolution image (side = crop_factor ×
   the localizer's size, default 0.75 → 1.5 × the cube) resampled to 64² with an exact K
   (geometry.crop_K) → 6D rotation (Zhou et al. 2019), ALLOCENTRIC (relative to the viewing ray through
   the cube centre; R_ego = R_ray · R_allo), the centre's offset from the crop centre (crop units) and a
   scale-invariant depth code log(z · n / (f_crop · S)), turned into t with the crop's K. At test time it
   runs twice (`refine_iters`): the second crop is centred on the first pass's projected centre.
Training crops are sub-crops of the rendered (2 × cube) crop, jittered ±15 % in side and ±8 % in position
the way the localizer errs. Rotation loss: min over the object's symmetries of ‖R_pred − R_gt·g‖_F.

Public surface:
- train:     `train(TrainConfig) -> Path` (run dir: model.pt, model_card.json, curves.csv/png);
             `config.make_config(profile, **overrides)`, `config.TrainConfig`, profiles quick/default/full
- predict:   `PoseEstimator.load(ckpt, device)`, `.predict(image_rgb_uint8 (H,W,3), K (3,3)) -> (R, t_m, score)`,
             `predict_bop(ckpt, real_root, out_csv, scene_ids=None, device)`, `predict_images(...)`
- model:     `PoseModel`, `ModelMeta`, `load_checkpoint(path)` (weights_only=True; imports no training code)
- geometry:  6D rotations, allocentric↔egocentric, depth code, batched crop K / crops, symmetric errors
- pipelines: how none / dr / adr / simgan / simgan+dr plug into training (randomizer/ and refiner/ APIs)
CLI (pose_model/commands.py): `sim2real train`, `sim2real predict`. Benchmark: perf/train_throughput.py.
"""
