"""Warm-start a wider network from a trained narrower one (Net2WiderNet, Chen et al. 2016):
what ``python -m train --init-from NET --width W`` does when NET's width divides W.

Every widened map holds each old channel W / w times over (new channel j is old channel
j mod c). Convolutions copy their filters for the copies and divide each input channel's
weights by its number of copies, so the next layer sums the copies back to the old value;
instance norm gives the copies the same statistics and copies its affine parameters. The
wider net therefore computes the narrower one's function, and training continues from
the narrower net's quality with more capacity. Small noise on the weights breaks the
symmetry between copies (identical copies would get identical gradients forever).
"""

from __future__ import annotations

import torch
from torch import nn

from nst.errors import NSTError
from nst.johnson import TransformerNet

#: Noise on each widened weight, relative to the standard deviation of its layer's
#: weights: enough to break the copies' symmetry, far below what changes the picture.
SYMMETRY_NOISE = 1e-2


def check_widenable(source: TransformerNet, target: TransformerNet, path: str) -> None:
    """A clear error unless ``source`` widens into ``target``."""
    mine, theirs = target.config, source.config
    if theirs.photo_skip and not mine.photo_skip:
        raise NSTError(
            f"--init-from '{path}' adds its output to the photo (photo_skip); pass "
            "--photo-skip yes to continue it."
        )
    if mine.residual_blocks == theirs.residual_blocks and mine.width % theirs.width == 0:
        return
    raise NSTError(
        f"--init-from '{path}' is a width {theirs.width}, {theirs.residual_blocks}-block "
        f"network; this run builds width {mine.width}, {mine.residual_blocks} blocks. Pass the "
        "same --residual-blocks and a --width that is a multiple of its width (a wider net "
        "starts as the same function), or leave --init-from out."
    )


@torch.no_grad()
def widen_into(
    target: TransformerNet,
    source: TransformerNet,
    noise: float = SYMMETRY_NOISE,
    generator: torch.Generator | None = None,
) -> None:
    """Overwrite ``target``'s weights so that it computes ``source``'s function (up to
    ``noise``); ``target.config.width`` must be a multiple of ``source``'s."""
    check_widenable(source, target, "source")
    theirs = dict(source.named_modules())
    for name, module in target.named_modules():
        old = theirs[name]
        if isinstance(module, nn.Conv2d):
            out_map = torch.arange(module.out_channels) % old.out_channels
            in_map = torch.arange(module.in_channels) % old.in_channels
            copies = module.in_channels // old.in_channels
            weight = old.weight[out_map][:, in_map] / copies
            if noise and module.weight.shape != old.weight.shape:
                spread = noise * float(weight.std())
                weight = weight + spread * torch.randn(
                    weight.shape, generator=generator, dtype=weight.dtype
                )
            module.weight.copy_(weight)
            module.bias.copy_(old.bias[out_map])
        elif isinstance(module, nn.InstanceNorm2d) and module.affine:
            # (C,) or, in a multi-style net, (S, C): the channels are the last dimension.
            channel_map = torch.arange(module.num_features) % old.num_features
            module.weight.copy_(old.weight[..., channel_map])
            module.bias.copy_(old.bias[..., channel_map])
