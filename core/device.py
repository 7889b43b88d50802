"""Device selection shared by every training command (`--device auto|cpu|cuda`)."""
from __future__ import annotations

import torch

from core.io import UserError


def pick_device(name: str = "auto") -> torch.device:
    """'auto' → CUDA when present, else CPU. Asking for CUDA without one is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device is available (use --device cpu or auto)")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise UserError(f"--device {name}: expected auto, cpu or cuda[:N]")
    return torch.device(name)


def cuda_device_count() -> int:
    """CUDA devices this process can see (0 without CUDA)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0
