"""stylize(): inputs, strength, colour preservation, exact tiling, the CLI."""

from __future__ import annotations

import io

import pytest
import torch
from nets import small_transformer
from PIL import Image
from psnr import psnr

from nst import color
from nst.cli import main
from nst.errors import NSTError
from nst.images import to_pil, to_tensor
from nst.johnson import TransformerNet, plan, save_transformer, stylize, stylize_tensor
from nst.johnson.stylize import MIN_TILE
from nst.johnson.tiling import _ChannelStats, _cores

_net = small_transformer


def _photo(h: int = 90, w: int = 120) -> torch.Tensor:
    """A smooth, colourful test picture (gradients plus a disc), (1, 3, h, w) in [0, 1]."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    disc = ((yy - 0.5) ** 2 + (xx - 0.4) ** 2 < 0.08).float()
    return torch.stack([xx, yy, 0.5 * disc + 0.25 * (1 - xx)]).unsqueeze(0).clamp(0, 1)


@pytest.fixture
def one_thread():
    """Tiled tests run hundreds of tiny windows, where waking a second thread per op
    costs more than it gains (50x slower on a busy 2-core machine): run them on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_all_image_forms_give_the_same_result(tmp_path) -> None:
    net, x = _net(), to_tensor(to_pil(_photo()))  # 8-bit values, as files hold them
    pil = to_pil(x)
    pil.save(tmp_path / "photo.png")
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    results = [
        stylize(net, source, device="cpu")
        for source in (
            x,
            pil,
            tmp_path / "photo.png",
            str(tmp_path / "photo.png"),
            buffer.getvalue(),
        )
    ]
    assert all(r.size == (120, 90) and r.mode == "RGB" for r in results)
    first = to_tensor(results[0])
    assert all(torch.equal(first, to_tensor(r)) for r in results[1:])
    assert psnr(first, x) < 30  # the network did change the picture


def test_size_sets_the_long_side() -> None:
    assert stylize(_net(), _photo(90, 120), size=64, device="cpu").size == (64, 48)
    assert stylize(_net(), to_pil(_photo(333, 517)), device="cpu").size == (517, 333)


def test_strength_zero_returns_the_content_and_one_the_full_style() -> None:
    net, x = _net(), _photo()
    assert torch.equal(to_tensor(stylize(net, x, strength=0.0)), to_tensor(to_pil(x)))
    full = to_tensor(stylize(net, x, strength=1.0))
    half = to_tensor(stylize(net, x, strength=0.5))
    expected = to_tensor(to_pil(torch.lerp(x, full, 0.5)))
    assert (half - expected).abs().max() <= 2 / 255  # two 8-bit roundings


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan"), "1"])
def test_bad_strength_is_refused(strength) -> None:
    with pytest.raises(NSTError, match="strength"):
        stylize(_net(), _photo(), strength=strength)


def test_preserve_colors_keeps_the_photo_chroma() -> None:
    net, x = _net(), _photo()
    plain = to_tensor(stylize(net, x))
    kept = to_tensor(stylize(net, x, preserve_colors=True))
    chroma = lambda t: color.rgb_to_ycbcr(t)[:, 1:]  # noqa: E731
    luma = lambda t: color.rgb_to_ycbcr(t)[:, :1]  # noqa: E731
    # The stylised luminance with the photo's chroma, up to 8-bit rounding ...
    assert (kept - color.preserve_colors(plain, x)).abs().max() <= 3 / 255
    # ... so where no channel clips, the photo's colours are back and the style's are gone.
    inside = ((kept > 0.02) & (kept < 0.98)).all(dim=1, keepdim=True).expand(1, 2, -1, -1)
    assert inside.float().mean() > 0.2
    kept_error = (chroma(kept) - chroma(x)).abs()[inside].mean()
    assert kept_error < 0.01
    assert (chroma(plain) - chroma(x)).abs()[inside].mean() > 3 * kept_error
    assert (luma(kept) - luma(plain)).abs()[inside[:, :1]].mean() < 0.01


def test_bad_inputs_are_refused_clearly() -> None:
    net = _net()
    with pytest.raises(NSTError, match=r"\(1, 3, H, W\)"):
        stylize(net, torch.rand(2, 3, 32, 32))
    with pytest.raises(NSTError, match=r"\[0, 1\]"):
        stylize(net, torch.rand(1, 3, 32, 32) * 255)
    with pytest.raises(NSTError, match="precision"):
        stylize(net, _photo(), precision="int4")
    with pytest.raises(NSTError, match="tile"):
        stylize(net, _photo(), tile=8)
    with pytest.raises(NSTError, match="not an image"):
        stylize(net, b"definitely not a picture")


def test_cores_partition_the_map_on_the_stride_grid() -> None:
    for length, core, align in [(700, 224, 4), (1000, 480, 4), (256, 256, 4), (135, 8, 1)]:
        runs = _cores(length, core, align)
        assert runs[0][0] == 0 and runs[-1][1] == length
        assert all(end == nxt for (_, end), (nxt, _) in zip(runs, runs[1:], strict=False))
        assert all(start % align == 0 and 0 < end - start <= core for start, end in runs)


def test_channel_stats_merge_to_the_whole_maps_population_variance() -> None:
    """Pieces of unequal size of an fp32 map whose mean is large against its spread:
    the float64 merge gives InstanceNorm2d's biased variance of the whole."""
    torch.manual_seed(0)
    x = 50 + 0.5 * torch.randn(1, 5, 37, 91)
    acc = _ChannelStats()
    for rows in (slice(0, 3), slice(3, 30), slice(30, 37)):
        for cols in (slice(0, 50), slice(50, 91)):
            acc.add(x[..., rows, cols])
    mean, var = acc.result()
    expected_var, expected_mean = torch.var_mean(x.double(), dim=(0, 2, 3), correction=0)
    assert mean.dtype == var.dtype == torch.float64
    torch.testing.assert_close(mean, expected_mean, rtol=1e-7, atol=0)
    # The unbiased (n - 1) variance would be off by 1 / n = 3e-4: well outside rtol.
    torch.testing.assert_close(var, expected_var, rtol=1e-5, atol=0)  # fp32 per piece


@pytest.mark.parametrize(
    ("size", "tile", "photo_skip"),
    [  # odd sizes: padding to 4 matters
        ((200, 300), 64, False),
        ((200, 300), 96, False),
        ((333, 517), 128, False),
        ((201, 299), 64, True),
    ],
)
def test_tiled_output_equals_the_untiled_output(
    size: tuple[int, int], tile: int, photo_skip: bool, one_thread
) -> None:
    """Every norm layer's statistics are exact, so tiles agree with the whole-image pass
    everywhere, tile borders included (wrong halos or statistics give errors of ~0.1-1)."""
    net, x = _net(width=8, photo_skip=photo_skip), torch.rand(1, 3, *size)
    untiled = stylize_tensor(net, x, device="cpu", tile=None, precision="fp32")
    tiled = stylize_tensor(net, x, device="cpu", tile=tile, precision="fp32")
    assert plan(net, *size, device="cpu", tile=tile).tile == tile
    assert tiled.shape == untiled.shape == x.shape
    assert (tiled - untiled).abs().max() < 1e-3
    assert (untiled - x).abs().mean() > 0.05  # the net did change the picture


def test_tiled_stylize_reports_progress_and_matches_in_8_bit(one_thread) -> None:
    calls: list[tuple[int, int]] = []
    net, x = _net(), _photo(300, 520)
    untiled = to_tensor(stylize(net, x, tile=None))
    tiled = to_tensor(
        stylize(net, x, tile=MIN_TILE * 2, progress=lambda d, t: calls.append((d, t)))
    )
    assert calls[0] == (0, calls[0][1]) and calls[-1] == (calls[-1][1], calls[-1][1]) > (1, 1)
    assert [d for d, _ in calls] == list(range(len(calls)))
    # Float differences of ~1e-6 flip an 8-bit rounding only now and then.
    assert (tiled - untiled).abs().max() <= 1.5 / 255  # one step, allowing float noise
    assert (tiled != untiled).float().mean() < 0.01


def test_tiling_leaves_the_model_and_input_untouched(one_thread) -> None:
    net, x = _net(), torch.rand(1, 3, 100, 140)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    before = x.clone()
    stylize_tensor(net, x, device="cpu", tile=64, precision="fp32")
    assert torch.equal(x, before)
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())


def test_plan_tiles_only_over_the_budget() -> None:
    net = TransformerNet()
    assert plan(net, 1024, 1024, device="cpu").tile is None
    big = plan(net, 2160, 3840, device="cpu")
    assert big.tile is not None and big.tile % 4 == 0 and big.precision in ("fp32", "bf16")
    assert plan(net, 2160, 3840, device="cpu", tile=0).tile is None


def test_bf16_stays_close_to_fp32() -> None:
    net, x = _net(), _photo(64, 64)
    fp32 = to_tensor(stylize(net, x, precision="fp32"))
    bf16 = to_tensor(stylize(net, x, precision="bf16"))
    assert 25 < psnr(bf16, fp32) < 200


def test_cli_writes_the_image(tmp_path, capsys) -> None:
    folder = save_transformer(_net(), tmp_path / "model")
    to_pil(_photo()).save(tmp_path / "photo.jpg")
    out = tmp_path / "out.png"
    args = ["stylize", str(tmp_path / "photo.jpg"), "--model", str(folder), "-o", str(out)]
    assert main([*args, "--size", "80", "--strength", "0.7", "--preserve-colors"]) == 0
    assert Image.open(out).size == (80, 60)
    assert "wrote" in capsys.readouterr().out


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys) -> None:
    folder = save_transformer(_net(), tmp_path / "model")
    args = ["stylize", str(tmp_path / "missing.jpg"), "--model", str(folder), "-o", "x.png"]
    assert main(args) == 1  # a missing file: the work failed
    assert "does not exist" in capsys.readouterr().err
    assert main(["stylize", "a.jpg", "--model", str(folder), "-o", "x.png", "--tile", "big"]) == 2
    assert "--tile" in capsys.readouterr().err
    assert main([*args, "--strength", "2"]) == 2  # a bad option: a usage error
    assert "strength must be in [0, 1]" in capsys.readouterr().err
