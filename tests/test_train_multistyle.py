"""Training multi-style nets: several paintings in one run, a painting added to a trained
net by its own rows, and the temporal-stability terms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nst.errors import NSTError, UsageError
from nst.files import file_sha256
from nst.johnson import TransformerConfig, TransformerNet, load_transformer, save_transformer
from nst.johnson.adapter import apply_adapter, read_adapter
from nst.johnson.model import zero_head
from tests.test_train import (
    TINY,
    _one_thread,  # noqa: F401 - autouse: tiny convolutions, 1 thread
    make_photos,
    make_style,
)
from train import checkpoint as ckpt
from train.__main__ import main
from train.config import TrainConfig
from train.loop import Stability, build_model, compute_loss


@pytest.fixture
def paintings(tmp_path: Path) -> list[Path]:
    first = make_style(tmp_path / "stripes.png")
    second = tmp_path / "turned.png"
    Image.open(first).rotate(90).save(second)
    third = tmp_path / "noise.png"
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((48, 48, 3)) * 255).astype(np.uint8)).save(third)
    return [first, second, third]


def _latest_weights(run: Path) -> TransformerNet:
    found = ckpt.latest_checkpoint(run)
    assert found is not None
    return load_transformer(found.path)


def test_one_run_trains_every_painting(tmp_path: Path, paintings: list[Path]) -> None:
    photos = make_photos(tmp_path / "photos")
    out = tmp_path / "run"
    styles = [str(p) for p in paintings[:2]]
    scale = ["--style-scale", "turned=2"]
    assert main(["--style", *styles, "--data", str(photos), "--out", str(out), *TINY, *scale]) == 0
    export = load_transformer(out / "export")
    assert export.config.style_ids == ["stripes", "turned"]
    assert export.config.training["style_scale"] == ["turned=2"]  # the card states it
    assert (out / "export/styles/stripes.jpg").is_file()
    assert (out / "export/samples/turned").is_dir()
    # Round robin: 4 steps, 2 styles: both rows moved away from their common start.
    config = TrainConfig(style=styles, data=str(photos), out=str(out), width=8, residual_blocks=1)
    start = build_model(config.finish())
    trained = _latest_weights(out)
    for norm, first in zip(trained.norms, start.norms, strict=True):
        for row in (0, 1):
            assert (norm.weight[row] - first.weight[row]).abs().max() > 1e-4


def test_a_folder_of_paintings_is_a_multi_style_run(tmp_path: Path, paintings: list[Path]) -> None:
    config = TrainConfig(style=str(tmp_path), data="photos", out=str(tmp_path / "run")).finish()
    assert config.style_ids == ["noise", "stripes", "turned"]


def test_a_one_style_net_warm_starts_every_row(tmp_path: Path, paintings: list[Path]) -> None:
    torch.manual_seed(0)
    source = TransformerNet(TransformerConfig(width=8, residual_blocks=1))
    for norm in source.norms:
        torch.nn.init.normal_(norm.weight, 1.0, 0.3)
    save_transformer(source, tmp_path / "source")
    config = TrainConfig(
        style=[str(p) for p in paintings], data="photos", out=str(tmp_path / "run"),
        width=8, residual_blocks=1, init_from=str(tmp_path / "source"),
    ).finish()  # fmt: skip
    net = build_model(config)
    assert net.config.num_styles == 3
    for mine, theirs in zip(net.norms, source.norms, strict=True):
        for row in range(3):
            torch.testing.assert_close(mine.weight[row], theirs.weight)
    torch.testing.assert_close(net.head[1].weight, source.head[1].weight)


def test_an_added_style_trains_only_its_own_rows(tmp_path: Path, paintings: list[Path]) -> None:
    photos = make_photos(tmp_path / "photos")
    base = tmp_path / "base"
    styles = [str(p) for p in paintings[:2]]
    main(["--style", *styles, "--data", str(photos), "--out", str(base), *TINY])

    added = tmp_path / "added"
    args = ["--add-style", str(paintings[2]), "--init-from", str(base / "export"), *TINY]
    assert main([*args, "--data", str(photos), "--out", str(added)]) == 0
    after = _latest_weights(added)
    assert after.config.style_ids == ["stripes", "turned", "noise"]
    assert after.config.training["add_style_start"] in ("stripes", "turned")
    base_export = load_transformer(base / "export")  # what --init-from read (fp16)
    moved = False
    for key, value in after.state_dict().items():
        old = base_export.state_dict()[key]
        if value.shape == old.shape:
            torch.testing.assert_close(value, old, atol=0, rtol=0)  # frozen convolutions
        else:
            torch.testing.assert_close(value[:2], old, atol=0, rtol=0)  # the old rows
            moved |= not torch.equal(value[2], old[0]) and not torch.equal(value[2], old[1])
    assert moved  # the new row trained
    # The export carries the new style alone as an adapter pinned to the base's file.
    adapter = added / "export" / "adapter"
    config, rows = read_adapter(adapter)
    assert config["style"]["id"] == "noise" and config["base"]["styles"] == ["stripes", "turned"]
    assert all(row.dim() == 1 for row in rows.values())
    base_sha = file_sha256(base / "export" / "model.safetensors")
    grown = apply_adapter(base_export, base_sha, adapter)
    whole = load_transformer(added / "export")
    photo = torch.rand(1, 3, 40, 48)
    with torch.no_grad():
        # The export holds fp16 weights, the adapter its rows in fp32: fp16 rounding apart.
        expected = whole(photo, style="noise")
        torch.testing.assert_close(grown(photo, style="noise"), expected, atol=5e-3, rtol=0)
    with pytest.raises(NSTError, match="sha256"):
        apply_adapter(base_export, "0" * 64, adapter)


def test_add_style_needs_a_base_and_a_new_name(tmp_path: Path, paintings: list[Path]) -> None:
    with pytest.raises(UsageError, match="--init-from"):
        TrainConfig(add_style=str(paintings[0]), data="d", out="o").finish()
    save_transformer(
        TransformerNet(TransformerConfig(width=8, residual_blocks=1, style={"id": "stripes"})),
        tmp_path / "base",
    )
    config = TrainConfig(
        add_style=str(paintings[0]), init_from=str(tmp_path / "base"), data="d", out="o",
    ).finish()  # fmt: skip
    with pytest.raises(NSTError, match="already has a style 'stripes'"):
        build_model(config)


class _FixedLoss:
    """A stand-in perceptual loss: zero, so only the stability terms remain."""

    def content_targets(self, x: torch.Tensor) -> dict:
        return {}

    def __call__(self, y: torch.Tensor, targets: dict) -> tuple[torch.Tensor, dict]:
        zero = y.sum() * 0
        return zero, {"total": zero}


def test_the_stability_terms_of_the_identity_net() -> None:
    """A net that outputs its input: shifting the photo shifts the output exactly (shift
    term 0), and the noise passes through unchanged (noise term = weight x sigma^2)."""
    net = TransformerNet(TransformerConfig(width=8, residual_blocks=1, photo_skip=True))
    zero_head(net)
    net.train()
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    stability = Stability(shift_weight=1000.0, max_shift=3, noise_weight=1000.0, noise_sigma=0.02)
    loss, parts = compute_loss(
        net, _FixedLoss(), x, False, stability, torch.Generator().manual_seed(1)
    )
    assert float(parts["shift"]) < 1e-9
    assert float(parts["noise"]) == pytest.approx(1000.0 * 0.02**2, rel=0.05)
    assert float(loss.detach()) == pytest.approx(float(parts["noise"]) + float(parts["shift"]))


def test_the_stability_terms_penalise_a_net_that_is_not_steady() -> None:
    torch.manual_seed(0)
    net = TransformerNet(TransformerConfig(width=8, residual_blocks=1)).train()
    x = torch.rand(2, 3, 64, 64)
    stability = Stability(shift_weight=1000.0, noise_weight=1000.0)
    loss, parts = compute_loss(
        net, _FixedLoss(), x, False, stability, torch.Generator().manual_seed(1)
    )
    assert float(parts["shift"]) > 1e-3 and float(parts["noise"]) > 0
    loss.backward()
    assert net.head[1].weight.grad is not None and net.head[1].weight.grad.abs().sum() > 0


def test_a_multi_style_net_warm_starts_a_run_with_more_paintings(
    tmp_path: Path, paintings: list[Path]
) -> None:
    """Rows of the same painting carry over; a painting the source lacks starts from the
    mean of its rows."""
    torch.manual_seed(0)
    styles = [{"id": "stripes"}, {"id": "turned"}]
    config = TransformerConfig(width=8, residual_blocks=1, styles=styles)
    source = TransformerNet(config)
    for norm in source.norms:
        torch.nn.init.normal_(norm.weight, 1.0, 0.3)
    save_transformer(source, tmp_path / "source")
    run = TrainConfig(
        style=[str(p) for p in paintings], data="photos", out=str(tmp_path / "run"),
        width=8, residual_blocks=1, init_from=str(tmp_path / "source"),
    ).finish()  # fmt: skip
    net = build_model(run)
    assert net.config.style_ids == ["stripes", "turned", "noise"]
    for mine, theirs in zip(net.norms, source.norms, strict=True):
        torch.testing.assert_close(mine.weight[:2], theirs.weight)
        torch.testing.assert_close(mine.weight[2], theirs.weight.mean(0))


@pytest.mark.slow
def test_a_compiled_net_trains_the_selected_row() -> None:
    """Training selects the style outside the compiled forward: the graph must read it."""
    styles = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    net = TransformerNet(TransformerConfig(width=8, residual_blocks=1, styles=styles)).train()
    compiled = torch.compile(net)
    x = torch.rand(2, 3, 32, 32)
    for row in (0, 2, 1):
        net.zero_grad()
        net.select_style(row)
        compiled(x).square().mean().backward()
        grad = net.norms[0].weight.grad
        assert grad is not None
        moved = [int(grad[r].abs().sum() > 0) for r in range(3)]
        assert moved == [int(r == row) for r in range(3)]


def test_the_norm_tables_learn_at_their_own_rate(tmp_path: Path, paintings: list[Path]) -> None:
    from train.loop import parameter_groups, set_learning_rate

    config = TrainConfig(
        style=[str(p) for p in paintings[:2]], data="d", out=str(tmp_path / "run"), width=8,
        residual_blocks=1, norm_lr_scale=10.0,
    ).finish()  # fmt: skip
    net = build_model(config)
    optimizer = torch.optim.Adam(parameter_groups(net, config), lr=1e-3)
    set_learning_rate(optimizer, 2e-4)
    convs, norms = optimizer.param_groups
    assert convs["lr"] == pytest.approx(2e-4) and norms["lr"] == pytest.approx(2e-3)
    assert {id(p) for p in norms["params"]} == {
        id(p) for n in net.norms for p in (n.weight, n.bias)
    }
    assert len(convs["params"]) + len(norms["params"]) == len(list(net.parameters()))


def test_a_repeated_painting_trains_its_count_of_steps_per_round_spread_out(
    tmp_path: Path, paintings: list[Path]
) -> None:
    config = TrainConfig(
        style=[str(p) for p in paintings], data="d", out=str(tmp_path / "run"),
        style_repeat=["noise=3"],
    ).finish()  # fmt: skip
    assert config.style_ids == ["stripes", "turned", "noise"]
    cycle = config.style_cycle
    assert sorted(cycle) == [0, 1, 2, 2, 2]
    # Spread out: at most twice in a row, across the seam of two rounds too.
    assert max(_runs(cycle + cycle)) <= 2


def _runs(sequence: list[int]) -> list[int]:
    """The lengths of the runs of equal neighbours."""
    lengths = [1]
    for a, b in zip(sequence, sequence[1:], strict=False):
        lengths.append(lengths[-1] + 1 if a == b else 1)
    return lengths


@pytest.mark.parametrize("order", ["round_robin", "random"])
def test_the_steps_follow_the_repeat_counts(
    tmp_path: Path, paintings: list[Path], order: str
) -> None:
    from train.loop import _Run

    config = TrainConfig(
        style=[str(p) for p in paintings], data="d", out=str(tmp_path / "run"),
        style_repeat=["turned=4"], style_order=order,
    ).finish()  # fmt: skip
    run = _Run.__new__(_Run)
    run.config, run.loss_fns = config, [None] * 3
    picks = []
    for step in range(600):
        run.step = step
        picks.append(run.style_of_step())
    shares = [picks.count(i) / len(picks) for i in range(3)]
    assert shares[1] == pytest.approx(4 / 6, abs=0.06)
    assert shares[0] == pytest.approx(1 / 6, abs=0.05)
    assert shares[2] == pytest.approx(1 / 6, abs=0.05)


def test_a_scaled_painting_pulls_its_style_harder_and_only_its_own(
    tmp_path: Path, paintings: list[Path]
) -> None:
    from train.loop import build_losses

    config = TrainConfig(
        style=[str(p) for p in paintings], data="d", out=str(tmp_path / "run"),
        style_weight=10.0, style_scale=["noise=2.5"], style_size=48,
        vgg_weights="random", vgg_width_divisor=8,
    ).finish()  # fmt: skip
    assert config.style_weights == [10.0, 10.0, 25.0]
    losses = build_losses(config, torch.device("cpu"))
    assert [loss.weights.style for loss in losses] == [10.0, 10.0, 25.0]
    assert {loss.weights.content for loss in losses} == {config.content_weight}
    # The same output and photo cost the scaled painting 1.5 x 10 x its style term more.
    torch.manual_seed(0)
    out, photo = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    plain = TrainConfig(**{**config.to_dict(), "style_scale": []}).finish()
    base = build_losses(plain, torch.device("cpu"))[2]
    scaled_total, parts = losses[2](out, losses[2].content_targets(photo))
    base_total, _ = base(out, base.content_targets(photo))
    assert parts["style"] > 0
    assert float(scaled_total - base_total) == pytest.approx(15 * float(parts["style"]), rel=1e-4)


@pytest.mark.parametrize(
    ("flag", "values", "message"),
    [
        ("style_repeat", ["noise"], "ID=N"),
        ("style_repeat", ["noise=0"], "ID=N"),
        ("style_repeat", ["noise=two"], "ID=N"),
        ("style_repeat", ["monet=2"], "not one of this run's paintings: stripes, turned, noise"),
        ("style_scale", ["noise"], "ID=F"),
        ("style_scale", ["noise=0"], "ID=F"),
        ("style_scale", ["noise=-1"], "ID=F"),
        ("style_scale", ["noise=nan"], "ID=F"),
        ("style_scale", ["noise=much"], "ID=F"),
        ("style_scale", ["monet=2"], "not one of this run's paintings"),
    ],
)
def test_a_bad_per_painting_setting_is_refused_by_name(
    tmp_path: Path, paintings: list[Path], flag: str, values: list[str], message: str
) -> None:
    config = TrainConfig(
        style=[str(p) for p in paintings], data="d", out=str(tmp_path / "run"), **{flag: values}
    )
    option = "--" + flag.replace("_", "-")
    with pytest.raises(UsageError, match=f"{option}.*{message}".replace("'", ".")):
        config.finish()


def test_style_repeat_needs_several_paintings(tmp_path: Path, paintings: list[Path]) -> None:
    config = TrainConfig(
        style=str(paintings[0]), data="d", out=str(tmp_path / "run"), style_repeat=["stripes=2"]
    )
    with pytest.raises(UsageError, match="multi-style runs"):
        config.finish()


def test_a_resumed_run_may_change_the_repeat_counts_and_scales(
    tmp_path: Path, paintings: list[Path]
) -> None:
    import json

    from train.__main__ import resolve_config
    from train.loop import RUN_CONFIG_NAME

    out = tmp_path / "run"
    out.mkdir()
    saved = TrainConfig(style=[str(p) for p in paintings], data="d", out=str(out)).finish()
    (out / RUN_CONFIG_NAME).write_text(json.dumps(saved.to_dict()))
    config, resume = resolve_config(["--out", str(out), "--resume", "--style-repeat", "noise=3"])
    assert resume and config.style_counts == [1, 1, 3]
    config, _ = resolve_config(["--out", str(out), "--resume", "--style-scale", "turned=2"])
    assert config.style_weights == [saved.style_weight, 2 * saved.style_weight, saved.style_weight]
    with pytest.raises(UsageError, match="style_weight"):
        resolve_config(["--out", str(out), "--resume", "--style-weight", "5"])
