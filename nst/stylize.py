"""Stylise a photo with a trained Johnson transformer net: any size, CPU or CUDA.

Large images are cut into tiles, and the tiled output equals the untiled one (to float
rounding): instance norm normalises by statistics of the whole input, so each norm
layer's statistics are taken exactly, over the whole image, one layer at a time:

1. Encoder (full resolution down to 1/4): for each of its norm layers in turn, windows
   of the padded photo run the encoder up to that layer, with the earlier layers' exact
   statistics fixed, and the per-channel mean and (biased) variance are accumulated in
   float64 over the windows' cores. A window carries ``ENCODER_HALO`` px of context on
   each inner side, enough that its core is exact; windows start on multiples of 4, the
   grid of the two stride-2 convolutions. The last pass keeps its cores: the encoder's
   output, at 1/4 resolution, is kept whole.
2. Residual blocks, at 1/4 resolution on whole maps: every convolution runs over
   windows (1 px of context) into a whole buffer whose statistics are accumulated on the
   way, then is normalised in place. Three 4w-channel maps at 1/4 scale are the memory
   that grows with the image (~0.8 GB at 3840x2160 in fp32, width 32).
3. Decoder: as the encoder, for its two norm layers, from windows of the 1/4-scale map
   (``DECODER_HALO`` px of context there); a last pass writes each window's core of the
   output. Cores partition the image, so nothing is blended.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

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
    count_norms,
    fast_forward,
    load_transformer,
    normalize_,
    residual_layers,
    run_stage,
)

Progress = Callable[[int, int], None]
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

#: Context (full-resolution px, a multiple of 4) an encoder window carries on an inner
#: side. Its output is wrong only within reach of that side's reflection padding: 4 px
#: after the 9x9 conv, ~3 px at 1/2 scale after the first stride-2 conv, ~2-3 px at 1/4
#: scale after the second, i.e. at most 12 full-resolution px.
ENCODER_HALO = 16
#: Context (1/4-scale px) a decoder window carries on an inner side: its two upsampling
#: stages and 9x9 conv reach 1 px at 1/2 scale, then 1 + 4 px at full scale, under 2 px
#: at 1/4 scale.
DECODER_HALO = 4
#: Smallest window side accepted: the halos must leave some core.
MIN_TILE = 64
#: Activation memory one pass may use on CPU before "auto" tiles (NST_TILE_BUDGET_MB).
CPU_BUDGET_BYTES = int(os.environ.get("NST_TILE_BUDGET_MB", 1024)) * 2**20


@dataclass(frozen=True)
class Plan:
    """What one ``stylize`` call will do; returned by :func:`plan` so it can be shown."""

    device: torch.device
    precision: str  # "fp32" | "bf16" | "fp16"
    tile: int | None  # window side in px, or None for one pass
    # Long side of the old downscaled statistics pass; statistics are now exact, so
    # always None. Kept so that code reading the field still works.
    stats_side: int | None = None


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
    return Plan(dev, prec, side, None)


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


def _to_net(net: TransformerNet, x: torch.Tensor) -> torch.Tensor:
    """A window, moved to the net's device and dtype, channels-last."""
    param = next(net.parameters())
    return x.to(param.device, param.dtype).contiguous(memory_format=torch.channels_last)


class _Ticker:
    """``progress(done, total)`` over all window passes of a tiled run."""

    def __init__(self, total: int, progress: Progress | None):
        self.done, self.total, self.progress = 0, total, progress
        if progress:
            progress(0, total)

    def tick(self) -> None:
        self.done += 1
        if self.progress:
            self.progress(self.done, self.total)


class _ChannelStats:
    """Per-channel count, mean and sum of squared deviations over pieces of one map,
    merged in float64 (Chan et al.'s parallel update): the biased variance over the
    whole map without the cancellation of a raw sum-of-squares."""

    def __init__(self) -> None:
        self.n = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def add(self, piece: torch.Tensor) -> None:
        count = piece.shape[0] * piece.shape[2] * piece.shape[3]
        var, mean = torch.var_mean(piece.float(), dim=(0, 2, 3), correction=0)
        mean, m2 = mean.double(), var.double() * count
        if self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = count, mean, m2
            return
        total = self.n + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta.square() * (self.n * count / total)
        self.n = total

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, biased variance), float64, as InstanceNorm2d's over the whole map."""
        assert self.mean is not None and self.m2 is not None, "no pieces were added"
        return self.mean, self.m2 / self.n


def _cores(length: int, core: int, align: int) -> list[tuple[int, int]]:
    """[start, end) runs of at most ``core`` px (starts on multiples of ``align``)
    that partition ``length``; the last may be shorter."""
    assert core % align == 0 and length % align == 0
    return [(start, min(start + core, length)) for start in range(0, length, core)]


def _window_count(height: int, width: int, core: int, align: int = 1) -> int:
    return len(_cores(height, core, align)) * len(_cores(width, core, align))


Sink = Callable[[torch.Tensor, slice, slice], None]


def _windowed(
    x: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    sink: Sink,
    *,
    core: int,
    halo: int,
    align: int,
    ticker: _Ticker,
) -> None:
    """Run ``fn`` over windows of the whole map ``x`` and hand each window's core of the
    output to ``sink(core_output, rows, cols)`` (rows/cols in output coordinates).

    Cores of ``core`` px partition ``x``; each window adds up to ``halo`` px of context
    per side (less at the map's own border, where the window's reflection padding is
    the map's). ``fn`` may change the resolution by a fixed factor (the strided encoder,
    the upsampling decoder): read off its first output and checked on every window.
    """
    height, width = x.shape[-2:]
    scale: Fraction | None = None
    for top, bottom in _cores(height, core, align):
        t0, b0 = max(0, top - halo), min(height, bottom + halo)
        for left, right in _cores(width, core, align):
            l0, r0 = max(0, left - halo), min(width, right + halo)
            y = fn(x[..., t0:b0, l0:r0])
            found = Fraction(y.shape[-2], b0 - t0)
            scale = scale or found
            if found != scale or Fraction(y.shape[-1], r0 - l0) != scale:
                raise RuntimeError(f"window output {tuple(y.shape)} is not a fixed rescale")
            rows = slice(int((top - t0) * scale), int((bottom - t0) * scale))
            cols = slice(int((left - l0) * scale), int((right - l0) * scale))
            sink(
                y[..., rows, cols],
                slice(int(top * scale), int(bottom * scale)),
                slice(int(left * scale), int(right * scale)),
            )
            ticker.tick()


def _stage_statistics(
    stage: torch.nn.Module,
    x: torch.Tensor,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    *,
    core: int,
    halo: int,
    align: int,
    ticker: _Ticker,
    keep_last: torch.Tensor | None = None,
) -> NormStats:
    """Exact statistics of every norm layer of ``stage`` (encoder or decoder) over the
    whole map ``x``, one layer at a time: windows run the stage up to layer k with the
    exact statistics of layers < k fixed, and layer k's input is accumulated over the
    cores. ``keep_last``: a whole buffer that receives the last layer's input."""
    stats: NormStats = []
    layers = count_norms(stage)
    for k in range(layers):
        acc = _ChannelStats()
        keep = keep_last if k == layers - 1 else None

        def fn(window: torch.Tensor, k: int = k) -> torch.Tensor:
            return run_stage(stage, prepare(window), NormControl(fixed=stats, stop_at=k))

        def sink(y: torch.Tensor, rows: slice, cols: slice, keep=keep, acc=acc) -> None:
            acc.add(y)
            if keep is not None:
                keep[..., rows, cols] = y

        _windowed(x, fn, sink, core=core, halo=halo, align=align, ticker=ticker)
        stats.append(acc.result())
    return stats


def _norm_layers(module: torch.nn.Module) -> list[torch.nn.InstanceNorm2d]:
    return [m for m in module.modules() if isinstance(m, torch.nn.InstanceNorm2d)]


def _empty_map(net: TransformerNet, channels: int, height: int, width: int) -> torch.Tensor:
    param = next(net.parameters())
    return torch.empty(
        (1, channels, height, width),
        device=param.device,
        dtype=param.dtype,
        memory_format=torch.channels_last,
    )


def _conv_whole(
    conv: torch.nn.Module, src: torch.Tensor, dst: torch.Tensor, core: int, ticker: _Ticker
) -> tuple[torch.Tensor, torch.Tensor]:
    """``dst = conv(src)`` (a padded same-size conv) over windows; the output's exact
    statistics come back."""
    acc = _ChannelStats()

    def sink(y: torch.Tensor, rows: slice, cols: slice) -> None:
        acc.add(y)
        dst[..., rows, cols] = y

    halo = max(m.kernel_size[0] // 2 for m in conv.modules() if isinstance(m, torch.nn.Conv2d))
    _windowed(src, conv, sink, core=core, halo=halo, align=1, ticker=ticker)
    return acc.result()


def _residuals_whole(
    net: TransformerNet, feat: torch.Tensor, core: int, ticker: _Ticker
) -> torch.Tensor:
    """The residual blocks on the whole 1/4-scale map ``feat`` (updated in place), each
    convolution windowed, each norm with the exact statistics of its whole input."""
    a, b = torch.empty_like(feat), torch.empty_like(feat)
    for block in net.residuals:
        conv_a, norm_a, conv_b, norm_b = residual_layers(block)
        normalize_(a, norm_a, *_conv_whole(conv_a, feat, a, core, ticker), relu=True)
        normalize_(b, norm_b, *_conv_whole(conv_b, a, b, core, ticker), relu=False)
        feat.add_(b)
    return feat


def _tiled(
    net: TransformerNet, content: torch.Tensor, side: int, progress: Progress | None
) -> torch.Tensor:
    """The net's output for ``content`` from windows of at most ``side`` px (a multiple
    of 4, at least MIN_TILE), equal to the untiled output (see the module docstring)."""
    h, w = content.shape[-2:]
    pad_h, pad_w = (-h) % 4, (-w) % 4
    # Pad once for the whole image, as the net itself would, so windows stay on its grid.
    padded = F.pad(content, (0, pad_w, 0, pad_h), mode="reflect") if pad_h or pad_w else content
    hp, wp = padded.shape[-2:]
    hq, wq = hp // 4, wp // 4
    enc_core = side - 2 * ENCODER_HALO  # full-resolution px, a multiple of 4
    dec_core = side // 4 - 2 * DECODER_HALO  # 1/4-scale px
    # 1/4-scale px: a residual conv's window of side^2 px at 4w channels needs about as
    # much memory as a full-resolution window of the same side at w..2w channels.
    res_core = side
    enc_n, dec_n = count_norms(net.encoder), count_norms(net.decoder)
    ticker = _Ticker(
        enc_n * _window_count(hp, wp, enc_core, 4)
        + 2 * len(net.residuals) * _window_count(hq, wq, res_core)
        + (dec_n + 1) * _window_count(hq, wq, dec_core),
        progress,
    )
    feat = _empty_map(net, 4 * net.config.width, hq, wq)  # the encoder's output
    enc_stats = _stage_statistics(
        net.encoder,
        padded,
        lambda window: _to_net(net, window),
        core=enc_core,
        halo=ENCODER_HALO,
        align=4,
        ticker=ticker,
        keep_last=feat,
    )
    # The kept cores are the last norm's input: normalise (+ ReLU, as every encoder norm).
    normalize_(feat, _norm_layers(net.encoder)[-1], *enc_stats[-1], relu=True)
    feat = _residuals_whole(net, feat, res_core, ticker)
    dec_stats = _stage_statistics(
        net.decoder,
        feat,
        lambda window: window,
        core=dec_core,
        halo=DECODER_HALO,
        align=1,
        ticker=ticker,
    )
    out = torch.empty(1, 3, hp, wp)

    def decode(window: torch.Tensor) -> torch.Tensor:
        return run_stage(net.decoder, window, NormControl(fixed=dec_stats))

    def write(y: torch.Tensor, rows: slice, cols: slice) -> None:
        out[..., rows, cols] = y.to("cpu", torch.float32).clamp_(0, 1)

    _windowed(feat, decode, write, core=dec_core, halo=DECODER_HALO, align=1, ticker=ticker)
    return out[..., :h, :w]


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
        return _tiled(net, content, p.tile, progress)


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
