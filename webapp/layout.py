"""The page: a photo and a style in, Johnson's result beside Gatys' as it improves, a
before/after slider, and the live webcam; read top to bottom, it is the screen.

Each event follows the components it joins. ``/johnson``, ``/gatys`` and ``/live`` are
API endpoints (and MCP tools), each in its own queue slot (``concurrency_id``), so that a
slow Gatys run never starves the fast Johnson one and webcam viewers hold up neither.
"""

from __future__ import annotations

import importlib.util
import threading
import time
from typing import Any

import gradio as gr
from PIL import Image

from nst.gatys import OPTIMIZERS
from webapp import gpu
from webapp.components import Choice, ImageInput, Setting
from webapp.config import AppConfig, default_config, installed_styles
from webapp.handlers import INITS, Handlers, before_after
from webapp.tempfolder import swept

INTRO = (
    "# Neural style transfer — Johnson vs Gatys\n"
    "Upload a photo, pick a style, press **Stylise**. Left: a network trained for the style "
    "(Johnson et al. 2016), one pass. Right: the image optimised pixel by pixel against the "
    "painting (Gatys et al. 2015), shown as it improves."
)
#: The events that only redraw the page: off the queue and out of the API.
REDRAW: dict[str, Any] = {"api_visibility": "private", "queue": False, "show_progress": "hidden"}


def create_app(config: AppConfig | None = None) -> gr.Blocks:
    """The page for ``config`` (default: :func:`default_config`, this machine's)."""
    config = config or default_config()
    handlers = Handlers(config)
    styles = handlers.styles
    where = "a GPU" if config.device != "cpu" else "a CPU"
    with gr.Blocks(title="Neural style transfer: Johnson vs Gatys") as demo:
        gr.Markdown(f"{INTRO} Running on {where}.")
        with gr.Row():
            with gr.Column(scale=1):
                photo = ImageInput(
                    type="pil", label="Photo", sources=["upload", "webcam", "clipboard"],
                    height=320, elem_id="photo",
                )  # fmt: skip
            with gr.Column(scale=1):
                gr.Markdown(handlers.catalogue_message or "", visible=not styles)
                gallery = gr.Gallery(
                    value=[(str(s.preview_path), s.title) for s in styles],
                    label="Style (click a painting)", columns=4, height=220,
                    allow_preview=False, interactive=False, visible=bool(styles),
                    elem_id="style-gallery",
                )  # fmt: skip
                # Any value passes the dropdown: the handler names the installed styles
                # when an API caller sends another one.
                style = gr.Dropdown(
                    choices=[(s.title, s.id) for s in styles],
                    value=styles[0].id if styles else None, label="Style",
                    allow_custom_value=True, elem_id="style",
                )  # fmt: skip
                with gr.Row():
                    # Johnson blends the rows of one multi-style network; Gatys mixes the
                    # two paintings' Gram targets, so it blends any two styles.
                    blend_style = gr.Dropdown(
                        choices=[("none", ""), *((s.title, s.id) for s in styles)], value="",
                        label="Blend with", allow_custom_value=True, elem_id="blend-style",
                        info="a second style (Johnson: both rows of one multi-style net)",
                    )  # fmt: skip
                    blend = Setting(
                        0.0, 1.0, value=0.5, step=0.05, label="Blend share",
                        info="the second style's share", elem_id="blend",
                    )  # fmt: skip
                style_image = ImageInput(
                    type="pil", label="Style image",
                    placeholder="…or upload your own painting (Gatys only)",
                    sources=["upload", "clipboard"], height=140, elem_id="style-image",
                )  # fmt: skip
        # A gallery painting replaces an uploaded style image.
        gallery.select(handlers.pick_style, None, [style, style_image], **REDRAW)

        with gr.Accordion("Options", open=False):
            with gr.Row():
                johnson_size = Setting(
                    64, config.max_size, value=config.johnson_size, step=32, precision=0,
                    label="Johnson size", info="the output's long side, px",
                )  # fmt: skip
                gatys_size = Setting(
                    64, config.max_gatys_size, value=config.gatys_size, step=32, precision=0,
                    label="Gatys size", info="the output's long side, px",
                )  # fmt: skip
                iterations = Setting(
                    1, config.max_iterations, value=config.gatys_iterations, step=1,
                    precision=0, label="Gatys iterations",
                )  # fmt: skip
            with gr.Row():
                optimizer = Choice(list(OPTIMIZERS), value="lbfgs", label="Optimiser",
                                   info="Gatys' optimiser")  # fmt: skip
                init = Choice(
                    list(INITS), value=config.gatys_init, label="Initialisation",
                    info="where Gatys starts; johnson: the style's trained network's output",
                )  # fmt: skip
                strength = Setting(0.0, 1.0, value=1.0, step=0.05, label="Style strength")
                preserve_colors = gr.Checkbox(value=False, label="Preserve the photo's colours")

        with gr.Row():
            run = gr.Button("Stylise", variant="primary", elem_id="run")
            # Johnson alone, without waiting for the single Gatys slot.
            run_johnson = gr.Button("Johnson only", elem_id="run-johnson")
            stop = gr.Button("Stop Gatys", variant="stop", elem_id="stop")
        with gr.Row(equal_height=True):
            with gr.Column():
                johnson_out = gr.Image(
                    label="Johnson", type="filepath", format="png", height=420,
                    buttons=["download", "fullscreen"], interactive=False,
                    elem_id="johnson-result",
                )  # fmt: skip
                johnson_status = gr.Markdown(elem_id="johnson-status")
            with gr.Column():
                gatys_out = gr.Image(
                    label="Gatys", type="filepath", format="png", height=420,
                    buttons=["download", "fullscreen"], interactive=False,
                    elem_id="gatys-result",
                )  # fmt: skip
                gatys_status = gr.Markdown(elem_id="gatys-status")
        with gr.Accordion("Before / after", open=False):
            with gr.Row():
                johnson_slider = gr.ImageSlider(label="Photo | Johnson", type="filepath")
                gatys_slider = gr.ImageSlider(label="Photo | Gatys", type="filepath")

        johnson = gr.on(
            [run.click, run_johnson.click],
            handlers.johnson,
            inputs=[
                photo,
                style,
                style_image,
                johnson_size,
                strength,
                preserve_colors,
                blend_style,
                blend,
            ],
            outputs=[johnson_out, johnson_status],
            api_name="johnson",
            concurrency_id="johnson",
            concurrency_limit=config.johnson_concurrency,
        )
        johnson.success(before_after, [photo, johnson_out], johnson_slider, preprocess=False,
                        **REDRAW)  # fmt: skip
        gatys = run.click(
            handlers.gatys,
            inputs=[photo, style, style_image, gatys_size, iterations, optimizer, init,
                    strength, preserve_colors, blend_style, blend],
            outputs=[gatys_out, gatys_status],
            api_name="gatys",
            concurrency_id="gatys",
            concurrency_limit=config.gatys_concurrency,
            # "full": the column shows the visitor's place in the Gatys queue and its wait
            show_progress="full",
            show_progress_on=[gatys_out],
        )  # fmt: skip
        gatys.success(before_after, [photo, gatys_out], gatys_slider, preprocess=False,
                      **REDRAW)  # fmt: skip
        stop.click(None, cancels=[gatys])

        with gr.Accordion("Live webcam (Johnson)", open=False):
            with gr.Row():
                live_in = gr.Image(
                    label="Webcam", sources=["webcam"], streaming=True, type="numpy",
                    height=300, elem_id="live-in",
                )  # fmt: skip
                live_out = gr.Image(
                    label="Stylised", format="jpeg", height=300, interactive=False,
                    elem_id="live-out",
                )  # fmt: skip
            with gr.Row():
                live_size = Setting(
                    64, config.max_live_size, value=config.live_size, step=16, precision=0,
                    label="Live size", info="the frames' long side, px",
                )  # fmt: skip
                live_steady = gr.Checkbox(
                    value=True, label="Steady strokes",
                    info="where the scene is still, strokes hold still instead of shimmering",
                )  # fmt: skip
                live_status = gr.Markdown(elem_id="live-status")
            live_state = gr.State(None)  # per visitor: frame-rate meter and smoother
        live_in.stream(
            handlers.live,
            inputs=[live_in, style, live_size, live_steady, live_state],
            outputs=[live_out, live_status, live_state],
            api_name="live",
            concurrency_id="live",
            concurrency_limit=config.live_concurrency,
            stream_every=0.04,  # the browser sends the next frame once the last one is back
            time_limit=config.live_seconds,
            show_progress="hidden",
        )

        if config.examples:
            gr.Examples(
                examples=[list(row) for row in config.examples],
                inputs=[photo, style],
                outputs=[johnson_out, johnson_status],
                fn=handlers.johnson_example,
                label="Examples (the Johnson result shows at once; Stylise runs Gatys too)",
                # Each example's Johnson result is made on its first click, then served
                # from the cache: no work at start-up, which a Space's build would wait on.
                cache_examples=True,
                cache_mode="lazy",
            )
    demo.queue(max_size=config.queue_size, default_concurrency_limit=1)
    return demo


def warm_up(config: AppConfig) -> threading.Thread | None:
    """Run the default style once in the background as the server starts, on the CPU: its
    engine is exported and compiled then (seconds), not in the first visitor's request. A
    request that comes sooner waits for the same compilation, never runs a second one."""
    styles, _ = installed_styles(config.catalogue)
    if config.device != "cpu" or not styles:
        return None
    photo = Image.new("RGB", (320, 240), (128, 128, 128))

    def run() -> None:
        start = time.perf_counter()
        try:
            gpu.johnson_on_device(
                styles[0].id, str(config.catalogue) if config.catalogue else None, photo,
                config.johnson_size, 1.0, False, config.device,
            )  # fmt: skip
        except Exception as exc:  # the first request will say what is wrong, in the page
            print(f"warm-up of '{styles[0].id}' failed: {exc}")
            return
        print(f"warmed up '{styles[0].id}' in {time.perf_counter() - start:.1f} s", flush=True)

    thread = threading.Thread(target=run, name="nst-warm-up", daemon=True)
    thread.start()
    return thread


def mcp_available() -> bool:
    """Whether Gradio's MCP extra is installed (``pip install "gradio[mcp]"``)."""
    return importlib.util.find_spec("mcp") is not None


def launch(demo: gr.Blocks, config: AppConfig | None = None, **options: Any) -> Any:
    """``demo.launch`` with the server settings of ``config`` (the upload limit, the temp
    folder's sweep) and the app's own: no server-side rendering, and an MCP server where
    Gradio's extra is installed (MCP clients then call /johnson and /gatys as tools,
    described by their docstrings). ``options`` go to ``demo.launch`` as they are and win."""
    config = config or AppConfig()
    warm_up(config)
    settings: dict[str, Any] = {
        "max_file_size": config.max_file_size,
        "app_kwargs": {"lifespan": swept(config.sweep_every, config.temp_age)},
        "ssr_mode": False,  # the page needs no Node.js server in front of it
    }
    if mcp_available():
        settings["mcp_server"] = True
    return demo.launch(**{**settings, **options})
