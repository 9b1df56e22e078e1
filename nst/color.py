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


def luminance(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) Y, the first row of :func:`rgb_to_ycbcr`."""
    return torch.einsum("j,bjhw->bhw", _RGB_TO_YCC[0].to(image), image).unsqueeze(1)


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


def match_colors(photo: torch.Tensor, painting: torch.Tensor) -> torch.Tensor:
    """The photo with its RGB mean and covariance mapped onto the painting's.

    A start for Gatys that keeps the photo's structure while the first style layers, which
    see mostly colour, already sit near their targets. (1, 3, H, W) tensors in [0, 1]; the
    two may differ in size. The map is ``C_s^1/2 C_p^-1/2`` (symmetric square roots), the
    linear map that leaves an already-matched photo unchanged.
    """
    mean_p, cov_p = _rgb_stats(photo)
    mean_s, cov_s = _rgb_stats(painting)
    flat = photo.reshape(3, -1).double()
    mapped = _sqrtm(cov_s) @ _sqrtm(cov_p, inverse=True) @ (flat - mean_p) + mean_s
    return mapped.reshape(photo.shape).clamp(0, 1).to(photo.dtype).contiguous()


def _rgb_stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = image.reshape(3, -1).double()
    mean = flat.mean(1, keepdim=True)
    centred = flat - mean
    return mean, centred @ centred.T / flat.shape[1]


def _sqrtm(a: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """Symmetric (inverse) square root; eigenvalues floored so a flat image stays finite."""
    values, vectors = torch.linalg.eigh(a)
    values = values.clamp_min(1e-8)
    values = values.rsqrt() if inverse else values.sqrt()
    return vectors @ torch.diag(values) @ vectors.T
