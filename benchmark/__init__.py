"""benchmark/: the main job — every pipeline trained, scored on the report session, and compared.

Public surface:
- run:      run_benchmark(real, from_dir, profile, seeds, out, device, pipelines, ..., tune, report) -> report folder;
            PROFILES (BenchProfile per size), StageLog (the resumable record of finished stages),
            plan_jobs (the (pipeline, seed) jobs) → job_tasks (executor tasks) → job_row / rig_row → finish (rows → report)
- analysis: analyse(rows, real_root, n_boot) -> summary over seeds, paired differences, controls, ranking, verdict;
            rig_analysis(rows, rig_rows, ...) -> the rig rows' summary and rig − single view per pipeline
- report:   write_report(out, rows, meta, analysis, rig_rows) -> report.md, report.html, results.json (checkpoint
            paths relative to the report or absolute: portable_path)
- commands: COMMANDS = [benchmark] (`sim2real benchmark`)
It sits on top of every stage (render, refiner, pose_model, eval); nothing below imports it.
"""
