"""Small I/O helpers: user-facing errors, atomic writes (bytes, text, JSON, PNG, figures, torch checkpoints),
safe checkpoint loading, code version, content hashes.

Every writer goes to a temp file in the target folder and renames it into place, so readers never see half a
file; the result gets the permissions a plain `open()` would give (0666 & ~umask), not mkstemp's 0600."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

PACKAGE_VERSION = "0.1.0"


class UserError(Exception):
    """A mistake in the user's input. The CLI prints the message (one line) and exits with 2."""


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


UMASK = _umask()
FILE_MODE = 0o666 & ~UMASK   # what open() gives a new file; mkstemp would leave 0600
DIR_MODE = 0o777 & ~UMASK    # what mkdir() gives a new folder; mkdtemp would leave 0700


def make_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A fresh staging folder inside parent (same file system, so it can be renamed into place) with normal
    permissions."""
    d = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    os.chmod(d, DIR_MODE)
    return d


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_png(path: str | os.PathLike, rgb: Any) -> None:
    """An RGB (or grey) uint8 image as a PNG, atomically."""
    import cv2
    import numpy as np
    a = np.ascontiguousarray(rgb)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(a, cv2.COLOR_RGB2BGR) if a.ndim == 3 else a)
    if not ok:
        raise ValueError(f"{path}: image of shape {a.shape} could not be encoded as PNG")
    atomic_write_bytes(path, buf.tobytes())


def read_rgb(path: str | os.PathLike) -> Any:
    """An image file as an (H, W, 3) uint8 RGB array; UserError naming the file when it cannot be read."""
    import cv2
    im = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if im is None:
        raise UserError(f"{path}: unreadable image")
    return cv2.cvtColor(im, cv2.COLOR_BGR2RGB)


def atomic_savefig(fig: Any, path: str | os.PathLike, **kwargs: Any) -> None:
    """A matplotlib figure as a PNG, atomically (rendered to memory first)."""
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **kwargs)
    atomic_write_bytes(path, buf.getvalue())


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """torch.save, atomically. Keep obj to tensors and plain types (dict/list/str/number/None) so that
    `load_torch_file` can read it back with weights_only=True."""
    import io
    import torch
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_torch_file(path: str | os.PathLike, what: str, fmt: str | None = None, map_location: Any = "cpu") -> dict:
    """torch.load with weights_only=True (a crafted pickle cannot run code: only tensors and plain types
    are rebuilt), as a dict whose "format" is fmt when given; every problem is a UserError naming the file."""
    import pickle
    import torch
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} not found")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):  # a pickle naming arbitrary callables: could run code, refused
            raise UserError(f"{path}: not a sim2real {what} (it holds objects other than tensors and plain "
                            f"types; refusing to unpickle them)") from None
        raise UserError(f"{path}: not a readable {what} (UnpicklingError)") from None
    except Exception as e:  # truncated file, not a torch file, …
        raise UserError(f"{path}: not a readable {what} ({type(e).__name__})") from None
    if not isinstance(obj, dict) or (fmt is not None and obj.get("format") != fmt):
        raise UserError(f"{path}: format: not a sim2real {what} (expected format {fmt})")
    return obj


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _json_default(o: Any) -> Any:
    import numpy as np
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def to_json(obj: Any, indent: int | None = 1) -> str:
    return json.dumps(obj, indent=indent, sort_keys=True, default=_json_default)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, to_json(obj) + "\n")


def sha256_of_json(obj: Any) -> str:
    """Hash of a JSON-able object in canonical form (sorted keys, no whitespace)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":"),
                                     default=_json_default).encode()).hexdigest()


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Read JSON, turning a missing/corrupt file into a UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None


_CODE_VERSION: str | None = None


def code_version() -> str:
    """Package version plus the git commit of the source tree (with -dirty if modified)."""
    global _CODE_VERSION
    if _CODE_VERSION is None:
        root = Path(__file__).resolve().parent.parent
        try:
            sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                                 text=True, timeout=5).stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            _CODE_VERSION = f"{PACKAGE_VERSION}+g{sha}{'-dirty' if dirty else ''}" if sha else PACKAGE_VERSION
        except (OSError, subprocess.SubprocessError):
            _CODE_VERSION = PACKAGE_VERSION
    return _CODE_VERSION
