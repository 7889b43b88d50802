"""eval/: real image sets (importers, marker-derived ground truth), pose metrics, scoring, baselines.

The BOP format itself and real-set resolution live in core/ (core.bop, core.real_sets), so lower stages
can read and write BOP sets without importing eval/. The benchmark orchestrator lives in benchmark/.

Public surface:
- metrics:   te_mm, re_deg, add_mm, adds_mm (GT → prediction, bop `adi`), mssd_mm, mspd_px, ar_mssd, ar_mspd,
             recall_curve, cuboid_surface_points_mm, per_image_columns, METRICS, summarize (cluster bootstrap)
- stats:     cluster_weights, weighted_reduce, bootstrap_statistic (seeds × capture instants),
             paired_comparison (diff, ci95, resolved, p) — pure numpy
- aruco_label: ArucoLabeler (marker detection + multi-marker PnP), LabelResult
- import_aruco.import_aruco_cube, import_trifinger.import_trifinger, fetch.fetch_aruco_cube
- score:     score_predictions, write_score_outputs
- plots:     plot_error_cdfs, overlay_grid
- baseline:  mean_pose
CLI (eval/commands.py): `real import|fetch`, `score`, `baseline mean-pose`.
"""
