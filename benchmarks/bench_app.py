"""Load check of the app: latency of Johnson requests through the real server.

1. The bare model call: ``nst.johnson.stylize(model, photo)`` on a 1-megapixel photo.
2. The same request through the app with ``gradio_client`` (upload, queue, decode, model,
   PNG encode, download), one at a time: the difference is the app's overhead.
3. N concurrent requests (default 20): all must succeed; p50 / p95 latency.

The server runs in its own process, as ``python app.py`` does (``--server inprocess`` runs
it inside the benchmark instead, where the client's threads and the server's share one
Python interpreter lock and slow each other down). The server appends the seconds of each
model call to a file, so the overhead is per request: latency - model time. The model is a
random network of the bundled styles' architecture (width 16: the same compute as a trained
one). Run: ``.venv/bin/python benchmarks/bench_app.py`` (add ``--requests 20``).
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

from benchmarks.common import CONTENT, machine  # noqa: E402

STYLE_ID = "bench_style"


def one_megapixel_photo(folder: Path) -> Path:
    """A 1155 x 866 (1.0 MP) JPEG: a real photo from the data folder if present, else a
    pattern."""
    source = CONTENT / "tubingen.jpg"
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
    from nst.johnson import TransformerConfig, TransformerNet, save_transformer

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


def timed(stylize, record):
    """``stylize`` that passes the seconds of each call to ``record``."""

    def call(*a, **k):
        start = time.perf_counter()
        try:
            return stylize(*a, **k)
        finally:
            record(time.perf_counter() - start)

    return call


def append_seconds(path: Path, seconds: float) -> None:
    with path.open("a") as fh:
        fh.write(f"{seconds}\n")


def app_config(catalogue: Path, concurrency: int | None):
    from dataclasses import replace

    from webapp import default_config

    config = default_config(catalogue)
    return replace(config, johnson_concurrency=concurrency) if concurrency else config


def serve(args: argparse.Namespace) -> int:
    """The server process: the app as ``python app.py`` runs it, timing each model call."""
    from webapp import create_app, gpu, launch

    times = Path(args.times)
    gpu.stylize = timed(gpu.stylize, lambda t: append_seconds(times, t))  # the Johnson call
    config = app_config(Path(args.serve), args.concurrency)
    launch(create_app(config), config, server_name="127.0.0.1", server_port=args.port, quiet=True)
    return 0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args, catalogue: Path, times: Path):
    """(url, stop) for a server in its own process, or in this one."""
    if args.server == "inprocess":
        from webapp import create_app, gpu, launch

        gpu.stylize = timed(gpu.stylize, lambda t: append_seconds(times, t))
        config = app_config(catalogue, args.concurrency)
        demo = create_app(config)
        _, url, _ = launch(
            demo, config, server_name="127.0.0.1", prevent_thread_lock=True, quiet=True
        )
        return url, demo.close
    import subprocess

    import httpx

    port = free_port()
    command = [sys.executable, __file__, "--serve", str(catalogue), "--port", str(port)]
    command += ["--times", str(times)]
    if args.concurrency:
        command += ["--concurrency", str(args.concurrency)]
    server = subprocess.Popen(command, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise SystemExit(f"the app server did not start on {url}")
        time.sleep(0.5)

    def stop() -> None:
        server.terminate()
        server.wait(timeout=30)

    return url, stop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="concurrent Johnson requests")
    parser.add_argument("--repeats", type=int, default=5, help="sequential runs per timing")
    parser.add_argument("--width", type=int, default=16, help="transformer width (16 = bundled)")
    parser.add_argument("--concurrency", type=int, default=None, help="app's Johnson limit")
    parser.add_argument("--server", choices=["process", "inprocess"], default="process")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # the server process's catalogue
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--times", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args)

    import gradio
    from gradio_client import Client, handle_file

    import zoo
    from nst.johnson import stylize

    print(f"machine: {machine(f'gradio {gradio.__version__}')}; server: {args.server}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-app-"))
    photo = one_megapixel_photo(tmp)
    catalogue = build_catalogue(tmp / "zoo", photo, args.width)
    times = tmp / "model_seconds.txt"
    config = app_config(catalogue, args.concurrency)
    long_side = max(Image.open(photo).size)

    def model_seconds() -> list[float]:
        return [float(line) for line in times.read_text().split()] if times.exists() else []

    # 1. the bare model call, as a Python user of the library makes it
    model = zoo.load(STYLE_ID, device=config.device, catalogue=catalogue, progress=False)
    stylize(model, photo)  # warm-up
    bare = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        stylize(model, photo)
        bare.append(time.perf_counter() - start)

    url, stop = start_server(args, catalogue, times)
    try:
        client = Client(url, verbose=False, download_files=str(tmp / "downloads"))
        request = {
            "photo": handle_file(photo), "style": STYLE_ID, "style_image": None,
            "size": long_side, "strength": 1.0, "preserve_colors": False,
        }  # fmt: skip
        client.predict(**request, api_name="/johnson")  # warm-up
        # 2. through the app, one request at a time
        through_app = []
        done_before = len(model_seconds())
        for _ in range(args.repeats):
            start = time.perf_counter()
            client.predict(**request, api_name="/johnson")
            through_app.append(time.perf_counter() - start)
        in_app = model_seconds()[done_before:]
        overhead = [t - m for t, m in zip(through_app, in_app, strict=True)]

        # 3. N requests at once, each from its own client (as N visitors would)
        clients = [Client(url, verbose=False, download_files=str(tmp / "dl")) for _ in range(4)]

        def timed_request(i: int) -> tuple[float, bool]:
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
            results = list(pool.map(timed_request, range(args.requests)))
        wall = time.perf_counter() - wall
    finally:
        stop()

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
        f"model time in the app:  {runs(in_app)}",
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
