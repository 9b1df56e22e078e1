"""How the tests compare two pictures: PSNR."""

from __future__ import annotations

import torch


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Peak signal-to-noise ratio of two same-shape pictures in [0, 1], in dB (higher is
    closer; identical pictures give 200)."""
    return float(10 * torch.log10(1 / (a - b).pow(2).mean().clamp(min=1e-20)))
