"""The perceptual losses of Gatys et al. 2015 and Johnson et al. 2016, in one place.

Every term is divided by the size of its target (the mean square of the content
features, of the target Gram matrix), so each term is about 1 when the output is
unrelated to the target. Caffe-trained and torchvision-trained VGG weights differ in
activation scale by orders of magnitude; with this normalisation one set of default
weights works for all of them. Gatys (pixel optimisation) and Johnson training both
use :class:`PerceptualLoss`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from nst.vgg import LossNetwork

_EPS = 1e-12


class _Gram(torch.autograd.Function):
    """``G = F F^T / n`` with a backward of one GEMM.

    Autograd's own backward of ``bmm(flat, flat^T)`` computes two products (one per
    operand), transposes one and adds them: three passes over the features. With
    ``dF = (dG + dG^T) F / n`` it is one product. On channels_last features (the loss
    network's layout) both products run on the (HW, C) matrix as it lies in memory, and
    the gradient comes back channels_last, so the ReLU backward and the gradient from
    the next layer meet in one layout.
    """

    @staticmethod
    def forward(ctx, features: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        b, c, h, w = features.shape
        rows = _rows(features)  # (B, HW, C), a view
        gram = torch.bmm(rows.transpose(1, 2), rows) / (c * h * w)
        ctx.save_for_backward(features)
        ctx.compute_dtype = gram.dtype  # autocast may have lowered it; backward follows
        return gram

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_gram: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (features,) = ctx.saved_tensors
        b, c, h, w = features.shape
        sym = (grad_gram + grad_gram.transpose(1, 2)).to(ctx.compute_dtype) / (c * h * w)
        rows = _rows(features).to(ctx.compute_dtype)
        grad_rows = torch.bmm(rows, sym)  # (B, HW, C) contiguous: channels_last
        grad = grad_rows.transpose(1, 2).reshape(b, c, h, w)
        if not features.is_contiguous(memory_format=torch.channels_last):
            grad = grad.contiguous()
        return grad.to(features.dtype)


def _rows(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, HW, C): a view for channels_last, else a transposed view."""
    b, c, h, w = features.shape
    if features.is_contiguous(memory_format=torch.channels_last):
        return features.permute(0, 2, 3, 1).reshape(b, h * w, c)
    return features.reshape(b, c, h * w).transpose(1, 2)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C), normalised by C * H * W so image size does not matter."""
    return _Gram.apply(features)


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Feature distance, relative to the target's mean square energy."""
    return F.mse_loss(features, target) / (target.pow(2).mean() + _EPS)


def style_loss(gram: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Gram-matrix distance, relative to the target Gram's mean square.

    ``target_gram`` (1, C, C) broadcasts over a batch of outputs.
    """
    target = target_gram.expand_as(gram)
    return F.mse_loss(gram, target) / (target_gram.pow(2).mean() + _EPS)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels (smoothness prior)."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return dy.pow(2).mean() + dx.pow(2).mean()


def blended_gram_targets(
    net: LossNetwork,
    styles: Sequence[torch.Tensor],
    layers: Sequence[str],
    blend_weights: Sequence[float] | None = None,
) -> dict[str, torch.Tensor]:
    """Target Gram matrices of several style images, mixed by ``blend_weights``.

    Each style image may have its own size: Gram matrices do not depend on it.
    """
    if not styles:
        raise ValueError("at least one style image is needed")
    weights = list(blend_weights) if blend_weights is not None else [1.0] * len(styles)
    if len(weights) != len(styles) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(
            f"blend weights {weights} must be {len(styles)} non-negative numbers, not all 0"
        )
    total = sum(weights)
    targets: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for style, w in zip(styles, weights, strict=True):
            feats = net(style, layers)
            for name in layers:
                g = gram_matrix(feats[name].float()) * (w / total)
                targets[name] = targets[name] + g if name in targets else g
    return targets


@dataclass
class LossWeights:
    """How much each term counts; per-layer style weights default to equal."""

    content: float = 1.0
    style: float = 1.0e4
    tv: float = 0.0
    style_layers: Mapping[str, float] | None = None


class PerceptualLoss:
    """Content + style + total variation against fixed targets.

    ``content_targets`` are per-image features (batch like the output); ``style_grams``
    are (1, C, C) targets shared by the batch.
    """

    def __init__(
        self,
        net: LossNetwork,
        content_layers: Sequence[str],
        style_layers: Sequence[str],
        style_grams: Mapping[str, torch.Tensor],
        weights: LossWeights,
    ) -> None:
        self.net = net
        self.content_layers = list(content_layers)
        self.style_layers = list(style_layers)
        self.style_grams = dict(style_grams)
        self.weights = weights
        per_layer = weights.style_layers or {}
        n = len(self.style_layers)
        self.style_layer_weights = {
            name: float(per_layer.get(name, 1.0)) / n for name in self.style_layers
        }
        self.layers = list(dict.fromkeys(self.content_layers + self.style_layers))

    def content_targets(self, content: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            feats = self.net(content, self.content_layers)
        return {k: v.detach() for k, v in feats.items()}

    def __call__(
        self,
        output: torch.Tensor,
        content_targets: Mapping[str, torch.Tensor],
        network_dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its parts (detached, for logs; ``.item()`` them when shown).

        ``network_dtype`` (e.g. ``torch.bfloat16``) runs only the loss network in that
        autocast; the Gram matrices and the losses are then computed in fp32 outside it.
        """
        autocast = (
            torch.autocast(output.device.type, dtype=network_dtype)
            if network_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            feats = self.net(output, self.layers)
        content = sum(
            (
                content_loss(feats[n].float(), content_targets[n].float())
                for n in self.content_layers
            ),
            start=output.new_zeros(()),
        ) / max(1, len(self.content_layers))
        style = sum(
            (
                w * style_loss(gram_matrix(feats[n].float()), self.style_grams[n])
                for n, w in self.style_layer_weights.items()
            ),
            start=output.new_zeros(()),
        )
        tv = total_variation(output) if self.weights.tv > 0 else output.new_zeros(())
        total = self.weights.content * content + self.weights.style * style + self.weights.tv * tv
        parts = {"total": total, "content": content, "style": style, "tv": tv}
        parts = {k: v.detach() for k, v in parts.items()}
        return total, parts
