"""Stylise a photo with a trained Johnson transformer net: any size, CPU or CUDA.

Large images are cut into windows, and the tiled output equals the untiled one (to float
rounding). Instance norm normalises by statistics of the whole input, so the tiled run
goes one norm layer at a time: windows run the net up to the next norm layer with the
earlier layers' exact statistics fixed, and that layer's per-channel mean and biased
variance are accumulated in float64 over the windows' cores, which partition the map.
Each window carries the receptive radius of the stage it runs as context on its inner
sides (so its core is exact) and starts on the grid of the stage's strides.

Maps at 1/2 and 1/4 scale are kept whole (two 4w-channel maps at 1/4 scale plus one
storage that is either a 2w-channel map at 1/2 scale or two more 4w ones: ~0.8 GB at
3840x2160 in fp32, width 32); full resolution is never kept, so its convolutions are
recomputed: the 9x9 encoder conv once more for its statistics, the last upsampling conv
once more for its statistics (about 20% more work than one pass of the net):

    encoder   full --conv9--> stats e0;  full --conv9, conv s2--> 1/2 (kept), stats e1
              1/2 --conv s2--> 1/4 (kept), stats e2
    residual  each conv over windows of the whole 1/4 map, into a whole map + stats
    decoder   1/4 --up, conv--> 1/2 (kept), stats d0;  1/2 --up, conv--> stats d1
              1/2 --up, conv, conv9--> the output's cores
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
    fast_forward,
    load_transformer,
    normalize_,
    residual_layers,
    run_stage,
)

Progress = Callable[[int, int], None]
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

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


@dataclass(frozen=True)
class _Geometry:
    """How one stage is run over windows of its input map."""

    scale: Fraction  # output px per input px (1/2 per stride-2 conv, 2 per upsampling)
    align: int  # windows start on multiples of this: the stage's total stride
    halo: int  # context per inner side, input px: the receptive radius, aligned
    core: int  # input px per window core, a multiple of align


def _widest(stage: torch.nn.Module) -> float:
    """Elements of the stage's widest map (input, upsampled or conv output) per input px."""
    convs = [m for m in stage.modules() if isinstance(m, torch.nn.Conv2d)]
    channels, area = convs[0].in_channels, 1.0
    widest = float(channels)
    for m in stage.modules():
        if isinstance(m, torch.nn.Conv2d):
            channels, area = m.out_channels, area / m.stride[0] ** 2
        elif isinstance(m, torch.nn.Upsample):
            area *= int(m.scale_factor) ** 2
        widest = max(widest, channels * area)
    return widest


def _geometry(stage: torch.nn.Module, side: int, width: int) -> _Geometry:
    """Windows for ``stage`` of a net of ``width`` whose widest map holds as many
    elements as an untiled pass over ``side`` x ``side`` px would at its widest (2w
    channels at full resolution, after the last upsampling): what bounds memory.

    The halo is the receptive radius of one output px, in input px: walking back from
    the output, a conv of kernel k and stride s turns a radius r into s*r + k//2 and a
    nearest 2x upsampling into ceil(r/2). Values a window computes from its reflection
    padding at an inner side lie outside every core pixel's receptive field."""
    scale, align, reach = Fraction(1), 1, 0
    for m in reversed(list(stage.modules())):
        if isinstance(m, torch.nn.Conv2d):
            reach = reach * m.stride[0] + m.kernel_size[0] // 2
            scale, align = scale / m.stride[0], align * m.stride[0]
        elif isinstance(m, torch.nn.Upsample):
            factor = int(m.scale_factor)
            reach, scale = -(-reach // factor), scale * factor
    halo = -(-reach // align) * align
    window = int(side * math.sqrt(2 * width / _widest(stage)))
    core = max(align, (window - 2 * halo) // align * align)
    return _Geometry(scale, align, halo, core)


def _window_count(stage: torch.nn.Module, src: tuple[int, int], side: int, width: int) -> int:
    g = _geometry(stage, side, width)
    return len(_cores(src[0], g.core, g.align)) * len(_cores(src[1], g.core, g.align))


Sink = Callable[[torch.Tensor, slice, slice], None]


def _windowed(
    x: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    sink: Sink,
    g: _Geometry,
    ticker: _Ticker,
) -> None:
    """Run ``fn`` over windows of the whole map ``x`` and hand each window's core of the
    output to ``sink(core_output, rows, cols)`` (rows/cols in output coordinates).

    Cores partition ``x``; a window adds up to ``g.halo`` px of context per side (less
    at the map's own border, where the window's reflection padding is the map's).
    """
    height, width = x.shape[-2:]
    s = g.scale
    for top, bottom in _cores(height, g.core, g.align):
        t0, b0 = max(0, top - g.halo), min(height, bottom + g.halo)
        for left, right in _cores(width, g.core, g.align):
            l0, r0 = max(0, left - g.halo), min(width, right + g.halo)
            y = fn(x[..., t0:b0, l0:r0])
            if (y.shape[-2], y.shape[-1]) != ((b0 - t0) * s, (r0 - l0) * s):
                raise RuntimeError(f"window output {tuple(y.shape)} is not a {s} rescale")
            rows = slice(int((top - t0) * s), int((bottom - t0) * s))
            cols = slice(int((left - l0) * s), int((right - l0) * s))
            sink(
                y[..., rows, cols],
                slice(int(top * s), int(bottom * s)),
                slice(int(left * s), int(right * s)),
            )
            ticker.tick()


def _stage_pass(
    net: TransformerNet,
    stage: torch.nn.Module,
    src: torch.Tensor,
    side: int,
    ticker: _Ticker,
    *,
    fixed: NormStats | None = None,
    stop: bool = False,
    keep: torch.Tensor | None = None,
    sink: Sink | None = None,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``stage`` over windows of the whole map ``src``, norm layers with ``fixed``.

    ``stop``: end in front of the first norm layer past ``fixed`` (or at the stage's end
    if it has none, like a lone conv) and return the exact statistics of what reaches it
    over the whole map, accumulated over the cores. ``keep``: a whole map that receives
    the cores' output; ``sink(core, rows, cols)``: gets them instead.
    """
    param = next(net.parameters())
    acc = _ChannelStats() if stop else None
    stop_at = len(fixed or []) if stop else None

    def fn(window: torch.Tensor) -> torch.Tensor:
        # A copy on the net's device, in its dtype, channels-last: the net's in-place
        # norms never touch ``src``.
        window = window.to(param.device, param.dtype, copy=True, memory_format=torch.channels_last)
        return run_stage(stage, window, NormControl(fixed=fixed, stop_at=stop_at))

    def collect(y: torch.Tensor, rows: slice, cols: slice) -> None:
        if acc is not None:
            acc.add(y)
        if keep is not None:
            keep[..., rows, cols] = y
        if sink is not None:
            sink(y, rows, cols)

    _windowed(src, fn, collect, _geometry(stage, side, net.config.width), ticker)
    return acc.result() if acc is not None else None


def _norm(module: torch.nn.Module) -> torch.nn.InstanceNorm2d:
    """The last instance-norm layer of ``module``."""
    return [m for m in module.modules() if isinstance(m, torch.nn.InstanceNorm2d)][-1]


def _whole_maps(
    net: TransformerNet, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The whole maps a tiled run keeps, channels-last on the net's device:
    ``quarter`` (4w, H/4, W/4) and one storage seen either as ``half`` (2w, H/2, W/2)
    or as two more quarter-scale maps ``a``, ``b``: the same number of elements."""
    param = next(net.parameters())
    c, hq, wq = 4 * net.config.width, height // 4, width // 4
    n = c * hq * wq

    def nhwc(flat: torch.Tensor, c: int, h: int, w: int) -> torch.Tensor:
        return flat.view(1, h, w, c).permute(0, 3, 1, 2)  # channels-last strides

    quarter = torch.empty(n, device=param.device, dtype=param.dtype)
    shared = torch.empty(2 * n, device=param.device, dtype=param.dtype)
    half = nhwc(shared, c // 2, 2 * hq, 2 * wq)
    a, b = nhwc(shared[:n], c, hq, wq), nhwc(shared[n:], c, hq, wq)
    return nhwc(quarter, c, hq, wq), half, a, b


def _passes(net: TransformerNet, hp: int, wp: int, side: int) -> int:
    """How many windows ``_tiled`` runs, for progress."""
    enc, dec, w = net.encoder, net.decoder, net.config.width
    full, half, quarter = (hp, wp), (hp // 2, wp // 2), (hp // 4, wp // 4)
    residual_convs = [c for block in net.residuals for c in residual_layers(block)[::2]]
    return (
        _window_count(enc[0], full, side, w)
        + _window_count(enc[:2], full, side, w)
        + _window_count(enc[2], half, side, w)
        + sum(_window_count(conv, quarter, side, w) for conv in residual_convs)
        + _window_count(dec[0], quarter, side, w)
        + _window_count(dec[1], half, side, w)
        + _window_count(dec[1:], half, side, w)
    )


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
    ticker = _Ticker(_passes(net, hp, wp, side), progress)
    enc, dec = net.encoder, net.decoder
    quarter, half, a, b = _whole_maps(net, hp, wp)

    # Encoder. Full resolution is never kept whole (w channels: 1 GB at 4K in fp32), so
    # the first conv is run twice: once for its statistics, once on the way to 1/2 scale.
    e0 = _stage_pass(net, enc[0], padded, side, ticker, stop=True)
    e1 = _stage_pass(net, enc[:2], padded, side, ticker, fixed=[e0], stop=True, keep=half)
    normalize_(half, _norm(enc[1]), *e1, relu=True)
    e2 = _stage_pass(net, enc[2], half, side, ticker, stop=True, keep=quarter)
    normalize_(quarter, _norm(enc[2]), *e2, relu=True)

    # Residual blocks, one conv at a time, on whole quarter-scale maps.
    for block in net.residuals:
        conv_a, norm_a, conv_b, norm_b = residual_layers(block)
        stats_a = _stage_pass(net, conv_a, quarter, side, ticker, stop=True, keep=a)
        normalize_(a, norm_a, *stats_a, relu=True)
        stats_b = _stage_pass(net, conv_b, a, side, ticker, stop=True, keep=b)
        quarter.add_(normalize_(b, norm_b, *stats_b, relu=False))

    # Decoder: up to 1/2 scale (kept whole, in the storage a and b are done with), then
    # full resolution twice: for the last norm's statistics, and for the output.
    d0 = _stage_pass(net, dec[0], quarter, side, ticker, stop=True, keep=half)
    normalize_(half, _norm(dec[0]), *d0, relu=True)
    d1 = _stage_pass(net, dec[1], half, side, ticker, stop=True)
    out = torch.empty(1, 3, hp, wp)

    def write(y: torch.Tensor, rows: slice, cols: slice) -> None:
        out[..., rows, cols] = y.to("cpu", torch.float32).clamp_(0, 1)

    _stage_pass(net, dec[1:], half, side, ticker, fixed=[d1], sink=write)
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
