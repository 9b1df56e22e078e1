"""What the page's events call: typed functions that take what the components give (RGB
PIL images, numbers, style ids) and call the library.

The components have already refused what they can (see ``webapp.components``); the
library's own refusals (:class:`NSTError`) become messages through ``shows_errors``. The
handlers' docstrings describe the API endpoints and the MCP tools.
"""

from __future__ import annotations

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
from nst.gatys import GatysConfig, GatysProgress
from nst.images import load_image, png_bytes
from nst.johnson import TransformerNet, stylize_tensor
from nst.temporal import FrameSmoother
from webapp import gpu
from webapp.config import AppConfig, installed_styles
from webapp.errors import refuse, shows_errors
from zoo.catalogue import StyleEntry

#: The page offers no init-image upload, so no "image" start.
INITS = tuple(init for init in GATYS_INITS if init != "image")
#: What an uploaded painting (no trained net) starts from when "johnson" was chosen.
NO_NET_INIT = "color-matched"
UPLOADED_STYLE = "your style image"
#: The Gatys column shows a preview at most this often. Gradio can stop a run only between
#: two of its updates, so Stop acts within about this; more often costs image encodes.
PREVIEW_SECONDS = 0.3
NO_NET_FOR_UPLOAD = (
    "**Johnson — no trained model for an uploaded style image.** A Johnson network is "
    "trained for one painting ahead of time; Gatys (right) works with any style image. "
    "Pick a gallery style to compare both."
)


def save_result(image: Image.Image, name: str) -> str:
    """``image`` as a file in Gradio's temp folder, which Gradio serves as it is, and which
    ``webapp.tempfolder`` sweeps (no folder of its own: nothing is left behind). PNG by
    ``nst.images.png_bytes``, which encodes faster than the Pillow encoder Gradio would
    use (benchmarks/bench_app.py); previews are JPEG."""
    folder = Path(get_upload_folder())
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{Path(name).stem}_{uuid.uuid4().hex[:12]}{Path(name).suffix}"
    if target.suffix == ".png":
        target.write_bytes(png_bytes(image))
    else:
        image.save(target, format="JPEG", quality=90)
    return str(target)


def before_after(
    photo: dict[str, Any] | None, result: dict[str, Any] | None
) -> tuple[str, str] | None:
    """The before/after slider's pair, from the files the page already shows: the event
    skips preprocessing, so the photo is not decoded (nor the slider's copy encoded) again."""
    if not photo or not result:
        return None
    return photo["path"], result["path"]


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def _require(photo: Image.Image | None) -> Image.Image:
    if photo is None:
        raise refuse("No photo yet: upload one, take one with the webcam or paste one.")
    return photo


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


@dataclass
class LiveStream:
    """One visitor's webcam stream: its frame-rate meter and its temporal smoother."""

    meter: FrameMeter = field(default_factory=FrameMeter)
    smoother: FrameSmoother = field(default_factory=FrameSmoother)


def frame_tensor(frame: np.ndarray, long_side: int) -> torch.Tensor:
    """A webcam frame (H, W, 3) uint8 -> (1, 3, h, w) float in [0, 1] with ``long_side``,
    never upscaled. Bilinear: at these sizes, for a live stream, speed beats Lanczos."""
    image = Image.fromarray(np.asarray(frame, dtype=np.uint8)).convert("RGB")
    scale = long_side / max(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).unsqueeze(0)  # (1, 3, h, w)
    return pixels.float() / 255


def frame_pixels(out: torch.Tensor) -> np.ndarray:
    """(1, 3, h, w) float in [0, 1] -> (h, w, 3) uint8, as the live image shows it."""
    return (out[0].clamp(0, 1).permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()


class Handlers:
    """The page's handlers over one catalogue and one set of settings, shared by every
    visitor (the networks are cached by ``zoo.load``)."""

    def __init__(self, config: AppConfig):
        self.config = config
        self.styles, self.catalogue_message = installed_styles(config.catalogue)
        self.by_id = {s.id: s for s in self.styles}
        self.catalogue = str(config.catalogue) if config.catalogue else None

    # ------------------------------------------------------------ styles

    def style_entry(self, style: str | None) -> StyleEntry:
        if not style:
            raise refuse("Pick a style in the gallery or upload your own style image.")
        entry = self.by_id.get(style)
        if entry is None:
            known = ", ".join(self.by_id) or "none are installed"
            raise refuse(f"There is no style '{style}'. Available styles: {known}.")
        return entry

    def trained_model(self, entry: StyleEntry) -> TransformerNet:
        """The style's network, loaded (once) on the CPU side: a missing or broken model is
        a message on the page before any GPU is asked for."""
        try:
            return zoo.load(entry.id, catalogue=self.config.catalogue, progress=False)
        except NSTError as exc:
            raise refuse(
                f"The trained model for '{entry.title}' could not be loaded. {exc}"
            ) from exc

    def pick_style(self, evt: gr.SelectData) -> tuple[str, None]:
        """A gallery painting chosen: its style, and no uploaded style image any more."""
        return self.styles[evt.index].id, None

    # ------------------------------------------------------------ Johnson

    @shows_errors
    def johnson(
        self,
        photo: Image.Image | None,
        style: str | None,
        # The defaults make the API's (and MCP's) callers free to leave these out.
        style_image: Image.Image | None = None,
        size: int | None = None,
        strength: float = 1.0,
        preserve_colors: bool = False,
        blend_style: str | None = None,
        blend: float = 0.5,
    ) -> tuple[str | None, str]:
        """Stylise a photo with a style's trained Johnson network (one fast pass).

        Args:
            photo: the photo to stylise (an image file or URL).
            style: a style id of the zoo, e.g. "starry_night" (see the style dropdown).
            style_image: leave empty; an uploaded painting has no trained network.
            size: the output's long side in pixels (64 to the app's maximum; default: the
                page's).
            strength: 1 for the full style, 0 for the photo itself.
            preserve_colors: keep the photo's colours and take the style's luminance.
            blend_style: a second style to mix in (Johnson: both rows of one multi-style net)
                (empty: none).
            blend: the second style's share of the mix, 0 to 1.

        Returns:
            The stylised image (PNG) and a status line with the time it took.
        """
        content = _require(photo)
        size = self.config.johnson_size if size is None else size
        if style_image is not None:
            return None, NO_NET_FOR_UPLOAD
        entry = self.style_entry(style)
        other = self.style_entry(blend_style) if blend_style and blend > 0 else None
        start = time.perf_counter()
        self.trained_model(entry)
        if other is not None:
            self.blended_model(entry, other, blend)
        result = gpu.johnson_on_device(
            entry.id, self.catalogue, content, size, strength, preserve_colors,
            self.config.device, other.id if other else None, blend,
        )  # fmt: skip
        took = time.perf_counter() - start
        title = entry.title if other is None else _blend_title(entry, other, blend)
        status = f"**Johnson — {_seconds(took)}** · {title}"
        return save_result(result, f"johnson_{entry.id}.png"), status

    def blended_model(self, entry: StyleEntry, other: StyleEntry, blend: float) -> None:
        """Check, before any GPU is asked for, that the two styles blend: both rows of one
        multi-style network."""
        try:
            zoo.load_blend(
                {entry.id: 1.0 - blend, other.id: blend}, catalogue=self.config.catalogue,
                progress=False,
            )  # fmt: skip
        except NSTError as exc:
            raise refuse(
                f"{entry.title} and {other.title} do not blend in one Johnson network: "
                f"{exc} Gatys (right) blends any two paintings."
            ) from exc

    def johnson_example(
        self, photo: Image.Image | None, style: str | None
    ) -> tuple[str | None, str]:
        """An example row (photo, style) at the page's default Johnson settings."""
        return self.johnson(photo, style)

    # ------------------------------------------------------------ Gatys

    def gatys_config(
        self,
        size: int,
        iterations: int,
        optimizer: str,
        init: str,
        preserve_colors: bool,
        strength: float = 1.0,
        init_model: TransformerNet | None = None,
    ) -> GatysConfig:
        """The library's settings from the page's; ``gatys_overrides`` may add any field."""
        return GatysConfig(
            **{
                "size": size,
                "iterations": iterations,
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

    @shows_errors
    def gatys(
        self,
        photo: Image.Image | None,
        style: str | None,
        # The defaults make the API's (and MCP's) callers free to leave these out.
        style_image: Image.Image | None = None,
        size: int | None = None,
        iterations: int | None = None,
        optimizer: str = "lbfgs",
        init: str | None = None,
        strength: float = 1.0,
        preserve_colors: bool = False,
        blend_style: str | None = None,
        blend: float = 0.5,
        # track_tqdm: a first VGG download (huggingface_hub's tqdm bar) shows in the column
        progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008 - gradio injects it
    ) -> Iterator[tuple[str | None, str]]:
        """Stylise a photo by optimising its pixels against a painting (slow; any style).

        Args:
            photo: the photo to stylise (an image file or URL).
            style: a style id of the zoo whose painting to match (ignored with style_image).
            style_image: any painting to match instead of a zoo style.
            size: the output's long side in pixels (default: the page's).
            iterations: optimisation steps (loss evaluations); more is slower and closer
                (default: the page's).
            optimizer: "lbfgs" (the paper's) or "adam".
            init: where the optimisation starts: "johnson" (the style's trained network's
                output; an uploaded painting has none and starts "color-matched"),
                "content" (the photo), "color-matched" (the photo in the painting's
                colours) or "noise" (white noise); default: the page's.
            strength: 1 for the full result, 0 for the photo itself.
            preserve_colors: keep the photo's colours and take the style's luminance.
            blend_style: a second zoo style whose painting to mix in (empty: none).
            blend: the second painting's share of the style targets, 0 to 1.

        Returns:
            The image as it improves (streamed), then the final PNG, with a status line.
        """
        content = _require(photo)
        size = self.config.gatys_size if size is None else size
        iterations = self.config.gatys_iterations if iterations is None else iterations
        init = init or self.config.gatys_init
        init_model = None
        if style_image is not None:
            painting, title = style_image, UPLOADED_STYLE
            init = NO_NET_INIT if init == "johnson" else init
        else:
            entry = self.style_entry(style)
            painting, title = load_image(entry.preview_path), entry.title
            if init == "johnson":
                init_model = self.trained_model(entry)
        paintings, shares = [painting], None
        if blend_style and blend > 0:
            other = self.style_entry(blend_style)
            paintings, shares = [painting, load_image(other.preview_path)], [1 - blend, blend]
            title = f"{title} {1 - blend:.0%} + {other.title} {blend:.0%}"
        progress(0, desc="Gatys: loading VGG")
        yield None, f"Gatys — starting ({iterations} iterations, {size} px) · {title}"
        try:
            config = self.gatys_config(
                size, iterations, optimizer, init, preserve_colors, strength, init_model
            )
            config = replace(config, style_blend=shares)
            shown = 0.0
            for step in gpu.gatys_on_device(content, paintings, config, self.config.device):
                if not step.done and time.monotonic() - shown < PREVIEW_SECONDS:
                    continue
                shown = time.monotonic()
                progress((step.iteration, step.iterations), desc="Gatys", unit="iterations")
                image = save_result(step.image, "gatys.png" if step.done else "gatys_preview.jpg")
                yield image, f"**{_gatys_label(step, config)}** · {title}"
        except NSTError as exc:
            # Missing VGG weights and the like: the column says so too, until the next run.
            yield None, f"**Gatys could not run.** {exc}"
            raise

    # ------------------------------------------------------------ live webcam

    @shows_errors
    def live(
        self,
        frame: np.ndarray | None,
        style: str | None,
        size: int,
        steady: bool,
        stream: LiveStream | None,
    ) -> tuple[np.ndarray | None, str, LiveStream]:
        """Stylise one webcam frame with the style's trained network (the live stream).

        Args:
            frame: the webcam frame (an RGB array, as the stream sends it).
            style: a style id of the zoo, e.g. "starry_night".
            size: the frame's long side in pixels before stylising.
            steady: keep the strokes still where the scene is still (a running mean of
                the stylised frames there), so camera noise does not make them shimmer.
            stream: the stream's state, kept by the page per visitor.

        Returns:
            The stylised frame, a status line with the frames per second, and the state.
        """
        stream = stream or LiveStream()
        if frame is None:  # the stream's last call
            return None, stream.meter.status(), stream
        model = self.trained_model(self.style_entry(style))
        start = time.perf_counter()
        photo = frame_tensor(frame, size)
        # The tensor path, with no PIL round trip: it matters at webcam rates
        # (benchmarks/bench_live.py).
        out = stylize_tensor(model, photo, device=gpu.live_device(self.config.device))
        if steady:
            out = stream.smoother(photo, out)
        else:
            stream.smoother.reset()  # switched back on, it starts from the frame it gets
        result = frame_pixels(out)
        stream.meter.tick(time.perf_counter() - start)
        return result, stream.meter.status(), stream


def _blend_title(entry: StyleEntry, other: StyleEntry, blend: float) -> str:
    return f"{entry.title} {1 - blend:.0%} + {other.title} {blend:.0%}"


def _gatys_label(step: GatysProgress, config: GatysConfig) -> str:
    """The status, e.g. "Gatys — 61 iterations, 40 s, bf16", and why a run stopped early."""
    verb = "" if step.done else " (running)"
    if step.done and step.iteration < step.iterations and config.max_seconds:
        verb = f" (the {config.max_seconds:g} s budget)"
    return f"Gatys — {step.iteration} iterations, {_seconds(step.seconds)}, {step.precision}{verb}"
