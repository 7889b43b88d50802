"""`sim2real real fetch aruco-cube`: get the upstream ArUco-cube files (download from GitHub at the pinned
commit, or a local copy with --from), check every file's sha256 against the shipped list, then import
into the cache so that `--real aruco-cube` works. Downloads go to `<cache>/downloads/aruco-cube/`."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from core.io import UserError
from eval.import_aruco import import_aruco_cube
from core.real_sets import cache_dir, cached_real_dir

SHA_LIST = Path(__file__).with_name("aruco_cube_sha256.json")
RAW_URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
# tests and mirrors can point the download elsewhere: a URL template with {repo}, {commit}, {path}
URL_ENV = "SIM2REAL_FETCH_URL"


def pinned_files() -> dict[str, Any]:
    return json.loads(SHA_LIST.read_text())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_tree(root: Path, files: dict[str, str]) -> list[str]:
    """Problems ('missing PATH' / 'sha256 mismatch PATH') of the pinned files under root."""
    bad = []
    for rel, sha in files.items():
        p = root / rel
        if not p.is_file():
            bad.append(f"missing {rel}")
        elif _sha256(p) != sha:
            bad.append(f"sha256 mismatch {rel}")
    return bad


def _download(url: str, dest: Path, sha: str) -> None:
    if dest.is_file() and _sha256(dest) == sha:
        return  # resumed fetch: already here and intact
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url, timeout=30) as r, open(tmp, "wb") as f:
        shutil.copyfileobj(r, f)
    if _sha256(tmp) != sha:
        tmp.unlink()
        raise UserError(f"{url}: sha256 mismatch (the upstream file changed?)")
    os.replace(tmp, dest)


def download_aruco_cube(dest: Path, workers: int = 8) -> Path:
    pin = pinned_files()
    template = os.environ.get(URL_ENV, RAW_URL)
    jobs = [(template.format(repo=pin["repo"], commit=pin["commit"], path=rel), dest / rel, sha)
            for rel, sha in pin["files"].items()]
    try:
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(lambda j: _download(*j), jobs))
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        url = getattr(e, "url", None) or getattr(e, "filename", None) or template.split("{")[0]
        raise UserError(f"download from {url} failed ({reason}); if there is no network, use "
                        f"`sim2real real fetch aruco-cube --from DIR` with a local copy of the upstream tree "
                        f"(the folder holding src2/)") from None
    return dest


def fetch_aruco_cube(from_dir: str | Path | None = None, cache: str | Path | None = None,
                     log=print) -> dict[str, Any]:
    """Download (or take `from_dir`), verify sha256 sums, import into `<cache>/real/aruco-cube`."""
    pin = pinned_files()
    if from_dir is None:
        src = download_aruco_cube(cache_dir(cache) / "downloads" / "aruco-cube")
    else:
        src = Path(from_dir).expanduser()
        if not (src / "src2").is_dir():
            raise UserError(f"{src}: src2/ not found (expected the upstream tree of {pin['repo']})")
    bad = verify_tree(src, pin["files"])
    if bad:
        raise UserError(f"{src}: {len(bad)} of {len(pin['files'])} files differ from the pinned upstream commit "
                        f"(first: {bad[0]}); use `sim2real real import aruco-cube --src DIR` to import them anyway")
    log(f"verified {len(pin['files'])} files (sha256) in {src}")
    return import_aruco_cube(src, cached_real_dir("aruco-cube", cache), log=log, only=set(pin["files"]))
