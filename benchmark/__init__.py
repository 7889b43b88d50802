"""benchmark/: the main job — every pipeline trained, scored on the report session, and compared.

Public surface:
- run:      run_benchmark(real, from_dir, profile, seeds, out, device, pipelines, tune, report) -> report folder;
            PROFILES (BenchProfile per size), StageLog (the resumable record of finished stages)
- report:   write_report(out, rows, meta) -> report.md, report.html, results.json
- commands: COMMANDS = [benchmark] (`sim2real benchmark`)
It sits on top of every stage (render, refiner, pose_model, eval); nothing below imports it.
"""
