"""The Gradio app, end to end: a real server on 127.0.0.1 called with ``gradio_client``.

The trained default styles may not exist yet, so the app is pointed at a temporary
catalogue holding one small random Johnson network (its output is compared with a direct
``nst.johnson.stylize`` call, so the wiring is checked, not the art). Gatys runs on the
real VGG16 from ../shared at a tiny size (skipped when ../shared is absent).
"""

from __future__ import annotations

import os
import re
import socket
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GRADIO_SSR_MODE", "False")

import gradio as gr  # noqa: E402

import app as app_module  # noqa: E402
import zoo  # noqa: E402
from nst.johnson import TransformerConfig, TransformerNet, save_transformer, stylize  # noqa: E402
from webapp import AppConfig, config, create_app, gpu, handlers, launch  # noqa: E402
from webapp.handlers import Handlers  # noqa: E402

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

STYLE_ID = "random_test_style"
TIMEOUT = 120  # seconds any one API call may take on 2 busy cores


# ---------------------------------------------------------------- fixtures


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _synthetic_photo(path: Path, size: tuple[int, int] = (320, 240)) -> Path:
    """A smooth, structured picture for machines without ../shared."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack(
        [x / w, y / h, 0.5 + 0.5 * np.sin((x + y) / 17.0)], axis=-1
    )  # (H, W, 3) in [0, 1]
    Image.fromarray((rgb * 255).astype(np.uint8)).save(path)
    return path


def build_catalogue(folder: Path, painting: Path) -> Path:
    """A catalogue with one bundled random style (small, so every call is fast)."""
    torch.manual_seed(0)
    model = TransformerNet(TransformerConfig(width=8, residual_blocks=1)).eval()
    save_transformer(model, folder / "models" / STYLE_ID)
    catalogue = folder / "catalogue.json"
    zoo.add_style(
        {
            "id": STYLE_ID,
            "title": "Random test style",
            "painting": "test painting",
            "artist": "nobody",
            "year": 2026,
            "license": "CC0",
            "preview": f"previews/{STYLE_ID}.jpg",
            "weights": {"bundled": f"models/{STYLE_ID}"},
            "training": {"note": "untrained, for tests"},
        },
        catalogue=catalogue,
        source_image=painting,
    )
    return catalogue


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Photo, painting and a catalogue; real images from ../shared when present."""
    from tests.conftest import CONTENT_DIR, STYLE_DIR

    tmp = tmp_path_factory.mktemp("app")
    photo = CONTENT_DIR / "tubingen.jpg"
    painting = STYLE_DIR / "starry_night.jpg"
    if not photo.is_file():
        photo = _synthetic_photo(tmp / "photo.png")
    if not painting.is_file():
        painting = _synthetic_photo(tmp / "painting.png", (200, 160))
    bad = tmp / "not_an_image.jpg"
    bad.write_text("this is a text file, not a JPEG\n")
    return {
        "photo": photo,
        "painting": painting,
        "bad": bad,
        "catalogue": build_catalogue(tmp / "zoo", painting),
    }


def tiny_config(catalogue: Path, vgg: Path | None, **changes: object) -> AppConfig:
    """Gatys at 64 px and a handful of iterations: the whole file runs in about a minute."""
    values: dict[str, object] = {
        "catalogue": catalogue,
        "gatys_size": 64,
        "gatys_iterations": 6,
        "johnson_size": 256,
        "vgg_weights": str(vgg) if vgg else None,
        "max_file_size": "2mb",
        "queue_size": 16,
    }
    values.update(changes)
    return AppConfig(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server(files: dict[str, Path]):
    """The app on a free local port; yields ``(url, app)`` and closes it afterwards."""
    from tests.conftest import REAL_VGG16

    vgg = REAL_VGG16 if REAL_VGG16.is_file() else None
    settings = tiny_config(files["catalogue"], vgg)
    demo = create_app(settings)
    port = _free_port()
    _, url, _ = launch(
        demo, settings, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
        quiet=True,
    )  # fmt: skip
    try:
        yield url, demo, vgg
    finally:
        demo.close()


@pytest.fixture(scope="module")
def client(server, tmp_path_factory: pytest.TempPathFactory) -> Client:
    url = server[0]
    return Client(url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def _johnson_args(photo: object, **changes: object) -> dict[str, object]:
    args: dict[str, object] = {
        "photo": photo,
        "style": STYLE_ID,
        "style_image": None,
        "size": 256,
        "strength": 1.0,
        "preserve_colors": False,
    }
    args.update(changes)
    return args


def _gatys_args(photo: object, **changes: object) -> dict[str, object]:
    args: dict[str, object] = {
        "photo": photo,
        "style": STYLE_ID,
        "style_image": None,
        "size": 64,
        "iterations": 6,
        "optimizer": "lbfgs",
        "init": "content",
        "strength": 1.0,
        "preserve_colors": False,
    }
    args.update(changes)
    return args


def _image(path: str | Path) -> Image.Image:
    """What the page's image inputs hand the handlers: an RGB PIL image."""
    return Image.open(path).convert("RGB")


def _pixels(path: str | Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def _expected_johnson(files: dict[str, Path], size: int, **kwargs: object) -> np.ndarray:
    model = zoo.load(STYLE_ID, catalogue=files["catalogue"])
    return np.asarray(stylize(model, files["photo"], size=size, **kwargs), dtype=np.int16)


# ---------------------------------------------------------------- the API


def test_named_endpoints_are_listed(client: Client) -> None:
    api = client.view_api(print_info=False, return_format="dict")
    names = set(api["named_endpoints"])
    assert {"/johnson", "/gatys"} <= names
    johnson_params = [p["parameter_name"] for p in api["named_endpoints"]["/johnson"]["parameters"]]
    assert johnson_params[:2] == ["photo", "style"]


def test_johnson_endpoint_returns_the_library_result(
    client: Client, files: dict[str, Path]
) -> None:
    image, status = client.predict(
        **_johnson_args(handle_file(files["photo"])), api_name="/johnson"
    )
    got = _pixels(image)
    assert Path(image).suffix == ".png"  # lossless: the download is the result itself
    assert max(got.shape[:2]) == 256
    want = _expected_johnson(files, 256)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 2  # same network, same photo: the same picture
    assert status.startswith("**Johnson — ") and " s**" in status


def test_johnson_strength_and_colours_reach_the_model(
    client: Client, files: dict[str, Path]
) -> None:
    args = _johnson_args(handle_file(files["photo"]), size=128, strength=0.5, preserve_colors=True)
    image, _ = client.predict(**args, api_name="/johnson")
    want = _expected_johnson(files, 128, strength=0.5, preserve_colors=True)
    full = _expected_johnson(files, 128)
    got = _pixels(image)
    assert np.abs(got - want).max() <= 2
    assert np.abs(got - full).mean() > 1  # the options changed the picture


def test_api_callers_may_leave_out_everything_but_the_photo(client: Client, files) -> None:
    """MCP clients too: a tool's schema requires only what has no default (no style image)."""
    image, status = client.predict(
        photo=handle_file(files["photo"]), style=STYLE_ID, api_name="/johnson"
    )
    assert max(_pixels(image).shape[:2]) == 256  # the page's default size
    assert status.startswith("**Johnson")
    api = client.view_api(print_info=False, return_format="dict")
    for name in ("/johnson", "/gatys"):
        params = api["named_endpoints"][name]["parameters"]
        required = [p["parameter_name"] for p in params if not p["parameter_has_default"]]
        assert required == ["photo"]


def test_gatys_endpoint_streams_and_finishes(server, client: Client, files) -> None:
    if server[2] is None:
        pytest.skip("real VGG16 weights absent (../shared): Gatys needs a loss network")
    job = client.submit(**_gatys_args(handle_file(files["photo"])), api_name="/gatys")
    image, status = job.result(timeout=TIMEOUT)
    updates = job.outputs()
    assert len(updates) >= 3  # the start message, previews, the final image
    assert status.startswith("**Gatys — 6 iterations,")
    assert "(running)" not in status
    result = _pixels(image)
    assert max(result.shape[:2]) == 64
    photo = Image.open(files["photo"]).convert("RGB").resize(result.shape[1::-1])
    assert np.abs(result - np.asarray(photo, dtype=np.int16)).mean() > 2  # it moved


def test_gatys_with_an_uploaded_style_image(server, client: Client, files) -> None:
    if server[2] is None:
        pytest.skip("real VGG16 weights absent (../shared): Gatys needs a loss network")
    args = _gatys_args(
        handle_file(files["photo"]), style=None, style_image=handle_file(files["painting"]),
        iterations=2, init="noise", optimizer="adam",
    )  # fmt: skip
    image, status = client.predict(**args, api_name="/gatys")
    assert max(_pixels(image).shape[:2]) == 64
    assert "your style image" in status


def test_gatys_can_be_stopped(server, client: Client, files) -> None:
    if server[2] is None:
        pytest.skip("real VGG16 weights absent (../shared): Gatys needs a loss network")
    job = client.submit(
        **_gatys_args(handle_file(files["photo"]), iterations=400), api_name="/gatys"
    )
    deadline = time.monotonic() + TIMEOUT
    while len(job.outputs()) < 2 and time.monotonic() < deadline:  # first preview
        time.sleep(0.1)
    assert len(job.outputs()) >= 2
    job.cancel()
    # With one Gatys run at a time, the next one only starts once the first has stopped.
    started = time.monotonic()
    _, status = client.predict(**_gatys_args(handle_file(files["photo"]), iterations=2),
                               api_name="/gatys")  # fmt: skip
    assert status.startswith("**Gatys — 2 iterations")
    assert time.monotonic() - started < 60  # far less than 400 iterations would take


def test_johnson_never_waits_behind_gatys(server, client: Client, files) -> None:
    if server[2] is None:
        pytest.skip("real VGG16 weights absent (../shared): Gatys needs a loss network")
    job = client.submit(
        **_gatys_args(handle_file(files["photo"]), iterations=400), api_name="/gatys"
    )
    deadline = time.monotonic() + TIMEOUT
    while len(job.outputs()) < 2 and time.monotonic() < deadline:  # Gatys holds its slot
        time.sleep(0.1)
    assert len(job.outputs()) >= 2
    try:
        image, status = client.predict(**_johnson_args(handle_file(files["photo"])),
                                       api_name="/johnson")  # fmt: skip
        assert image is not None and status.startswith("**Johnson")
        assert not job.done()  # the Johnson result came while Gatys was still running
    finally:
        job.cancel()


def test_page_has_a_johnson_only_button_and_shows_the_gatys_queue(files) -> None:
    demo = create_app(tiny_config(files["catalogue"], None))
    buttons = {b.elem_id: b for b in demo.blocks.values() if type(b).__name__ == "Button"}
    assert "run-johnson" in buttons and "run" in buttons
    johnson_only = {
        id(fn) for fn in demo.fns.values()
        if any(t[0] == buttons["run-johnson"]._id for t in fn.targets)
    }  # fmt: skip
    names = {fn.api_name for fn in demo.fns.values() if id(fn) in johnson_only}
    assert names == {"johnson"}  # Johnson only: Gatys does not start
    (gatys,) = [fn for fn in demo.fns.values() if fn.api_name == "gatys"]
    assert gatys.show_progress == "full"  # the queue position and wait are shown


# ---------------------------------------------------------------- error paths


def _error_message(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    return str(excinfo.value)


def test_bad_image_gets_a_clear_message(client: Client, files) -> None:
    with pytest.raises(Exception) as excinfo:
        client.predict(**_johnson_args(handle_file(files["bad"])), api_name="/johnson")
    message = _error_message(excinfo)
    assert "photo could not be used" in message and "not an image" in message
    # the message names the file the visitor sent, never where the server keeps it
    assert "'not_an_image.jpg'" in message and "/" not in message.split("used.")[1]


def test_missing_style_gets_a_clear_message(client: Client, files) -> None:
    with pytest.raises(Exception) as excinfo:
        args = _johnson_args(handle_file(files["photo"]), style="no_such_style")
        client.predict(**args, api_name="/johnson")
    message = _error_message(excinfo)
    assert "There is no style 'no_such_style'" in message and STYLE_ID in message


def test_missing_photo_and_bad_options(client: Client, files) -> None:
    with pytest.raises(Exception) as excinfo:
        client.predict(**_johnson_args(None), api_name="/johnson")
    assert "No photo yet" in _error_message(excinfo)
    with pytest.raises(Exception) as excinfo:
        client.predict(**_johnson_args(handle_file(files["photo"]), size=99999),
                       api_name="/johnson")  # fmt: skip
    assert "Johnson size must be between 64 and 2048" in _error_message(excinfo)
    with pytest.raises(Exception) as excinfo:
        client.predict(**_gatys_args(handle_file(files["photo"]), optimizer="sgd"),
                       api_name="/gatys")  # fmt: skip
    assert "Optimiser must be one of lbfgs, adam" in _error_message(excinfo)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds none of them."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def test_image_inputs_read_files_and_inline_data_and_refuse_with_the_visitors_name(
    files, tmp_path: Path
) -> None:
    """What the photo input hands a handler, and what it refuses before any decoding."""
    import base64

    from gradio.data_classes import ImageData

    from webapp.components import ImageInput

    photo = ImageInput(type="pil", label="Photo")
    rgba = tmp_path / "upload.png"
    Image.new("RGBA", (40, 30), (255, 0, 0, 0)).save(rgba)
    image = photo.preprocess(ImageData(path=str(rgba), orig_name="mine.png"))
    assert image.mode == "RGB" and image.size == (40, 30)
    inline = "data:image/png;base64," + base64.b64encode(rgba.read_bytes()).decode()
    assert photo.preprocess(ImageData(url=inline)).size == (40, 30)
    bomb = tmp_path / "x.png"
    bomb.write_bytes(_png_header(9000, 9000))  # 81 MP: over the app's limit
    with pytest.raises(gr.Error) as excinfo:
        photo.preprocess(ImageData(path=str(bomb), orig_name="huge.png"))
    message = excinfo.value.message
    assert message.startswith("The photo could not be used. 'huge.png' is 9000 x 9000 pixels")
    assert str(tmp_path) not in message  # the visitor's name, never the server's path
    with pytest.raises(gr.Error, match="not an image that can be read"):
        photo.preprocess(ImageData(url="data:image/png;base64,bm90IGFuIGltYWdl"))


def test_uploaded_style_has_no_johnson_model(client: Client, files) -> None:
    args = _johnson_args(handle_file(files["photo"]), style_image=handle_file(files["painting"]))
    image, status = client.predict(**args, api_name="/johnson")
    assert image is None
    assert "no trained model for an uploaded style image" in status


def test_upload_size_limit(client: Client, tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    noise = np.random.default_rng(0).integers(0, 256, (1200, 1200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(big)  # ~4 MB of incompressible pixels, over the 2 MB limit
    assert big.stat().st_size > 2 * 1024 * 1024
    with pytest.raises(Exception) as excinfo:
        client.predict(**_johnson_args(handle_file(big)), api_name="/johnson")
    assert "size" in _error_message(excinfo).lower()


# ---------------------------------------------------------------- without a server


def test_gatys_without_vgg_weights_explains_and_johnson_still_works(
    files, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gradio as gr
    import huggingface_hub.constants

    # huggingface_hub reads HF_HUB_OFFLINE when first imported (by gradio, long before this
    # test): set its constant too, or it retries the unreachable Hub for ~20 s.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.delenv("NST_VGG_WEIGHTS", raising=False)
    page = Handlers(tiny_config(files["catalogue"], None))
    steps = page.gatys(_image(files["photo"]), STYLE_ID, None, 64, 2, "lbfgs", "content", 1.0,
                       False, progress=lambda *a, **k: None)  # fmt: skip
    shown = []
    with pytest.raises(gr.Error) as excinfo:
        for update in steps:
            shown.append(update)
    assert "NST_VGG_WEIGHTS" in shown[-1][1]  # the column itself says how to fix it
    assert "NST_VGG_WEIGHTS" in excinfo.value.message
    image, status = page.johnson(_image(files["photo"]), STYLE_ID, None, 128, 1.0, False)
    assert image is not None and status.startswith("**Johnson")


def test_empty_catalogue_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "catalogue.json"
    empty.write_text('{"styles": []}\n')
    demo = create_app(tiny_config(empty, None))
    page = Handlers(tiny_config(empty, None))
    assert page.styles == []
    assert "No trained styles are installed" in (page.catalogue_message or "")
    markdown = [b for b in demo.blocks.values() if type(b).__name__ == "Markdown"]
    assert any("No trained styles are installed" in (b.value or "") for b in markdown)


def test_queue_is_bounded_and_gatys_runs_alone(files) -> None:
    demo = create_app(tiny_config(files["catalogue"], None, queue_size=7))
    assert demo._queue.max_size == 7
    limits = {fn.api_name: fn.concurrency_limit for fn in demo.fns.values()}
    assert limits["gatys"] == 1
    assert limits["johnson"] == 2


def test_module_builds_a_default_demo() -> None:
    assert app_module.demo is not None
    assert app_module.default_config().device in ("cpu", "cuda")


@pytest.mark.parametrize("native", [True, False])
def test_gatys_column_is_bigger_on_cpus_with_bf16_arithmetic(monkeypatch, native) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(config, "native_bf16_cpu", lambda: native)
    settings = config.default_config()
    assert settings.gatys_size == (config.BF16_CPU_GATYS_SIZE if native else 384)
    assert settings.gatys_seconds == 40.0  # the same time budget either way


def test_examples_are_copied_for_offline_use(files) -> None:
    photo = str(files["photo"])
    demo = create_app(tiny_config(files["catalogue"], None, examples=((photo, STYLE_ID),)))
    datasets = [b for b in demo.blocks.values() if type(b).__name__ == "Dataset"]
    assert len(datasets) == 1
    (sample,) = datasets[0].samples
    cached = Path(sample[0]["path"])
    assert cached.is_file() and cached.read_bytes() == Path(photo).read_bytes()
    assert sample[1] == STYLE_ID


class _NoTorchPickler:
    """Pickles like ZeroGPU does when it sends a call to its GPU worker, and refuses
    tensors and modules: a GPU function must load or move its network inside."""

    @staticmethod
    def dumps(value: object) -> bytes:
        import io
        import pickle

        class Pickler(pickle.Pickler):
            def persistent_id(self, obj: object) -> None:
                if isinstance(obj, (torch.Tensor, torch.nn.Module)):
                    raise AssertionError(f"a {type(obj).__name__} crosses to the GPU worker")
                return None

        buffer = io.BytesIO()
        Pickler(buffer).dump(value)
        return buffer.getvalue()


def test_gpu_functions_take_picklable_cpu_arguments_and_run_on_a_cpu(
    files, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple] = []
    for name in ("johnson_on_device", "gatys_on_device"):
        real = getattr(gpu, name)

        def spy(*args, _real=real, **kwargs):
            sent.append(args + tuple(kwargs.values()))
            _NoTorchPickler.dumps(sent[-1])
            return _real(*args, **kwargs)

        monkeypatch.setattr(gpu, name, spy)
    from tests.conftest import REAL_VGG16

    vgg = REAL_VGG16 if REAL_VGG16.is_file() else "random"
    page = Handlers(tiny_config(files["catalogue"], None))
    page.config = tiny_config(files["catalogue"], None, vgg_weights=str(vgg))
    image, status = page.johnson(_image(files["photo"]), STYLE_ID, None, 128, 1.0, False)
    assert image is not None and status.startswith("**Johnson")
    updates = list(
        page.gatys(_image(files["photo"]), STYLE_ID, None, 64, 2, "lbfgs", "content", 1.0,
                   False, progress=lambda *a, **k: None)
    )  # fmt: skip
    assert updates[-1][0] is not None and "2 iterations" in updates[-1][1]
    assert len(sent) == 2 and isinstance(sent[0][0], str)  # a style id, not a network


def test_gatys_gpu_time_grows_with_size_and_iterations() -> None:
    from nst.gatys import GatysConfig

    photo = Image.new("RGB", (400, 300))
    small = gpu.gatys_gpu_seconds(photo, photo, GatysConfig(size=256, iterations=50), "cuda")
    big = gpu.gatys_gpu_seconds(photo, photo, GatysConfig(size=1024, iterations=300), "cuda")
    assert gpu.GATYS_GPU_LOAD_SECONDS < small < big <= gpu.GATYS_GPU_MAX_SECONDS


def test_an_example_row_shows_the_johnson_result(files) -> None:
    page = Handlers(tiny_config(files["catalogue"], None))
    image, status = page.johnson_example(_image(files["photo"]), STYLE_ID)
    assert Path(image).is_file() and status.startswith("**Johnson")


def test_the_bundled_examples_are_the_default_rows() -> None:
    rows = app_module.default_config().examples
    assert len(rows) >= 4
    assert all(Path(photo).parent == config.EXAMPLES for photo, _ in rows)
    assert len({style for _, style in rows}) >= 4  # each with another style


def test_live_frames_are_stylised_and_the_rate_is_shown(files) -> None:
    """Webcam frames: resized to the live size, stylised by the style's net, the rate shown."""
    page = Handlers(tiny_config(files["catalogue"], None))
    frame = (np.random.default_rng(0).random((480, 640, 3)) * 255).astype(np.uint8)
    stream = None
    for _ in range(3):
        out, status, stream = page.live(frame, STYLE_ID, 160, False, stream)
    assert out.shape == (120, 160, 3) and out.dtype == np.uint8
    model = zoo.load(STYLE_ID, catalogue=files["catalogue"])
    small = Image.fromarray(frame).resize((160, 120), Image.Resampling.BILINEAR, reducing_gap=2.0)
    expected = np.asarray(stylize(model, small, size=None))
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    assert re.search(r"Live — [\d.]+ frames/s\*\* · \d+ ms per frame", status)
    assert page.live(None, STYLE_ID, 160, False, stream)[0] is None  # the stream's last call
    with pytest.raises(gr.Error, match="There is no style"):
        page.live(frame, "nope", 160, True, None)


def test_steady_live_frames_hold_still_where_the_scene_does(files) -> None:
    """A still scene through a noisy camera: with steady strokes the shown frames change far
    less from one to the next; the first frame, and every frame without, is the net's own."""
    page = Handlers(tiny_config(files["catalogue"], None))
    rng = np.random.default_rng(0)
    scene = rng.random((120, 160, 3)) * 200 + 20
    frames = [(scene + rng.normal(0, 2, scene.shape)).round().astype(np.uint8) for _ in range(8)]
    shown: dict[bool, list[np.ndarray]] = {}
    for steady in (False, True):
        stream = None
        shown[steady] = []
        for frame in frames:
            out, _, stream = page.live(frame, STYLE_ID, 160, steady, stream)
            shown[steady].append(out.astype(float))
    assert np.abs(shown[True][0] - shown[False][0]).max() == 0

    def change(outs: list[np.ndarray]) -> float:
        return float(np.mean([np.abs(b - a).mean() for a, b in pairwise(outs[2:])]))

    assert change(shown[True]) < 0.5 * change(shown[False])


def test_the_live_stream_has_its_own_slot(files) -> None:
    demo = create_app(tiny_config(files["catalogue"], None, live_concurrency=1))
    live = next(fn for fn in demo.fns.values() if fn.api_name == "live")
    assert live.connection == "stream" and live.concurrency_id == "live"
    assert live.concurrency_limit == 1 and live.time_limit == 120
    others = {fn.concurrency_id for fn in demo.fns.values() if fn.api_name in ("johnson", "gatys")}
    assert "live" not in others


def test_gatys_starts_from_the_styles_net_within_a_time_budget(
    files, monkeypatch: pytest.MonkeyPatch
) -> None:
    """init "johnson": a zoo style's net is handed to the library; an uploaded painting
    has none and starts colour-matched; a run ended by the time budget says so."""
    from nst.gatys import GatysProgress

    seen = []

    def fake_run(content, painting, config, device):
        seen.append(config)
        yield GatysProgress(3, config.iterations, content, seconds=1.0, done=True)

    monkeypatch.setattr(gpu, "gatys_on_device", fake_run)
    page = Handlers(tiny_config(files["catalogue"], None, gatys_seconds=40.0))
    quiet = {"progress": lambda *a, **k: None}
    photo = _image(files["photo"])
    last = list(page.gatys(photo, STYLE_ID, None, 64, 50, "lbfgs", "johnson", 1.0, False,
                           **quiet))[-1]  # fmt: skip
    assert isinstance(seen[0].init_model, TransformerNet) and seen[0].init == "johnson"
    assert seen[0].max_seconds == 40.0 and seen[0].scales == 1
    assert "3 iterations" in last[1] and "40 s budget" in last[1]
    painting = _image(files["painting"])
    list(page.gatys(photo, STYLE_ID, painting, 64, 50, "lbfgs", "johnson", 1.0, False,
                    **quiet))  # fmt: skip
    assert seen[1].init == handlers.NO_NET_INIT and seen[1].init_model is None
    list(page.gatys(photo, STYLE_ID, None, 64, 50, "lbfgs", "content", 1.0, False, **quiet))
    assert seen[2].init == "content" and seen[2].init_model is None
