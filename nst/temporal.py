"""Steady strokes on video and the webcam: where the scene holds still, show a running mean
of the stylised frames instead of each frame alone.

A Johnson net stylises frames one by one, and it amplifies small changes of its input:
camera noise comes out several times larger, so on a still scene every stroke shimmers.
:class:`FrameSmoother` keeps an exponential moving average of the net's outputs and shows
it wherever the photo has not changed beyond noise; where it has (motion, a cut), the new
output shows at once. (A new style on a still scene fades in over a few frames.)

The gate compares each frame with the running mean of the *inputs* (the photo that the
shown picture was made from), not with the previous frame, so slow motion opens it as its
change adds up instead of smearing. A camera that pans moves the whole picture: the shift
between the frame and that running mean is found by phase correlation, and the history is
moved with the scene before the two are compared and blended, so the strokes travel with
what they paint. Other motion (a person walking, a zoom) opens the gate there, and those
parts are the net's own output for the frame, with strokes that still re-render.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from nst.color import luminance
from nst.errors import UsageError

#: History weight where the scene is still; 0.7 averages over about six frames
#: (benchmarks/bench_flicker.py --clips measures the trade).
DEFAULT_STEADY = 0.7

# Gate, on the local mean (5x5) of the absolute luminance change, in [0, 1] units. Camera
# noise of sigma 2/255 per channel leaves about 1.2/255 there: below QUIET the picture
# is treated as still; above MOVING as changed, and the new output shows alone.
QUIET = 3 / 255
MOVING = 12 / 255
WINDOW = 5
# A phase-correlation peak of a real shift stands at 0.3-1 (the share of the picture that
# moved with it); between unrelated noise frames of 320x240 the largest value is about 0.015.
# Weaker peaks are not checked further.
PEAK = 0.05
# A shift is taken only if it leaves at most this share of the frames' mismatch.
BETTER = 0.8


def check_steady(steady: float) -> float:
    """A smoothing strength in [0, 1): 0 shows every frame as the net made it."""
    if isinstance(steady, bool) or not isinstance(steady, (int, float)):
        raise UsageError(f"steady must be a number in [0, 1), not {steady!r}.")
    if math.isnan(steady) or not 0.0 <= steady < 1.0:
        raise UsageError(f"steady must be at least 0 and below 1 (0 = off), not {steady}.")
    return float(steady)


def camera_shift(now: torch.Tensor, before: torch.Tensor) -> tuple[int, int]:
    """The whole-pixel shift (dy, dx) that moves ``before`` onto ``now``, both (1, 1, H, W),
    by phase correlation, looked for within an eighth of the frame each way. (0, 0) unless
    the peak is clear and the shift matches the frames clearly better than none: a
    featureless, noisy frame has chance peaks, the more the smaller it is."""
    cross = torch.fft.rfft2(now[0, 0]) * torch.fft.rfft2(before[0, 0]).conj()
    peak = torch.fft.irfft2(cross / cross.abs().clamp_min(1e-12), s=now.shape[-2:])
    reach_y, reach_x = peak.shape[0] // 8, peak.shape[1] // 8
    # Shifts -reach..reach each way, with no shift at (reach_y, reach_x).
    near = torch.roll(peak, (reach_y, reach_x), dims=(0, 1))[: 2 * reach_y + 1, : 2 * reach_x + 1]
    at = int(near.argmax())
    row, col = divmod(at, near.shape[1])
    dy, dx = row - reach_y, col - reach_x
    if (dy, dx) == (0, 0) or float(near.flatten()[at]) < PEAK:
        return 0, 0
    moved, inside = _shifted(before, dy, dx)
    kept = (now - moved).abs().mul(inside).sum() / inside.sum().clamp_min(1)
    if float(kept) > BETTER * float((now - before).abs().mean()):
        return 0, 0
    return dy, dx


def _moving(luma: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Per pixel, 0 where the frame matches the inputs' running mean to within camera noise,
    1 where it has changed, a ramp between."""
    change = F.avg_pool2d((luma - seen).abs(), WINDOW, 1, WINDOW // 2, count_include_pad=False)
    return ((change - QUIET) / (MOVING - QUIET)).clamp(0, 1)


def _shifted(x: torch.Tensor, dy: int, dx: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` moved by (dy, dx), and a (1, 1, H, W) mask of where it has a picture (not
    what rolled in from the far edge)."""
    height, width = x.shape[-2:]
    inside = torch.zeros_like(x[:, :1])
    inside[..., max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)] = 1
    return torch.roll(x, (dy, dx), dims=(-2, -1)), inside


class FrameSmoother:
    """One stream's temporal smoothing: ``shown = smoother(photo, stylised)`` per frame.

    ``photo`` is the frame the net saw and ``stylised`` its output, both (1, 3, H, W) in
    [0, 1] and of the same size. ``steady`` is the history's weight where the scene is
    still (0: off). A change of frame size starts afresh.
    """

    def __init__(self, steady: float = DEFAULT_STEADY) -> None:
        self.steady = check_steady(steady)
        self._shown: torch.Tensor | None = None
        self._seen: torch.Tensor | None = None  # the running mean of the inputs' luminance

    def reset(self) -> None:
        self._shown = self._seen = None

    @torch.no_grad()
    def __call__(self, photo: torch.Tensor, stylised: torch.Tensor) -> torch.Tensor:
        if photo.shape != stylised.shape:
            raise ValueError(f"photo {tuple(photo.shape)} and output {tuple(stylised.shape)}")
        stylised = stylised.float()
        photo = photo.to(device=stylised.device, dtype=torch.float32)
        if self.steady == 0.0:
            return stylised
        luma = luminance(photo)
        if self._shown is None or self._shown.shape != stylised.shape:
            self._shown, self._seen = stylised.clone(), luma
            return stylised
        assert self._seen is not None
        dy, dx = camera_shift(luma, self._seen)
        keep_inside: torch.Tensor | float = 1.0
        if dy or dx:  # the camera moved: the history moves with the scene first
            self._shown, keep_inside = _shifted(self._shown, dy, dx)
            self._seen, _ = _shifted(self._seen, dy, dx)
        keep = self.steady * (1 - _moving(luma, self._seen)) * keep_inside  # per pixel
        self._shown = torch.lerp(stylised, self._shown, keep)
        self._seen = torch.lerp(luma, self._seen, keep)
        return self._shown.clone()
