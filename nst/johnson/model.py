"""The image transformation network of Johnson et al. 2016, "Perceptual Losses for
Real-Time Style Transfer and Super-Resolution" (with the changes that became standard:
instance normalisation, Ulyanov et al. 2016, and upsample-then-convolve instead of
transposed convolutions, Odena et al. 2016, against checkerboard artefacts).

Saved as a folder holding ``model.safetensors`` and ``config.json``: the layout that
``huggingface_hub``'s ``PyTorchModelHubMixin.save_pretrained`` writes, so a Hub repo, a
bundled zoo style and a training export are one format.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nst.errors import NSTError
from nst.files import atomic_path, atomic_write_text, is_pickle

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


class TransformerNet(nn.Module):
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
    """Write ``model.safetensors`` (+ ``config.json``) into ``folder``; fp16 when ``half``."""
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    dtype = torch.float16 if half else torch.float32
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out / WEIGHTS_NAME) as tmp:  # never a half-written model
        save_file(state, str(tmp), metadata={"format": "pt", "model_type": MODEL_TYPE})
    atomic_write_text(out / CONFIG_NAME, json.dumps(asdict(model.config), indent=2) + "\n")
    return out


def _check_state(model: TransformerNet, state: dict[str, torch.Tensor], where: str) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    if missing or unexpected or wrong:
        lines = [
            f"The checkpoint {where} does not fit a transformer of width {model.config.width}:"
        ]
        if missing:
            lines.append(f"  missing tensors ({len(missing)}): {', '.join(missing[:6])}")
        if unexpected:
            lines.append(f"  unexpected tensors ({len(unexpected)}): {', '.join(unexpected[:6])}")
        for k in wrong[:6]:
            lines.append(f"  {k}: expected shape {expected[k]}, found {found[k]}")
        lines.append("Check that config.json belongs to this model.safetensors.")
        raise NSTError("\n".join(lines))


def load_transformer(path: str | os.PathLike, device: torch.device | str = "cpu") -> TransformerNet:
    """Load a folder (``model.safetensors`` + ``config.json``) or a ``.safetensors`` file.

    Pickles (``.pth``/``.bin``/``.pt``) are refused: loading one can run arbitrary code.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        weights, config_file = path / WEIGHTS_NAME, path / CONFIG_NAME
    else:
        weights, config_file = path, path.with_name(CONFIG_NAME)
    if is_pickle(weights):
        raise NSTError(
            f"'{weights}' is a pickle checkpoint; only .safetensors models are loaded "
            "(a pickle can run arbitrary code). Convert it with safetensors first."
        )
    if not weights.is_file():
        raise NSTError(
            f"No model at '{path}': expected a folder with {WEIGHTS_NAME} and {CONFIG_NAME}."
        )
    config = TransformerConfig()
    if config_file.is_file():
        try:
            config = TransformerConfig.from_dict(json.loads(config_file.read_text()))
        except json.JSONDecodeError as exc:
            raise NSTError(f"'{config_file}' is not valid JSON: {exc}") from exc
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise NSTError(
            f"'{weights}' is not a valid safetensors file ({exc}); it may be truncated. "
            "Download or export it again."
        ) from exc
    model = TransformerNet(config)
    _check_state(model, state, f"'{weights}'")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return model.to(device).eval()
