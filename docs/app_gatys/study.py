"""The Gatys column on this machine: how soon a person sees a picture, and a finished one.

    .venv/bin/python -m docs.app_gatys.study [--pairs 4] [--init johnson]

Starts the app with the settings it picks for this machine (``app.default_config``: on a
CPU 384 px, one scale, a 40 s budget, starting from the photo) and the real VGG16
(NST_VGG_WEIGHTS, else the data folder's: docs.common.VGG16), then for each held-out photo
and bundled style presses "Stylise" as the page does (``/johnson`` and ``/gatys`` submitted
together). Prints per
pair: seconds to the first Gatys preview, seconds to the finished picture (from the
click), its size and iterations, and the Johnson time; then min/median/max and the goal
(a finished picture of at least 384 px within 45 s, previews from the first seconds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from PIL import Image

from benchmarks.bench_live import free_port
from docs.common import CONTENT, VGG16
from docs.common import ZOO_PAIRS as PAIRS

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("NST_VGG_WEIGHTS", str(VGG16))
GOAL_SECONDS, GOAL_SIZE = 45.0, 384


def press_stylise(
    client, photo: Path, style: str, config, init: str, save: Path | None
) -> dict[str, float]:
    from gradio_client import handle_file

    common = {"photo": handle_file(str(photo)), "style": style, "style_image": None}
    start = time.monotonic()
    johnson = client.submit(
        **common, size=config.johnson_size, strength=1.0, preserve_colors=False,
        api_name="/johnson",
    )  # fmt: skip
    gatys = client.submit(
        **common, size=config.gatys_size, iterations=config.gatys_iterations,
        optimizer="lbfgs", init=init, strength=1.0, preserve_colors=False, api_name="/gatys",
    )  # fmt: skip
    first = None
    for preview, _status in gatys:
        if preview and first is None:
            first = time.monotonic() - start
    image, status = gatys.result()
    finished = time.monotonic() - start
    johnson.result()
    with Image.open(image) as result:
        size = max(result.size)
        if save is not None:
            save.mkdir(parents=True, exist_ok=True)
            result.save(save / f"{photo.stem}_{style}_{init}.png")
    return {"first": first or finished, "finished": finished, "size": size, "status": status}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=len(PAIRS))
    parser.add_argument("--init", default=None, help="the page's default unless given")
    parser.add_argument("--save", type=Path, help="keep the finished pictures in this folder")
    args = parser.parse_args()
    from gradio_client import Client

    import app as app_module
    from nst.hardware import summary

    config = app_module.default_config()
    init = args.init or config.gatys_init
    demo = app_module.create_app(config)
    port = free_port()
    app_module.launch(demo, server_port=port, prevent_thread_lock=True, quiet=True)
    print(f"machine: {summary(config.device)}")
    print(
        f"app defaults: Gatys {config.gatys_size} px, up to {config.gatys_iterations} "
        f"iterations, {config.gatys_scales} scale(s), budget {config.gatys_seconds} s, "
        f"init {init}; Johnson {config.johnson_size} px at the same time"
    )
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    rows = []
    try:
        for photo_name, style in PAIRS[: args.pairs]:
            photo = CONTENT / photo_name
            row = press_stylise(client, photo, style, config, init, args.save)
            rows.append(row)
            print(
                f"{photo_name} x {style}: first preview {row['first']:.1f} s, finished "
                f"{row['finished']:.1f} s, {row['size']} px; {row['status']}"
            )
    finally:
        demo.close()
    finished = [r["finished"] for r in rows]
    first = [r["first"] for r in rows]
    met = max(finished) <= GOAL_SECONDS and min(r["size"] for r in rows) >= GOAL_SIZE
    print(
        f"finished: min {min(finished):.1f}, median {statistics.median(finished):.1f}, max "
        f"{max(finished):.1f} s; first preview: median {statistics.median(first):.1f} s; "
        f"goal: {GOAL_SIZE} px finished within {GOAL_SECONDS:g} s "
        f"({'met' if met else 'not met'})"
    )


if __name__ == "__main__":
    main()
