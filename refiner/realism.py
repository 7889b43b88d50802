"""Realism, measured: how easily can real and (synthetic | refined) patches be told apart?

- domain_classifier_accuracy: a small CNN trained from scratch to separate real from other patches,
  tested on held-out patches (other real images, other synthetic samples). 50 % = indistinguishable;
  compare the value for synthetic vs for refined patches (same seed, same steps, same real patches).
- kid: Kernel Inception Distance (Bińkowski et al. 2018: unbiased MMD² with the cubic polynomial
  kernel, averaged over subsets) on features of a FIXED random-init ResNet-18 (no downloaded weights;
  random conv features still respond to colour, contrast, noise and blur statistics). Lower = closer.
Inputs are uint8 (n,P,P,3) patches.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from refiner.data import to_tensor


class DomainClassifier(nn.Module):
    """Small strided CNN → one logit (real = positive)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1).squeeze(1)


def domain_classifier_accuracy(real_train: np.ndarray, other_train: np.ndarray, real_test: np.ndarray,
                               other_test: np.ndarray, steps: int = 300, batch: int = 32, seed: int = 0,
                               device: str | torch.device = "cpu") -> float:
    """Balanced held-out accuracy (0..1) of a classifier trained on real vs other patches."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DomainClassifier().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    half = batch // 2
    for _ in range(steps):
        ir = torch.randint(len(real_train), (half,), generator=g).numpy()
        io = torch.randint(len(other_train), (half,), generator=g).numpy()
        x = torch.cat([to_tensor(real_train[ir], device), to_tensor(other_train[io], device)])
        y = torch.cat([torch.ones(half), torch.zeros(half)]).to(device)
        loss = nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        def pred_real(p: np.ndarray) -> np.ndarray:
            return np.concatenate([(model(to_tensor(p[i:i + 128], device)) > 0).cpu().numpy()
                                   for i in range(0, len(p), 128)])
        acc_r = pred_real(real_test).mean()
        acc_o = (~pred_real(other_test)).mean()
    return float(0.5 * (acc_r + acc_o))


_FEATURES: dict[str, nn.Module] = {}


def random_features(patches: np.ndarray, seed: int = 0, device: str | torch.device = "cpu") -> np.ndarray:
    """(n, 512) global-average-pooled features of a seeded random-init torchvision ResNet-18."""
    import torchvision
    key = f"{seed}:{device}"
    if key not in _FEATURES:
        torch.manual_seed(seed)
        net = torchvision.models.resnet18(weights=None)
        net.fc = nn.Identity()
        _FEATURES[key] = net.to(device).eval()
    net = _FEATURES[key]
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for i in range(0, len(patches), 128):
            out.append(net((to_tensor(patches[i:i + 128], device) - mean) / std).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def kid(feats_a: np.ndarray, feats_b: np.ndarray, subset: int = 100, n_subsets: int = 50, seed: int = 0) -> tuple[float, float]:
    """(mean, std) over subsets of the unbiased MMD² with k(x,y) = (x·y/d + 1)³."""
    rng = np.random.default_rng(seed)
    d = feats_a.shape[1]
    m = min(subset, len(feats_a), len(feats_b))
    vals = []
    for _ in range(n_subsets):
        a = feats_a[rng.choice(len(feats_a), m, replace=False)]
        b = feats_b[rng.choice(len(feats_b), m, replace=False)]
        kaa = (a @ a.T / d + 1) ** 3
        kbb = (b @ b.T / d + 1) ** 3
        kab = (a @ b.T / d + 1) ** 3
        mmd = ((kaa.sum() - np.trace(kaa)) / (m * (m - 1)) + (kbb.sum() - np.trace(kbb)) / (m * (m - 1))
               - 2 * kab.mean())
        vals.append(mmd)
    return float(np.mean(vals)), float(np.std(vals))
