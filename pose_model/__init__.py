"""pose_model/: the two-stage cube pose estimator (localizer on the low-resolution frame + crop regressor
on a full-resolution crop), trained on synthetic data only.

Public surface:
- train:     `train(TrainConfig) -> Path` (run dir with model.pt, model_card.json, curves.csv/png);
             `config.make_config(profile, **overrides)`, `config.TrainConfig`, profiles quick/default/full
- predict:   `PoseEstimator.load(ckpt, device)`, `.predict(image_rgb_uint8 (H,W,3), K (3,3)) -> (R, t_m, score)`,
             `predict_bop(ckpt, real_root, out_csv, scene_ids=None, device)`, `predict_images(...)`
- geometry:  6D rotations, allocentric↔egocentric, scale-invariant depth, crop K, symmetric rotation error
- pipelines: how none / dr / adr / simgan / simgan+dr plug into training
CLI (pose_model/commands.py): `sim2real train`, `sim2real predict`.
"""
