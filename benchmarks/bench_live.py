"""Live webcam frames per second, end to end, through the app's real stream endpoint.

    .venv/bin/python benchmarks/bench_live.py [--style starry_night] [--size 320]
        [--seconds 20] [--camera 640x480] [--rounds 3] [--viewers 1]

Starts the app (``webapp.create_app`` with the bundled zoo) on a local port and plays the
browser's part of Gradio's streaming protocol over HTTP, as ``gr.Image(streaming=True)``
does it: ``/queue/join`` opens the stream with the first frame, each later frame is
POSTed to ``/stream/<event_id>`` once the previous result has arrived over
``/queue/data`` (the browser does not send a frame while one is in flight), and the
stylised JPEG is fetched like the page does. Frames are camera-sized JPEG data URLs
(the browser sends ``canvas.toDataURL("image/jpeg")`` at the camera's resolution),
made from a held-out photo with a moving crop so that no two frames are equal.

Prints, per round, frames/s end to end (first result to last), the median and 95th
percentile of a frame's round trip, the server's own stylise time from the page's
status line, the goal (15 frames/s at 320x240), and the machine. ``--viewers 2`` runs
two streams at once, to show that they share the CPU and queue in their own slot.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import socket
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from PIL import Image  # noqa: E402

GOAL_FPS = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def camera_frames(photo: Path, width: int, height: int, count: int) -> list[str]:
    """``count`` JPEG data URLs of ``width`` x ``height``: a crop panning over ``photo``."""
    source = Image.open(photo).convert("RGB")
    scale = 1.25 * max(width / source.width, height / source.height)
    big = source.resize((round(source.width * scale), round(source.height * scale)))
    frames = []
    for i in range(count):
        x = (big.width - width) * (i % 20) // 20
        y = (big.height - height) * (i % 7) // 7
        buffer = io.BytesIO()
        big.crop((x, y, x + width, y + height)).save(buffer, "JPEG", quality=80)
        frames.append("data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode())
    return frames


@dataclass
class StreamResult:
    arrivals: list[float] = field(default_factory=list)  # monotonic time of each result
    round_trips: list[float] = field(default_factory=list)
    status: str = ""
    error: str | None = None

    def fps(self) -> float:
        if len(self.arrivals) < 2:
            return 0.0
        return (len(self.arrivals) - 1) / (self.arrivals[-1] - self.arrivals[0])


def _live_dependency(base: str) -> tuple[int, int]:
    """(fn_index, trigger id) of the page's ``live`` stream event."""
    config = httpx.get(f"{base}/config", timeout=30).json()
    for index, dep in enumerate(config["dependencies"]):
        if dep.get("api_name") == "live":
            return dep.get("id", index), dep["targets"][0][0]
    raise SystemExit("The app has no 'live' endpoint.")


def _payload(frame: str, style: str, size: int, steady: bool) -> list[object]:
    image = {"url": frame, "path": None, "meta": {"_type": "gradio.FileData"}}
    return [image, style, size, steady, None]


def drive_stream(
    base: str, frames: list[str], style: str, size: int, seconds: float, steady: bool = True
) -> StreamResult:
    """Play one webcam stream for ``seconds``; every result is fetched as the page does."""
    fn_index, trigger = _live_dependency(base)
    session = uuid.uuid4().hex[:11]
    result = StreamResult()
    with httpx.Client(base_url=f"{base}/gradio_api", timeout=60) as http:
        body = {
            "data": _payload(frames[0], style, size, steady), "fn_index": fn_index,
            "trigger_id": trigger, "session_hash": session, "event_data": None,
        }  # fmt: skip
        sent = time.monotonic()
        event_id = http.post("/queue/join", json=body).json()["event_id"]
        end = sent + seconds
        index = 1
        with http.stream("GET", "/queue/data", params={"session_hash": session}) as events:
            for line in events.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                kind = message.get("msg")
                if kind == "process_completed":
                    if not message.get("success", True):
                        result.error = str(message.get("output", {}).get("error"))
                    break
                if kind != "process_streaming":
                    continue
                image, status = message["output"]["data"][:2]
                if image and image.get("url"):
                    http.get(image["url"].split("/gradio_api", 1)[-1])  # the page shows it
                now = time.monotonic()
                result.arrivals.append(now)
                result.round_trips.append(now - sent)
                result.status = status or result.status
                if now >= end:
                    http.post(f"/stream/{event_id}/close")
                    continue
                body["data"] = _payload(frames[index % len(frames)], style, size, steady)
                index += 1
                sent = time.monotonic()
                http.post(f"/stream/{event_id}", json=body)
    return result


def start_app(port: int):
    """The page as ``python app.py`` serves it (this machine's settings), on ``port``."""
    from webapp import create_app, default_config, launch

    config = default_config()
    demo = create_app(config)
    launch(demo, config, server_port=port, prevent_thread_lock=True, quiet=True)
    return demo


def stylise_ms(status: str) -> str:
    found = re.search(r"(\d+) ms per frame", status)
    return found.group(1) if found else "?"


def frame_plan(style: str, size: int, width: int, height: int) -> str:
    """What ``stylize_tensor`` picks for one live frame (engine, precision), as the app's
    process would (NST_ENGINE and the installed engines apply)."""
    import zoo
    from nst.johnson import plan

    long_side = max(width, height)
    h, w = round(height * size / long_side), round(width * size / long_side)
    p = plan(zoo.load(style), h, w, device="cpu")
    return f"{p.engine}, {p.precision}, {w}x{h} px"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", default="starry_night")
    parser.add_argument("--size", type=int, default=320, help="the page's live size (long side)")
    parser.add_argument("--camera", default="640x480", help="frame size the 'browser' sends")
    parser.add_argument("--seconds", type=float, default=20.0, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--viewers", type=int, default=1, help="streams at once")
    parser.add_argument(
        "--steady",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the page's 'Steady strokes' (on, as the page starts)",
    )
    parser.add_argument(
        "--photo", type=Path, default=ROOT / "examples" / "golden_gate.jpg", help="frame source"
    )
    args = parser.parse_args()
    width, height = (int(v) for v in args.camera.split("x"))
    from nst.hardware import summary

    port = free_port()
    demo = start_app(port)
    base = f"http://127.0.0.1:{port}"
    frames = camera_frames(args.photo, width, height, 60)
    print(f"machine: {summary('cpu')}")
    print(f"engine for the frames: {frame_plan(args.style, args.size, width, height)}")
    print(
        f"app stream endpoint /live: style {args.style}, live size {args.size} px (camera "
        f"{args.camera} JPEG frames), {args.viewers} viewer(s), {args.seconds:g} s per round, "
        f"steady strokes {'on' if args.steady else 'off'}"
    )
    # Warm-up: model load, first runs.
    drive_stream(base, frames, args.style, args.size, 3.0, args.steady)
    rates: list[float] = []
    try:
        for number in range(1, args.rounds + 1):
            results: list[StreamResult] = [StreamResult() for _ in range(args.viewers)]

            def play(slot: int, into: list[StreamResult] = results) -> None:
                into[slot] = drive_stream(
                    base, frames, args.style, args.size, args.seconds, args.steady
                )

            threads = [threading.Thread(target=play, args=(i,)) for i in range(args.viewers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            for slot, res in enumerate(results):
                if res.error:
                    raise SystemExit(f"the stream failed: {res.error}")
                trips = sorted(res.round_trips[1:]) or [0.0]
                p95 = trips[min(len(trips) - 1, int(0.95 * len(trips)))]
                rates.append(res.fps())
                print(
                    f"round {number} viewer {slot + 1}: {res.fps():5.1f} frames/s "
                    f"({len(res.arrivals)} frames), round trip median "
                    f"{1000 * statistics.median(trips):.0f} ms, p95 {1000 * p95:.0f} ms, "
                    f"server stylise {stylise_ms(res.status)} ms"
                )
    finally:
        demo.close()
    print(
        f"frames/s per viewer: min {min(rates):.1f}, median {statistics.median(rates):.1f}; "
        f"goal {GOAL_FPS:g} frames/s at 320x240 with one viewer"
    )


if __name__ == "__main__":
    main()
