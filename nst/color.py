"""Colour control shared by both methods: keep the photo's colours, blend by strength."""

from __future__ import annotations

import torch

# ITU-R BT.601 RGB -> YCbCr (full range, centred chroma), as in Gatys et al. 2016's
# "Preserving Color in Neural Artistic Style Transfer" luminance-only transfer.
_RGB_TO_YCC = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
)


def rgb_to_ycbcr(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> Y in [0, 1], Cb/Cr in [-0.5, 0.5]."""
    m = _RGB_TO_YCC.to(image)
    return torch.einsum("ij,bjhw->bihw", m, image)


def ycbcr_to_rgb(image: torch.Tensor) -> torch.Tensor:
    m = torch.linalg.inv(_RGB_TO_YCC.double()).to(image)
    return torch.einsum("ij,bjhw->bihw", m, image)


def preserve_colors(stylised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The stylised luminance with the photo's chroma: the style's strokes, the photo's colours."""
    if stylised.shape != content.shape:
        raise ValueError(f"shapes differ: {tuple(stylised.shape)} vs {tuple(content.shape)}")
    y = rgb_to_ycbcr(stylised)[:, :1]
    chroma = rgb_to_ycbcr(content)[:, 1:]
    return ycbcr_to_rgb(torch.cat([y, chroma], dim=1)).clamp(0, 1)


def blend(stylised: torch.Tensor, content: torch.Tensor, strength: float) -> torch.Tensor:
    """``strength`` 1 is the full style, 0 the photo itself."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be in [0, 1], got {strength}")
    if strength == 1.0:
        return stylised
    if strength == 0.0:
        return content.clone()
    return torch.lerp(content, stylised, strength)
