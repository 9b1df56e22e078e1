"""The GPU work of the page, as ZeroGPU wants it; elsewhere ``@spaces.GPU`` is a no-op.

ZeroGPU lends a GPU for the length of one decorated call and runs that call in a worker
process, pickling its arguments into it. So these functions take only CPU-side, picklable
values (a style id, PIL images, a config) and load or move the network inside, and each
asks for as many seconds as its work needs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import spaces
from PIL import Image

import zoo
from nst.gatys import GatysConfig, GatysProgress, gatys_steps
from nst.johnson import stylize

JOHNSON_GPU_SECONDS = 30
#: Seconds asked of ZeroGPU per Gatys iteration per megapixel: generous for a VGG16 forward
#: and backward pass on a shared A100-class GPU, plus a fixed allowance for loading the VGG.
GATYS_GPU_SECONDS_PER_MP_ITERATION = 0.25
GATYS_GPU_LOAD_SECONDS = 20
GATYS_GPU_MAX_SECONDS = 300


@spaces.GPU(duration=JOHNSON_GPU_SECONDS)
def johnson_on_device(
    style_id: str,
    catalogue: str | None,
    content: Image.Image,
    size: int,
    strength: float,
    preserve_colors: bool,
    device: str,
    blend_style: str | None = None,
    blend: float = 0.0,
) -> Image.Image:
    """One Johnson pass of the style's network over ``content`` on ``device``; with
    ``blend_style``, of the blend that gives it ``blend`` of the mix (both styles of one
    multi-style network)."""
    if blend_style and blend > 0:
        shares = {style_id: 1.0 - blend, blend_style: blend}
        model = zoo.load_blend(shares, device=device, catalogue=catalogue, progress=False)
    else:
        model = zoo.load(style_id, device=device, catalogue=catalogue, progress=False)
    return stylize(
        model, content, size=size, strength=strength, preserve_colors=preserve_colors,
        device=device,
    )  # fmt: skip


def gatys_gpu_seconds(
    content: Image.Image,
    painting: Image.Image | list[Image.Image],
    config: GatysConfig,
    device: str,
) -> int:
    """The GPU time a Gatys run asks ZeroGPU for: its size times its iterations."""
    del painting, device  # the style images' size barely matters
    aspect = min(content.size) / max(content.size)
    megapixels = config.size * config.size * aspect / 1e6
    seconds = GATYS_GPU_LOAD_SECONDS + config.iterations * megapixels * (
        GATYS_GPU_SECONDS_PER_MP_ITERATION
    )
    return int(min(GATYS_GPU_MAX_SECONDS, math.ceil(seconds)))


@spaces.GPU(duration=gatys_gpu_seconds)
def gatys_on_device(
    content: Image.Image,
    painting: Image.Image | list[Image.Image],
    config: GatysConfig,
    device: str,
) -> Iterator[GatysProgress]:
    """Gatys' optimisation on ``device``, one progress report at a time; ``painting`` may
    be several, mixed by ``config.style_blend``."""
    paintings = painting if isinstance(painting, list) else [painting]
    yield from gatys_steps(content, paintings, config, device=device)


def live_device(device: str) -> str:
    """Where webcam frames run: on ZeroGPU the CPU, since a GPU lease per frame would cost
    more than the frame; a dedicated GPU Space runs them on its GPU."""
    return "cpu" if spaces.config.Config.zero_gpu else device
