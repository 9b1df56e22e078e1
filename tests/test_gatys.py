"""Gatys optimisation with a small random VGG: mechanics, options and errors (fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nst.cli import main as cli_main
from nst.color import rgb_to_ycbcr
from nst.errors import NSTError, UsageError
from nst.gatys import (
    CONTENT_LAYERS,
    STYLE_LAYERS,
    GatysConfig,
    gatys_steps,
    stage_budgets,
    stage_sizes,
)
from nst.images import load_image, to_tensor
from nst.vgg import load_loss_network


@pytest.fixture(scope="module")
def tiny_net():
    return load_loss_network([*CONTENT_LAYERS, *STYLE_LAYERS], weights="random", width_divisor=8)


def _photo(width: int = 96, height: int = 72, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, width)[None, :, None]
    y = np.linspace(0, 1, height)[:, None, None]
    base = np.concatenate([x.repeat(height, 0), y.repeat(width, 1), 0.5 * (x + y)], axis=-1)
    base = base + 0.05 * rng.standard_normal(base.shape)
    return Image.fromarray((np.clip(base, 0, 1) * 255).astype(np.uint8), mode="RGB")


def _stripes(seed: int = 1) -> Image.Image:
    arr = np.zeros((64, 64, 3), dtype=np.uint8)
    arr[:, ::8] = (250, 200, 20)
    arr[::6, :] = (20, 40, 200)
    return Image.fromarray(arr, mode="RGB")


def _config(**kwargs) -> GatysConfig:
    base = dict(size=64, iterations=20, report_every=5, scales=1)
    base.update(kwargs)
    return GatysConfig(**base)


def test_stage_sizes_halve_down_to_the_minimum() -> None:
    assert stage_sizes(512, 0.75, 3) == [128, 256, 512]
    assert stage_sizes(512, 0.75, 1) == [512]
    assert stage_sizes(160, 0.5, 3) == [160]  # 80 x 40 would be too small for relu5_1
    budgets = stage_budgets(301, [128, 256, 512])
    assert sum(budgets) == 301 and all(b >= 1 for b in budgets)


def test_progress_reports_then_a_full_size_result(tiny_net) -> None:
    reports = list(gatys_steps(_photo(), [_stripes()], _config(), loss_net=tiny_net))
    assert [r.iteration for r in reports] == [5, 10, 15, 20]
    assert [r.done for r in reports] == [False, False, False, True]
    assert reports[-1].image.size == (64, 48) and reports[-1].size == (64, 48)
    assert all(set(r.losses) == {"total", "content", "style", "tv"} for r in reports)
    assert reports[-1].seconds >= reports[0].seconds


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_optimizers_lower_the_loss(tiny_net, optimizer: str) -> None:
    config = _config(
        optimizer=optimizer, iterations=60, report_every=10, learning_rate=0.03, style_weight=100.0
    )
    reports = list(gatys_steps(_photo(), [_stripes()], config, loss_net=tiny_net))
    totals = [r.losses["total"] for r in reports]
    assert all(b <= a for a, b in zip(totals, totals[1:], strict=False)), totals
    assert totals[-1] < 0.6 * totals[0]
    assert reports[-1].losses["style"] < 0.4 * reports[0].losses["style"]


def test_coarse_to_fine_runs_every_stage_and_ends_at_full_size(tiny_net) -> None:
    config = _config(size=256, scales=3, iterations=6, report_every=2)
    reports = list(gatys_steps(_photo(96, 96), [_stripes()], config, loss_net=tiny_net))
    assert [r.size for r in reports] == [(64, 64), (128, 128), (256, 256)]
    assert reports[-1].image.size == (256, 256)


def test_noise_init_is_seeded(tiny_net) -> None:
    def run(seed: int) -> np.ndarray:
        return np.asarray(_final(_config(init="noise", seed=seed, iterations=5), tiny_net))

    a, b, c = run(0), run(0), run(1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def _final(config: GatysConfig, net) -> Image.Image:
    *_, last = gatys_steps(_photo(), [_stripes()], config, loss_net=net)
    return last.image


def test_init_from_an_image(tiny_net, tmp_path: Path) -> None:
    start = tmp_path / "start.png"
    Image.new("RGB", (32, 24), (255, 0, 0)).save(start)
    config = _config(
        init="image",
        init_image=str(start),
        iterations=1,
        report_every=1,
        content_weight=0.0,
        style_weight=0.0,
    )
    arr = np.asarray(_final(config, tiny_net)).astype(int)
    assert arr[..., 0].mean() > 240 and arr[..., 1].mean() < 15  # no loss: stays the start


def test_should_stop_ends_early_with_a_full_size_image(tiny_net) -> None:
    calls = []
    config = _config(size=128, scales=2, iterations=100)
    reports = list(
        gatys_steps(
            _photo(),
            [_stripes()],
            config,
            loss_net=tiny_net,
            should_stop=lambda: calls.append(1) or len(calls) >= 2,
        )
    )
    assert reports[-1].done and reports[-1].iteration == 10
    assert reports[-1].image.size == (128, 96)


def test_a_time_budget_ends_the_run_with_a_finished_picture(tiny_net) -> None:
    """max_seconds: the first report past the budget is the last, done, at full size."""
    config = _config(size=96, scales=1, iterations=1000, report_every=5, max_seconds=1e-6)
    reports = list(gatys_steps(_photo(), [_stripes()], config, loss_net=tiny_net))
    assert [r.done for r in reports] == [True] and reports[0].iteration == 5
    assert reports[0].image.size == (96, 72)
    unlimited = _config(size=96, scales=1, iterations=12, report_every=5, max_seconds=None)
    last = list(gatys_steps(_photo(), [_stripes()], unlimited, loss_net=tiny_net))[-1]
    assert last.iteration == 12
    with pytest.raises(UsageError, match="max_seconds"):
        _config(max_seconds=0).validate()


def test_preserve_colors_keeps_the_photo_chroma(tiny_net) -> None:
    photo = _photo()
    config = _config(preserve_colors=True, size=96)
    out = to_tensor(_final(config, tiny_net))
    chroma_out = rgb_to_ycbcr(out)[:, 1:]
    chroma_in = rgb_to_ycbcr(to_tensor(photo))[:, 1:]
    plain = to_tensor(_final(_config(size=96), tiny_net))
    err_kept = (chroma_out - chroma_in).abs().mean()
    err_plain = (rgb_to_ycbcr(plain)[:, 1:] - chroma_in).abs().mean()
    assert err_kept < 0.02 and err_kept < err_plain / 2


def test_two_styles_blend(tiny_net) -> None:
    other = Image.new("RGB", (64, 64), (30, 160, 60))
    config = _config(style_blend=[0.5, 0.5], iterations=5)
    *_, last = gatys_steps(_photo(), [_stripes(), other], config, loss_net=tiny_net)
    assert last.done and last.losses["style"] > 0
    with pytest.raises(NSTError, match="style"):
        list(gatys_steps(_photo(), [], config, loss_net=tiny_net))


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(optimizer="sgd"), "optimizer"),
        (dict(init="zeros"), "init"),
        (dict(init="image"), "init_image"),
        (dict(size=8), "size"),
        (dict(iterations=0), "iterations"),
        (dict(style_weight=-1.0), "negative"),
        (dict(precision="fp16"), "precision"),
    ],
)
def test_bad_settings_are_refused_clearly(tiny_net, bad: dict, message: str) -> None:
    with pytest.raises(NSTError, match=message):
        list(gatys_steps(_photo(), [_stripes()], _config(**bad), loss_net=tiny_net))


def test_cuda_asked_without_gpu_is_a_clear_error(tiny_net) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(NSTError, match="CUDA"):
        list(gatys_steps(_photo(), [_stripes()], _config(), device="cuda", loss_net=tiny_net))


def test_cli_writes_the_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    content, style = tmp_path / "photo.jpg", tmp_path / "style.png"
    _photo().save(content)
    _stripes().save(style)
    out = tmp_path / "out.png"
    code = cli_main(
        [
            "gatys",
            str(content),
            str(style),
            "-o",
            str(out),
            "--size",
            "64",
            "--iterations",
            "4",
            "--vgg-weights",
            "random",
            "--quiet",
            "--scales",
            "1",
            "--save-every",
            "2",
        ]
    )
    assert code == 0
    assert Image.open(out).size == (64, 48)
    assert (tmp_path / "out_00002.png").exists()
    assert "saved" in capsys.readouterr().out


def test_cli_bad_input_exits_1_and_bad_options_2_with_a_message(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    style = tmp_path / "style.png"
    _stripes().save(style)
    code = cli_main(
        [
            "gatys",
            str(bad),
            str(style),
            "-o",
            str(tmp_path / "o.png"),
            "--vgg-weights",
            "random",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1  # the photo is broken: the command line itself was fine
    assert err.startswith("error: ") and "Traceback" not in err
    code = cli_main(
        [
            "gatys",
            str(style),  # the photo, then three styles for two blend weights
            str(style),
            str(style),
            str(style),
            "-o",
            str(tmp_path / "o.png"),
            "--style-blend",
            "1,2",
            "--vgg-weights",
            "random",
            "--quiet",
        ]
    )
    assert code == 2 and "--style-blend" in capsys.readouterr().err


def test_strength_mixes_the_result_with_the_photo(tiny_net) -> None:
    photo, style = _photo(), _stripes()
    runs = {}
    for strength in (1.0, 0.5, 0.0):
        config = _config(iterations=5, strength=strength)
        *_, final = gatys_steps(photo, [style], config, device="cpu", loss_net=tiny_net)
        runs[strength] = to_tensor(final.image)
    content = to_tensor(load_image(photo, long_side=64))  # the photo as the run sized it
    assert (runs[0.0] - content).abs().max() <= 1 / 255  # strength 0: the photo itself
    assert (runs[1.0] - content).abs().mean() > 0.02
    half = (runs[1.0] + content) / 2
    assert (runs[0.5] - half).abs().max() <= 1.5 / 255  # a linear mix, rounded to 8 bits


def test_strength_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(NSTError, match="strength"):
        _config(strength=1.5).validate()


def _conv_output_dtypes(net) -> tuple[list[torch.dtype], torch.utils.hooks.RemovableHandle]:
    seen: list[torch.dtype] = []
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    handle = conv.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen, handle


def test_bf16_runs_the_loss_network_in_bf16_and_ends_near_the_fp32_result(tiny_net) -> None:
    finals, dtypes = {}, {}
    for precision in ("fp32", "bf16"):
        seen, handle = _conv_output_dtypes(tiny_net)
        try:
            config = _config(iterations=30, report_every=30, precision=precision)
            *_, last = gatys_steps(_photo(), [_stripes()], config, loss_net=tiny_net)
        finally:
            handle.remove()
        assert last.precision == precision
        finals[precision], dtypes[precision] = last, set(seen)
    # The optimised image's evaluations ran through the net in bf16; the targets (the
    # photo's features, the painting's Grams) were computed outside autocast, in fp32.
    assert dtypes["fp32"] == {torch.float32}
    assert dtypes["bf16"] == {torch.float32, torch.bfloat16}
    a = np.asarray(finals["fp32"].image).astype(float)
    b = np.asarray(finals["bf16"].image).astype(float)
    assert np.abs(a - b).mean() > 0.01  # a different path, not the same one relabelled
    fp32_loss, bf16_loss = finals["fp32"].losses["total"], finals["bf16"].losses["total"]
    assert abs(bf16_loss - fp32_loss) < 0.15 * fp32_loss, (fp32_loss, bf16_loss)
    assert all(isinstance(v, float) for v in finals["bf16"].losses.values())
