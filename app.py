"""The demo: one photo, Johnson et al. 2016 and Gatys et al. 2015 side by side.

Wiring only. The algorithms live in ``nst`` (``nst.johnson.stylize`` runs a trained
Johnson network, ``nst.gatys.gatys_steps`` optimises pixels step by step), the trained
styles in ``zoo``. This file builds the page, checks what a person sends, turns library
errors (:class:`NSTError`) into messages on the page, and sets the queue up so that a
slow Gatys run never starves the fast Johnson one.

``create_app(...) -> gr.Blocks`` builds the page (tests point it at their own catalogue
and settings); ``demo`` is the app that ``python app.py`` and Hugging Face Spaces run.
"""

from __future__ import annotations

# ``spaces`` must come before torch: on ZeroGPU it patches CUDA initialisation. Elsewhere
# its ``@spaces.GPU`` is a no-op, so the same file runs on a laptop, a GPU box and a Space.
import spaces

# isort: split

import base64
import binascii
import math
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from gradio.utils import get_upload_folder
from PIL import Image

import zoo
from nst.errors import NSTError
from nst.gatys import INITS as GATYS_INITS
from nst.gatys import OPTIMIZERS, GatysConfig, gatys_steps
from nst.hardware import native_bf16_cpu
from nst.images import load_image, png_bytes
from nst.johnson import stylize, stylize_tensor
from zoo.catalogue import catalogue_path

ROOT = Path(__file__).resolve().parent
#: The page offers no init-image upload, so no "image" start.
INITS = tuple(init for init in GATYS_INITS if init != "image")
#: What an uploaded painting (no trained net) starts from when "johnson" was chosen.
NO_NET_INIT = "color-matched"
UPLOADED_STYLE = "your style image"
PREVIEW_SECONDS = 0.3  # the Gatys column refreshes at most this often


#: The Gatys column's default size on CPUs with bf16 arithmetic (AVX-512 BF16, AMX).
BF16_CPU_GATYS_SIZE = 512


@dataclass(frozen=True)
class AppConfig:
    """Everything the page and its queue are built from; see :func:`default_config`."""

    catalogue: Path | None = None  # a zoo catalogue.json; None = the zoo's own
    device: str = "cpu"
    johnson_size: int = 1024  # default output long side (px) of the Johnson column
    # CPU defaults: a finished 384 px picture within 45 s of pressing Stylise on a 2-core
    # CPU (docs/app_gatys.md): one scale, and the run ends at gatys_seconds with the
    # picture as it is then, whatever the iterations slider says.
    gatys_size: int = 384  # default output long side (px) of the Gatys column
    gatys_iterations: int = 200  # default iterations (loss evaluations), an upper bound
    gatys_seconds: float | None = 40.0  # time budget of one Gatys run; None = no limit
    gatys_scales: int = 1  # a time budget must not end in a coarse stage
    # The start. "content": from the photo, Gatys reaches a given loss sooner than from the
    # zoo nets' output (benchmarks/bench_gatys_init.py); "johnson" is one click away.
    gatys_init: str = "content"
    gatys_report_every: int = 1  # iterations between progress reports (the stop granularity)
    max_size: int = 2048  # the largest long side a person may ask for
    max_gatys_size: int = 768
    max_iterations: int = 1000
    johnson_concurrency: int = 2  # Johnson runs at once: one decodes/encodes, one computes
    live_size: int = 320  # default long side (px) of the live webcam frames
    max_live_size: int = 640
    live_concurrency: int = 1  # webcam streams at once: each wants the whole CPU
    live_seconds: int = 120  # one stream's time before it must be restarted (fair turns)
    gatys_concurrency: int = 1  # Gatys runs at once: one on a CPU, it owns the machine
    queue_size: int = 64  # requests waiting at most; more get "queue full" at once
    max_file_size: str = "20mb"  # uploads larger than this are refused by the server
    vgg_weights: str | None = None  # None: NST_VGG_WEIGHTS, then the Hub
    examples: tuple[tuple[str, str], ...] = ()  # (photo path, style id) rows
    gatys_overrides: dict[str, Any] = field(default_factory=dict)  # extra GatysConfig fields


def _has_cuda() -> bool:
    return torch.cuda.is_available()


def _example_photos() -> list[Path]:
    """Offline example photos: ``examples/`` beside this file, else ../shared (dev checkouts)."""
    for folder in (ROOT / "examples", ROOT.parent / "shared" / "data" / "content"):
        if folder.is_dir():
            photos = sorted(
                p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
            )
            if photos:
                return photos
    return []


def default_config(catalogue: Path | None = None) -> AppConfig:
    """Settings for this machine: on a 2-core CPU Gatys must finish in under a minute."""
    if _has_cuda():
        config = AppConfig(
            device="cuda",
            gatys_size=512,
            gatys_iterations=300,
            gatys_seconds=None,
            gatys_scales=1,
            gatys_report_every=5,
            max_size=4096,
            max_gatys_size=1024,
            johnson_concurrency=4,
            gatys_concurrency=1,
            live_concurrency=2,
        )
    elif native_bf16_cpu():
        # Gatys runs its loss network in bf16 here, in about half the fp32 time at the same
        # loss (docs/gatys_precision.md): the same budget finishes a 512 px picture.
        config = AppConfig(gatys_size=BF16_CPU_GATYS_SIZE)
    else:
        config = AppConfig()
    config = replace(config, catalogue=catalogue)
    styles = _safe_list_styles(catalogue)[0]
    photos = _example_photos()
    if styles and photos:
        wanted = ("golden_gate", "dog", "cat_chelsea", "astronaut")
        chosen = [p for p in photos if p.stem in wanted] or photos[:4]
        # Each photo with a different style, so the examples show the zoo's range.
        rows = tuple((str(p), styles[i % len(styles)].id) for i, p in enumerate(chosen))
        config = replace(config, examples=rows)
    return config


# ---------------------------------------------------------------- styles (zoo)


def _safe_list_styles(catalogue: Path | None) -> tuple[list[Any], str | None]:
    """The catalogue's styles, or none and a message saying why (the page still works)."""
    try:
        styles = zoo.list_styles(catalogue)
    except NSTError as exc:
        return [], f"The style catalogue could not be read: {exc}"
    if not styles:
        where = catalogue_path(catalogue)
        return [], (
            f"No trained styles are installed ({where} lists none), so the Johnson column "
            "has nothing to run. Upload a style image below: Gatys works with any painting. "
            "Train a Johnson model with the `train` package to add one."
        )
    return list(styles), None


# ---------------------------------------------------------------- input checks


def _image_source(value: Any) -> str | bytes | Image.Image:
    """What an Image input sends (unprocessed, so errors stay ours) -> a load_image source.

    The server has already checked that uploaded paths lie in its own upload cache.
    """
    if isinstance(value, (str, Image.Image)):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        url = value.get("url") or ""
        if value.get("path"):
            return str(value["path"])
        if url.startswith("data:"):  # a pasted or webcam image sent inline
            try:
                return base64.b64decode(url.split(",", 1)[1], validate=False)
            except (IndexError, binascii.Error) as exc:
                raise gr.Error("The image data sent by the browser is damaged.") from exc
    raise gr.Error("That is not an image upload. Send a JPEG, PNG or WebP file.")


def _upload_name(value: Any) -> str | None:
    """The file name the visitor sent (never the server's path), for messages."""
    if isinstance(value, dict):
        name = value.get("orig_name") or Path(str(value.get("path") or "")).name
        return name or None
    if isinstance(value, (str, Path)):
        return Path(value).name
    return None


def _load(value: Any, kind: str) -> Image.Image:
    if value is None:
        raise gr.Error(f"No {kind} yet: upload one, take one with the webcam or paste one.")
    try:
        return load_image(_image_source(value), name=_upload_name(value))
    except NSTError as exc:
        raise gr.Error(f"The {kind} could not be used. {exc}") from exc


def _number(value: Any, name: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise gr.Error(f"{name} must be a number between {low:g} and {high:g}.") from exc
    if not low <= number <= high:
        raise gr.Error(f"{name} must be between {low:g} and {high:g}, not {number:g}.")
    return number


def _choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise gr.Error(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
    return str(value)


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


# ---------------------------------------------------------------- the two methods


class StyleTransferDemo:
    """The handlers behind the page; one instance per app, shared by every visitor."""

    def __init__(self, config: AppConfig):
        self.config = config
        self.styles, self.catalogue_message = _safe_list_styles(config.catalogue)
        self.by_id = {s.id: s for s in self.styles}

    def _style_entry(self, style: Any) -> Any:
        if style in (None, ""):
            raise gr.Error("Pick a style in the gallery or upload your own style image.")
        entry = self.by_id.get(style)
        if entry is None:
            known = ", ".join(self.by_id) or "none are installed"
            raise gr.Error(f"There is no style '{style}'. Available styles: {known}.")
        return entry

    def _check_model(self, entry: Any) -> Any:
        """Load (and cache) the style's network on the CPU side, so a broken or missing
        model is a message on the page before any GPU is asked for."""
        try:
            return zoo.load(entry.id, catalogue=self.config.catalogue, progress=False)
        except NSTError as exc:
            raise gr.Error(
                f"The trained model for '{entry.title}' could not be loaded. {exc}"
            ) from exc

    def johnson(
        self,
        photo: Any,
        style: Any,
        style_image: Any,
        size: Any,
        strength: Any,
        preserve_colors: Any,
    ) -> tuple[Any, str]:
        """Stylise a photo with a style's trained Johnson network (one fast pass).

        Args:
            photo: the photo to stylise (an image file or URL).
            style: a style id of the zoo, e.g. "starry_night" (see the style dropdown).
            style_image: leave empty; an uploaded painting has no trained network.
            size: the output's long side in pixels (64 to the app's maximum).
            strength: 1 for the full style, 0 for the photo itself.
            preserve_colors: keep the photo's colours and take the style's luminance.

        Returns:
            The stylised image (PNG) and a status line with the time it took.
        """
        content = _load(photo, "photo")
        long_side = int(_number(size, "Johnson size", 64, self.config.max_size))
        style_strength = _number(strength, "Style strength", 0.0, 1.0)
        if style_image is not None:
            return None, (
                "**Johnson — no trained model for an uploaded style image.** A Johnson "
                "network is trained for one painting ahead of time; Gatys (right) works "
                "with any style image. Pick a gallery style to compare both."
            )
        entry = self._style_entry(style)
        start = time.perf_counter()
        self._check_model(entry)
        catalogue = str(self.config.catalogue) if self.config.catalogue else None
        try:
            result = _johnson_on_device(
                entry.id, catalogue, content, long_side, style_strength, bool(preserve_colors),
                self.config.device,
            )  # fmt: skip
        except NSTError as exc:
            raise gr.Error(str(exc)) from exc
        took = time.perf_counter() - start
        path = RESULTS.write(result, f"johnson_{entry.id}.png")
        return path, f"**Johnson — {_seconds(took)}** · {entry.title}"

    def live(
        self, frame: Any, style: Any, size: Any, meter: FrameMeter | None
    ) -> tuple[Any, str, FrameMeter]:
        """Stylise one webcam frame with the style's trained network (the live stream).

        Args:
            frame: the webcam frame (an RGB array, as the stream sends it).
            style: a style id of the zoo, e.g. "starry_night".
            size: the frame's long side in pixels before stylising.
            meter: the stream's frame-rate meter (kept by the page, per visitor).

        Returns:
            The stylised frame, a status line with the frames per second, and the meter.
        """
        meter = meter if isinstance(meter, FrameMeter) else FrameMeter()
        if frame is None:
            return None, meter.status(), meter
        long_side = int(_number(size, "Live size", 64, self.config.max_live_size))
        model = self._check_model(self._style_entry(style))
        start = time.perf_counter()
        small = _frame_image(frame, long_side)
        try:
            # The tensor path: no PIL round trips, a few ms of a ~60 ms frame on a CPU.
            pixels = torch.from_numpy(np.array(small)).permute(2, 0, 1).unsqueeze(0)
            out = stylize_tensor(model, pixels.float() / 255, device=_live_device(self.config))
        except NSTError as exc:
            raise gr.Error(str(exc)) from exc
        result = (out[0].clamp(0, 1).permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        meter.tick(time.perf_counter() - start)
        return result, meter.status(), meter

    def johnson_example(self, photo: Any, style: Any) -> tuple[Any, str]:
        """An example row (photo, style) at the page's default Johnson settings."""
        return self.johnson(photo, style, None, self.config.johnson_size, 1.0, False)

    def gatys_config(
        self,
        size: int,
        iterations: int,
        optimizer: str,
        init: str,
        preserve_colors: bool,
        strength: float = 1.0,
        init_model: Any = None,
    ) -> GatysConfig:
        """The library's settings from the page's; ``gatys_overrides`` may add any field."""
        return GatysConfig(
            **{
                "size": int(size),
                "iterations": int(iterations),
                "optimizer": optimizer,
                "init": init,
                "init_model": init_model,
                "preserve_colors": preserve_colors,
                "strength": strength,
                "scales": self.config.gatys_scales,
                "max_seconds": self.config.gatys_seconds,
                "report_every": self.config.gatys_report_every,
                "vgg_weights": self.config.vgg_weights,
                **self.config.gatys_overrides,
            }
        )

    def gatys(
        self,
        photo: Any,
        style: Any,
        style_image: Any,
        size: Any,
        iterations: Any,
        optimizer: Any,
        init: Any,
        strength: Any,
        preserve_colors: Any,
        # track_tqdm: a first VGG download (huggingface_hub's tqdm bar) shows in the column
        progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 - gradio injects it
    ) -> Iterator[tuple[Any, str]]:
        """Stylise a photo by optimising its pixels against a painting (slow; any style).

        Args:
            photo: the photo to stylise (an image file or URL).
            style: a style id of the zoo whose painting to match (ignored with style_image).
            style_image: any painting to match instead of a zoo style.
            size: the output's long side in pixels.
            iterations: optimisation steps (loss evaluations); more is slower and closer.
            optimizer: "lbfgs" (the paper's) or "adam".
            init: where the optimisation starts: "johnson" (the style's trained network's
                output; an uploaded painting has none and starts "color-matched"),
                "content" (the photo), "color-matched" (the photo in the painting's
                colours) or "noise" (white noise).
            strength: 1 for the full result, 0 for the photo itself.
            preserve_colors: keep the photo's colours and take the style's luminance.

        Returns:
            The image as it improves (streamed), then the final PNG, with a status line.
        """
        content = _load(photo, "photo")
        long_side = int(_number(size, "Gatys size", 64, self.config.max_gatys_size))
        steps = int(_number(iterations, "Gatys iterations", 1, self.config.max_iterations))
        optimizer = _choice(optimizer, "Optimiser", OPTIMIZERS)
        init = _choice(init, "Initialisation", INITS)
        style_strength = _number(strength, "Style strength", 0.0, 1.0)
        init_model = None
        if style_image is not None:
            painting, title = _load(style_image, "style image"), UPLOADED_STYLE
            init = NO_NET_INIT if init == "johnson" else init
        else:
            entry = self._style_entry(style)
            painting, title = _load(str(entry.preview_path), "style's painting"), entry.title
            if init == "johnson":
                init_model = self._check_model(entry)
        progress(0, desc="Gatys: loading VGG")
        yield None, f"Gatys — starting ({steps} iterations, {long_side} px) · {title}"
        try:
            config = self.gatys_config(
                long_side, steps, optimizer, init, bool(preserve_colors), style_strength,
                init_model,
            )  # fmt: skip
            shown = 0.0
            for step in _gatys_on_device(content, painting, config, self.config.device):
                # Gradio can stop a run only between two yields: report often, show a
                # preview at most every PREVIEW_SECONDS, so Stop acts within about that.
                if not step.done and time.monotonic() - shown < PREVIEW_SECONDS:
                    continue
                shown = time.monotonic()
                image = step.image
                progress((step.iteration, step.iterations), desc="Gatys", unit="iterations")
                verb = "" if step.done else " (running)"
                if step.done and step.iteration < step.iterations and config.max_seconds:
                    verb = f" (the {config.max_seconds:g} s budget)"
                label = (
                    f"Gatys — {step.iteration} iterations, {_seconds(step.seconds)}, "
                    f"{step.precision}{verb}"
                )
                name = "gatys.png" if step.done else "gatys_preview.jpg"
                yield RESULTS.write(image, name), f"**{label}** · {title}"
        except NSTError as exc:
            # Missing VGG weights and the like: say so in the column, and to API callers.
            yield None, f"**Gatys could not run.** {exc}"
            raise gr.Error(str(exc), duration=None) from exc


@dataclass
class FrameMeter:
    """Frames per second of one webcam stream, over its last ``window`` frames."""

    window: int = 30
    arrivals: list[float] = field(default_factory=list)
    compute: list[float] = field(default_factory=list)

    def tick(self, seconds: float) -> None:
        self.arrivals = [*self.arrivals[-(self.window - 1) :], time.monotonic()]
        self.compute = [*self.compute[-(self.window - 1) :], seconds]

    def fps(self) -> float | None:
        if len(self.arrivals) < 2 or self.arrivals[-1] <= self.arrivals[0]:
            return None
        return (len(self.arrivals) - 1) / (self.arrivals[-1] - self.arrivals[0])

    def status(self) -> str:
        rate = self.fps()
        if rate is None:
            return "Live — waiting for frames"
        ms = 1000 * sum(self.compute) / len(self.compute)
        return f"**Live — {rate:.1f} frames/s** · {ms:.0f} ms per frame to stylise"


def _frame_image(frame: Any, long_side: int) -> Image.Image:
    """A webcam frame (H, W, 3) uint8 as a PIL image with ``long_side``, never upscaled.

    Bilinear: for a live stream its ~1 ms beats Lanczos' quality at these sizes.
    """
    image = Image.fromarray(np.asarray(frame, dtype=np.uint8)).convert("RGB")
    scale = long_side / max(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return image


def _live_device(config: AppConfig) -> str:
    """Live frames run on the CPU on ZeroGPU: a GPU lease per frame would cost more than
    the frame. A dedicated GPU Space runs them on its GPU."""
    return "cpu" if spaces.config.Config.zero_gpu else config.device


class ResultFiles:
    """Result images written straight into Gradio's file cache, so it serves them as is.

    Gradio would encode a returned PIL image itself as PNG at zlib level 6, slowly on a
    small CPU; ``nst.images.png_bytes`` is about twice as fast (benchmarks/bench_app.py);
    previews are JPEG. Files older than ``max_age`` seconds are removed.
    """

    def __init__(self, max_age: float = 3600.0):
        self.max_age = max_age
        self._lock = threading.Lock()
        self._last_prune = 0.0

    @property
    def folder(self) -> Path:
        return Path(get_upload_folder()) / "nst-results"

    def write(self, image: Image.Image, name: str) -> str:
        target = self.folder / uuid.uuid4().hex / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix == ".png":
            target.write_bytes(png_bytes(image))  # ~2x faster than Pillow's PNG encoder
        else:
            image.save(target, format="JPEG", quality=90)
        self._prune()
        return str(target)

    def _prune(self) -> None:
        now = time.time()
        with self._lock:
            if now - self._last_prune < 60:
                return
            self._last_prune = now
        for folder in self.folder.iterdir():
            try:
                if now - folder.stat().st_mtime > self.max_age:
                    for file in folder.iterdir():
                        file.unlink(missing_ok=True)
                    folder.rmdir()
            except OSError:
                pass  # another thread removed it first, or it is in use: next time


RESULTS = ResultFiles()


# ZeroGPU runs these two in a worker process and pickles their arguments into it, so they
# take only CPU-side, picklable values (a style id, PIL images, a config) and load or
# move the network inside. Elsewhere ``@spaces.GPU`` is a no-op.
JOHNSON_GPU_SECONDS = 30
#: Seconds asked of ZeroGPU per Gatys iteration per megapixel (generous for VGG19 forward +
#: backward on a shared A100-class GPU), plus a fixed allowance for loading the VGG.
GATYS_GPU_SECONDS_PER_MP_ITERATION = 0.25
GATYS_GPU_LOAD_SECONDS = 20
GATYS_GPU_MAX_SECONDS = 300


@spaces.GPU(duration=JOHNSON_GPU_SECONDS)
def _johnson_on_device(
    style_id: str,
    catalogue: str | None,
    content: Image.Image,
    size: int,
    strength: float,
    preserve_colors: bool,
    device: str,
) -> Image.Image:
    model = zoo.load(style_id, device=device, catalogue=catalogue, progress=False)
    return stylize(
        model,
        content,
        size=size,
        strength=strength,
        preserve_colors=preserve_colors,
        device=device,
    )


def gatys_gpu_seconds(
    content: Image.Image, painting: Image.Image, config: GatysConfig, device: str
) -> int:
    """The GPU time a Gatys run asks ZeroGPU for: its size times its iterations."""
    del painting, device  # the style image's size barely matters
    aspect = min(content.size) / max(content.size)
    megapixels = config.size * config.size * aspect / 1e6
    seconds = GATYS_GPU_LOAD_SECONDS + config.iterations * megapixels * (
        GATYS_GPU_SECONDS_PER_MP_ITERATION
    )
    return int(min(GATYS_GPU_MAX_SECONDS, math.ceil(seconds)))


@spaces.GPU(duration=gatys_gpu_seconds)
def _gatys_on_device(
    content: Image.Image, painting: Image.Image, config: GatysConfig, device: str
) -> Iterator[Any]:
    yield from gatys_steps(content, [painting], config, device=device)


# ---------------------------------------------------------------- the page


def _before_after(photo: Any, result: Any) -> tuple[Any, Any] | None:
    if photo is None or result is None:
        return None
    return (photo, result)


def _label(status: str, method: str) -> Any:
    """The image's label from its status line: "Johnson — 0.4 s" (API results stay plain)."""
    head = status.split("**")[1] if status.count("**") >= 2 else method
    return gr.Image(label=head)


def create_app(config: AppConfig | None = None, *, catalogue: Path | None = None) -> gr.Blocks:
    """Build the page. ``catalogue`` (or ``config.catalogue``) points at a zoo catalogue."""
    config = config or default_config(catalogue)
    if catalogue is not None:
        config = replace(config, catalogue=catalogue)
    handlers = StyleTransferDemo(config)
    where = "a GPU" if config.device != "cpu" else "a CPU"
    with gr.Blocks(title="Neural style transfer: Johnson vs Gatys") as app:
        gr.Markdown(
            "# Neural style transfer — Johnson vs Gatys\n"
            "Upload a photo, pick a style, press **Stylise**. Left: a network trained for "
            "the style (Johnson et al. 2016), one pass. Right: the image optimised pixel by "
            "pixel against the painting (Gatys et al. 2015), shown as it improves. "
            f"Running on {where}."
        )
        page = _Page()
        _inputs(page, handlers)
        _options(page, config)
        _results(page)
        _live(page, config)
        if config.examples:
            gr.Examples(
                examples=[list(row) for row in config.examples],
                inputs=[page.photo, page.style],
                outputs=[page.johnson_out, page.johnson_status],
                fn=handlers.johnson_example,
                label="Examples (the Johnson result shows at once; Stylise runs Gatys too)",
                # Each example's Johnson result is made on its first click, then served
                # from the cache: no work at start-up, which a Space's build would wait on.
                cache_examples=True,
                cache_mode="lazy",
            )
        _wire(page, config, handlers)
    app.queue(max_size=config.queue_size, default_concurrency_limit=1)
    app.nst_config = config  # type: ignore[attr-defined]  # what launch() reads
    return app


class _Page:
    """The page's components, filled in by the section builders below."""

    photo: Any
    gallery: Any
    style: Any
    style_image: Any
    johnson_size: Any
    gatys_size: Any
    iterations: Any
    optimizer: Any
    init: Any
    strength: Any
    preserve_colors: Any
    run: Any
    run_johnson: Any
    stop: Any
    johnson_out: Any
    johnson_status: Any
    johnson_slider: Any
    gatys_out: Any
    gatys_status: Any
    gatys_slider: Any
    live_in: Any
    live_out: Any
    live_size: Any
    live_status: Any
    live_meter: Any


def _inputs(page: _Page, handlers: StyleTransferDemo) -> None:
    """The photo on the left; the style gallery, dropdown and upload on the right."""
    styles = handlers.styles
    with gr.Row():
        with gr.Column(scale=1):
            page.photo = gr.Image(
                label="Photo",
                type="filepath",
                sources=["upload", "webcam", "clipboard"],
                height=320,
                elem_id="photo",
            )
        with gr.Column(scale=1):
            gr.Markdown(handlers.catalogue_message or "", visible=not styles)
            page.gallery = gr.Gallery(
                value=[(str(s.preview_path), s.title) for s in styles],
                label="Style (click a painting)",
                columns=4,
                height=220,
                allow_preview=False,
                interactive=False,
                visible=bool(styles),
                elem_id="style-gallery",
            )
            page.style = gr.Dropdown(
                choices=[(s.title, s.id) for s in styles],
                value=styles[0].id if styles else None,
                label="Style",
                interactive=True,
                elem_id="style",
            )
            page.style_image = gr.Image(
                label="…or upload your own style image (Gatys only)",
                type="filepath",
                sources=["upload", "clipboard"],
                height=140,
                elem_id="style-image",
            )


def _options(page: _Page, config: AppConfig) -> None:
    with gr.Accordion("Options", open=False):
        with gr.Row():
            page.johnson_size = gr.Slider(
                64, config.max_size, value=config.johnson_size, step=32,
                label="Johnson output size (long side, px)",
            )  # fmt: skip
            page.gatys_size = gr.Slider(
                64, config.max_gatys_size, value=config.gatys_size, step=32,
                label="Gatys output size (long side, px)",
            )  # fmt: skip
            page.iterations = gr.Slider(
                1, config.max_iterations, value=config.gatys_iterations, step=1,
                label="Gatys iterations",
            )  # fmt: skip
        with gr.Row():
            page.optimizer = gr.Radio(list(OPTIMIZERS), value="lbfgs", label="Gatys optimiser")
            page.init = gr.Radio(
                list(INITS), value=config.gatys_init,
                label="Gatys starts from (johnson: the style's trained network's output)",
            )  # fmt: skip
            page.strength = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="Style strength")
            page.preserve_colors = gr.Checkbox(value=False, label="Preserve the photo's colours")


def _result_column(method: str) -> tuple[Any, Any]:
    """One method's result image (with download and full screen) and its status line."""
    image = gr.Image(
        label=method, type="filepath", format="png", height=420,
        buttons=["download", "fullscreen"], interactive=False,
        elem_id=f"{method.lower()}-result",
    )  # fmt: skip
    return image, gr.Markdown(elem_id=f"{method.lower()}-status")


def _results(page: _Page) -> None:
    with gr.Row():
        page.run = gr.Button("Stylise", variant="primary", elem_id="run")
        # Johnson alone: a second or so, with no wait for the single Gatys slot.
        page.run_johnson = gr.Button("Johnson only", elem_id="run-johnson")
        page.stop = gr.Button("Stop Gatys", variant="stop", elem_id="stop")
    with gr.Row(equal_height=True):
        with gr.Column():
            page.johnson_out, page.johnson_status = _result_column("Johnson")
        with gr.Column():
            page.gatys_out, page.gatys_status = _result_column("Gatys")
    with gr.Accordion("Before / after", open=False):
        with gr.Row():
            page.johnson_slider = gr.ImageSlider(label="Photo | Johnson", type="filepath")
            page.gatys_slider = gr.ImageSlider(label="Photo | Gatys", type="filepath")


def _live(page: _Page, config: AppConfig) -> None:
    """The webcam, stylised as it streams, with the style chosen above."""
    with gr.Accordion("Live webcam (Johnson)", open=False):
        with gr.Row():
            page.live_in = gr.Image(
                label="Webcam", sources=["webcam"], streaming=True, type="numpy",
                height=300, elem_id="live-in",
            )  # fmt: skip
            page.live_out = gr.Image(
                label="Stylised", format="jpeg", height=300, interactive=False,
                elem_id="live-out",
            )  # fmt: skip
        with gr.Row():
            page.live_size = gr.Slider(
                64, config.max_live_size, value=config.live_size, step=16,
                label="Live frame size (long side, px)",
            )  # fmt: skip
            page.live_status = gr.Markdown(elem_id="live-status")
        page.live_meter = gr.State(None)


def _wire(page: _Page, config: AppConfig, handlers: StyleTransferDemo) -> None:
    """The events: the gallery picks a style; Stylise runs both methods; Stop cancels Gatys."""
    style_ids = [s.id for s in handlers.styles]

    def pick_style(evt: gr.SelectData) -> tuple[str, None]:
        # Choosing a gallery painting replaces an uploaded style image.
        return style_ids[evt.index], None

    page.gallery.select(pick_style, None, [page.style, page.style_image], api_visibility="private")
    johnson_inputs = [page.style, page.style_image, page.johnson_size, page.strength]
    _method_event(
        page, "Johnson", handlers.johnson, [*johnson_inputs, page.preserve_colors],
        triggers=[page.run.click, page.run_johnson.click],
        concurrency_limit=config.johnson_concurrency,
    )  # fmt: skip
    gatys_inputs = [page.style, page.style_image, page.gatys_size, page.iterations]
    gatys_event = _method_event(
        page, "Gatys", handlers.gatys,
        [*gatys_inputs, page.optimizer, page.init, page.strength, page.preserve_colors],
        triggers=[page.run.click], concurrency_limit=config.gatys_concurrency,
        # "full": the column shows the visitor's place in the Gatys queue and its wait
        show_progress="full", show_progress_on=[page.gatys_out],
    )  # fmt: skip
    page.stop.click(None, None, None, cancels=[gatys_event])
    page.live_in.stream(
        handlers.live,
        inputs=[page.live_in, page.style, page.live_size, page.live_meter],
        outputs=[page.live_out, page.live_status, page.live_meter],
        api_name="live",
        # Its own slot: webcam viewers never hold up the photo endpoints, nor each other
        # beyond live_concurrency.
        concurrency_id="live",
        concurrency_limit=config.live_concurrency,
        stream_every=0.04,  # the browser sends the next frame once the last one is back
        time_limit=config.live_seconds,
        show_progress="hidden",
    )


def _method_event(
    page: _Page, method: str, handler: Any, inputs: list[Any], triggers: list[Any], **queue: Any
) -> Any:
    """``triggers`` -> ``handler(photo, *inputs)`` as the API endpoint ``/<method>`` with its
    own concurrency slot (Johnson never waits behind Gatys), then the result's label and
    its before/after slider."""
    image = getattr(page, f"{method.lower()}_out")
    status = getattr(page, f"{method.lower()}_status")
    slider = getattr(page, f"{method.lower()}_slider")
    event = gr.on(
        triggers,
        handler,
        inputs=[page.photo, *inputs],
        outputs=[image, status],
        api_name=method.lower(),
        preprocess=False,  # the photo is decoded by nst.images: its errors say what to do
        concurrency_id=method.lower(),
        **queue,
    )
    # Cheap follow-ups off the queue: the image's label and the before/after slider.
    after = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}
    event.then(lambda s: _label(s, method), status, image, **after)
    event.success(_before_after, [page.photo, image], slider, **after)
    return event


def mcp_available() -> bool:
    """Whether Gradio's MCP extra is installed (``pip install "gradio[mcp]"``)."""
    import importlib.util

    return importlib.util.find_spec("mcp") is not None


def launch(app: gr.Blocks, **kwargs: Any) -> Any:
    """``app.launch`` with the upload limit of the app's config (tests use this too)."""
    config: AppConfig = app.nst_config  # type: ignore[attr-defined]
    options: dict[str, Any] = {"max_file_size": config.max_file_size, "ssr_mode": False}
    if mcp_available():
        # AI agents can call /johnson and /gatys as tools (their docstrings describe them).
        options["mcp_server"] = True
    options.update(kwargs)
    return app.launch(**options)


# The zoo's catalogue; NST_ZOO_CATALOGUE points it at another one.
demo = create_app()


def main(argv: list[str] | None = None) -> int:
    """``nst app [--host H] [--port P] [--share]``: serve the page until interrupted."""
    import argparse

    parser = argparse.ArgumentParser(prog="nst app", description="Serve the web app.")
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860)")
    parser.add_argument("--share", action="store_true", help="also a public gradio.live link")
    args = parser.parse_args(argv)
    launch(demo, server_name=args.host, server_port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    launch(demo)
