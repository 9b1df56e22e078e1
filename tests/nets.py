"""Small networks shared by the tests."""

from __future__ import annotations

import torch

from nst.johnson import TransformerConfig, TransformerNet


def small_transformer(width: int = 8, seed: int = 0) -> TransformerNet:
    """A small random net whose norm layers have non-trivial affine parameters."""
    torch.manual_seed(seed)
    net = TransformerNet(TransformerConfig(width=width, residual_blocks=2)).eval()
    for module in net.modules():
        if isinstance(module, torch.nn.InstanceNorm2d):
            torch.nn.init.normal_(module.weight, 1.0, 0.2)
            torch.nn.init.normal_(module.bias, 0.0, 0.2)
    return net
