"""Stylise a photo with a trained Johnson transformer net: any size, CPU or CUDA.

Images over a memory budget are run in windows by :mod:`nst.johnson.tiling`, whose
output equals the untiled one (to float rounding). On the CPU in fp32, an untiled image
can run through an optional engine instead (:mod:`nst.johnson.engines`: OpenVINO or
onnxruntime on the net's ONNX export), faster and with the same output.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from nst import color
from nst.errors import NSTError, UsageError
from nst.hardware import resolve_device
from nst.images import ImageSource, load_image, resize_long_side, to_pil, to_tensor
from nst.johnson import engines
from nst.johnson.fast import NormControl, fast_forward
from nst.johnson.model import GRID, StyleChoice, TransformerNet, bake_style, load_transformer
from nst.johnson.tiling import Progress, tiled_forward
from nst.precision import DTYPES, inference_precision

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
    engine: str = "torch"  # "torch" | "openvino" | "onnxruntime" (untiled CPU images only)


# ----------------------------------------------------------------------------- inputs


def _resolve_model(model: TransformerNet | str | os.PathLike) -> TransformerNet:
    if isinstance(model, TransformerNet):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_transformer(model)
    raise NSTError(f"model must be a TransformerNet or a model folder, not {type(model).__name__}.")


def _content_tensor(image: ImageSource | torch.Tensor, size: int | None) -> torch.Tensor:
    """Any accepted image form -> (1, 3, H, W) float32 in [0, 1] on the CPU."""
    if size is not None and (not isinstance(size, int) or size < 16):
        raise UsageError(f"size is the output's long side in pixels (16 or more), not {size!r}.")
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


def bytes_per_pixel(model: TransformerNet, precision: str) -> int:
    """Peak activation bytes per input pixel of one pass (measured, with headroom).

    The peak is the last upsampling stage: the upsampled 2w-channel map, its reflection
    padded copy and the w-channel conv output coexist at full resolution (5w channels),
    plus oneDNN's working buffers; 8w channels covers what we measured on CPU.
    """
    return 8 * model.channels(1) * torch.finfo(DTYPES[precision]).bits // 8


def _budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    return CPU_BUDGET_BYTES


def _round_to_grid(n: float) -> int:
    return max(GRID, int(n) // GRID * GRID)


def _tile_side(
    model: TransformerNet,
    height: int,
    width: int,
    dev: torch.device,
    prec: str,
    tile: int | str | None,
) -> int | None:
    """The window side a run of this size uses, or None for one pass."""
    max_pixels = _budget(dev) // bytes_per_pixel(model, prec)
    if tile == "auto":
        if height * width <= max_pixels:
            return None
        side = _round_to_grid(math.sqrt(max_pixels))
    elif tile is None or tile == 0:
        return None
    elif isinstance(tile, int) and not isinstance(tile, bool) and tile >= MIN_TILE:
        side = _round_to_grid(tile)
    else:
        raise UsageError(
            f"tile must be 'auto', 0/None (never tile) or a side of at least {MIN_TILE} px, "
            f"not {tile!r}."
        )
    return None if height <= side and width <= side else side


def _check_engine_fits(engine: str, dev: torch.device, prec: str) -> None:
    """An engine asked for by name runs on the CPU in its own precisions; refuse anything
    else clearly."""
    if dev.type != "cpu":
        raise UsageError(f"The {engine} engine runs on the CPU; pass device 'cpu' (--device cpu).")
    runs = engines.PRECISIONS[engine]
    if prec not in runs:
        only = "fp32 only" if runs == ("fp32",) else " and ".join(runs)
        raise UsageError(
            f"The {engine} engine runs {only}; use precision 'auto' or one of those, "
            f"or engine 'torch' for {prec}."
        )
    engines.require(engine)


def plan(
    model: TransformerNet,
    height: int,
    width: int,
    *,
    device: torch.device | str | None = None,
    tile: int | str | None = "auto",
    precision: str = "auto",
    engine: str | None = None,
) -> Plan:
    """Decide device, precision, tiling and engine for an image of ``height`` x ``width``.

    ``engine``: "auto" (None: ``NST_ENGINE``, default "auto") runs an untiled CPU image
    through the first installed of OpenVINO and onnxruntime that runs the precision, else
    PyTorch; a named engine is used for every untiled image. A tiled image always runs on
    PyTorch, whose tiling keeps instance norm's whole-image statistics exact. Precision
    "auto" is the engine's fastest on this CPU (:func:`nst.precision.inference_precision`)."""
    asked = engines.check_engine(engine)
    if asked in engines.AUTO_ORDER and device in (None, "auto"):
        device = "cpu"  # a CPU engine asked for by name: "auto" must not pick a GPU
    dev = resolve_device(device)
    candidate = asked
    if asked == "auto":
        candidate = engines.auto_engine() if dev.type == "cpu" else "torch"
    prec = inference_precision(precision, dev, engines.PRECISIONS[candidate])
    if asked in engines.AUTO_ORDER:
        _check_engine_fits(asked, dev, prec)
    elif prec not in engines.PRECISIONS[candidate]:
        candidate = "torch"  # "auto" with a precision the engine does not run (fp16)
    side = _tile_side(model, height, width, dev, prec, tile)
    return Plan(dev, prec, side, "torch" if side is not None else candidate)


# ----------------------------------------------------------------------------- running


def _prepare(model: TransformerNet, device: torch.device, precision: str) -> TransformerNet:
    """The net as a run needs it: eval mode, on ``device``, in the run's dtype, channels-last
    (faster convs on CPU and on CUDA tensor cores). A net already placed so (as
    ``zoo.load`` places them) is used as it is; any other is copied, so the caller's
    model is never changed."""
    dtype = DTYPES[precision]
    if is_placed(model, device, dtype):
        return model
    net = copy.deepcopy(model).eval()
    return net.to(device=device, dtype=dtype, memory_format=torch.channels_last)


def is_placed(model: TransformerNet, device: torch.device, dtype: torch.dtype) -> bool:
    """True when ``model`` is in eval mode with every tensor on ``device`` in ``dtype``,
    conv weights channels-last: what inference can use without a copy."""
    if model.training:
        return False
    for tensor in model.state_dict().values():
        on_device = tensor.device.type == device.type and (
            device.index is None or tensor.device.index == device.index
        )
        if not on_device or tensor.dtype != dtype:
            return False
        if tensor.dim() == 4 and not tensor.is_contiguous(memory_format=torch.channels_last):
            return False
    return True


def _run_net(
    net: TransformerNet, x: torch.Tensor, control: NormControl | None = None
) -> torch.Tensor:
    """One pass of a CPU float32 (1, 3, h, w) tensor; the result comes back the same way."""
    param = next(net.parameters())
    x = x.to(param.device, param.dtype).contiguous(memory_format=torch.channels_last)
    return fast_forward(net, x, control).to("cpu", torch.float32).contiguous()


#: ``runner(content, progress)``: the net's output for one CPU (1, 3, H, W) image.
Runner = Callable[[torch.Tensor, Progress | None], torch.Tensor]


def _one_pass(run: Callable[[torch.Tensor], torch.Tensor]) -> Runner:
    def runner(content: torch.Tensor, progress: Progress | None = None) -> torch.Tensor:
        if progress:
            progress(0, 1)
        y = run(content)
        if progress:
            progress(1, 1)
        return y

    return runner


def prepare_runner(model: TransformerNet, p: Plan, style: StyleChoice | None = None) -> Runner:
    """What runs images of the size ``p`` was planned for: made once, used for every
    frame of a video (the net is placed or the engine compiled only once).

    ``style``: which style of a multi-style net paints, or a blend of them (see
    :data:`nst.johnson.model.StyleChoice`); None is the net's selected style (see
    ``TransformerNet.with_style``). An engine runs the net's one exported graph with the
    style frozen in (see :func:`nst.johnson.engines.get_engine`).
    """
    mix = model.selected_style if style is None else model.style_weights(style)
    if p.engine != "torch":
        return _one_pass(engines.get_engine(model, p.engine, p.precision, mix).run)
    net = _prepare(model, p.device, p.precision)
    if model.config.num_styles > 1:
        net = bake_style(net, mix)  # a one-style view: every torch path runs it as it is

    def run(content: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return _run_net(net, content)

    if p.tile is None:
        return _one_pass(run)
    side = p.tile

    def tiled(content: torch.Tensor, progress: Progress | None = None) -> torch.Tensor:
        with torch.inference_mode():
            return tiled_forward(net, content, side, progress)

    return tiled


#: ``stylise(content, progress)``: the finished picture (the net's output with strength and
#: colours applied) for one CPU (1, 3, H, W) image in [0, 1].
Stylizer = Callable[[torch.Tensor, Progress | None], torch.Tensor]


def prepare_stylizer(
    model: TransformerNet,
    height: int,
    width: int,
    *,
    strength: float = 1.0,
    preserve_colors: bool = False,
    style: StyleChoice | None = None,
    **run: Any,
) -> Stylizer:
    """What stylises pictures of ``height`` x ``width`` as :func:`stylize` does, planned
    and placed once (for every frame of a video). ``run``: ``device``, ``tile``,
    ``precision`` and ``engine``, as for :func:`plan`."""
    check_strength(strength)
    if strength == 0.0:  # nothing of the style survives: no network at all

        def photo(content: torch.Tensor, progress: Progress | None = None) -> torch.Tensor:
            return content

        return photo
    runner = prepare_runner(model, plan(model, height, width, **run), style)

    def stylise(content: torch.Tensor, progress: Progress | None = None) -> torch.Tensor:
        return finish(runner(content, progress), content, strength, preserve_colors)

    return stylise


def stylize_tensor(
    model: TransformerNet,
    content: torch.Tensor,
    *,
    device: torch.device | str | None = None,
    tile: int | str | None = "auto",
    precision: str = "auto",
    engine: str | None = None,
    progress: Progress | None = None,
    style: StyleChoice | None = None,
) -> torch.Tensor:
    """The network's output for a CPU (1, 3, H, W) tensor in [0, 1], tiled when needed."""
    h, w = content.shape[-2:]
    p = plan(model, h, w, device=device, tile=tile, precision=precision, engine=engine)
    return prepare_runner(model, p, style)(content, progress)


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
    engine: str | None = None,
    progress: Progress | None = None,
    style: StyleChoice | None = None,
) -> Image.Image:
    """Stylise ``image`` with a transformer net and return an RGB PIL image.

    ``style``: for a multi-style net, a style id or index, or a blend such as
    ``{"starry_night": 0.7, "the_scream": 0.3}`` (None: the net's selected style).

    ``image``: a path, bytes, PIL image or (1, 3, H, W) tensor in [0, 1]. ``size``: the
    output's long side (None keeps the image's own size). ``strength``: 1 the full style,
    0 the photo. ``preserve_colors``: the stylised luminance with the photo's colours.
    ``tile``: "auto" tiles only above a memory budget, an int forces windows of that side,
    0/None never tiles. ``precision``: "auto" (fastest mode that keeps quality on the
    device), "fp32", "bf16" or "fp16". ``engine``: "auto", "torch", "openvino" or
    "onnxruntime" (see :func:`plan`). ``progress(done_tiles, total_tiles)`` is called
    as tiles finish.
    """
    check_strength(strength)
    net = _resolve_model(model)
    content = _content_tensor(image, size)
    stylise = prepare_stylizer(
        net,
        *content.shape[-2:],
        strength=strength,
        preserve_colors=preserve_colors,
        style=style,
        device=device,
        tile=tile,
        precision=precision,
        engine=engine,
    )
    return to_pil(stylise(content, progress))


def check_strength(strength: float) -> None:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)):
        raise UsageError(f"strength must be a number in [0, 1], not {strength!r}.")
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"strength must be in [0, 1] (1 = full style, 0 = photo), not {strength}.")


def finish(
    stylised: torch.Tensor, content: torch.Tensor, strength: float, preserve_colors: bool
) -> torch.Tensor:
    """The net's output with the options applied: the photo's colours, then the blend."""
    y = _preserve(stylised, content) if preserve_colors else stylised
    return color.blend(y, content, float(strength))


def _preserve(stylised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Colour preservation in bands of rows, so a 4K image needs no full-size temporaries."""
    out = torch.empty_like(stylised)
    band = 512
    for top in range(0, stylised.shape[-2], band):
        rows = slice(top, top + band)
        out[..., rows, :] = color.preserve_colors(stylised[..., rows, :], content[..., rows, :])
    return out
