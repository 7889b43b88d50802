"""Shared contracts every stage uses: object specs, camera maths, dataset I/O helpers, versioning.

Public surface:
- objects:  ObjectSpec, load_object_spec, BUILTIN_OBJECTS, cube_symmetries
- camera:   scale_K, crop_K, project_points, cube_crop_box, parse_K, read_camera_file (the K-file format)
- bop:      the BOP format (import core.bop): BopImage, BopGt, load_bop_scenes, read_scene_groups,
            write_results_csv, read_results_csv, write_scene, write_models
- real_sets: resolve_real(name_or_path) -> BOP root; cache_dir(); KNOWN_REAL_SETS (import core.real_sets)
- profiles: pick_profile(table, name) — the one profile lookup (quick / default / full), one error type
- io:       atomic_write_bytes/_text/_json/_png, atomic_savefig, atomic_torch_save (temp + rename, normal
            permissions), load_torch_file (weights_only=True), make_temp_dir, UserError, code_version,
            sha256_of_json
- device:   pick_device (import core.device; kept out of this file so torch-free stages stay light)
"""
from core.io import UserError, atomic_write_bytes, atomic_write_json, atomic_write_text, code_version, sha256_of_json
from core.objects import BUILTIN_OBJECTS, ObjectSpec, cube_symmetries, load_object_spec
from core.camera import crop_K, project_points, scale_K

__all__ = [
    "UserError", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "code_version", "sha256_of_json",
    "BUILTIN_OBJECTS", "ObjectSpec", "cube_symmetries", "load_object_spec",
    "crop_K", "project_points", "scale_K",
]
