"""Load check of the app: latency of Johnson requests through the real server.

1. The bare model call: ``nst.stylize.stylize(model, photo)`` on a 1-megapixel photo.
2. The same request through the app with ``gradio_client`` (upload, queue, decode, model,
   PNG encode, download), one at a time: the difference is the app's overhead.
3. N concurrent requests (default 20): all must succeed; p50 / p95 latency.

The model is a random network of the trained styles' architecture (same compute as a
trained one). Run: ``.venv/bin/python benchmarks/bench_app.py`` (add ``--requests 20``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from nst.hardware import summary  # noqa: E402

STYLE_ID = "bench_style"


def machine() -> str:
    import gradio

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return f"{summary(device)}, gradio {gradio.__version__}"


def one_megapixel_photo(folder: Path) -> Path:
    """A 1155 x 866 (1.0 MP) JPEG: a real photo from ../shared if present, else a pattern."""
    source = ROOT.parent / "shared" / "data" / "content" / "tubingen.jpg"
    if source.is_file():
        image = Image.open(source).convert("RGB").resize((1155, 866), Image.Resampling.LANCZOS)
    else:
        y, x = np.mgrid[0:866, 0:1155].astype(np.float32)
        rgb = np.stack([x / 1155, y / 866, 0.5 + 0.5 * np.sin((x + y) / 23)], -1)
        image = Image.fromarray((rgb * 255).astype(np.uint8))
    path = folder / "photo_1mp.jpg"
    image.save(path, quality=92)
    return path


def build_catalogue(folder: Path, painting: Path, width: int) -> Path:
    import zoo
    from nst.transformer import TransformerConfig, TransformerNet, save_transformer

    torch.manual_seed(0)
    save_transformer(TransformerNet(TransformerConfig(width=width)), folder / "models" / STYLE_ID)
    catalogue = folder / "catalogue.json"
    zoo.add_style(
        {
            "id": STYLE_ID,
            "title": "Benchmark style",
            "painting": "-",
            "artist": "-",
            "year": 2026,
            "license": "CC0",
            "preview": f"previews/{STYLE_ID}.jpg",
            "weights": {"bundled": f"models/{STYLE_ID}"},
        },  # fmt: skip
        catalogue=catalogue,
        source_image=painting,
    )
    return catalogue


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="concurrent Johnson requests")
    parser.add_argument("--repeats", type=int, default=5, help="sequential runs per timing")
    parser.add_argument("--width", type=int, default=32, help="transformer width (32 = default)")
    parser.add_argument("--concurrency", type=int, default=None, help="app's Johnson limit")
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    import app as app_module
    import zoo
    from app import create_app, default_config, launch
    from nst.stylize import stylize

    # Time the model call inside the app too: overhead = latency - model time, per request,
    # which stays meaningful even when other processes load the machine.
    model_seconds: list[float] = []

    def timed_stylize(*a, **k):
        start = time.perf_counter()
        try:
            return stylize(*a, **k)
        finally:
            model_seconds.append(time.perf_counter() - start)

    app_module.stylize = timed_stylize

    print(f"machine: {machine()}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-app-"))
    photo = one_megapixel_photo(tmp)
    catalogue = build_catalogue(tmp / "zoo", photo, args.width)
    config = default_config(catalogue)
    if args.concurrency:
        from dataclasses import replace

        config = replace(config, johnson_concurrency=args.concurrency)
    long_side = max(Image.open(photo).size)

    # 1. the bare model call, as a Python user of the library makes it
    model = zoo.load(STYLE_ID, device=config.device, catalogue=catalogue, progress=False)
    stylize(model, photo)  # warm-up
    bare = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        stylize(model, photo)
        bare.append(time.perf_counter() - start)

    demo = create_app(config)
    _, url, _ = launch(demo, server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False, download_files=str(tmp / "downloads"))
        request = {
            "photo": handle_file(photo), "style": STYLE_ID, "style_image": None,
            "size": long_side, "strength": 1.0, "preserve_colors": False,
        }  # fmt: skip
        client.predict(**request, api_name="/johnson")  # warm-up
        # 2. through the app, one request at a time
        through_app = []
        model_seconds.clear()
        for _ in range(args.repeats):
            start = time.perf_counter()
            client.predict(**request, api_name="/johnson")
            through_app.append(time.perf_counter() - start)
        overhead = [t - m for t, m in zip(through_app, model_seconds, strict=True)]

        # 3. N requests at once, each from its own client (as N visitors would)
        clients = [Client(url, verbose=False, download_files=str(tmp / "dl")) for _ in range(4)]

        def timed(i: int) -> tuple[float, bool]:
            start = time.perf_counter()
            try:
                image, _ = clients[i % len(clients)].predict(**request, api_name="/johnson")
                ok = image is not None and Image.open(image).size == Image.open(photo).size
            except Exception as exc:  # a failed request is a result, not a crash
                print(f"request {i} failed: {exc}")
                ok = False
            return time.perf_counter() - start, ok

        wall = time.perf_counter()
        with ThreadPoolExecutor(args.requests) as pool:
            results = list(pool.map(timed, range(args.requests)))
        wall = time.perf_counter() - wall
    finally:
        demo.close()

    latencies = [t for t, _ in results]
    ok = sum(1 for _, good in results if good)
    bare_med, app_med = statistics.median(bare), statistics.median(through_app)
    width, height = Image.open(photo).size

    def runs(values: list[float]) -> str:
        return ", ".join(f"{v:.3f}" for v in values)

    lines = [
        f"photo: {width} x {height} JPEG, transformer width {args.width}, "
        f"Johnson concurrency {config.johnson_concurrency}",
        f"bare stylize():        median {bare_med:.3f} s  ({runs(bare)})",
        f"through the app:       median {app_med:.3f} s  ({runs(through_app)})",
        f"model time in the app:  {runs(model_seconds[: args.repeats])}",
        f"app overhead per request (latency - model time): median "
        f"{statistics.median(overhead):.3f} s, max {max(overhead):.3f} s (target <= 0.300 s)",
        f"app median - bare median: {app_med - bare_med:+.3f} s (noisy on a shared machine)",
        f"{args.requests} concurrent requests: {ok}/{args.requests} succeeded in {wall:.1f} s; "
        f"p50 {percentile(latencies, 50):.2f} s, p95 {percentile(latencies, 95):.2f} s, "
        f"max {max(latencies):.2f} s",
    ]
    print("\n".join(lines))
    return 0 if ok == args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
