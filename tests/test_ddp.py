"""DDP training under torchrun (gloo on CPU, 2 processes): the same loss curve as one process with the same
global batch, and both ranks end with the same weights."""
import csv
import json
import subprocess
import sys
from pathlib import Path

from render.generate import GenerateConfig, generate_dataset

REPO = Path(__file__).resolve().parents[1]


def _curve(run: Path) -> list[float]:
    with open(run / "curves.csv") as f:
        return [float(r["train_loss"]) for r in csv.DictReader(f)]


def test_ddp_two_processes_match_one(tmp_path):
    data = generate_dataset(GenerateConfig(n=64, shard_size=32, seed=1), tmp_path / "ds", progress=False)
    args = [str(REPO / "cli.py"), "train", "--data", str(data), "--profile", "quick", "--epochs", "4",
            "--max-samples", "64", "--quiet"]
    from pose_model.config import make_config
    from pose_model.train import train
    train(make_config("quick", data=str(data), out=str(tmp_path / "one"), epochs=4, max_samples=64), progress=False)
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          *args, "--out", str(tmp_path / "two")], cwd=REPO, capture_output=True, text=True)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("wrote ") == 1  # only rank 0 writes
    card = json.loads((tmp_path / "two" / "model_card.json").read_text())
    sums = card["ddp"]["param_checksum_by_rank"]
    assert card["ddp"]["world_size"] == 2 and sums[0] == sums[1]  # gradients were synchronised
    a, b = _curve(tmp_path / "one"), _curve(tmp_path / "two")
    assert len(a) == len(b) == 4 and b[-1] < b[0]
    # same data, batches and crop jitter; only BatchNorm sees 8 instead of 16 samples per forward
    for x, y in zip(a, b):
        assert abs(x - y) <= 0.08 * x, (a, b)
