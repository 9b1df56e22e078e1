"""The image transformation network of Johnson et al. 2016, "Perceptual Losses for
Real-Time Style Transfer and Super-Resolution" (with the changes that became standard:
instance normalisation, Ulyanov et al. 2016, and upsample-then-convolve instead of
transposed convolutions, Odena et al. 2016, against checkerboard artefacts).

``TransformerNet`` is a ``huggingface_hub`` ``PyTorchModelHubMixin``
(:mod:`nst.johnson.pretrained`): ``save_pretrained``, ``from_pretrained("user/name")`` or
``from_pretrained(folder)``, and ``push_to_hub``, in the mixin's layout of
``model.safetensors``, ``config.json`` and a model card, so a Hub repo, a bundled zoo style
and a training export are one format.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nst.errors import NSTError
from nst.johnson.pretrained import StyleNetHubMixin

MODEL_TYPE = "johnson2016-transformer"
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


@dataclass
class TransformerConfig:
    """Architecture of the network plus free-form metadata about the style."""

    width: int = 32  # channels of the first conv; 64 and 128 follow. 16 = half width (CPU)
    residual_blocks: int = 5
    # Output = the photo + the last conv's output: the net learns only what the style
    # changes, so the photo's detail need not pass through the 1/4-scale bottleneck.
    photo_skip: bool = False
    model_type: str = MODEL_TYPE
    style: dict[str, Any] = field(default_factory=dict)  # id, title, artist, image, ...
    # A multi-style net (conditional instance norm, Dumoulin et al. 2017): one entry per
    # style, each like ``style``, in the order of the norm layers' (gamma, beta) rows.
    # Empty: one style, described by ``style`` (the plain Johnson net).
    styles: list[dict[str, Any]] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)  # the settings it was made with

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransformerConfig:
        if data.get("model_type", MODEL_TYPE) != MODEL_TYPE:
            raise NSTError(
                f"config.json describes a '{data.get('model_type')}', not a {MODEL_TYPE}."
            )
        names = ("width", "residual_blocks", "photo_skip", "style", "styles", "training")
        known = {k: data[k] for k in names if k in data}
        try:
            config = cls(**known)
        except TypeError as exc:
            raise NSTError(f"config.json is not a valid transformer config: {exc}") from exc
        if not (isinstance(config.width, int) and config.width > 0):
            raise NSTError(f"config.json: width must be a positive integer, not {config.width!r}.")
        if not (isinstance(config.residual_blocks, int) and config.residual_blocks >= 0):
            raise NSTError("config.json: residual_blocks must be a non-negative integer.")
        if not isinstance(config.photo_skip, bool):
            raise NSTError("config.json: photo_skip must be true or false.")
        _check_styles(config.styles)
        return config

    @property
    def num_styles(self) -> int:
        """Rows of (gamma, beta) in every norm layer: 1 for a plain net."""
        return max(1, len(self.styles))

    @property
    def style_ids(self) -> list[str]:
        """The ids of the styles, in row order."""
        if self.styles:
            return [str(entry.get("id", i)) for i, entry in enumerate(self.styles)]
        return [str(self.style.get("id", "style"))]


def _check_styles(styles: object) -> None:
    if not isinstance(styles, list) or not all(isinstance(s, dict) for s in styles):
        raise NSTError("config.json: styles must be a list of objects (one per style).")
    ids = [s.get("id") for s in styles]
    if any(not isinstance(i, str) or not i for i in ids):
        raise NSTError("config.json: every entry of styles needs an 'id' (a non-empty string).")
    if len(set(ids)) != len(ids):
        raise NSTError(f"config.json: the style ids repeat: {ids}.")
    if len(styles) == 1:
        raise NSTError("config.json: a one-style net describes its style in 'style', not 'styles'.")


#: What ``TransformerNet.forward`` takes as a style: a row index, a style id, a mapping
#: {id or index: weight} for a blend, or a weight per style (sequence or 1-D tensor).
StyleChoice = int | str | Mapping[int | str, float] | Sequence[float] | torch.Tensor


class ConditionalInstanceNorm2d(nn.InstanceNorm2d):
    """Instance norm with one (gamma, beta) row per style (Dumoulin et al. 2017, "A Learned
    Representation for Artistic Style"); the convolutions around it are shared.

    With one style it is ``nn.InstanceNorm2d(affine=True)``, parameters of shape (C,)
    included, so plain nets' files load as they are. With S styles ``weight`` and ``bias``
    are (S, C), and the layer normalises with ``mix @ weight``, ``mix @ bias``: ``mix`` is
    a convex weight per style, one-hot for one style, set by ``TransformerNet``.
    """

    def __init__(self, channels: int, styles: int = 1):
        super().__init__(channels, affine=True)
        self.styles = styles
        if styles > 1:
            self.weight = nn.Parameter(torch.ones(styles, channels))
            self.bias = nn.Parameter(torch.zeros(styles, channels))
        mix = torch.zeros(styles)
        mix[0] = 1.0
        self.register_buffer("mix", mix, persistent=False)  # (S,)

    def style_affine(self, mix: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma, beta), each (C,): the rows of the style that ``mix`` (S,) weighs, by
        default the selected one, or their blend."""
        if self.styles == 1:
            return self.weight, self.bias
        mix = (self.mix if mix is None else mix).to(self.weight.dtype)
        return mix @ self.weight, mix @ self.bias

    def forward(self, x: torch.Tensor, mix: torch.Tensor | None = None) -> torch.Tensor:
        if self.styles == 1:
            return super().forward(x)
        gamma, beta = self.style_affine(mix)
        return nn.functional.instance_norm(x, weight=gamma, bias=beta, eps=self.eps)


class ConvLayer(nn.Sequential):
    """Reflection pad -> conv (same size for stride 1)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(in_ch, out_ch, kernel, stride))


class ConvNormReLU(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, styles: int = 1):
        super().__init__(
            ConvLayer(in_ch, out_ch, kernel, stride),
            ConditionalInstanceNorm2d(out_ch, styles),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """Two 3x3 convs with instance norm; identity shortcut (He et al. 2016)."""

    def __init__(self, channels: int, styles: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            ConvNormReLU(channels, channels, 3, styles=styles),
            ConvLayer(channels, channels, 3),
            ConditionalInstanceNorm2d(channels, styles),
        )

    def layers(self) -> tuple[ConvLayer, nn.InstanceNorm2d, ConvLayer, nn.InstanceNorm2d]:
        """(conv, norm, conv, norm): ReLU after the first norm only (for exact tiling)."""
        (conv_a, norm_a, _relu), conv_b, norm_b = self.body[0], self.body[1], self.body[2]
        return conv_a, norm_a, conv_b, norm_b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleConv(nn.Sequential):
    """Nearest 2x upsampling, then conv + norm + ReLU (no checkerboard)."""

    def __init__(self, in_ch: int, out_ch: int, styles: int = 1):
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"),
            ConvNormReLU(in_ch, out_ch, 3, styles=styles),
        )


class TransformerNet(nn.Module, StyleNetHubMixin):
    """RGB in [0, 1] (B, 3, H, W) -> stylised RGB in [0, 1] (B, 3, H, W), any H, W."""

    def __init__(self, config: TransformerConfig | None = None):
        super().__init__()
        self.config = config or TransformerConfig()
        w, s = self.config.width, self.config.num_styles
        self.encoder = nn.Sequential(
            ConvNormReLU(3, w, 9, styles=s),  # (B, w, H, W)
            ConvNormReLU(w, 2 * w, 3, stride=2, styles=s),  # (B, 2w, H/2, W/2)
            ConvNormReLU(2 * w, 4 * w, 3, stride=2, styles=s),  # (B, 4w, H/4, W/4)
        )
        self.residuals = nn.Sequential(
            *(ResidualBlock(4 * w, s) for _ in range(self.config.residual_blocks))
        )
        self.decoder = nn.Sequential(
            UpsampleConv(4 * w, 2 * w, s),  # (B, 2w, H/2, W/2)
            UpsampleConv(2 * w, w, s),  # (B, w, H, W)
            ConvLayer(w, 3, 9),  # (B, 3, H, W)
        )
        if self.config.photo_skip:
            zero_head(self)  # a new net starts as the identity: the photo itself

    # The stages by role, for code that runs the net piece by piece (exact tiling in
    # nst.johnson.tiling); the Sequentials above keep the state_dict's key names.
    @property
    def stem(self) -> ConvNormReLU:
        """Full resolution, 3 -> w channels (9x9)."""
        return self.encoder[0]

    @property
    def downsampling(self) -> tuple[ConvNormReLU, ConvNormReLU]:
        """Full -> 1/2 -> 1/4 scale (stride-2 3x3 convs)."""
        return self.encoder[1], self.encoder[2]

    @property
    def upsampling(self) -> tuple[UpsampleConv, UpsampleConv]:
        """1/4 -> 1/2 -> full scale."""
        return self.decoder[0], self.decoder[1]

    @property
    def head(self) -> ConvLayer:
        """Full resolution, w -> 3 channels (9x9), no norm."""
        return self.decoder[2]

    def channels(self, scale: int) -> int:
        """Channels of the maps at 1/``scale`` resolution (1, 2 or 4)."""
        return {1: 1, 2: 2, 4: 4}[scale] * self.config.width

    @property
    def norms(self) -> list[ConditionalInstanceNorm2d]:
        """Every norm layer, in forward order: where a style lives."""
        return [m for m in self.modules() if isinstance(m, ConditionalInstanceNorm2d)]

    def style_weights(self, style: StyleChoice) -> torch.Tensor:
        """The convex weight per style (S,) that ``style`` names (see :data:`StyleChoice`)."""
        return style_weights(self.config, style)

    def select_style(self, style: StyleChoice) -> None:
        """Make ``style`` (a style, or a blend) the one every later forward pass paints."""
        if self.config.num_styles == 1 and isinstance(style, int | str):
            style_weights(self.config, style)  # only checks the name
            return
        mix = self.style_weights(style)
        for norm in self.norms:
            norm.mix.copy_(mix.to(norm.mix))

    @property
    def selected_style(self) -> torch.Tensor:
        """The weights per style (S,) that a forward pass without ``style`` paints."""
        if self.config.num_styles == 1:
            return torch.ones(1)
        return self.norms[0].mix.detach().to("cpu", torch.float32).clone()

    def with_style(self, style: StyleChoice) -> TransformerNet:
        """A view of this net that paints ``style`` by default: it shares every tensor,
        the style tables included (so an engine's one graph still serves it), and only
        its selected style is its own."""
        mix = self.style_weights(style)
        view = _structural_copy(self, mix, bake=False)
        view.select_style(mix)
        return view

    def blend(
        self, others: Mapping[int | str, float], base: StyleChoice | None = None
    ) -> torch.Tensor:
        """The weights per style of ``base`` (default: the selected style) with each of
        ``others`` mixed in at its share: ``{"the_scream": 0.3}`` keeps 70 % of the base.
        The shares are in [0, 1] and add up to at most 1."""
        start = self.selected_style if base is None else self.style_weights(base)
        shares = {key: float(value) for key, value in others.items()}
        if any(not 0.0 <= v <= 1.0 for v in shares.values()) or sum(shares.values()) > 1.0:
            raise NSTError(f"Blend shares must be in [0, 1] and add up to at most 1: {shares}.")
        mix = start * (1.0 - sum(shares.values()))
        for key, share in shares.items():
            mix = mix + share * self.style_weights(key)
        return self.style_weights(mix)

    def forward(self, x: torch.Tensor, style: StyleChoice | None = None) -> torch.Tensor:
        if style is not None:
            self.select_style(style)
        h, w = x.shape[-2:]
        x = pad_to_grid(x)
        y = self.decoder(self.residuals(self.encoder(x)))
        if self.config.photo_skip:
            y = y + x
        y = y[..., :h, :w]
        # No sigmoid: the last conv learns the range. Clamp only at inference, since a
        # clamp's zero gradient outside [0, 1] would stall training.
        return y if self.training else y.clamp(0, 1)


def style_weights(config: TransformerConfig, style: StyleChoice) -> torch.Tensor:
    """Resolve a :data:`StyleChoice` against ``config``'s styles into convex weights (S,)."""
    ids, count = config.style_ids, config.num_styles

    def index(key: int | str) -> int:
        if isinstance(key, bool):
            raise NSTError(f"Not a style: {key!r}.")
        if isinstance(key, int):
            if not 0 <= key < count:
                raise NSTError(f"Style index {key} is out of range: this net has {count}.")
            return key
        if key not in ids:
            raise NSTError(f"This net has no style '{key}'; it has: {', '.join(ids)}.")
        return ids.index(key)

    weights = torch.zeros(count)
    if isinstance(style, int | str):
        weights[index(style)] = 1.0
        return weights
    if isinstance(style, Mapping):
        for key, value in style.items():
            weights[index(key)] += float(value)
    else:
        values = torch.as_tensor(style, dtype=torch.float32).flatten()
        if values.numel() != count:
            raise NSTError(f"A blend needs one weight per style ({count}), not {values.numel()}.")
        weights = values.clone()
    if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise NSTError("Blend weights must be finite and not negative.")
    total = float(weights.sum())
    if total <= 0:
        raise NSTError("A blend needs at least one positive weight.")
    return weights / total


def is_norm_key(net: nn.Module, key: str) -> bool:
    """Whether state-dict ``key`` belongs to a norm layer (a style's row, or rows)."""
    return isinstance(net.get_submodule(key.rsplit(".", 1)[0]), nn.InstanceNorm2d)


def run_with_mix(module: nn.Module, x: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    """``module(x)`` with every norm layer's style weights taken from ``mix`` (S,) rather
    than from the net's selected style: for graphs that take the style as an input."""
    if isinstance(module, ConditionalInstanceNorm2d):
        return module(x, mix)
    if isinstance(module, ResidualBlock):
        return x + run_with_mix(module.body, x, mix)
    if isinstance(module, nn.Sequential):
        for child in module:
            x = run_with_mix(child, x, mix)
        return x
    return module(x)


@torch.no_grad()
def bake_style(net: TransformerNet, style: StyleChoice) -> TransformerNet:
    """A one-style net that paints ``style`` (a style of ``net`` or a blend): it shares
    ``net``'s convolution tensors and holds its own (gamma, beta). Every inference path
    runs it as it runs a plain net, and a caller's concurrent choice cannot change it."""
    mix = net.style_weights(style)
    weights = zip(net.config.style_ids, mix.tolist(), strict=True)
    entry = {"id": "+".join(f"{i}:{w:g}" for i, w in weights if w)}
    chosen = [i for i, w in enumerate(mix.tolist()) if w == 1.0]
    if chosen:
        entry = dict(net.config.styles[chosen[0]]) if net.config.styles else dict(net.config.style)
    baked = _structural_copy(net, mix)
    baked.config = replace(net.config, styles=[], style=entry)
    return baked


def _structural_copy(module: nn.Module, mix: torch.Tensor, bake: bool = True) -> nn.Module:
    """A copy of ``module``'s tree that shares every tensor, except that conditional norm
    layers become one-style layers with the ``mix`` of their rows (``bake``), or keep
    their rows and get a selected style of their own."""
    new = copy.copy(module)
    new._parameters = dict(module._parameters)
    new._buffers = dict(module._buffers)
    new._modules = {k: _structural_copy(v, mix, bake) for k, v in module._modules.items()}
    if isinstance(module, ConditionalInstanceNorm2d) and module.styles > 1 and not bake:
        new._buffers["mix"] = module.mix.clone()
    elif isinstance(module, ConditionalInstanceNorm2d) and module.styles > 1:
        gamma, beta = module.style_affine(mix.to(module.weight.device))
        new._parameters["weight"] = nn.Parameter(gamma.detach(), requires_grad=False)
        new._parameters["bias"] = nn.Parameter(beta.detach(), requires_grad=False)
        new._buffers["mix"] = torch.ones(1, device=module.weight.device)
        new.styles = 1
    return new


@torch.no_grad()
def zero_head(net: TransformerNet) -> None:
    """Zero the last conv: with ``photo_skip`` the net then outputs its input unchanged."""
    conv = net.head[1]
    conv.weight.zero_()
    conv.bias.zero_()


#: Input sides must be multiples of this: the two stride-2 stages then come back to size.
GRID = 4


def pad_to_grid(x: torch.Tensor) -> torch.Tensor:
    """Reflection-pad (B, C, H, W) at the bottom and right to multiples of GRID."""
    pad_h, pad_w = (-x.shape[-2]) % GRID, (-x.shape[-1]) % GRID
    if pad_h or pad_w:
        x = nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    return x


def save_transformer(model: TransformerNet, folder: str | os.PathLike, half: bool = False) -> Path:
    """Write ``model.safetensors`` (fp16 when ``half``) and ``config.json`` into ``folder``:
    ``save_pretrained``'s files without the card (checkpoints, exports)."""
    return model.save_weights(folder, half=half)


def load_transformer(path: str | os.PathLike, device: torch.device | str = "cpu") -> TransformerNet:
    """Load a local folder (``model.safetensors`` + ``config.json``) or ``.safetensors``
    file, strictly; pickles are refused. ``TransformerNet.from_pretrained`` also takes Hub
    repo ids."""
    return TransformerNet.load_weights(path, device)
