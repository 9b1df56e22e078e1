"""Video files: every frame stylised, frame rate, size and audio kept, clear errors for
bad input, and never a half-written output."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch
from nets import small_transformer
from PIL import Image
from psnr import psnr

from nst import color
from nst.cli import main
from nst.errors import NSTError, UsageError
from nst.johnson import save_transformer, stylize_tensor
from nst.video import stylize_video

av = pytest.importorskip("av", reason="PyAV is not installed (pip install 'nst[video]')")

W, H, FRAMES, FPS, RATE = 32, 24, 6, 10, 8000


def _picture(i: int) -> np.ndarray:
    """Frame ``i``: a moving colour gradient, (H, W, 3) uint8."""
    yy, xx = np.mgrid[0:H, 0:W]
    r = (xx * 255 // W + 20 * i) % 256
    g = yy * 255 // H
    b = np.full_like(xx, 60 + 25 * i)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def _write_audio(container, stream, seconds: float) -> None:
    ctx = stream.codec_context
    total, step, done = int(RATE * seconds), ctx.frame_size or 1024, 0
    while done < total:
        n = min(step, total - done)
        wave = 0.2 * np.sin(2 * np.pi * 440 * np.arange(done, done + n) / RATE)
        samples = wave.astype(np.float32)[None]
        if ctx.format.name.startswith("s16"):
            samples = (samples * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format=ctx.format.name, layout="mono")
        frame.sample_rate, frame.pts = RATE, done
        container.mux(stream.encode(frame))
        done += n
    container.mux(stream.encode(None))


def make_clip(
    path: Path,
    *,
    video: bool = True,
    audio: str | None = "aac",
    fmt: str | None = None,
    index_first: bool = False,
    picture: Callable[[int], np.ndarray] = _picture,
) -> Path:
    """A tiny clip made with PyAV: W x H, FRAMES frames at FPS, optional mono audio.
    ``index_first``: MP4 with its index (moov) in front, so a cut copy still opens."""
    options = {"movflags": "+faststart"} if index_first else {}
    with av.open(str(path), "w", format=fmt, options=options) as container:
        if video:
            stream = container.add_stream("libx264", rate=FPS)
            stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
            if picture is not _picture:  # keep the picture's noise: H.264 would skip it
                stream.options = {"qp": "0"}
        sound = container.add_stream(audio, rate=RATE) if audio else None
        if sound is not None:
            sound.layout = "mono"
        if video:
            for i in range(FRAMES):
                frame = av.VideoFrame.from_ndarray(picture(i), format="rgb24")
                frame.pts = i
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        if sound is not None:
            _write_audio(container, sound, FRAMES / FPS)
    return path


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1).unsqueeze(0).float() / 255


def _luma(x: torch.Tensor) -> torch.Tensor:
    """Luminance, which 4:2:0 video keeps at full resolution (colour is kept per 2x2 px,
    too coarse for a random net's pixel-fine colours at 32 x 24)."""
    return color.rgb_to_ycbcr(x)[:, :1]


def _only(folder: Path, *names: str) -> None:
    """``folder`` holds exactly ``names``: no output, no temporary left behind."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


@pytest.fixture
def net() -> torch.nn.Module:
    return small_transformer()


def test_every_frame_is_stylised_and_the_audio_copied(tmp_path: Path, net) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    out = tmp_path / "out.mp4"
    seen: list[tuple[int, int]] = []
    result = stylize_video(net, clip, out, progress=lambda d, t: seen.append((d, t)))
    assert (result.frames, result.width, result.height, result.fps) == (FRAMES, W, H, FPS)
    assert result.audio == "copied (aac)"
    assert seen == [(i, FRAMES) for i in range(FRAMES + 1)]
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264"
        assert (video.codec_context.width, video.codec_context.height) == (W, H)
        assert video.average_rate == Fraction(FPS)
        assert container.streams.audio[0].codec_context.name == "aac"
    # The audio is the source's, packet for packet: remuxed, not re-encoded.
    assert _audio_packets(out) == _audio_packets(clip)
    # Each output frame is the net's output for that source frame, in order (up to
    # H.264's loss: ~36 dB), and far from the source frame itself (~9 dB).
    source, written = _frames(clip), _frames(out)
    assert len(written) == FRAMES
    for src, got in zip(source, written, strict=True):
        expected = _luma(stylize_tensor(net, _tensor(src), device="cpu"))
        assert psnr(_luma(_tensor(got)), expected) > 30
        assert psnr(_luma(_tensor(got)), _luma(_tensor(src))) < 20


def test_audio_the_container_cannot_hold_is_reencoded_to_aac(tmp_path: Path, net) -> None:
    clip = make_clip(tmp_path / "clip.mkv", audio="pcm_s16le", fmt="matroska")
    out = tmp_path / "out.mp4"
    result = stylize_video(net, clip, out, size=21)  # odd sizes are rounded down to even
    assert result.audio == "re-encoded (pcm_s16le -> aac)"
    assert (result.width, result.height) == (20, 16)
    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert audio.codec_context.sample_rate == RATE
        seconds = float(audio.duration * audio.time_base)
        assert FRAMES / FPS <= seconds < FRAMES / FPS + 0.3  # AAC pads its last frame
    assert len(_frames(out)) == FRAMES


def test_a_clip_without_audio_stays_silent(tmp_path: Path, net) -> None:
    clip = make_clip(tmp_path / "clip.mp4", audio=None)
    result = stylize_video(net, clip, tmp_path / "out.mkv")
    assert result.audio == "none" and result.frames == FRAMES
    with av.open(str(tmp_path / "out.mkv")) as container:
        assert not container.streams.audio


def _truncated(tmp_path: Path) -> Path:
    data = make_clip(tmp_path / "full.mp4").read_bytes()
    (tmp_path / "full.mp4").unlink()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # the index at the end lost
    return tmp_path / "cut.mp4"


def _cut_after_the_index(tmp_path: Path) -> Path:
    # No audio: then every byte after the index is video, and the cut loses frames.
    data = make_clip(tmp_path / "full.mp4", audio=None, index_first=True).read_bytes()
    (tmp_path / "full.mp4").unlink()
    assert data.find(b"moov") < data.find(b"mdat") < len(data) * 2 // 3
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])  # opens, frames missing
    return tmp_path / "cut.mp4"


def _audio_only(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "cut.mp4", video=False)


def _not_a_video(tmp_path: Path) -> Path:
    path = tmp_path / "cut.mp4"
    path.write_text("this is a text file with a video's name\n" * 20)
    return path


def _unknown_codec(tmp_path: Path) -> Path:
    """Matroska whose video codec id no decoder knows (the H.264 id, renamed)."""
    data = make_clip(tmp_path / "full.mkv", audio="pcm_s16le", fmt="matroska").read_bytes()
    (tmp_path / "full.mkv").unlink()
    assert data.count(b"V_MPEG4/ISO/AVC") == 1
    (tmp_path / "cut.mp4").write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_QQQQQ/ISO/AVC"))
    return tmp_path / "cut.mp4"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_truncated, "could not be read as a video.*truncated or damaged"),
        (_cut_after_the_index, "truncated"),
        (_audio_only, "has no video stream"),
        (_not_a_video, "could not be read as a video.*not a video file"),
        (_unknown_codec, "codec is unknown to FFmpeg"),
    ],
)
def test_bad_input_is_refused_clearly_and_writes_nothing(tmp_path: Path, net, make, message):
    source = make(tmp_path)
    with pytest.raises(NSTError, match=message):
        stylize_video(net, source, tmp_path / "out.mp4")
    _only(tmp_path, source.name)


def test_cli_routes_videos_and_shows_frame_progress(tmp_path: Path, net, capsys) -> None:
    folder = save_transformer(net, tmp_path / "model")
    clip = make_clip(tmp_path / "clip.mov", fmt="mov")
    out = tmp_path / "styled.mp4"
    assert main(["stylize", str(clip), "--model", str(folder), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"wrote {out} (32 x 24, 6 frames at 10 fps" in captured.out
    assert f"{FRAMES}/{FRAMES}" in captured.err and "frame" in captured.err  # tqdm's bar
    assert len(_frames(out)) == FRAMES
    steady = tmp_path / "steady.mp4"
    assert main(["stylize", str(clip), "--model", str(folder), "-o", str(steady), "--steady"]) == 0
    assert len(_frames(steady)) == FRAMES
    photo = tmp_path / "photo.png"
    Image.fromarray(_picture(0)).save(photo)
    args = ["stylize", str(photo), "--model", str(folder), "-o", str(tmp_path / "p.png")]
    assert main([*args, "--steady"]) == 2
    assert "--steady steadies the frames of a video" in capsys.readouterr().err
    assert main([*args[:-2], "-o", str(clip.with_suffix(".x.mp4")), "--steady", "1"]) == 2
    bad = tmp_path / "styled.png"
    assert main(["stylize", str(clip), "--model", str(folder), "-o", str(bad)]) == 2
    assert "Cannot write a video to" in capsys.readouterr().err
    assert not bad.exists()


def _noisy_still(i: int) -> np.ndarray:
    """Frame ``i`` of a still scene filmed with a noisy camera (sigma 3 grey levels)."""
    noise = np.random.default_rng(i).normal(0, 3, (H, W, 3))
    return np.clip(_picture(0) + noise, 0, 255).round().astype(np.uint8)


def _flicker(frames: list[np.ndarray]) -> float:
    """Mean absolute change of luminance from frame to frame, 0-255."""
    lumas = [_luma(_tensor(f)) for f in frames]
    return 255 * float(np.mean([(b - a).abs().mean() for a, b in pairwise(lumas)]))


def test_steady_frames_flicker_less_on_a_still_scene(tmp_path: Path, net) -> None:
    clip = make_clip(tmp_path / "still.mp4", audio=None, picture=_noisy_still)
    plain, steady = tmp_path / "plain.mp4", tmp_path / "steady.mp4"
    stylize_video(net, clip, plain)
    stylize_video(net, clip, steady, steady=0.8)
    plain_frames, steady_frames = _frames(plain), _frames(steady)
    # The first frame is the net's own; later ones move far less (H.264's own noise stays).
    assert psnr(_luma(_tensor(steady_frames[0])), _luma(_tensor(plain_frames[0]))) > 30
    assert _flicker(steady_frames) < 0.6 * _flicker(plain_frames)


def test_bad_options_fail_before_any_work(tmp_path: Path, net) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    with pytest.raises(UsageError, match="strength"):
        stylize_video(net, clip, tmp_path / "out.mp4", strength=2.0)
    with pytest.raises(UsageError, match="steady"):
        stylize_video(net, clip, tmp_path / "out.mp4", steady=1.0)
    with pytest.raises(UsageError, match="Cannot write a video"):
        stylize_video(net, clip, tmp_path / "out.webm")
    _only(tmp_path, "clip.mp4")
