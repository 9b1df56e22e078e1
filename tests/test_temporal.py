"""Steady strokes: the temporal smoother keeps a running mean where the scene is still and
lets changed parts through at once."""

from __future__ import annotations

from itertools import pairwise

import pytest
import torch

from nst.color import luminance, rgb_to_ycbcr
from nst.errors import UsageError
from nst.temporal import MOVING, FrameSmoother, camera_shift, check_steady

H, W = 48, 64


def _scene(seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(seed))


def _still_clip(frames: int, gain: float = 3.0) -> tuple[list, list]:
    """A still scene with camera noise (sigma 2/255) and a 'net' that amplifies it."""
    generator = torch.Generator().manual_seed(1)
    photo, painted = _scene(0) * 0.8 + 0.1, _scene(1) * 0.8 + 0.1
    noise = [torch.randn(1, 3, H, W, generator=generator) * 2 / 255 for _ in range(frames)]
    return [photo + n for n in noise], [painted + gain * n for n in noise]


def _change(frames: list[torch.Tensor]) -> float:
    """Mean absolute change from frame to frame."""
    return sum(float((b - a).abs().mean()) for a, b in pairwise(frames)) / (len(frames) - 1)


def test_the_first_frame_shows_as_the_net_made_it() -> None:
    photos, outs = _still_clip(1)
    assert torch.equal(FrameSmoother(0.7)(photos[0], outs[0]), outs[0])


def test_a_still_scene_flickers_far_less_and_stays_on_the_picture() -> None:
    photos, outs = _still_clip(30)
    smoother = FrameSmoother(0.7)
    shown = [smoother(p, o) for p, o in zip(photos, outs, strict=True)]
    plain, steady = _change(outs[10:]), _change(shown[10:])
    # An exponential mean with weight 0.7 leaves (1 - 0.7) / sqrt(1 + 0.7) = 0.23 of it.
    assert steady < 0.3 * plain
    # The running mean is nearer the noiseless picture than any one frame.
    painted = _still_clip(1, gain=0.0)[1][0]
    per_frame = float((outs[-1] - painted).abs().mean())
    assert float((shown[-1] - painted).abs().mean()) < 0.6 * per_frame


def test_a_cut_shows_the_new_frame_at_once() -> None:
    smoother = FrameSmoother(0.9)
    dark, bright = torch.full((1, 3, H, W), 0.2), torch.full((1, 3, H, W), 0.2 + 2 * MOVING)
    for _ in range(5):
        smoother(dark, _scene(2))
    new = _scene(3)
    assert torch.equal(smoother(bright, new), new)


def test_only_the_moving_part_is_let_through() -> None:
    smoother = FrameSmoother(0.7)
    photo, before, after = _scene(4), _scene(5), _scene(6)
    smoother(photo, before)
    moved = photo.clone()
    moved[..., :, : W // 2] = 1 - moved[..., :, : W // 2]  # the left half changes a lot
    shown = smoother(moved, after)
    left, right = slice(0, W // 2 - 8), slice(W // 2 + 8, W)
    # Left: the new output. Right: 0.7 of the old one, 0.3 of the new.
    assert torch.allclose(shown[..., left], after[..., left])
    assert torch.allclose(shown[..., right], 0.7 * before[..., right] + 0.3 * after[..., right])


def test_off_and_a_new_size_show_the_frame_as_made() -> None:
    photos, outs = _still_clip(4)
    off = FrameSmoother(0.0)
    assert all(torch.equal(off(p, o), o) for p, o in zip(photos, outs, strict=True))
    smoother = FrameSmoother(0.7)
    smoother(photos[0], outs[0])
    small_photo, small_out = photos[1][..., :32, :32], outs[1][..., :32, :32]
    assert torch.equal(smoother(small_photo, small_out), small_out)
    with pytest.raises(ValueError, match="photo"):
        smoother(photos[0], small_out)


@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1, float("nan"), "0.5", True])
def test_a_bad_strength_is_refused(bad) -> None:
    with pytest.raises(UsageError, match="steady"):
        check_steady(bad)
    with pytest.raises(UsageError, match="steady"):
        FrameSmoother(bad)


def test_the_reset_starts_afresh() -> None:
    photos, outs = _still_clip(3)
    smoother = FrameSmoother(0.7)
    smoother(photos[0], outs[0])
    smoother.reset()
    assert torch.equal(smoother(photos[1], outs[1]), outs[1])


def test_the_camera_shift_is_found() -> None:
    scene = _scene(7)[:, :1]
    assert camera_shift(scene, scene) == (0, 0)
    assert camera_shift(torch.roll(scene, (3, -5), dims=(-2, -1)), scene) == (3, -5)
    # Further than an eighth of the frame: not taken for a pan.
    assert camera_shift(torch.roll(scene, (0, 20), dims=(-2, -1)), scene) == (0, 0)
    # A featureless wall in a dim room: the noise's chance peaks are not a pan.
    generator = torch.Generator().manual_seed(3)
    walls = [0.1 + 0.01 * torch.randn(1, 1, 240, 320, generator=generator) for _ in range(61)]
    assert {camera_shift(now, before) for before, now in pairwise(walls)} == {(0, 0)}
    # A smooth gradient in a tiny noisy frame, where chance peaks run higher.
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 1, 24, 32)
    tiny = [ramp + 3 / 255 * torch.randn(1, 1, 24, 32, generator=generator) for _ in range(61)]
    assert {camera_shift(now, before) for before, now in pairwise(tiny)} == {(0, 0)}


def test_strokes_travel_with_a_panning_camera() -> None:
    """A camera panning 2 px a frame over a still scene: the history moves with the scene,
    so the shown strokes stay put on it, and what comes into view is the new output."""
    generator = torch.Generator().manual_seed(2)
    wide_photo = torch.rand(1, 3, H, W + 40, generator=generator) * 0.8 + 0.1
    wide_painted = torch.rand(1, 3, H, W + 40, generator=generator)
    smoother = FrameSmoother(0.7)
    outs, shown = [], []
    for t in range(15):
        noise = torch.randn(1, 3, H, W, generator=generator) * 2 / 255
        window = slice(40 - 2 * t, 40 - 2 * t + W)  # the scene moves right in the frame
        photo = wide_photo[..., window] + noise
        outs.append(wide_painted[..., window] + 3 * noise)
        shown.append(smoother(photo, outs[-1]))
    assert torch.equal(shown[-1][..., :2], outs[-1][..., :2])  # just came into view

    def change(frames: list[torch.Tensor]) -> float:  # on the same scene pixels
        pairs = pairwise(frames[5:])
        return sum(float((b[..., 2:] - a[..., :-2]).abs().mean()) for a, b in pairs) / 9

    assert change(shown) < 0.4 * change(outs)


def test_the_gate_reads_the_luminance_of_bt601() -> None:
    """Grey stays grey; pure green weighs 0.587; the Y of rgb_to_ycbcr, alone."""
    assert torch.allclose(luminance(torch.full((1, 3, 2, 2), 0.4)), torch.full((1, 1, 2, 2), 0.4))
    green = torch.zeros(1, 3, 1, 1)
    green[:, 1] = 1
    assert luminance(green).item() == pytest.approx(0.587)
    scene = _scene(8)
    assert torch.allclose(luminance(scene), rgb_to_ycbcr(scene)[:, :1])
