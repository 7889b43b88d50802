"""Where real image sets live and how a name or a path becomes a BOP dataset root.

Imported sets are cached under `$SIM2REAL_CACHE/real/<name>` (default `~/.cache/sim2real`), so that
`--real aruco-cube` works after `sim2real real fetch aruco-cube` or `sim2real real import aruco-cube`.
A completed import holds `sim2real_real.json` (written last); a folder without it is not a finished import.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from core.io import UserError, make_temp_dir

KNOWN_REAL_SETS = ("aruco-cube", "trifinger")
MANIFEST = "sim2real_real.json"
# the read-only copy next to the project (tests, CI and benchmarks run offline from it)
SHARED_REAL = Path(__file__).resolve().parents[2] / "shared" / "real"
SHARED_SUBDIR = {"aruco-cube": "aruco_cube", "trifinger": "trifinger_cube"}


def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """The sim2real cache root: `cache` if given, else $SIM2REAL_CACHE, else ~/.cache/sim2real."""
    if cache is not None:
        return Path(cache).expanduser()
    env = os.environ.get("SIM2REAL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sim2real"


def cached_real_dir(name: str, cache: str | os.PathLike | None = None) -> Path:
    return cache_dir(cache) / "real" / name


def is_bop_root(p: Path) -> bool:
    return (p / "test").is_dir() and (p / "models").is_dir()


def resolve_real(name_or_path: str | os.PathLike) -> Path:
    """A BOP dataset root from a known set name (looked up in the cache) or a path to a BOP root."""
    s = str(name_or_path)
    if s in KNOWN_REAL_SETS:
        p = cached_real_dir(s)
        if is_bop_root(p) and (p / MANIFEST).is_file():
            return p
        shared = SHARED_REAL / SHARED_SUBDIR[s]
        hint = ((f"`sim2real real fetch {s}` (download) or " if s == "aruco-cube" else "")
                + f"`sim2real real import {s} --src DIR`"
                + (f" (a local copy is at {shared})" if shared.is_dir() else ""))
        raise UserError(f"real set {s!r} is not in the cache ({p}): run {hint}")
    p = Path(name_or_path).expanduser()
    if p.is_dir():
        if is_bop_root(p):
            return p.resolve()
        raise UserError(f"{p}: not a BOP dataset root (expected test/ and models/ inside)")
    raise UserError(f"--real {s}: expected a known real set ({', '.join(KNOWN_REAL_SETS)}) or the path of a "
                    f"BOP dataset root; import one with `sim2real real fetch aruco-cube` or `sim2real real import ...`")


def staging_dir(out: Path) -> Path:
    """A fresh temp folder beside `out` (same file system, so the final rename is atomic)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return make_temp_dir(out.parent, f".{out.name}.tmp-")


@contextlib.contextmanager
def staged_import(out: Path):
    """A staging folder beside `out` for one import; whatever was not published is removed on the way out."""
    import shutil
    staged = staging_dir(out)
    try:
        yield staged
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)


def publish_import(staged: Path, out: Path, manifest: dict) -> Path:
    """Write the import manifest LAST (its presence marks a complete import), then move the staged set to `out`."""
    from core.io import atomic_write_json
    atomic_write_json(staged / MANIFEST, manifest)
    return publish(staged, out)


def check_out_dir(out: Path) -> None:
    """Refuse to overwrite a non-empty folder that is not an earlier sim2real import."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file())):
        raise UserError(f"{out}: exists and is not a sim2real real-set import; choose another --out or remove it")


def publish(staged: Path, out: Path) -> Path:
    """Move a complete staged import to `out`, replacing an earlier import there (never a half-written one)."""
    import shutil
    check_out_dir(out)
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    try:
        os.replace(staged, out)
    except OSError:
        if old is not None and not out.exists():
            os.replace(old, out)
            old = None
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out
