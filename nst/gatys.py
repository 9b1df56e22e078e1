"""Gatys, Ecker & Bethge 2015, "A Neural Algorithm of Artistic Style": optimise the
pixels of an image so that its VGG features match a content photo and its Gram matrices
match one or more paintings.

Beyond the paper: coarse-to-fine optimisation (solve a small image first, upsample,
continue), so that a whole stylised picture exists after a few seconds and the full-size
stage starts from it, and colour preservation (Gatys et al. 2016: keep the photo's
colours, transfer luminance). Coarse-to-fine does not reach a
given full-size loss sooner than a plain single-scale run: VGG features depend on scale,
so each stage starts well above the loss the previous one ended at
(docs/gatys_schedules/README.md).

``gatys_steps`` is a generator that yields the current image every few iterations, so
a CLI can draw a progress bar and a web app can stream the picture as it forms; its
``on_evaluation`` hook sees every single loss evaluation (loss, time, image), which the
schedule study and the init benchmark record.

Starts (``init``): the photo, the photo with the painting's colours, white noise, any
image, or the output of a trained Johnson net of the same style (``init_model``), which
already sits near the optimum. This module never imports the zoo: callers resolve a style
name to a net (``zoo.load``) and pass the net.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from PIL import Image

from nst.color import blend, match_colors
from nst.color import preserve_colors as keep_photo_colors
from nst.errors import NSTError, UsageError
from nst.hardware import resolve_device
from nst.images import ImageSource, load_image, resize_long_side, to_pil, to_tensor
from nst.losses import LossWeights, PerceptualLoss, blended_gram_targets
from nst.precision import AUTOCAST_PRECISIONS, bf16_autocast, check
from nst.vgg import LossNetwork, load_loss_network

if TYPE_CHECKING:  # only for annotations: importing nst.johnson is deferred to its use
    from nst.johnson.model import TransformerNet

CONTENT_LAYERS = ("relu4_2",)
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "color-matched", "noise", "image", "johnson")
#: The loss network's precisions (nst.precision): "auto" is bf16 autocast on CPUs with bf16
#: arithmetic, where an iteration is faster and reaches the same loss, judged in fp32
#: (docs/gatys_precision/README.md); fp32 elsewhere, GPUs included (not measured there).
PRECISIONS = AUTOCAST_PRECISIONS
#: Smallest side of the coarsest stage: below it relu5_1 sees only a few pixels.
MIN_STAGE_SIDE = 64


@dataclass(frozen=True)
class Schedule:
    """How a run spends its iterations: the part of the defaults that
    docs/gatys_schedules/study.py measures (judged loss against wall seconds)."""

    iterations: int  # loss evaluations, all stages
    scales: int  # coarse-to-fine stages; 1 = single scale
    coarse_iterations: int | None  # per coarse stage; None = an equal share per stage
    history_size: int  # L-BFGS memory (pairs of steps and gradient changes)


#: The one place the default schedule lives: GatysConfig's defaults, and through them the
#: CLI's (nst/cli/gatys.py reads GatysConfig()), come from here. Change it from the
#: study's table (docs/gatys_schedules/results.md).
#: Chosen from the study (docs/gatys_schedules/README.md, with its numbers): a single
#: scale reaches the judged minimum well before 100 iterations, coarse-to-fine reached a
#: given loss no sooner, and a shorter L-BFGS history was no better.
DEFAULT_SCHEDULE = Schedule(iterations=100, scales=1, coarse_iterations=None, history_size=100)


@dataclass
class GatysConfig:
    """Every setting of a Gatys run; the defaults follow the paper where it has one."""

    size: int = 512  # long side of the output, pixels
    # loss evaluations (one forward + backward each), all stages
    iterations: int = DEFAULT_SCHEDULE.iterations
    optimizer: str = "lbfgs"  # "lbfgs" (the paper's) or "adam"
    # "content" (the photo), "color-matched" (the photo in the painting's colours),
    # "noise" (white noise, seeded), "image" (init_image), "johnson" (init_model's output)
    init: str = "content"
    init_image: ImageSource | None = None  # used when init == "image"
    init_model: TransformerNet | None = None  # a trained Johnson net, when init == "johnson"
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
    # coarse-to-fine stages (each half the size of the next); 1 = off
    scales: int = DEFAULT_SCHEDULE.scales
    # iterations of each coarse stage (the final stage gets the rest); None = equal shares
    coarse_iterations: int | None = DEFAULT_SCHEDULE.coarse_iterations
    history_size: int = DEFAULT_SCHEDULE.history_size  # L-BFGS memory
    seed: int = 0
    learning_rate: float = 0.02  # Adam only; pixels are in [0, 1]
    report_every: int = 10  # yield the image every N iterations
    # Stop at the first report after this many seconds (None: no limit), with the picture
    # as it is: a time budget (the app on a CPU) rather than a number of iterations.
    max_seconds: float | None = None
    vgg_weights: str | None = None  # path; None = env NST_VGG_WEIGHTS, then the Hub
    arch: str = "vgg16"  # downloaded when no file is given (pinned); a file decides itself
    pooling: str = "max"
    # The loss network's precision: "auto", "fp32" or "bf16" (autocast; the targets, the
    # image and L-BFGS stay fp32). See :func:`uses_bf16`.
    precision: str = "auto"

    def loss_weights(self) -> LossWeights:
        """The weights of this run's objective (nst.losses)."""
        return LossWeights(
            content=self.content_weight,
            style=self.style_weight,
            tv=self.tv_weight,
            style_layers=self.style_layer_weights,
        )

    def validate(self) -> None:
        """Refuse settings that cannot work, with the reason (a UsageError: the caller's
        settings, not the work, are wrong)."""
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"optimizer must be one of {OPTIMIZERS}, not '{self.optimizer}'.")
        if self.init not in INITS:
            raise UsageError(f"init must be one of {INITS}, not '{self.init}'.")
        if self.init == "image" and self.init_image is None:
            raise UsageError("init='image' needs an init_image.")
        if self.init == "johnson" and self.init_model is None:
            raise UsageError(
                "init='johnson' needs init_model: a trained Johnson net of the style "
                "(e.g. zoo.load('starry_night')). Styles without one: use init='content'."
            )
        check(self.precision, PRECISIONS)
        if self.size < MIN_STAGE_SIDE:
            raise UsageError(f"size must be at least {MIN_STAGE_SIDE} px, not {self.size}.")
        if isinstance(self.strength, bool) or not 0.0 <= self.strength <= 1.0:
            raise UsageError(f"strength must be in [0, 1] (1 = full style), not {self.strength!r}.")
        if self.iterations < 1:
            raise UsageError("iterations must be at least 1.")
        if self.scales < 1:
            raise UsageError("scales must be at least 1.")
        if self.coarse_iterations is not None and (
            self.coarse_iterations < 1
            or self.coarse_iterations * (self.scales - 1) >= self.iterations
        ):
            raise UsageError(
                f"coarse_iterations ({self.coarse_iterations}) times the {self.scales - 1} "
                f"coarse stages must leave the final stage some of the {self.iterations} "
                "iterations."
            )
        if self.history_size < 1:
            raise UsageError("history_size must be at least 1.")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise UsageError(f"max_seconds must be positive (or None), not {self.max_seconds}.")
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
    precision: str = "fp32"  # the loss network's: "fp32" or "bf16" (see uses_bf16)


@dataclass(frozen=True)
class Evaluation:
    """One loss evaluation (forward + backward), passed to ``on_evaluation`` as it happens.

    ``image`` is the image the loss was evaluated on: the optimised tensor itself,
    detached, which the next step overwrites, so clone it to keep it. Evaluation ``k``
    measures the image after ``k - 1`` updates of its stage's optimiser.
    """

    iteration: int  # 1-based count of evaluations, all stages
    stage: int  # 0-based coarse-to-fine stage
    size: tuple[int, int]  # (width, height) of the stage
    losses: dict[str, float]  # total, content, style, tv
    seconds: float  # since the start, time spent inside on_evaluation excluded
    image: torch.Tensor  # (1, 3, H, W), unclamped, on the run's device


def stage_sizes(size: int, short_side_ratio: float, scales: int) -> list[int]:
    """Long sides of the coarse-to-fine stages, smallest first, ending at ``size``."""
    sizes = [size]
    for _ in range(scales - 1):
        half = sizes[0] // 2
        if half * short_side_ratio < MIN_STAGE_SIDE:
            break
        sizes.insert(0, half)
    return sizes


def stage_budgets(
    iterations: int, sizes: Sequence[int], coarse_iterations: int | None = None
) -> list[int]:
    """Split the iteration budget across stages.

    A stage at half the size costs a quarter per iteration, so the coarse stages are
    cheap: by default each gets as many iterations as the final one, and about three
    quarters of the time goes to the full-size stage at three scales (100 + 100 + 100
    iterations cost 6 + 25 + 100 full-size iterations). ``coarse_iterations`` gives each
    coarse stage that many instead, and the final stage the rest.
    """
    if len(sizes) == 1:
        return [iterations]
    if coarse_iterations is not None:
        coarse = [coarse_iterations] * (len(sizes) - 1)
        return [*coarse, max(1, iterations - sum(coarse))]
    shares = [1.0] * len(sizes)
    total = sum(shares)
    budgets = [max(1, math.floor(iterations * s / total)) for s in shares]
    budgets[-1] = max(1, iterations - sum(budgets[:-1]))
    return budgets


def _initial_image(
    config: GatysConfig,
    content: torch.Tensor,
    content_full: Image.Image,
    painting: Image.Image,
    generator: torch.Generator,
) -> torch.Tensor:
    """The first stage's start, at the size of ``content`` (that stage's photo)."""
    if config.init == "content":
        return content.clone()
    if config.init == "color-matched":
        style = to_tensor(resize_long_side(painting, max(content.shape[-2:])), content.device)
        return match_colors(content, style)
    if config.init == "noise":
        noise = torch.rand(content.shape, generator=generator)
        return noise.to(content)
    if config.init == "johnson":
        return _resized(johnson_start(config.init_model, content_full, content.device), content)
    img = load_image(config.init_image, long_side=max(content.shape[-2:]))
    img = img.resize((content.shape[-1], content.shape[-2]), Image.Resampling.LANCZOS)
    return to_tensor(img, content.device)


def johnson_start(
    model: TransformerNet | None, photo: Image.Image, device: torch.device
) -> torch.Tensor:
    """A trained Johnson net's output for the full-size photo, as Gatys' start.

    Run at the output size, not at a coarse stage's: the net's strokes have a fixed size
    in pixels, so its output at the size the user asked for is the picture to refine.
    """
    from nst.johnson.stylize import stylize_tensor  # deferred: Gatys alone needs no Johnson

    if model is None:
        raise UsageError("init='johnson' needs init_model: a trained Johnson net.")
    out = stylize_tensor(model, to_tensor(photo), device=device)
    # Out of place: the net may hand back an inference-mode tensor, which the optimiser
    # could neither change nor take gradients of; clamp's result is an ordinary one.
    return out.clamp(0, 1).to(device)


def _resized(image: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if image.shape[-2:] == like.shape[-2:]:
        return image
    return F.interpolate(
        image, size=like.shape[-2:], mode="bicubic", align_corners=False, antialias=True
    ).clamp_(0, 1)


def _main_style(
    styles: Sequence[Image.Image], blend_weights: Sequence[float] | None
) -> Image.Image:
    """The painting whose colours a colour-matched start takes: the most weighted one."""
    if not blend_weights:
        return styles[0]
    return styles[max(range(len(styles)), key=lambda i: blend_weights[i])]


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
        history_size=config.history_size,
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
    on_evaluation: Callable[[Evaluation], None] | None = None,
) -> Iterator[GatysProgress]:
    """Run Gatys style transfer, yielding progress every ``config.report_every`` steps.

    The last report has ``done=True`` and the full-size result. ``should_stop`` is polled
    between reports; when it returns True the run ends early with the current image.
    ``on_evaluation`` is called after every loss evaluation with an :class:`Evaluation`;
    the time spent in it is left out of every ``seconds``, so a benchmark may record (and
    copy images) without slowing the clock it reads.
    """
    config = config or GatysConfig()
    config.validate()
    if not styles:
        raise NSTError("Give at least one style image.")
    clock = _Clock()
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
    weights = config.loss_weights()

    def report(image: torch.Tensor, content_t: torch.Tensor, stage: int, done: bool = False):
        return GatysProgress(
            iteration=done_iterations,
            iterations=config.iterations,
            image=_output(image, content_t, config),
            losses=parts,
            seconds=clock.seconds(),
            stage=stage,
            size=(content_t.shape[-1], content_t.shape[-2]),
            done=done,
            precision="bf16" if bf16 else "fp32",
        )

    ratio = min(content_full.size) / max(content_full.size)
    sizes = stage_sizes(config.size, ratio, config.scales)
    budgets = stage_budgets(config.iterations, sizes, config.coarse_iterations)
    bf16 = uses_bf16(config, device)
    done_iterations = 0
    image: torch.Tensor | None = None
    parts: dict[str, float] = {}
    stopped = False
    evaluations = 0

    def evaluated(image_t: torch.Tensor, losses: dict[str, torch.Tensor], stage: int) -> None:
        nonlocal evaluations
        evaluations += 1
        if on_evaluation is None:
            return  # no float() of the loss: on CUDA it would wait for the GPU
        record = Evaluation(
            iteration=evaluations,
            stage=stage,
            size=(image_t.shape[-1], image_t.shape[-2]),
            losses={k: float(v) for k, v in losses.items()},
            seconds=clock.seconds(),
            image=image_t.detach(),
        )
        with clock.paused():
            on_evaluation(record)

    for stage, (long_side, budget) in enumerate(zip(sizes, budgets, strict=True)):
        content_t = _to_device(resize_long_side(content_full, long_side), device)
        perceptual = _stage_loss(net, style_images, long_side, config, weights, device)
        targets = perceptual.content_targets(content_t)
        if image is None:
            painting = _main_style(style_images, config.style_blend)
            image = _initial_image(config, content_t, content_full, painting, generator)
        else:  # coarse-to-fine: the previous stage's result, upsampled, is the start
            image = upsample_with_detail(image.detach(), content_t)
        image = image.contiguous().requires_grad_(True)
        chunk = max(1, config.report_every)
        optimizer = _make_optimizer(config, image, chunk)
        stage_done = 0
        while stage_done < budget and not stopped:
            steps = min(chunk, budget - stage_done)
            parts = _run_chunk(
                optimizer,
                perceptual,
                image,
                targets,
                steps,
                config.optimizer,
                lambda x, losses, stage=stage: evaluated(x, losses, stage),
                bf16,
            )
            stage_done += steps
            done_iterations += steps
            stopped = bool(should_stop and should_stop()) or _out_of_time(config, clock)
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


def uses_bf16(config: GatysConfig, device: torch.device) -> bool:
    """Whether the loss network runs in bf16 autocast: :data:`PRECISIONS`' rule, decided
    by nst.precision."""
    return bf16_autocast(config.precision, device, on_gpus=False)


def _out_of_time(config: GatysConfig, clock: _Clock) -> bool:
    return config.max_seconds is not None and clock.seconds() >= config.max_seconds


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


class _Clock:
    """Seconds since the start, less the time spent in callers' hooks."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.excluded = 0.0

    def seconds(self) -> float:
        return time.perf_counter() - self.start - self.excluded

    @contextmanager
    def paused(self) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.excluded += time.perf_counter() - began


def _run_chunk(
    optimizer: torch.optim.Optimizer,
    perceptual: PerceptualLoss,
    image: torch.Tensor,
    targets: dict[str, torch.Tensor],
    steps: int,
    kind: str,
    evaluated: Callable[[torch.Tensor, dict[str, torch.Tensor]], None],
    bf16: bool = False,
) -> dict[str, float]:
    """``steps`` loss evaluations and updates; returns the last evaluation's losses.
    ``evaluated(image, losses)`` is told of each evaluation. With ``bf16`` only the loss
    network runs in bf16 autocast: the Gram matrices and losses are fp32, against fp32
    targets, and the image, its gradient and L-BFGS stay fp32."""
    last: dict[str, torch.Tensor] = {}
    network_dtype = torch.bfloat16 if bf16 else None

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss, parts = perceptual(image, targets, network_dtype)
        loss.backward()
        last.update(parts)
        evaluated(image, parts)
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
