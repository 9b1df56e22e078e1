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

import os
from dataclasses import dataclass, field
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
    training: dict[str, Any] = field(default_factory=dict)  # the settings it was made with

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransformerConfig:
        if data.get("model_type", MODEL_TYPE) != MODEL_TYPE:
            raise NSTError(
                f"config.json describes a '{data.get('model_type')}', not a {MODEL_TYPE}."
            )
        names = ("width", "residual_blocks", "photo_skip", "style", "training")
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
        return config


class ConvLayer(nn.Sequential):
    """Reflection pad -> conv (same size for stride 1)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(in_ch, out_ch, kernel, stride))


class ConvNormReLU(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1):
        super().__init__(
            ConvLayer(in_ch, out_ch, kernel, stride),
            nn.InstanceNorm2d(out_ch, affine=True),
            nn.ReLU(inplace=True),
        )


class ResidualBlock(nn.Module):
    """Two 3x3 convs with instance norm; identity shortcut (He et al. 2016)."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            ConvNormReLU(channels, channels, 3),
            ConvLayer(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def layers(self) -> tuple[ConvLayer, nn.InstanceNorm2d, ConvLayer, nn.InstanceNorm2d]:
        """(conv, norm, conv, norm): ReLU after the first norm only (for exact tiling)."""
        (conv_a, norm_a, _relu), conv_b, norm_b = self.body[0], self.body[1], self.body[2]
        return conv_a, norm_a, conv_b, norm_b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleConv(nn.Sequential):
    """Nearest 2x upsampling, then conv + norm + ReLU (no checkerboard)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"), ConvNormReLU(in_ch, out_ch, 3)
        )


class TransformerNet(nn.Module, StyleNetHubMixin):
    """RGB in [0, 1] (B, 3, H, W) -> stylised RGB in [0, 1] (B, 3, H, W), any H, W."""

    def __init__(self, config: TransformerConfig | None = None):
        super().__init__()
        self.config = config or TransformerConfig()
        w = self.config.width
        self.encoder = nn.Sequential(
            ConvNormReLU(3, w, 9),  # (B, w, H, W)
            ConvNormReLU(w, 2 * w, 3, stride=2),  # (B, 2w, H/2, W/2)
            ConvNormReLU(2 * w, 4 * w, 3, stride=2),  # (B, 4w, H/4, W/4)
        )
        self.residuals = nn.Sequential(
            *(ResidualBlock(4 * w) for _ in range(self.config.residual_blocks))
        )
        self.decoder = nn.Sequential(
            UpsampleConv(4 * w, 2 * w),  # (B, 2w, H/2, W/2)
            UpsampleConv(2 * w, w),  # (B, w, H, W)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_grid(x)
        y = self.decoder(self.residuals(self.encoder(x)))
        if self.config.photo_skip:
            y = y + x
        y = y[..., :h, :w]
        # No sigmoid: the last conv learns the range. Clamp only at inference, since a
        # clamp's zero gradient outside [0, 1] would stall training.
        return y if self.training else y.clamp(0, 1)


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
