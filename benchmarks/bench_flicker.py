"""Flicker of Johnson nets on video: how much a stylised frame changes when the scene moves
by a pixel or the camera adds sensor noise. Frames are stylised one by one, so both show
up as strokes that re-render ("swim") from frame to frame.

    .venv/bin/python benchmarks/bench_flicker.py [--model zoo:starry_night ...]
        [--model runs/multi/export:the_scream ...] [--size 512]

- **shift consistency**: stylise the photo without its last k columns and without its
  first k, and take the mean absolute difference (0-255) where both show the same pixels,
  a 16 px border left out; the mean over k = 1...7. The nets downsample by 4, so a shift
  of 4 or 8 hides most of the aliasing; real motion mostly is off that grid.
- **noise stability**: the mean absolute difference (0-255) between the outputs for the
  photo and for the photo plus Gaussian noise (sigma 2/255), and the gain: that over the
  mean absolute difference of the inputs.

With ``--clips``, instead, two short clips made from each photo, stylised frame by frame with
and without :class:`nst.temporal.FrameSmoother` (``nst stylize clip.mp4 --steady``):

- **still**: the photo with fresh noise (sigma 2/255) in each of 24 frames, as a camera on
  a tripod sees it; the mean absolute change from frame to frame, and the mean absolute
  difference from the net's output for the noiseless photo;
- **pan**: a window 24 px narrower than the photo, moving 1 px a frame; the change from
  frame to frame where consecutive frames show the same pixels, and the mean absolute
  difference from the frame's own output (what the smoothing smears).

A ``--model`` is ``zoo:ID`` (a bundled style), or ``PATH`` (a one-style net), or
``PATH:STYLE`` (one style of a multi-style net). Default: the four bundled styles, the
peers a new net is compared with. Prints one row per net and style, the median of the
bundled nets, and the machine. Runs the PyTorch path in fp32, one image at a time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.common import CONTENT  # noqa: E402
from nst.hardware import summary  # noqa: E402
from nst.images import load_image, to_tensor  # noqa: E402
from nst.johnson import TransformerNet, load_transformer, stylize_tensor  # noqa: E402
from nst.temporal import DEFAULT_STEADY, FrameSmoother  # noqa: E402

PHOTOS = ("tubingen.jpg", "golden_gate.jpg", "dog.jpg", "kodim08_town_houses.png")
BUNDLED = ("starry_night", "great_wave", "the_scream", "composition_vii")
SHIFTS = range(1, 8)
BORDER = 16
NOISE_SIGMA = 2 / 255
CLIP_FRAMES = 24

#: A photo (1, 3, H, W) in [0, 1] -> its stylised picture, the same size.
Paint = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Flicker:
    shift: float  # mean absolute difference, 0-255, over k = 1..7
    noise: float  # mean absolute difference, 0-255
    gain: float  # noise over the input noise's own mean absolute difference


def parse_model(text: str) -> tuple[str, TransformerNet, str | None]:
    """``zoo:ID``, ``PATH`` or ``PATH:STYLE`` -> (label, net, style)."""
    if text.startswith("zoo:"):
        style_id = text.removeprefix("zoo:")
        return style_id, load_transformer(ROOT / "zoo" / "models" / style_id), None
    path, _, style = text.partition(":")
    net = load_transformer(path)
    label = f"{Path(path).name}:{style}" if style else Path(path).name
    return label, net, style or None


def run(net: TransformerNet, style: str | None, photo: torch.Tensor) -> torch.Tensor:
    return stylize_tensor(net, photo, engine="torch", precision="fp32", tile=None, style=style)


def shift_consistency(paint: Paint, photo: torch.Tensor) -> float:
    """Mean over k of the mean |difference| where the two crops show the same pixels."""
    width = photo.shape[-1]
    diffs = []
    for k in SHIFTS:
        left = paint(photo[..., : width - k])  # columns 0 .. W-k-1
        right = paint(photo[..., k:])  # columns k .. W-1
        # Columns k .. W-k-1 of the photo: at k.. in `left`, at 0.. in `right`.
        a = left[..., BORDER:-BORDER, k + BORDER : width - k - BORDER]
        b = right[..., BORDER:-BORDER, BORDER : width - 2 * k - BORDER]
        diffs.append(float((a - b).abs().mean()) * 255)
    return statistics.fmean(diffs)


def noise_stability(paint: Paint, photo: torch.Tensor, seed: int) -> tuple[float, float]:
    """(output difference, input difference), both mean |difference| in 0-255."""
    generator = torch.Generator().manual_seed(seed)
    noisy = (photo + NOISE_SIGMA * torch.randn(photo.shape, generator=generator)).clamp(0, 1)
    out = float((paint(photo) - paint(noisy)).abs().mean()) * 255
    return out, float((noisy - photo).abs().mean()) * 255


def measure(paint: Paint, photos: list[torch.Tensor]) -> Flicker:
    """Both numbers for ``paint`` (a photo -> its stylised picture), over ``photos``."""
    shifts, outs, ins = [], [], []
    for seed, photo in enumerate(photos):
        shifts.append(shift_consistency(paint, photo))
        out, inp = noise_stability(paint, photo, seed)
        outs.append(out)
        ins.append(inp)
    return Flicker(statistics.fmean(shifts), statistics.fmean(outs), sum(outs) / sum(ins))


@dataclass(frozen=True)
class Clip:
    flicker: float  # mean |change| from frame to frame, 0-255, on the same scene pixels
    error: float  # mean |difference| from the reference output, 0-255


def still_clip(photo: torch.Tensor, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    noise = [torch.randn(photo.shape, generator=generator) for _ in range(CLIP_FRAMES)]
    return [(photo + NOISE_SIGMA * n).clamp(0, 1) for n in noise]


def pan_clip(photo: torch.Tensor) -> list[torch.Tensor]:
    width = photo.shape[-1] - CLIP_FRAMES
    return [photo[..., t : t + width] for t in range(CLIP_FRAMES)]


def smooth(frames: list[torch.Tensor], outs: list[torch.Tensor], steady: float) -> list:
    """What the viewer sees: the net's outputs through a fresh smoother."""
    smoother = FrameSmoother(steady)
    return [smoother(frame, out) for frame, out in zip(frames, outs, strict=True)]


def mean_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    inner = (a - b)[..., BORDER:-BORDER, BORDER:-BORDER]
    return float(inner.abs().mean()) * 255


def measure_clips(
    net: TransformerNet, style: str | None, photos: list[torch.Tensor], steadies: list[float]
) -> dict[float, tuple[Clip, Clip]]:
    """Per smoothing strength: (the still clip, the pan clip), over all photos."""
    cells: dict[float, list[list[float]]] = {s: [[], [], [], []] for s in steadies}
    for seed, photo in enumerate(photos):
        clean = run(net, style, photo)
        still = still_clip(photo, seed)
        still_outs = [run(net, style, frame) for frame in still]
        pan = pan_clip(photo)
        pan_outs = [run(net, style, frame) for frame in pan]
        for steady, (s_flicker, s_error, p_flicker, p_error) in cells.items():
            shown = smooth(still, still_outs, steady)
            s_flicker += [mean_abs(b, a) for a, b in pairwise(shown)]
            s_error += [mean_abs(s, clean) for s in shown]
            shown = smooth(pan, pan_outs, steady)
            # Frame t + 1 shows the scene 1 px further on: its column c is column c + 1 of t.
            p_flicker += [mean_abs(b[..., :-1], a[..., 1:]) for a, b in pairwise(shown)]
            p_error += [mean_abs(s, o) for s, o in zip(shown, pan_outs, strict=True)]
    mean = statistics.fmean
    return {
        steady: (Clip(mean(c[0]), mean(c[1])), Clip(mean(c[2]), mean(c[3])))
        for steady, c in cells.items()
    }


def print_clips(models: list[str], photos: list[torch.Tensor], steady: float) -> None:
    print(f"{CLIP_FRAMES} frames a clip, smoothed (--steady {steady:g}) and not")
    head = ("still: flicker", "error", "pan: flicker", "smear")
    print(f"{'net':<34} {'smoothing':>9} " + " ".join(f"{h:>14}" for h in head))
    for text in models:
        label, net, style = parse_model(text)
        for value, (still, pan) in measure_clips(net, style, photos, [0.0, steady]).items():
            cells = (still.flicker, still.error, pan.flicker, pan.error)
            name = "off" if value == 0 else f"{value:g}"
            print(f"{label:<34} {name:>9} " + " ".join(f"{c:>14.2f}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", help="zoo:ID, PATH or PATH:STYLE")
    parser.add_argument("--size", type=int, default=512, help="long side of the photos")
    parser.add_argument("--content", type=Path, default=CONTENT, help="folder of the photos")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--clips", action="store_true", help="the still and pan clips instead")
    parser.add_argument("--steady", type=float, default=DEFAULT_STEADY, help="for --clips")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    photos = [to_tensor(load_image(args.content / name, long_side=args.size)) for name in PHOTOS]
    models = args.model or [f"zoo:{s}" for s in BUNDLED]
    if args.clips:
        print(f"clips at {args.size} px from {', '.join(PHOTOS)}")
        print_clips(models, photos, args.steady)
        print(f"machine: {summary('cpu')}")
        return 0
    print(f"flicker at {args.size} px on {', '.join(PHOTOS)}")
    print(f"{'net':<34} {'shift (0-255)':>14} {'noise (0-255)':>14} {'noise gain':>11}")
    bundled: list[Flicker] = []
    for text in models:
        label, net, style = parse_model(text)
        result = measure(partial(run, net, style), photos)
        if text.startswith("zoo:"):
            bundled.append(result)
        print(f"{label:<34} {result.shift:>14.2f} {result.noise:>14.2f} {result.gain:>10.2f}x")
    if bundled:
        shift = statistics.median(r.shift for r in bundled)
        gain = statistics.median(r.gain for r in bundled)
        print(f"{'median of the bundled nets':<34} {shift:>14.2f} {'':>14} {gain:>10.2f}x")
    print(f"machine: {summary('cpu')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
