"""eval/: real image sets (importers, marker-derived ground truth), pose metrics, scoring, baselines.

The BOP format itself and real-set resolution live in core/ (core.bop, core.real_sets), so lower stages
can read and write BOP sets without importing eval/. The benchmark orchestrator lives in benchmark/.

Public surface:
- metrics:   te_mm, re_deg, add_mm, adds_mm (GT → prediction, bop `adi`), mssd_mm, mspd_px, ar_mssd, ar_mspd,
             recall_curve, cuboid_surface_points_mm, per_image_columns, METRICS, summarize (cluster bootstrap)
- stats:     cluster_weights, weighted_reduce, bootstrap_statistic (seeds × capture instants),
             paired_comparison (diff, ci95, ci95_seeds, resolved = both exclude 0, p), seed_interval (Welch t over
             per-seed values), t975 — pure numpy
- aruco_label: ArucoLabeler (marker detection + multi-marker PnP), LabelResult
- import_aruco.import_aruco_cube, import_trifinger.import_trifinger, fetch.fetch_aruco_cube
- import_folder.import_photo_folder (your own photos of a printed marker cube: sessions, K.json, undistortion)
- calibrate: BoardSpec, write_board, calibrate_camera, write_calibration (ChArUco → K.json)
- score:     score_predictions, write_score_outputs
- fuse:      fuse_predictions, fuse_instant, FuseConfig (a calibrated rig: the views of one capture instant → one pose)
- plots:     plot_error_cdfs, overlay_grid
- baseline:  mean_pose
- real_dataset: real_to_dataset (labelled photos → the synthetic-dataset format), finetune_on_session (a sim model
             fine-tuned on one session's labelled photos: the benchmark's fine-tune row)
- object_size: check_object_size (the object's size from labelled photos: its outline against its markers),
             silhouette_scale, marker_border_scale, edge_support, format_size_check
CLI (eval/commands.py): `real import|fetch|check-size`, `camera board|calibrate`, `score`, `fuse`, `finetune`,
`baseline mean-pose`.
"""
