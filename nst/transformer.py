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

MODEL_TYPE = "johnson2016-transformer"
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


@dataclass
class TransformerConfig:
    """Architecture of the network plus free-form metadata about the style."""

    width: int = 32  # channels of the first conv; 64 and 128 follow. 16 = half width (CPU)
    residual_blocks: int = 5
    model_type: str = MODEL_TYPE
    style: dict[str, Any] = field(default_factory=dict)  # id, title, artist, image, ...
    training: dict[str, Any] = field(default_factory=dict)  # the settings it was made with

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransformerConfig:
        if data.get("model_type", MODEL_TYPE) != MODEL_TYPE:
            raise NSTError(
                f"config.json describes a '{data.get('model_type')}', not a {MODEL_TYPE}."
            )
        known = {k: data[k] for k in ("width", "residual_blocks", "style", "training") if k in data}
        try:
            config = cls(**known)
        except TypeError as exc:
            raise NSTError(f"config.json is not a valid transformer config: {exc}") from exc
        if not (isinstance(config.width, int) and config.width > 0):
            raise NSTError(f"config.json: width must be a positive integer, not {config.width!r}.")
        if not (isinstance(config.residual_blocks, int) and config.residual_blocks >= 0):
            raise NSTError("config.json: residual_blocks must be a non-negative integer.")
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # Pad to a multiple of 4 so the two stride-2 stages come back to the same size.
        pad_h, pad_w = (-h) % 4, (-w) % 4
        if pad_h or pad_w:
            x = nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        y = self.decoder(self.residuals(self.encoder(x)))
        y = y[..., :h, :w]
        # No sigmoid: the last conv learns the range. Clamp only at inference, since a
        # clamp's zero gradient outside [0, 1] would stall training.
        return y if self.training else y.clamp(0, 1)


def save_transformer(model: TransformerNet, folder: str | os.PathLike, half: bool = False) -> Path:
    """Write ``model.safetensors`` (+ ``config.json``) into ``folder``; fp16 when ``half``."""
    from safetensors.torch import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    dtype = torch.float16 if half else torch.float32
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    tmp = out / (WEIGHTS_NAME + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt", "model_type": MODEL_TYPE})
    os.replace(tmp, out / WEIGHTS_NAME)  # never leave a half-written model behind
    (out / CONFIG_NAME).write_text(json.dumps(asdict(model.config), indent=2) + "\n")
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
    if weights.suffix in (".pth", ".pt", ".bin", ".pkl", ".ckpt"):
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


# ---------------------------------------------------------------------------------------
# Inference path. ``TransformerNet.forward`` is the reference (and what training uses);
# ``fast_forward`` computes the same function for inference, faster on CPU, and lets a
# caller record or fix the instance-norm statistics, or stop in front of a norm layer:
# what exact tiled inference (nst.stylize) is built from.
# ---------------------------------------------------------------------------------------

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


def normalize_(
    x: torch.Tensor,
    norm: nn.InstanceNorm2d,
    mean: torch.Tensor,
    var: torch.Tensor,
    relu: bool,
) -> torch.Tensor:
    """Instance norm with the given statistics (+ ReLU) as one per-channel scale and
    shift, applied to ``x`` in place: no full-size temporaries."""
    scale = torch.rsqrt(var.to(torch.float32) + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.float()
    shift = -mean.to(torch.float32) * scale
    if norm.bias is not None:
        shift = shift + norm.bias.float()
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


def count_norms(module: nn.Module) -> int:
    """How many instance-norm layers ``module`` runs (what ``stop_at`` counts)."""
    return sum(isinstance(m, nn.InstanceNorm2d) for m in module.modules())


def residual_layers(
    block: ResidualBlock,
) -> tuple[ConvLayer, nn.InstanceNorm2d, ConvLayer, nn.InstanceNorm2d]:
    """(conv, norm, conv, norm) of a residual block; ReLU after the first norm only."""
    (conv_a, norm_a, _relu), conv_b, norm_b = block.body[0], block.body[1], block.body[2]
    return conv_a, norm_a, conv_b, norm_b


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
    pad_h, pad_w = (-h) % 4, (-w) % 4
    if pad_h or pad_w:
        x = nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    y = _run(model.encoder, x, control)  # (1, 4w, H/4, W/4)
    y = _run(model.decoder, _run(model.residuals, y, control), control)  # (1, 3, H, W)
    return y[..., :h, :w].clamp(0, 1)
