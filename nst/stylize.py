"""Stylise a photo with a trained Johnson transformer net: any size, CPU or CUDA.

Large images are cut into overlapping tiles. Instance norm normalises by statistics of
the whole input, so tiles normalised by their own statistics disagree in tone and leave
seams. Instead one pass over a downscaled copy of the whole image records every norm
layer's statistics, and every tile is then normalised with those. With the statistics
fixed the network is a plain convolution stack, whose output at a pixel depends only on
the input within its receptive field (54 px here); each tile therefore carries a 64 px
margin of real context on every inner side, and neighbouring tiles are cross-faded in the
middle of their overlap, where both are exact. Tiled and untiled outputs then differ only
by how well the downscaled statistics match the full-size ones.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from nst import color
from nst.errors import NSTError
from nst.images import ImageSource, load_image, resize_long_side, to_pil, to_tensor
from nst.transformer import (
    NormControl,
    NormStats,
    TransformerNet,
    fast_forward,
    load_transformer,
)

Progress = Callable[[int, int], None]
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

#: Context each tile carries on an inner side: over the net's receptive-field radius
#: (54 px: 9x9 conv 4 + strided convs 3 + ten 3x3 convs at 1/4 scale 40 + decoder 7).
TILE_MARGIN = 64
#: Width of the cross-fade between neighbouring tiles, centred in their overlap.
FADE = 16
#: Smallest tile side accepted: the overlap must leave some core.
MIN_TILE = 4 * TILE_MARGIN
#: Activation memory one pass may use on CPU before "auto" tiles (NST_TILE_BUDGET_MB).
CPU_BUDGET_BYTES = int(os.environ.get("NST_TILE_BUDGET_MB", 1024)) * 2**20


@dataclass(frozen=True)
class Plan:
    """What one ``stylize`` call will do; returned by :func:`plan` so it can be shown."""

    device: torch.device
    precision: str  # "fp32" | "bf16" | "fp16"
    tile: int | None  # window side in px, or None for one pass
    stats_side: int | None  # long side of the statistics pass when tiling


# ----------------------------------------------------------------------------- inputs


def _resolve_device(device: torch.device | str | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise NSTError(f"'{device}' is not a device. Use 'cpu' or 'cuda'.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NSTError("CUDA was asked for but no CUDA GPU is available. Use --device cpu.")
    if dev.type not in ("cpu", "cuda"):
        raise NSTError(f"Device '{device}' is not supported. Use 'cpu' or 'cuda'.")
    return dev


def _resolve_model(model: TransformerNet | str | os.PathLike) -> TransformerNet:
    if isinstance(model, TransformerNet):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_transformer(model)
    raise NSTError(f"model must be a TransformerNet or a model folder, not {type(model).__name__}.")


def _content_tensor(image: ImageSource | torch.Tensor, size: int | None) -> torch.Tensor:
    """Any accepted image form -> (1, 3, H, W) float32 in [0, 1] on the CPU."""
    if size is not None and (not isinstance(size, int) or size < 16):
        raise NSTError(f"size is the output's long side in pixels (16 or more), not {size!r}.")
    if not isinstance(image, torch.Tensor):
        return to_tensor(load_image(image, long_side=size))
    x = image.detach()
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[:2] != (1, 3):
        raise NSTError(
            f"An image tensor must be (1, 3, H, W) RGB in [0, 1]; got {tuple(image.shape)}."
        )
    x = x.to("cpu", torch.float32)
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise NSTError("The image tensor has values outside [0, 1]; scale it to [0, 1] first.")
    if size is not None:
        # Through PIL so tensors and files are resized by the same (Lanczos) filter.
        x = to_tensor(resize_long_side(to_pil(x), size))
    return x


# ----------------------------------------------------------------------------- planning


def _native_bf16_cpu() -> bool:
    """True on CPUs with bf16 arithmetic (AVX-512 BF16 / AMX); elsewhere it is emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise NSTError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}.")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        # fp16 keeps 3 more mantissa bits than bf16, and instance-normalised activations
        # stay far from fp16's range limit.
        return "fp16"
    # Without native bf16 the CPU emulates it ~10x slower than fp32 (measured on an AVX2
    # EPYC, see benchmarks/bench_transformer.py), so fp32 is the fast mode there.
    return "bf16" if _native_bf16_cpu() else "fp32"


def bytes_per_pixel(model: TransformerNet, precision: str) -> int:
    """Peak activation bytes per input pixel of one pass (measured, with headroom).

    The peak is the last upsampling stage: the upsampled 2w-channel map, its reflection
    padded copy and the w-channel conv output coexist at full resolution (5w channels),
    plus oneDNN's working buffers; 8w channels covers what we measured on CPU.
    """
    return 8 * model.config.width * torch.finfo(_DTYPES[precision]).bits // 8


def _budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    return CPU_BUDGET_BYTES


def _round4(n: float) -> int:
    return max(4, int(n) // 4 * 4)


def plan(
    model: TransformerNet,
    height: int,
    width: int,
    *,
    device: torch.device | str | None = None,
    tile: int | str | None = "auto",
    precision: str = "auto",
) -> Plan:
    """Decide device, precision and tiling for an image of ``height`` x ``width``."""
    dev = _resolve_device(device)
    prec = _resolve_precision(precision, dev)
    max_pixels = _budget(dev) // bytes_per_pixel(model, prec)
    if tile == "auto":
        if height * width <= max_pixels:
            return Plan(dev, prec, None, None)
        side = _round4(math.sqrt(max_pixels))
    elif tile is None or tile == 0:
        return Plan(dev, prec, None, None)
    elif isinstance(tile, int) and not isinstance(tile, bool) and tile >= MIN_TILE:
        side = _round4(tile)
    else:
        raise NSTError(
            f"tile must be 'auto', 0/None (never tile) or a side of at least {MIN_TILE} px, "
            f"not {tile!r}."
        )
    if height <= side and width <= side:
        return Plan(dev, prec, None, None)
    # The statistics pass sees the whole image at once, so it gets at most one tile's
    # worth of pixels.
    stats_side = int(max(height, width) * min(1.0, math.sqrt(side * side / (height * width))))
    return Plan(dev, prec, side, max(stats_side, MIN_TILE))


# ----------------------------------------------------------------------------- running


def _prepare(model: TransformerNet, device: torch.device, precision: str) -> TransformerNet:
    """A private eval copy on ``device`` in the run's dtype, channels-last (faster convs
    on CPU and on CUDA tensor cores); the caller's model is left untouched."""
    net = copy.deepcopy(model).eval()
    return net.to(device=device, dtype=_DTYPES[precision], memory_format=torch.channels_last)


def _run_net(
    net: TransformerNet, x: torch.Tensor, control: NormControl | None = None
) -> torch.Tensor:
    """One pass of a CPU float32 (1, 3, h, w) tensor; the result comes back the same way."""
    param = next(net.parameters())
    x = x.to(param.device, param.dtype).contiguous(memory_format=torch.channels_last)
    return fast_forward(net, x, control).to("cpu", torch.float32).contiguous()


def _record_stats(net: TransformerNet, content: torch.Tensor, long_side: int) -> NormStats:
    """Statistics of every norm layer on a copy of the image downscaled to ``long_side``."""
    h, w = content.shape[-2:]
    scale = long_side / max(h, w)
    small = F.interpolate(
        content,
        size=(max(16, round(h * scale)), max(16, round(w * scale))),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    ).clamp(0, 1)
    stats: NormStats = []
    _run_net(net, small, NormControl(record=stats))
    return stats


def _windows(length: int, side: int) -> list[int]:
    """Start offsets (multiples of 4) of windows of ``side`` covering ``length``.

    Neighbours overlap by at least 2 * TILE_MARGIN; the last window ends at ``length``.
    Both ``length`` and ``side`` are multiples of 4, so every window sits on the grid of
    the net's two stride-2 stages and computes exactly the pixels the whole image would.
    """
    if length <= side:
        return [0]
    step = side - 2 * TILE_MARGIN
    starts = list(range(0, length - side, step))
    return starts + [length - side]


def _fade(length: int, start: int, total: int) -> torch.Tensor:
    """1-D weights of one window: 1 inside, a linear cross-fade centred TILE_MARGIN px from
    an inner edge (never within the margin's first TILE_MARGIN - FADE/2 px, where the
    window's own padding reaches), and 1 up to the image's own border."""
    d = torch.arange(length, dtype=torch.float32) + 0.5
    ramp_lo, ramp_hi = TILE_MARGIN - FADE / 2, TILE_MARGIN + FADE / 2
    weight = torch.ones(length)
    if start > 0:
        weight = weight * ((d - ramp_lo) / (ramp_hi - ramp_lo)).clamp(0, 1)
    if start + length < total:
        weight = weight * ((length - d - ramp_lo) / (ramp_hi - ramp_lo)).clamp(0, 1)
    return weight


def _tiled(
    net: TransformerNet,
    content: torch.Tensor,
    side: int,
    stats: NormStats,
    progress: Progress | None,
) -> torch.Tensor:
    """The net's output over windows of ``side`` px, all normalised with ``stats``."""
    h, w = content.shape[-2:]
    pad_h, pad_w = (-h) % 4, (-w) % 4
    # Pad once for the whole image, as the net itself would, so tiles stay on its grid.
    padded = F.pad(content, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else content
    hp, wp = padded.shape[-2:]
    side_h, side_w = min(side, hp), min(side, wp)
    rows, cols = _windows(hp, side_h), _windows(wp, side_w)
    out = torch.zeros(1, 3, hp, wp)
    weight_sum = torch.zeros(1, 1, hp, wp)
    total, done = len(rows) * len(cols), 0
    if progress:
        progress(0, total)
    for top in rows:
        wy = _fade(side_h, top, hp).view(1, 1, -1, 1)
        for left in cols:
            wx = _fade(side_w, left, wp).view(1, 1, 1, -1)
            window = padded[..., top : top + side_h, left : left + side_w]
            y = _run_net(net, window, NormControl(fixed=stats))
            weight = wy * wx
            out[..., top : top + side_h, left : left + side_w].addcmul_(y, weight)
            weight_sum[..., top : top + side_h, left : left + side_w].add_(weight)
            done += 1
            if progress:
                progress(done, total)
    return out.div_(weight_sum)[..., :h, :w]


def stylize_tensor(
    model: TransformerNet,
    content: torch.Tensor,
    *,
    device: torch.device | str | None = None,
    tile: int | str | None = "auto",
    precision: str = "auto",
    progress: Progress | None = None,
) -> torch.Tensor:
    """The network's output for a CPU (1, 3, H, W) tensor in [0, 1], tiled when needed."""
    h, w = content.shape[-2:]
    p = plan(model, h, w, device=device, tile=tile, precision=precision)
    net = _prepare(model, p.device, p.precision)
    with torch.inference_mode():
        if p.tile is None:
            if progress:
                progress(0, 1)
            y = _run_net(net, content)
            if progress:
                progress(1, 1)
            return y
        stats = _record_stats(net, content, p.stats_side)
        return _tiled(net, content, p.tile, stats, progress)


def stylize(
    model: TransformerNet | str | os.PathLike,
    image: ImageSource | torch.Tensor,
    *,
    size: int | None = None,
    strength: float = 1.0,
    preserve_colors: bool = False,
    device: torch.device | str | None = None,
    tile: int | str | None = "auto",
    precision: str = "auto",
    progress: Progress | None = None,
) -> Image.Image:
    """Stylise ``image`` with a transformer net and return an RGB PIL image.

    ``image``: a path, bytes, PIL image or (1, 3, H, W) tensor in [0, 1]. ``size``: the
    output's long side (None keeps the image's own size). ``strength``: 1 the full style,
    0 the photo. ``preserve_colors``: the stylised luminance with the photo's colours.
    ``tile``: "auto" tiles only above a memory budget, an int forces windows of that side,
    0/None never tiles. ``precision``: "auto" (fastest mode that keeps quality on the
    device), "fp32", "bf16" or "fp16". ``progress(done_tiles, total_tiles)`` is called
    as tiles finish.
    """
    if isinstance(strength, bool) or not isinstance(strength, (int, float)):
        raise NSTError(f"strength must be a number in [0, 1], not {strength!r}.")
    if not 0.0 <= strength <= 1.0:
        raise NSTError(f"strength must be in [0, 1] (1 = full style, 0 = photo), not {strength}.")
    net = _resolve_model(model)
    content = _content_tensor(image, size)
    if strength == 0.0:
        return to_pil(content)  # nothing of the style survives: skip the network
    y = stylize_tensor(
        net, content, device=device, tile=tile, precision=precision, progress=progress
    )
    if preserve_colors:
        y = _preserve(y, content)
    return to_pil(color.blend(y, content, float(strength)))


def _preserve(stylised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Colour preservation in bands of rows, so a 4K image needs no full-size temporaries."""
    out = torch.empty_like(stylised)
    band = 512
    for top in range(0, stylised.shape[-2], band):
        rows = slice(top, top + band)
        out[..., rows, :] = color.preserve_colors(stylised[..., rows, :], content[..., rows, :])
    return out
