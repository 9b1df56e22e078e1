"""stylize(): inputs, strength, colour preservation, tiling without seams, the CLI."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from nst import color
from nst.cli import main
from nst.errors import NSTError
from nst.images import to_pil, to_tensor
from nst.stylize import TILE_MARGIN, _prepare, _run_net, _tiled, _windows, plan, stylize
from nst.transformer import NormControl, TransformerConfig, TransformerNet, save_transformer


def _net(width: int = 8, seed: int = 0) -> TransformerNet:
    torch.manual_seed(seed)
    net = TransformerNet(TransformerConfig(width=width, residual_blocks=2)).eval()
    for module in net.modules():
        if isinstance(module, torch.nn.InstanceNorm2d):
            torch.nn.init.normal_(module.weight, 1.0, 0.2)
            torch.nn.init.normal_(module.bias, 0.0, 0.2)
    return net


def _photo(h: int = 90, w: int = 120) -> torch.Tensor:
    """A smooth, colourful test picture (gradients plus a disc), (1, 3, h, w) in [0, 1]."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    disc = ((yy - 0.5) ** 2 + (xx - 0.4) ** 2 < 0.08).float()
    return torch.stack([xx, yy, 0.5 * disc + 0.25 * (1 - xx)]).unsqueeze(0).clamp(0, 1)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / (a - b).pow(2).mean().clamp(min=1e-20)))


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
    assert _psnr(first, x) < 30  # the network did change the picture


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


def test_windows_cover_the_image_on_the_stride_grid() -> None:
    for length, side in [(700, 256), (1000, 512), (260, 256), (256, 256)]:
        starts = _windows(length, side)
        assert starts[0] == 0 and starts[-1] + side == length
        assert all(s % 4 == 0 for s in starts)
        assert all(
            b - a <= side - 2 * TILE_MARGIN for a, b in zip(starts, starts[1:], strict=False)
        )


def test_tiles_with_whole_image_statistics_equal_the_untiled_output() -> None:
    """With the statistics fixed, the 64 px margins make every tile exact: no seams at all."""
    net = _prepare(_net(width=8), torch.device("cpu"), "fp32")
    x = torch.rand(1, 3, 301, 517)  # odd sizes: the padding to multiples of 4 matters too
    with torch.inference_mode():
        untiled = _run_net(net, x)
        stats: list = []
        padded = torch.nn.functional.pad(x, (0, 3, 0, 3), mode="reflect")
        _run_net(net, padded, NormControl(record=stats))
        tiled = _tiled(net, x, 256, stats, progress=None)
    assert tiled.shape == untiled.shape
    assert (tiled - untiled).abs().max() < 1e-4


def test_auto_tiling_stays_close_and_reports_progress() -> None:
    calls: list[tuple[int, int]] = []
    net, x = _net(), _photo(300, 520)
    untiled = to_tensor(stylize(net, x, tile=None))
    tiled = to_tensor(stylize(net, x, tile=256, progress=lambda d, t: calls.append((d, t))))
    assert calls[0] == (0, calls[0][1]) and calls[-1] == (calls[-1][1], calls[-1][1]) > (1, 1)
    assert [d for d, _ in calls] == list(range(len(calls)))
    # Only the statistics differ (taken from a downscaled copy): close, not identical. A
    # random net is far more sensitive to them than a trained one; unrelated images of
    # this kind score about 10 dB.
    assert _psnr(tiled, untiled) > 22


def test_plan_tiles_only_over_the_budget() -> None:
    net = TransformerNet()
    assert plan(net, 1024, 1024, device="cpu").tile is None
    big = plan(net, 2160, 3840, device="cpu")
    assert big.tile is not None and big.tile % 4 == 0 and big.precision in ("fp32", "bf16")
    assert big.stats_side is not None and big.stats_side < 3840
    assert plan(net, 2160, 3840, device="cpu", tile=0).tile is None


def test_bf16_stays_close_to_fp32() -> None:
    net, x = _net(), _photo(64, 64)
    fp32 = to_tensor(stylize(net, x, precision="fp32"))
    bf16 = to_tensor(stylize(net, x, precision="bf16"))
    assert 25 < _psnr(bf16, fp32) < 200


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
    assert main(args) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["stylize", "a.jpg", "--model", str(folder), "-o", "x.png", "--tile", "big"]) == 2
    assert "--tile" in capsys.readouterr().err
