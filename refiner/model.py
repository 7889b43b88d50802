"""SimGAN networks (Shrivastava et al., CVPR 2017): ResNet refiner, local patch discriminator,
history buffer of refined images.

Images are float tensors (B, 3, H, W) in [0, 1], batch first, on any device.
"""
from __future__ import annotations

import torch
from torch import nn

CKPT_FORMAT = "sim2real-refiner/1"


class ResBlock(nn.Module):
    """Two 3×3 convolutions with `ch` maps and an identity shortcut (paper: 64 maps)."""

    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect"), nn.ReLU(inplace=True),
            nn.Conv2d(ch, ch, 3, padding=1, padding_mode="reflect"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class Refiner(nn.Module):
    """Fully convolutional refiner: 3×3 conv (ch maps) → n_blocks ResNet blocks → 1×1 conv to RGB.

    Output = clamp(x + residual, 0, 1). The 1×1 output conv starts at zero, so an untrained refiner is
    exactly the identity (the paper pre-trains R on self-regularization alone to get there); the
    residual form keeps label-carrying structure (edges, markers) by default and the clamp keeps the
    output a valid image. Reflect padding avoids dark borders that the discriminator would pick up.
    Works on any H×W (fully convolutional; receptive field 2·(1 + 2·n_blocks) + 1 px).
    """

    def __init__(self, ch: int = 64, n_blocks: int = 4):
        super().__init__()
        self.ch, self.n_blocks = ch, n_blocks
        self.head = nn.Sequential(nn.Conv2d(3, ch, 3, padding=1, padding_mode="reflect"), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[ResBlock(ch) for _ in range(n_blocks)])
        self.out = nn.Conv2d(ch, 3, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # inputs are centred so the residual net sees zero-mean data
        r = self.out(self.blocks(self.head(x * 2 - 1)))
        return (x + r).clamp(0, 1)


class PatchDiscriminator(nn.Module):
    """Local adversarial network: a small strided CNN whose output is a map of per-patch logits
    (positive = real). Each output cell sees a ~30 px receptive field, so D judges local statistics
    (noise, blur, colour, JPEG), not global layout (paper §2.2). Layout follows the paper's eye-gaze
    D: conv 96 3×3/2, conv 64 3×3/2, max-pool 3×3/1, conv 32 3×3, conv 32 1×1, conv 1×1 → logit.
    """

    def __init__(self, width: int = 1):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, 96 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(96 * w, 64 * w, 3, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.MaxPool2d(3, stride=1, padding=1),
            nn.Conv2d(64 * w, 32 * w, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(32 * w, 32 * w, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(32 * w, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [0,1] → (B,1,H/4,W/4) logits, one per local patch."""
        return self.net(x * 2 - 1)


class HistoryBuffer:
    """Buffer of past refined images (paper §2.3): once full, half of every discriminator batch of
    refined images is drawn from it and the other half is the current refiner's output; after each
    query, `batch/2` random buffer slots are overwritten with current images. Before it is full the
    current images are used as they are and appended. Stored detached, on the device they come from.
    """

    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 1:
            raise ValueError("capacity must be ≥ 1")
        self.capacity = capacity
        self.images: torch.Tensor | None = None  # (n ≤ capacity, 3, H, W)
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return 0 if self.images is None else len(self.images)

    @property
    def full(self) -> bool:
        return len(self) >= self.capacity

    def query(self, refined: torch.Tensor) -> torch.Tensor:
        """Return the batch of refined images to show D (same size as `refined`) and update the buffer."""
        refined = refined.detach()
        b = len(refined)
        if not self.full:
            room = self.capacity - len(self)
            new = refined[:room]
            self.images = new.clone() if self.images is None else torch.cat([self.images, new])
            return refined
        half = b // 2
        idx = torch.randperm(self.capacity, generator=self.gen)[:half].to(self.images.device)
        from_buffer = self.images[idx].to(refined.device)
        # replace the drawn slots with current images (random ones of this batch)
        cur = torch.randperm(b, generator=self.gen)[:half].to(refined.device)
        self.images[idx] = refined[cur].to(self.images.device)
        return torch.cat([refined[: b - half], from_buffer])

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "images": None if self.images is None else self.images.cpu(),
                "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.capacity = state["capacity"]
        self.images = None if state["images"] is None else state["images"].to(device)
        self.gen.set_state(state["gen"])
