"""Gatys, Ecker & Bethge 2015, "A Neural Algorithm of Artistic Style": optimise the
pixels of an image so that its VGG features match a content photo and its Gram matrices
match one or more paintings.

Beyond the paper: coarse-to-fine optimisation (solve a small image first, upsample,
continue), so that a whole stylised picture exists after a few seconds and the full-size
stage starts from it, and colour preservation (Gatys et al. 2016: keep the photo's
colours, transfer luminance). Coarse-to-fine does not reach a
given full-size loss sooner than a plain single-scale run: VGG features depend on scale,
so each stage starts well above the loss the previous one ended at
(benchmarks/gatys_convergence_study.py).

``gatys_steps`` is a generator that yields the current image every few iterations, so
a CLI can draw a progress bar and a web app can stream the picture as it forms.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from PIL import Image

from nst.color import blend
from nst.color import preserve_colors as keep_photo_colors
from nst.errors import NSTError, UsageError
from nst.hardware import resolve_device
from nst.images import ImageSource, load_image, resize_long_side, to_pil, to_tensor
from nst.losses import LossWeights, PerceptualLoss, blended_gram_targets
from nst.vgg import LossNetwork, load_loss_network

CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "image")
#: Smallest side of the coarsest stage: below it relu5_1 sees only a few pixels.
MIN_STAGE_SIDE = 64


@dataclass
class GatysConfig:
    """Every setting of a Gatys run; the defaults follow the paper where it has one."""

    size: int = 512  # long side of the output, pixels
    iterations: int = 300  # loss evaluations (one forward + backward each), all stages
    optimizer: str = "lbfgs"  # "lbfgs" (the paper's) or "adam"
    init: str = "content"  # "content", "noise" (white noise, seeded) or "image"
    init_image: ImageSource | None = None  # used when init == "image"
    content_layers: Sequence[str] = CONTENT_LAYERS
    style_layers: Sequence[str] = STYLE_LAYERS
    content_weight: float = 1.0
    style_weight: float = 10.0  # normalised losses (nst/losses.py); 20 loses the photo
    tv_weight: float = 0.0
    style_layer_weights: dict[str, float] | None = None  # default: equal
    style_scale: float = 1.0  # style image long side = size * style_scale
    style_blend: Sequence[float] | None = None  # one weight per style image
    preserve_colors: bool = False  # keep the photo's colours, take the style's luminance
    strength: float = 1.0  # 1 = the result, 0 = the photo: mixed in by nst.color.blend
    scales: int = 3  # coarse-to-fine stages (each half the size of the next); 1 = off
    seed: int = 0
    learning_rate: float = 0.02  # Adam only; pixels are in [0, 1]
    report_every: int = 10  # yield the image every N iterations
    vgg_weights: str | None = None  # path; None = env NST_VGG_WEIGHTS, then the Hub
    arch: str = "vgg19"  # preferred when downloading; a weights file decides itself
    pooling: str = "max"

    def validate(self) -> None:
        """Refuse settings that cannot work, with the reason (a UsageError: the caller's
        settings, not the work, are wrong)."""
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"optimizer must be one of {OPTIMIZERS}, not '{self.optimizer}'.")
        if self.init not in INITS:
            raise UsageError(f"init must be one of {INITS}, not '{self.init}'.")
        if self.init == "image" and self.init_image is None:
            raise UsageError("init='image' needs an init_image.")
        if self.size < MIN_STAGE_SIDE:
            raise UsageError(f"size must be at least {MIN_STAGE_SIDE} px, not {self.size}.")
        if isinstance(self.strength, bool) or not 0.0 <= self.strength <= 1.0:
            raise UsageError(f"strength must be in [0, 1] (1 = full style), not {self.strength!r}.")
        if self.iterations < 1:
            raise UsageError("iterations must be at least 1.")
        if self.scales < 1:
            raise UsageError("scales must be at least 1.")
        if self.style_scale <= 0:
            raise UsageError("style_scale must be positive.")
        if min(self.content_weight, self.style_weight, self.tv_weight) < 0:
            raise UsageError("loss weights must not be negative.")


@dataclass
class GatysProgress:
    """One report from a running optimisation."""

    iteration: int  # evaluations done so far, all stages
    iterations: int  # the budget
    image: Image.Image  # the current image (at the current stage's size)
    losses: dict[str, float] = field(default_factory=dict)  # total, content, style, tv
    seconds: float = 0.0  # since the start, loading included
    stage: int = 0  # 0-based coarse-to-fine stage
    size: tuple[int, int] = (0, 0)  # (width, height) of the current stage
    done: bool = False


def stage_sizes(size: int, short_side_ratio: float, scales: int) -> list[int]:
    """Long sides of the coarse-to-fine stages, smallest first, ending at ``size``."""
    sizes = [size]
    for _ in range(scales - 1):
        half = sizes[0] // 2
        if half * short_side_ratio < MIN_STAGE_SIDE:
            break
        sizes.insert(0, half)
    return sizes


def stage_budgets(iterations: int, sizes: Sequence[int]) -> list[int]:
    """Split the iteration budget across stages.

    A stage at half the size costs a quarter per iteration, so the coarse stages are
    cheap: each gets as many iterations as the final one, and about three quarters of
    the time goes to the full-size stage at three scales (100 + 100 + 100 iterations
    cost 6 + 25 + 100 full-size iterations).
    """
    if len(sizes) == 1:
        return [iterations]
    shares = [1.0] * len(sizes)
    total = sum(shares)
    budgets = [max(1, math.floor(iterations * s / total)) for s in shares]
    budgets[-1] = max(1, iterations - sum(budgets[:-1]))
    return budgets


def _initial_image(
    config: GatysConfig, content: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    if config.init == "content":
        return content.clone()
    if config.init == "noise":
        noise = torch.rand(content.shape, generator=generator)
        return noise.to(content)
    img = load_image(config.init_image, long_side=max(content.shape[-2:]))
    img = img.resize((content.shape[-1], content.shape[-2]), Image.Resampling.LANCZOS)
    return to_tensor(img, content.device)


def _make_optimizer(config: GatysConfig, image: torch.Tensor, chunk: int) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam([image], lr=config.learning_rate)
    # No line search, as in the paper's reference code: one evaluation per iteration,
    # so "iterations" is also the number of forward/backward passes.
    return torch.optim.LBFGS(
        [image],
        lr=1.0,
        max_iter=chunk,
        max_eval=chunk,
        history_size=100,
        tolerance_grad=-1.0,
        tolerance_change=-1.0,
    )


def _as_image(source: ImageSource | Image.Image | torch.Tensor) -> Image.Image | ImageSource:
    return to_pil(source) if isinstance(source, torch.Tensor) else source


def gatys_steps(
    content: ImageSource | torch.Tensor,
    styles: Sequence[ImageSource | torch.Tensor],
    config: GatysConfig | None = None,
    device: torch.device | str | None = None,
    should_stop: Callable[[], bool] | None = None,
    loss_net: LossNetwork | None = None,
) -> Iterator[GatysProgress]:
    """Run Gatys style transfer, yielding progress every ``config.report_every`` steps.

    The last report has ``done=True`` and the full-size result. ``should_stop`` is polled
    between reports; when it returns True the run ends early with the current image.
    """
    config = config or GatysConfig()
    config.validate()
    if not styles:
        raise NSTError("Give at least one style image.")
    start = time.perf_counter()
    device = resolve_device(device)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)

    content_full = load_image(_as_image(content), long_side=config.size)
    style_images = [load_image(_as_image(s)) for s in styles]
    layers = list(dict.fromkeys([*config.content_layers, *config.style_layers]))
    net = loss_net or load_loss_network(
        layers, weights=config.vgg_weights, arch=config.arch, device=device, pooling=config.pooling
    )
    # channels_last weights make every conv output channels_last, the faster layout for
    # oneDNN and cuDNN; the optimised image itself stays contiguous for L-BFGS.
    net = net.to(device=device, memory_format=torch.channels_last)
    weights = LossWeights(
        content=config.content_weight,
        style=config.style_weight,
        tv=config.tv_weight,
        style_layers=config.style_layer_weights,
    )

    def report(image: torch.Tensor, content_t: torch.Tensor, stage: int, done: bool = False):
        return GatysProgress(
            iteration=done_iterations,
            iterations=config.iterations,
            image=_output(image, content_t, config),
            losses=parts,
            seconds=time.perf_counter() - start,
            stage=stage,
            size=(content_t.shape[-1], content_t.shape[-2]),
            done=done,
        )

    ratio = min(content_full.size) / max(content_full.size)
    sizes = stage_sizes(config.size, ratio, config.scales)
    budgets = stage_budgets(config.iterations, sizes)
    done_iterations = 0
    image: torch.Tensor | None = None
    parts: dict[str, float] = {}
    stopped = False
    for stage, (long_side, budget) in enumerate(zip(sizes, budgets, strict=True)):
        content_t = _to_device(resize_long_side(content_full, long_side), device)
        perceptual = _stage_loss(net, style_images, long_side, config, weights, device)
        targets = perceptual.content_targets(content_t)
        if image is None:
            image = _initial_image(config, content_t, generator)
        else:  # coarse-to-fine: the previous stage's result, upsampled, is the start
            image = upsample_with_detail(image.detach(), content_t)
        image = image.contiguous().requires_grad_(True)
        chunk = max(1, config.report_every)
        optimizer = _make_optimizer(config, image, chunk)
        stage_done = 0
        while stage_done < budget and not stopped:
            steps = min(chunk, budget - stage_done)
            parts = _run_chunk(optimizer, perceptual, image, targets, steps, config.optimizer)
            stage_done += steps
            done_iterations += steps
            stopped = bool(should_stop and should_stop())
            if not ((stage == len(sizes) - 1 and stage_done >= budget) or stopped):
                yield report(image, content_t, stage)
        if stopped:
            break
    assert image is not None
    final_content = _to_device(content_full, device)
    if image.shape[-2:] != final_content.shape[-2:]:  # stopped during a coarse stage
        image = F.interpolate(
            image.detach(), size=final_content.shape[-2:], mode="bicubic", align_corners=False
        )
    yield report(image, final_content, len(sizes) - 1, done=True)


def _stage_loss(
    net: LossNetwork,
    style_images: Sequence[Image.Image],
    long_side: int,
    config: GatysConfig,
    weights: LossWeights,
    device: torch.device,
) -> PerceptualLoss:
    """The loss of one stage: the paintings' Gram targets at this stage's size."""
    style_long = max(MIN_STAGE_SIDE, round(long_side * config.style_scale))
    style_ts = [_to_device(resize_long_side(s, style_long), device) for s in style_images]
    grams = blended_gram_targets(net, style_ts, list(config.style_layers), config.style_blend)
    return PerceptualLoss(net, config.content_layers, config.style_layers, grams, weights)


def upsample_with_detail(image: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Upsample a coarse result to the content's size and add back the photo's fine detail.

    A plain upsampled image is blurred: the finest style layers (relu1_1, relu2_1) see no
    texture at all and the full-size stage starts far from its optimum. The photo's own
    high frequencies (the content minus its down-and-up-sampled self) restore edges and
    texture energy, a Laplacian-pyramid step.
    """
    size = content.shape[-2:]
    up = F.interpolate(image, size=size, mode="bicubic", align_corners=False)
    blurred = F.interpolate(
        F.interpolate(
            content, size=image.shape[-2:], mode="bicubic", align_corners=False, antialias=True
        ),
        size=size,
        mode="bicubic",
        align_corners=False,
    )
    return (up + content - blurred).clamp_(0, 1)


def _to_device(img: Image.Image, device: torch.device) -> torch.Tensor:
    return to_tensor(img, device)


def _run_chunk(
    optimizer: torch.optim.Optimizer,
    perceptual: PerceptualLoss,
    image: torch.Tensor,
    targets: dict[str, torch.Tensor],
    steps: int,
    kind: str,
) -> dict[str, float]:
    """``steps`` loss evaluations and updates; returns the last evaluation's losses."""
    last: dict[str, torch.Tensor] = {}

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss, parts = perceptual(image, targets)
        loss.backward()
        last.update(parts)
        return loss

    if kind == "lbfgs":
        for group in optimizer.param_groups:  # the last chunk of a stage may be shorter
            group["max_iter"] = group["max_eval"] = steps
        optimizer.step(closure)
    else:
        for _ in range(steps):
            optimizer.step(closure)
            with torch.no_grad():
                image.clamp_(0, 1)  # Adam's steps may leave the valid range
    losses = {k: float(v) for k, v in last.items()}
    if not math.isfinite(losses.get("total", 0.0)):
        raise NSTError(
            "The loss became NaN or infinite. Lower the style weight or the learning rate, "
            "or use --optimizer lbfgs."
        )
    return losses


def _output(image: torch.Tensor, content: torch.Tensor, config: GatysConfig) -> Image.Image:
    out = image.detach().clamp(0, 1)
    if config.preserve_colors:
        out = keep_photo_colors(out, content)
    if config.strength < 1.0:
        out = blend(out, content, config.strength)
    return to_pil(out)


def gatys(
    content: ImageSource | torch.Tensor,
    styles: Sequence[ImageSource | torch.Tensor],
    config: GatysConfig | None = None,
    device: torch.device | str | None = None,
) -> Image.Image:
    """Run to the end and return the stylised image."""
    # Keep only the last report: earlier ones hold intermediate images.
    (final,) = deque(gatys_steps(content, styles, config, device), maxlen=1)
    return final.image
