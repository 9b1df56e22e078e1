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

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn

from nst.johnson.fast import NormControl, NormStats, normalize_, run_stage
from nst.johnson.model import TransformerNet, pad_to_grid

Progress = Callable[[int, int], None]


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


def _widest(stage: nn.Module) -> float:
    """Elements of the stage's widest map (input, upsampled or conv output) per input px."""
    convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d)]
    channels, area = convs[0].in_channels, 1.0
    widest = float(channels)
    for m in stage.modules():
        if isinstance(m, nn.Conv2d):
            channels, area = m.out_channels, area / m.stride[0] ** 2
        elif isinstance(m, nn.Upsample):
            area *= int(m.scale_factor) ** 2
        widest = max(widest, channels * area)
    return widest


def _geometry(stage: nn.Module, side: int, width: int) -> _Geometry:
    """Windows for ``stage`` of a net of ``width`` whose widest map holds as many
    elements as an untiled pass over ``side`` x ``side`` px would at its widest (2w
    channels at full resolution, after the last upsampling): what bounds memory.

    The halo is the receptive radius of one output px, in input px: walking back from
    the output, a conv of kernel k and stride s turns a radius r into s*r + k//2 and a
    nearest 2x upsampling into ceil(r/2). Values a window computes from its reflection
    padding at an inner side lie outside every core pixel's receptive field."""
    scale, align, reach = Fraction(1), 1, 0
    for m in reversed(list(stage.modules())):
        if isinstance(m, nn.Conv2d):
            reach = reach * m.stride[0] + m.kernel_size[0] // 2
            scale, align = scale / m.stride[0], align * m.stride[0]
        elif isinstance(m, nn.Upsample):
            factor = int(m.scale_factor)
            reach, scale = -(-reach // factor), scale * factor
    halo = -(-reach // align) * align
    window = int(side * math.sqrt(2 * width / _widest(stage)))
    core = max(align, (window - 2 * halo) // align * align)
    return _Geometry(scale, align, halo, core)


def _window_count(stage: nn.Module, src: tuple[int, int], side: int, width: int) -> int:
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
    stage: nn.Module,
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


def _norm(module: nn.Module) -> nn.InstanceNorm2d:
    """The last instance-norm layer of ``module``."""
    return [m for m in module.modules() if isinstance(m, nn.InstanceNorm2d)][-1]


def _whole_maps(
    net: TransformerNet, height: int, width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The whole maps a tiled run keeps, channels-last on the net's device:
    ``quarter`` (1/4 scale) and one storage seen either as ``half`` (1/2 scale) or as two
    more quarter-scale maps ``a``, ``b``: the same number of elements when the channels
    double at each halving, as they do in this net."""
    param = next(net.parameters())
    cq, ch, hq, wq = net.channels(4), net.channels(2), height // 4, width // 4
    n = cq * hq * wq
    if ch * 4 != 2 * cq:
        raise NotImplementedError("exact tiling expects the channels to double per halving")

    def nhwc(flat: torch.Tensor, c: int, h: int, w: int) -> torch.Tensor:
        return flat.view(1, h, w, c).permute(0, 3, 1, 2)  # channels-last strides

    quarter = torch.empty(n, device=param.device, dtype=param.dtype)
    shared = torch.empty(2 * n, device=param.device, dtype=param.dtype)
    half = nhwc(shared, ch, 2 * hq, 2 * wq)
    a, b = nhwc(shared[:n], cq, hq, wq), nhwc(shared[n:], cq, hq, wq)
    return nhwc(quarter, cq, hq, wq), half, a, b


def _passes(net: TransformerNet, hp: int, wp: int, side: int) -> int:
    """How many windows ``tiled_forward`` runs, for progress."""
    (down1, down2), (up1, up2), w = net.downsampling, net.upsampling, net.config.width
    full, half, quarter = (hp, wp), (hp // 2, wp // 2), (hp // 4, wp // 4)
    residual_convs = [c for block in net.residuals for c in block.layers()[::2]]
    return (
        _window_count(net.stem, full, side, w)
        + _window_count(nn.Sequential(net.stem, down1), full, side, w)
        + _window_count(down2, half, side, w)
        + sum(_window_count(conv, quarter, side, w) for conv in residual_convs)
        + _window_count(up1, quarter, side, w)
        + _window_count(up2, half, side, w)
        + _window_count(nn.Sequential(up2, net.head), half, side, w)
    )


def tiled_forward(
    net: TransformerNet, content: torch.Tensor, side: int, progress: Progress | None
) -> torch.Tensor:
    """The net's output for ``content`` from windows of at most ``side`` px (a multiple
    of 4, at least MIN_TILE), equal to the untiled output (see the module docstring)."""
    h, w = content.shape[-2:]
    # Pad once for the whole image, as the net itself would, so windows stay on its grid.
    padded = pad_to_grid(content)
    hp, wp = padded.shape[-2:]
    ticker = _Ticker(_passes(net, hp, wp, side), progress)
    (down1, down2), (up1, up2) = net.downsampling, net.upsampling
    quarter, half, a, b = _whole_maps(net, hp, wp)

    # Encoder. Full resolution is never kept whole (w channels: 1 GB at 4K in fp32), so
    # the stem is run twice: once for its statistics, once on the way to 1/2 scale.
    e0 = _stage_pass(net, net.stem, padded, side, ticker, stop=True)
    to_half = nn.Sequential(net.stem, down1)
    e1 = _stage_pass(net, to_half, padded, side, ticker, fixed=[e0], stop=True, keep=half)
    normalize_(half, _norm(down1), *e1, relu=True)
    e2 = _stage_pass(net, down2, half, side, ticker, stop=True, keep=quarter)
    normalize_(quarter, _norm(down2), *e2, relu=True)

    # Residual blocks, one conv at a time, on whole quarter-scale maps.
    for block in net.residuals:
        conv_a, norm_a, conv_b, norm_b = block.layers()
        stats_a = _stage_pass(net, conv_a, quarter, side, ticker, stop=True, keep=a)
        normalize_(a, norm_a, *stats_a, relu=True)
        stats_b = _stage_pass(net, conv_b, a, side, ticker, stop=True, keep=b)
        quarter.add_(normalize_(b, norm_b, *stats_b, relu=False))

    # Decoder: up to 1/2 scale (kept whole, in the storage a and b are done with), then
    # full resolution twice: for the last norm's statistics, and for the output.
    d0 = _stage_pass(net, up1, quarter, side, ticker, stop=True, keep=half)
    normalize_(half, _norm(up1), *d0, relu=True)
    d1 = _stage_pass(net, up2, half, side, ticker, stop=True)
    out = torch.empty(1, 3, hp, wp)

    def write(y: torch.Tensor, rows: slice, cols: slice) -> None:
        y = y.to("cpu", torch.float32)
        if net.config.photo_skip:
            y = y + padded[..., rows, cols].to("cpu", torch.float32)
        out[..., rows, cols] = y.clamp_(0, 1)

    to_output = nn.Sequential(up2, net.head)
    _stage_pass(net, to_output, half, side, ticker, fixed=[d1], sink=write)
    return out[..., :h, :w]
