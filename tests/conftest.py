"""Shared test fixtures: a throwaway cache folder, where the real image sets live, a tiny ADR training."""
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


@pytest.fixture
def train_tiny_adr(monkeypatch):
    """train_tiny_adr(dataset, out, render_backend) → (model card, checkpoint) of a tiny ADR training whose
    render jobs are collected one step after they were submitted (a tiny run has few steps)."""
    import json
    import torch
    from pose_model.config import make_config
    from pose_model.pipelines import ADRPipeline
    from pose_model.train import train
    monkeypatch.setattr(ADRPipeline, "lag_steps", 1)

    def run(dataset: Path, out: Path, render_backend: str):
        cfg = make_config("quick", data=str(dataset), out=str(out), device="cpu", pipeline="adr",
                          render_backend=render_backend, max_samples=32, batch_size=8, epochs=2)
        ck = torch.load(train(cfg, progress=False), weights_only=True)
        return json.loads((out / "model_card.json").read_text()), ck
    return run
