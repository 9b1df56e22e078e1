"""Gatys starts (Johnson net, colour-matched photo), the per-evaluation hook, and the
schedule settings, with a small random VGG and a small random TransformerNet (fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nst.cli import main as cli_main
from nst.color import match_colors
from nst.errors import UsageError
from nst.gatys import (
    CONTENT_LAYERS,
    STYLE_LAYERS,
    Evaluation,
    GatysConfig,
    gatys_steps,
    stage_budgets,
)
from nst.images import load_image, to_tensor
from nst.johnson import save_transformer, stylize_tensor
from nst.vgg import load_loss_network
from tests.nets import small_transformer


@pytest.fixture(scope="module")
def tiny_net():
    return load_loss_network([*CONTENT_LAYERS, *STYLE_LAYERS], weights="random", width_divisor=8)


def _photo(width: int = 96, height: int = 72) -> Image.Image:
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, width)[None, :, None]
    y = np.linspace(0, 1, height)[:, None, None]
    base = np.concatenate([x.repeat(height, 0), y.repeat(width, 1), 0.5 * (x + y)], axis=-1)
    base = base + 0.05 * rng.standard_normal(base.shape)
    return Image.fromarray((np.clip(base, 0, 1) * 255).astype(np.uint8), mode="RGB")


def _stripes() -> Image.Image:
    arr = np.zeros((64, 64, 3), dtype=np.uint8)
    arr[:, ::8] = (250, 200, 20)
    arr[::6, :] = (20, 40, 200)
    return Image.fromarray(arr, mode="RGB")


def _config(**kwargs) -> GatysConfig:
    base = dict(size=64, iterations=6, report_every=3, scales=1, style_weight=100.0)
    base.update(kwargs)
    return GatysConfig(**base)


def _record(config: GatysConfig, net, style: Image.Image | None = None) -> list[Evaluation]:
    """Every evaluation of a run, with its image copied (the live tensor moves on)."""
    seen: list[Evaluation] = []

    def keep(e: Evaluation) -> None:
        seen.append(Evaluation(e.iteration, e.stage, e.size, e.losses, e.seconds, e.image.clone()))

    styles = [style or _stripes()]
    list(gatys_steps(_photo(), styles, config, loss_net=net, on_evaluation=keep))
    return seen


def test_johnson_init_starts_from_the_nets_output(tiny_net) -> None:
    model = small_transformer()
    seen = _record(_config(init="johnson", init_model=model), tiny_net)
    expected = stylize_tensor(model, to_tensor(load_image(_photo(), long_side=64)))
    assert seen[0].image.shape == expected.shape == (1, 3, 48, 64)
    assert torch.allclose(seen[0].image, expected, atol=1e-6)
    # ...and then optimises from there: later iterates move away and the loss drops
    assert not torch.allclose(seen[-1].image, expected, atol=1e-3)
    assert seen[-1].losses["total"] < seen[0].losses["total"]


def test_johnson_init_on_a_coarse_stage_is_the_full_size_output_downscaled(tiny_net) -> None:
    model = small_transformer()
    config = _config(size=192, scales=2, iterations=4, init="johnson", init_model=model)
    seen = _record(config, tiny_net)
    full = stylize_tensor(model, to_tensor(load_image(_photo(), long_side=192)))
    at_coarse = stylize_tensor(model, to_tensor(load_image(_photo(), long_side=96)))
    assert seen[0].size == (96, 72)
    small = torch.nn.functional.avg_pool2d(full, 2)  # a crude downscale of the same picture
    error = (seen[0].image - small).abs().mean()
    assert error < 0.03
    assert error < (at_coarse - small).abs().mean()  # not the net run at the coarse size
    assert seen[-1].size == (192, 144)


def test_johnson_init_without_a_net_is_refused() -> None:
    with pytest.raises(UsageError, match="init_model"):
        _config(init="johnson").validate()


def test_the_hook_sees_every_evaluation_in_order(tiny_net) -> None:
    # fp32: in bf16 (precision "auto" on CPUs with bf16 arithmetic) the photo's features
    # differ from its fp32 targets by rounding, so the first content error is not exactly 0
    config = _config(
        size=192, scales=2, iterations=7, coarse_iterations=2, report_every=2, precision="fp32"
    )
    seen = _record(config, tiny_net)
    assert [e.iteration for e in seen] == list(range(1, 8))
    assert [e.stage for e in seen] == [0, 0, 1, 1, 1, 1, 1]
    assert seen[0].size == (96, 72) and seen[-1].size == (192, 144)
    assert all(set(e.losses) == {"total", "content", "style", "tv"} for e in seen)
    seconds = [e.seconds for e in seen]
    assert seconds == sorted(seconds)
    # from the photo, the first evaluation has no content error: the hook sees the start
    assert seen[0].losses["content"] == pytest.approx(0.0, abs=1e-9)


def test_the_hook_agrees_with_the_reports(tiny_net) -> None:
    """A report carries the losses of its last evaluation, which the hook saw too."""
    seen: list[Evaluation] = []
    config = _config(iterations=6, report_every=3)
    reports = list(
        gatys_steps(_photo(), [_stripes()], config, loss_net=tiny_net, on_evaluation=seen.append)
    )
    assert reports[0].losses["total"] == pytest.approx(seen[2].losses["total"], rel=1e-6)
    assert reports[-1].losses["total"] == pytest.approx(seen[5].losses["total"], rel=1e-6)


def test_time_spent_in_the_hook_is_left_out_of_the_clock(tiny_net) -> None:
    import time

    seen: list[Evaluation] = []

    def slow(e: Evaluation) -> None:
        seen.append(e)
        time.sleep(0.2)

    config = _config(iterations=4, report_every=4)
    t0 = time.perf_counter()
    *_, last = gatys_steps(_photo(), [_stripes()], config, loss_net=tiny_net, on_evaluation=slow)
    wall = time.perf_counter() - t0
    assert wall >= 0.8  # four sleeps happened...
    assert last.seconds < wall - 0.7  # ...and none of them is in the run's seconds
    assert seen[-1].seconds < wall - 0.7


def test_history_size_reaches_the_optimiser(tiny_net) -> None:
    """L-BFGS with a memory of 1 takes other steps than with 100 from the 3rd on."""

    def images(history: int) -> list[torch.Tensor]:
        return [e.image for e in _record(_config(iterations=5, history_size=history), tiny_net)]

    short, long = images(1), images(100)
    assert torch.equal(short[1], long[1])  # step 1 is a gradient step for both
    assert not torch.allclose(short[-1], long[-1], atol=1e-6)


def test_coarse_iterations_split_the_budget() -> None:
    assert stage_budgets(100, [64, 128], coarse_iterations=30) == [30, 70]
    assert stage_budgets(100, [32, 64, 128], coarse_iterations=10) == [10, 10, 80]
    assert stage_budgets(90, [64, 128, 256]) == [30, 30, 30]  # None: equal shares
    with pytest.raises(UsageError, match="coarse_iterations"):
        _config(scales=3, iterations=20, coarse_iterations=10).validate()


def _painting() -> Image.Image:
    """Smooth colour noise around a warm mean: statistics a linear colour map can reach."""
    rng = np.random.default_rng(3)
    mix = np.array([[0.08, 0.0, 0.0], [0.05, 0.06, 0.0], [0.02, -0.03, 0.05]])
    arr = np.array([0.6, 0.4, 0.3]) + rng.standard_normal((64, 64, 3)) @ mix.T
    return Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8), mode="RGB")


def _rgb_cov(image: torch.Tensor) -> torch.Tensor:
    return torch.cov(image.reshape(3, -1))


def test_match_colors_takes_the_paintings_mean_and_covariance() -> None:
    photo, painting = to_tensor(_photo()), to_tensor(_painting())
    out = match_colors(photo, painting)
    assert out.shape == photo.shape
    assert torch.allclose(out.mean((0, 2, 3)), painting.mean((0, 2, 3)), atol=0.01)
    assert torch.allclose(_rgb_cov(out), _rgb_cov(painting), atol=5e-4)
    assert not torch.allclose(_rgb_cov(photo), _rgb_cov(painting), atol=5e-3)  # it had to move
    # the structure stays the photo's: a linear colour map keeps each pixel's place
    corr = torch.corrcoef(torch.stack([out[0].sum(0).flatten(), photo[0].sum(0).flatten()]))
    assert corr[0, 1] > 0.9
    assert torch.allclose(match_colors(photo, photo), photo, atol=1e-5)


def test_color_matched_init_starts_from_the_matched_photo(tiny_net) -> None:
    seen = _record(
        _config(init="color-matched", iterations=1, report_every=1), tiny_net, _painting()
    )
    photo = to_tensor(load_image(_photo(), long_side=64))
    painting = to_tensor(load_image(_painting(), long_side=64))
    assert torch.allclose(seen[0].image, match_colors(photo, painting), atol=1e-6)


def _cli(tmp_path: Path, style_name: str, *extra: str) -> int:
    content, style = tmp_path / "photo.png", tmp_path / style_name
    _photo().save(content)
    _stripes().save(style)
    args = ["gatys", str(content), str(style), "-o", str(tmp_path / "out.png")]
    args += ["--size", "64", "--iterations", "2", "--scales", "1", "--vgg-weights", "random"]
    return cli_main([*args, "--quiet", *extra])


def test_cli_init_johnson_without_a_net_for_the_style_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _cli(tmp_path, "my_upload.png", "--init", "johnson")
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: --init johnson needs a trained Johnson net")
    assert "'my_upload.png' has none" in err and "starry_night" in err and "--model" in err
    assert not (tmp_path / "out.png").exists()


def test_cli_init_johnson_with_an_unknown_model_names_the_known_styles(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _cli(tmp_path, "style.png", "--init", "johnson", "--model", "no_such_style")
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: --init johnson: Unknown style 'no_such_style'")
    assert "starry_night" in err


def test_cli_model_without_init_johnson_is_refused(tmp_path: Path, capsys) -> None:
    code = _cli(tmp_path, "style.png", "--model", "starry_night")
    assert code == 2 and "--init johnson" in capsys.readouterr().err


def test_cli_init_johnson_runs_from_a_model_folder(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "net"
    save_transformer(small_transformer(), folder)
    code = _cli(tmp_path, "style.png", "--init", "johnson", "--model", str(folder))
    assert code == 0 and "saved" in capsys.readouterr().out
    assert Image.open(tmp_path / "out.png").size == (64, 48)


def test_cli_init_johnson_finds_the_zoo_style_named_like_the_painting(
    tmp_path: Path, capsys
) -> None:
    """starry_night.jpg has a bundled net: no --model needed."""
    code = _cli(tmp_path, "starry_night.jpg", "--init", "johnson")
    assert code == 0, capsys.readouterr().err
