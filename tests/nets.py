"""Small networks shared by the tests."""

from __future__ import annotations

import torch

from nst.johnson import TransformerConfig, TransformerNet


def small_transformer(width: int = 8, seed: int = 0, photo_skip: bool = False) -> TransformerNet:
    """A small random net whose norm layers have non-trivial affine parameters. With
    ``photo_skip`` its last conv is random too (a new skip net's is zero: the identity)."""
    torch.manual_seed(seed)
    config = TransformerConfig(width=width, residual_blocks=2, photo_skip=photo_skip)
    net = TransformerNet(config).eval()
    net.head[1].reset_parameters()
    for module in net.modules():
        if isinstance(module, torch.nn.InstanceNorm2d):
            torch.nn.init.normal_(module.weight, 1.0, 0.2)
            torch.nn.init.normal_(module.bias, 0.0, 0.2)
    return net
