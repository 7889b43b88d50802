"""eval/: real image sets in BOP format, marker-derived ground truth, pose metrics, scoring, baselines.

Public surface (names fixed, see the interfaces brief):
- real_sets: resolve_real(name_or_path) -> BOP root; cache_dir(); KNOWN_REAL_SETS
- bop:       BopImage, BopGt, load_bop_scenes, read_scene_groups, write_results_csv, read_results_csv,
             write_scene, write_models
- metrics:   te_mm, re_deg, add_mm, adds_mm, mssd_mm, mspd_px, cuboid_surface_points_mm, summarize
- aruco_label: ArucoLabeler (marker detection + multi-marker PnP), LabelResult
- import_aruco.import_aruco_cube, import_trifinger.import_trifinger, fetch.fetch_aruco_cube
- score:     score_predictions, write_score_outputs
- plots:     plot_error_cdfs, overlay_grid
- baseline:  mean_pose
CLI (eval/commands.py): `real import|fetch`, `score`, `baseline mean-pose`.
"""
