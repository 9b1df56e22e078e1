"""The inference path of the Johnson net: the same function as ``TransformerNet.forward``
in eval mode, faster on CPU, with instance-norm statistics a caller can record or fix,
and passes that stop in front of a norm layer: what exact tiled inference
(:mod:`nst.johnson.tiling`) is built from.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nst.johnson.model import (
    ConditionalInstanceNorm2d,
    ResidualBlock,
    TransformerNet,
    pad_to_grid,
)

#: Per instance-norm layer, in execution order: (mean, var), each of shape (C,).
NormStats = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class NormControl:
    """How ``fast_forward`` / ``run_stage`` treat instance norm.

    ``fixed`` given: the first ``len(fixed)`` layers normalise with these statistics
    instead of the input's own (a window of the image then computes exactly what the
    whole image would, given the whole image's statistics). ``record`` given: each layer
    appends the statistics it used. ``stop_at`` given: the pass ends in front of norm
    layer number ``stop_at`` (0-based, counted like ``fixed``) and returns that layer's
    input, un-normalised; ``stopped`` then says it did.
    """

    fixed: NormStats | None = None
    record: NormStats | None = None
    stop_at: int | None = None
    stopped: bool = False
    _index: int = 0

    def should_stop(self) -> bool:
        """True (and remembered) when the next norm layer is where the pass ends."""
        if self.stop_at is not None and self._index == self.stop_at:
            self.stopped = True
        return self.stopped

    def statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fixed is not None and self._index < len(self.fixed):
            mean, var = self.fixed[self._index]
        else:
            # (1, C, H, W) in either memory format -> per-channel biased mean/var, as
            # InstanceNorm2d computes them; reduce in fp32 whatever the activations are.
            var, mean = torch.var_mean(x.float(), dim=(0, 2, 3), correction=0)
        self._index += 1
        if self.record is not None:
            self.record.append((mean, var))
        return mean, var


def affine(norm: nn.InstanceNorm2d) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A norm layer's (gamma, beta) for the selected style (or blend) of the net."""
    if isinstance(norm, ConditionalInstanceNorm2d):
        return norm.style_affine()
    return norm.weight, norm.bias


def normalize_(
    x: torch.Tensor,
    norm: nn.InstanceNorm2d,
    mean: torch.Tensor,
    var: torch.Tensor,
    relu: bool,
) -> torch.Tensor:
    """Instance norm with the given statistics (+ ReLU) as one per-channel scale and
    shift, applied to ``x`` in place: no full-size temporaries."""
    gamma, beta = affine(norm)
    scale = torch.rsqrt(var.to(torch.float32) + norm.eps)
    if gamma is not None:
        scale = scale * gamma.float()
    shift = -mean.to(torch.float32) * scale
    if beta is not None:
        shift = shift + beta.float()
    view = (1, -1, 1, 1)
    x = x.mul_(scale.to(x.dtype).view(view)).add_(shift.to(x.dtype).view(view))
    return x.relu_() if relu else x


def _run(module: nn.Module, x: torch.Tensor, control: NormControl) -> torch.Tensor:
    """Apply ``module`` like its own forward, but with the fused, controllable norm."""
    if isinstance(module, ResidualBlock):
        y = _run(module.body, x, control)
        return y if control.stopped else x + y
    if isinstance(module, nn.Sequential):
        children = list(module)
        i = 0
        while i < len(children):
            child = children[i]
            if isinstance(child, nn.InstanceNorm2d):
                if control.should_stop():
                    return x
                relu = i + 1 < len(children) and isinstance(children[i + 1], nn.ReLU)
                x = normalize_(x, child, *control.statistics(x), relu=relu)
                i += 2 if relu else 1
            else:
                x = _run(child, x, control)
                if control.stopped:
                    return x
                i += 1
        return x
    if isinstance(module, nn.InstanceNorm2d):
        if control.should_stop():
            return x
        return normalize_(x, module, *control.statistics(x), relu=False)
    if isinstance(module, nn.ReLU):
        return x.relu_()
    # Conv2d, ReflectionPad2d, Upsample: their own forward is already what we want.
    return module(x)


def run_stage(module: nn.Module, x: torch.Tensor, control: NormControl) -> torch.Tensor:
    """One stage of the net (``encoder``, ``decoder``, a residual block, ...) on ``x``,
    the way ``fast_forward`` runs it: norm statistics from ``control``, possibly stopping
    in front of a norm layer (see :class:`NormControl`)."""
    return _run(module, x, control)


def fast_forward(
    model: TransformerNet, x: torch.Tensor, control: NormControl | None = None
) -> torch.Tensor:
    """``model(x)`` for inference, in the input's memory format, with controllable norm.

    The same function as ``TransformerNet.forward`` in eval mode (tested to float
    tolerance), but instance norm is one in-place scale-and-shift fused with its ReLU:
    PyTorch's own InstanceNorm2d copies channels-last tensors to NCHW and back, which
    costs more than the convolutions gain from channels-last on CPU.
    """
    control = control or NormControl()
    if control.stop_at is not None:
        raise ValueError("fast_forward runs the whole net; use run_stage to stop early.")
    h, w = x.shape[-2:]
    x = pad_to_grid(x)
    y = _run(model.encoder, x, control)  # (1, 4w, H/4, W/4)
    y = _run(model.decoder, _run(model.residuals, y, control), control)  # (1, 3, H, W)
    if model.config.photo_skip:
        y = y.add_(x)
    return y[..., :h, :w].clamp(0, 1)
