"""Stylise a video file frame by frame with a Johnson net (``nst stylize clip.mp4 ...``).

Frames are decoded with PyAV (``pip install 'nst[video]'``), each is stylised as a photo
would be (same plan: engine, precision, tiling; same ``strength`` and colour options),
optionally steadied where the scene holds still (``steady``, :mod:`nst.temporal`), and
the result is encoded as H.264 (libx264, else MPEG-4 part 2 when PyAV's FFmpeg lacks
it) at the source's frame rate. The first audio stream is kept: copied packet for packet
when the output container can hold its codec, else re-encoded to AAC.

The output is written beside its final name and moved there only when every frame went
through, so a failed or interrupted run leaves no half-written video.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nst.errors import NSTError, UsageError
from nst.files import atomic_path
from nst.images import MIN_SIDE
from nst.johnson.model import TransformerNet
from nst.johnson.stylize import check_strength, prepare_stylizer
from nst.temporal import FrameSmoother

#: Input suffixes routed to the video path (FFmpeg reads many more; these are the usual).
INPUT_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts")
#: Output suffix -> FFmpeg muxer. Given explicitly: the file is first written under a
#: temporary name whose suffix says nothing.
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
#: Audio codecs each muxer takes as they are (None: any). Anything else is re-encoded.
REMUX_AUDIO: dict[str, frozenset[str] | None] = {
    "mp4": frozenset({"aac", "mp3", "alac", "ac3", "eac3"}),
    "mov": frozenset({"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le"}),
    "matroska": None,
    "avi": frozenset({"mp3", "ac3", "pcm_s16le"}),
}
#: x264's constant quality: 18 keeps the fine brush texture of a style (23, its default,
#: smears it).
X264_CRF = "18"
#: Bits per pixel per frame for the MPEG-4 fallback, which has no constant-quality mode.
MPEG4_BITS_PER_PIXEL = 0.3

#: progress(frames_done, frames_total); total 0 when the container does not say.
FrameProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class VideoResult:
    path: Path
    frames: int
    width: int
    height: int
    fps: Fraction
    video_codec: str
    audio: str  # "copied (aac)", "re-encoded (pcm_s16le -> aac)" or "none"


def is_video(path: str | os.PathLike) -> bool:
    """True for the file names routed to :func:`stylize_video`."""
    return Path(path).suffix.lower() in INPUT_SUFFIXES


def _import_av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise NSTError(
            "Stylising a video needs PyAV: pip install 'nst[video]' (or pip install av)."
        ) from exc
    return av


# ----------------------------------------------------------------------------- checks


def _output_format(output: Path) -> str:
    fmt = OUTPUT_FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"Cannot write a video to '{output}': use one of {', '.join(OUTPUT_FORMATS)}."
        )
    return fmt


def _open_input(av: Any, source: Path) -> Any:
    name = f"'{source}'"
    if not source.is_file():
        raise NSTError(f"{name} does not exist or is not a file.")
    if source.stat().st_size == 0:
        raise NSTError(f"{name} is an empty file (0 bytes).")
    try:
        return av.open(str(source))
    except av.error.FFmpegError as exc:
        raise NSTError(
            f"{name} could not be read as a video ({_ffmpeg_reason(exc)}): it is not a video "
            "file, or it is truncated or damaged."
        ) from exc


def _ffmpeg_reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _video_stream(container: Any, name: str) -> Any:
    if not container.streams.video:
        kinds = ", ".join(s.type for s in container.streams) or "nothing"
        raise NSTError(f"{name} has no video stream (it holds {kinds}); choose a video file.")
    stream = container.streams.video[0]
    if stream.codec_context is None or stream.codec_context.codec is None:
        raise NSTError(
            f"{name}: its video stream's codec is unknown to FFmpeg (no decoder for it); "
            "convert it to H.264 first."
        )
    return stream


def _frame_rate(stream: Any, name: str) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or rate <= 0:
        raise NSTError(f"{name} does not say its frame rate; remux it with ffmpeg first.")
    return Fraction(rate).limit_denominator(100000)


def _output_size(width: int, height: int, size: int | None) -> tuple[int, int]:
    """(width, height) of the output: ``size`` as its long side, rounded down to even
    numbers (4:2:0 video stores colour per 2x2 pixels: H.264 refuses odd sides)."""
    if size is not None:
        if not isinstance(size, int) or size < MIN_SIDE:
            raise UsageError(f"size is the output's long side in pixels (16+), not {size!r}.")
        scale = size / max(width, height)
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
    width, height = width - width % 2, height - height % 2
    if min(width, height) < MIN_SIDE:
        raise NSTError(f"The video would be {width} x {height} px: under {MIN_SIDE} px a side.")
    return width, height


# ----------------------------------------------------------------------------- streams


def _add_video_stream(av: Any, out: Any, rate: Fraction, width: int, height: int) -> Any:
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    stream = out.add_stream(codec, rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    if codec == "libx264":
        stream.options = {"crf": X264_CRF}
    else:
        stream.bit_rate = int(width * height * float(rate) * MPEG4_BITS_PER_PIXEL)
    return stream


@dataclass
class _Audio:
    """How the source's first audio stream reaches the output."""

    source: Any
    target: Any
    copy: bool

    def describe(self) -> str:
        name = self.source.codec_context.name
        return f"copied ({name})" if self.copy else f"re-encoded ({name} -> aac)"


def _add_audio_stream(container: Any, out: Any, fmt: str) -> _Audio | None:
    if not container.streams.audio:
        return None
    source = container.streams.audio[0]
    allowed = REMUX_AUDIO[fmt]
    if allowed is None or source.codec_context.name in allowed:
        return _Audio(source, out.add_stream_from_template(source), copy=True)
    rate = source.codec_context.sample_rate or 48000
    target = out.add_stream("aac", rate=rate)
    target.layout = _named_layout(source.codec_context.layout.nb_channels)
    return _Audio(source, target, copy=False)


def _named_layout(channels: int) -> str:
    """A layout AAC takes for this many channels: sources such as PCM in Matroska may say
    only "1 channels", which the encoder refuses; more than it knows is downmixed."""
    return {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}.get(channels, "stereo")


def _audio_packets(av: Any, audio: _Audio, packet: Any) -> Iterator[Any]:
    """What one source audio packet becomes in the output."""
    if audio.copy:
        if packet.dts is not None:  # None: the demuxer's end-of-stream marker
            packet.stream = audio.target
            yield packet
        return
    for frame in packet.decode():
        frame.pts = None  # the encoder times the resampled frames itself, gap-free
        yield from audio.target.encode(frame)


# ----------------------------------------------------------------------------- frames


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def _to_rgb(y: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0, 1] -> contiguous (H, W, 3) uint8."""
    arr = y[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0)
    return np.ascontiguousarray(arr.numpy())


def _decoded_frames(
    av: Any, container: Any, stream: Any, audio: _Audio | None, name: str
) -> Iterator[Any]:
    """The source's video frames and (when there is audio) its audio packets, in file
    order; FFmpeg's errors become clear ones."""
    streams = [stream] + ([audio.source] if audio else [])
    count = 0
    try:
        for packet in container.demux(*streams):
            if packet.stream.type == "audio":
                yield packet
                continue
            for frame in packet.decode():
                count += 1
                yield frame
    except av.error.FFmpegError as exc:
        raise NSTError(
            f"{name} is truncated or damaged: decoding stopped after {count} frames "
            f"({_ffmpeg_reason(exc)})."
        ) from exc
    expected = stream.frames  # 0 when the container does not record it (Matroska)
    if count == 0:
        raise NSTError(f"{name} holds no video frames that could be decoded.")
    if expected and count < expected:
        raise NSTError(f"{name} is truncated: {count} of its {expected} frames could be decoded.")


def stylize_video(
    model: TransformerNet,
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    size: int | None = None,
    steady: float = 0.0,
    progress: FrameProgress | None = None,
    **options: Any,
) -> VideoResult:
    """Stylise every frame of ``source`` into the video file ``output`` (.mp4, .m4v,
    .mov, .mkv or .avi), keeping the frame rate and the audio. ``size``: the long side of
    the output (None: the source's). ``steady``: in [0, 1), how much of the last frames
    stays where the scene is still (:class:`nst.temporal.FrameSmoother`; 0: every frame as
    the net made it, the default). ``options``: the other options of
    :func:`nst.johnson.stylize` (strength, colours, device, tiling, precision, engine, ...);
    the net is planned and placed once for all frames."""
    av = _import_av()
    check_strength(options.get("strength", 1.0))  # a bad option fails before any work
    smoother = FrameSmoother(steady)
    source, output = Path(source), Path(output)
    fmt = _output_format(output)
    name = f"'{source}'"
    with _open_input(av, source) as container:
        stream = _video_stream(container, name)
        stream.thread_type = "AUTO"  # decode on FFmpeg's threads while the net runs
        rate = _frame_rate(stream, name)
        width, height = _output_size(stream.codec_context.width, stream.codec_context.height, size)
        stylise = prepare_stylizer(model, height, width, **options)
        total = stream.frames or 0
        with atomic_path(output) as tmp, av.open(str(tmp), "w", format=fmt) as out:
            video = _add_video_stream(av, out, rate, width, height)
            audio = _add_audio_stream(container, out, fmt)
            frames, last_pts = 0, -1
            if progress:
                progress(0, total)
            for item in _decoded_frames(av, container, stream, audio, name):
                if isinstance(item, av.Packet):
                    assert audio is not None
                    for packet in _audio_packets(av, audio, item):
                        out.mux(packet)
                    continue
                rgb = item.to_ndarray(width=width, height=height, format="rgb24")
                x = _to_tensor(rgb)
                shown = smoother(x, stylise(x, None))
                frame = av.VideoFrame.from_ndarray(_to_rgb(shown), format="rgb24")
                # The source's timing on a 1/rate clock, so the video stays in sync
                # with the copied audio; strictly increasing, as encoders demand.
                seconds = item.time if item.time is not None else frames / rate
                last_pts = max(last_pts + 1, round(seconds * rate))
                frame.pts, frame.time_base = last_pts, 1 / rate
                out.mux(video.encode(frame))
                frames += 1
                if progress:
                    progress(frames, total)
            out.mux(video.encode(None))
            if audio is not None and not audio.copy:
                out.mux(audio.target.encode(None))
    return VideoResult(
        output,
        frames,
        width,
        height,
        rate,
        video.codec_context.name,
        audio.describe() if audio else "none",
    )
