"""pose_model/: the two-stage cube pose estimator, trained on synthetic data only.

1. Localizer (nets.Localizer): the full frame resized to the dataset's working resolution (160×120) →
   CenterNet-style: a softmax over stride-8 cells (one cube per image) + sub-cell offset + log size
   (the side of the renderer's crop, 2 × the projected cube size, relative to the image width). Outputs are
   in normalised image coordinates, so a photo of any size works (resized with an area filter).
2. Crop regressor (nets.CropRegressor): a square crop of the FULL-resolution image (side = crop_factor ×
   the localizer's size, default 0.75 → 1.5 × the cube) resampled to crop_px² with an exact K
   (geometry.crop_K) → 6D rotation (Zhou et al. 2019), ALLOCENTRIC (relative to the viewing ray through
   the cube centre; R_ego = R_ray · R_allo), the centre's offset from the crop centre (crop units), a
   scale-invariant depth code log(z · n / (f_crop · S)) and 9 keypoints (centre + 8 corners, crop units;
   `kp_head="dense"` instead has the cells of the stride-8 map vote for them, nets.dense_keypoints).
   Rotation and keypoints are regressed modulo the OBJECT's symmetries (none for the marker cube: the texture
   tells the faces apart). `sym_split=True` instead learns geometry modulo the cube's 24 SHAPE symmetries and
   classifies which one applies (a soft class of the truth); measured worse at the CPU budget (the classifier
   stays near chance for 10 epochs under image randomization), kept as an option.
   Four heads: "direct" (6D + depth code), "pnp" (cv2.solvePnPRansac + solvePnPRefineLM on the keypoints in
   the crop's K, started from the direct pose, which is also the fallback: model.solve_pnp), "pnp-rot"
   (PnP's rotation with the direct translation, the default: PnP's depth from 9 regressed keypoints was
   1.5–2× worse than the depth code's on synthetic val and the tune session, its rotation better) and
   "pnp-mean" (PnP's rotation, the mean of both translations).
   At test time it runs 1 + `refine_iters` (default 2) times; each refinement re-centres AND re-sizes the crop from the
   current estimate (`resize_crop`: the renderer's framing of the projected cube).
Training crops are sub-crops of the rendered (2 × cube) crop, jittered ±15 % in side and ±8 % in position
the way the localizer errs. Rotation loss: min over the symmetries of ‖R_pred − R_gt·g‖_F; keypoint loss: L1 to
the keypoints of R_gt·g for the same g. The regressor's learning rate (1e-3) is below the localizer's (3e-3):
at 3e-3 it sat on the "average of the 24 symmetric answers" plateau for 10+ epochs under render-time DR.

Public surface:
- train:     `train(TrainConfig) -> Path` (run dir: model.pt, model_card.json, curves.csv/png);
             `config.make_config(profile, **overrides)`, `config.TrainConfig`, profiles quick/default/full
- predict:   `PoseEstimator.load(ckpt, device)`, `.predict(image_rgb_uint8 (H,W,3), K (3,3)) -> (R, t_m, score)`,
             `predict_bop(ckpt, real_root, out_csv, scene_ids=None, device)`, `predict_images(...)`
- model:     `PoseModel`, `ModelMeta`, `load_checkpoint(path)` (weights_only=True; imports no training code)
- geometry:  6D rotations, allocentric↔egocentric, depth code, batched crop K / crops, symmetric errors
- pipelines: how none / dr / adr / simgan / simgan+dr plug into training (randomizer/ and refiner/ APIs)
- finetune:  `finetune(ckpt, real_root, scene_ids, out, ...) -> Path`: a sim-trained model fine-tuned on the
             TUNE session's labelled photos (any other scene id is refused); `calibrate_depth(ckpt, real_root,
             out) -> Path`: the same model with one number fitted on those photos, the scale of its distances
CLI (pose_model/commands.py): `sim2real train`, `sim2real predict`, `sim2real calibrate-depth`.
Perf: perf/train_throughput.py, perf/pose_accuracy.py (each inference variant of one checkpoint on synthetic val
and real sessions).
"""
