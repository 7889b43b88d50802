"""Shared test fixtures: a throwaway cache folder, and where the real image sets live."""
import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_REAL = Path(os.environ.get("SIM2REAL_SHARED_REAL", REPO.parent / "shared" / "real"))

# meshes, imported real sets, ... go to a per-run folder, never to the user's ~/.cache
os.environ.setdefault("SIM2REAL_CACHE", tempfile.mkdtemp(prefix="sim2real-test-cache-"))


@pytest.fixture(scope="session")
def shared_real() -> Path:
    if not (SHARED_REAL / "aruco_cube" / "src2").is_dir():
        pytest.skip(f"real image sets not found at {SHARED_REAL}")
    return SHARED_REAL
