"""The Johnson transformer net: shapes, determinism, strict safetensors loading, fast path."""

from __future__ import annotations

import json
import pickle
import re

import pytest
import torch
from nets import small_transformer

from nst.errors import NSTError
from nst.johnson import TransformerConfig, TransformerNet, load_transformer, save_transformer
from nst.johnson.fast import NormControl, fast_forward, run_stage

_net = small_transformer


def count_norms(module: torch.nn.Module) -> int:
    """How many instance-norm layers ``module`` runs (what ``stop_at`` counts)."""
    return sum(isinstance(m, torch.nn.InstanceNorm2d) for m in module.modules())


@pytest.mark.parametrize("size", [(333, 517), (17, 16), (64, 65)])
def test_output_shape_and_range_for_odd_sizes(size: tuple[int, int]) -> None:
    x = torch.rand(1, 3, *size)
    with torch.inference_mode():
        y = _net()(x)
    assert y.shape == x.shape
    assert 0.0 <= y.min() and y.max() <= 1.0


def test_deterministic() -> None:
    x = torch.rand(1, 3, 96, 80)
    with torch.inference_mode():
        assert torch.equal(_net(seed=1)(x), _net(seed=1)(x))
        assert not torch.equal(_net(seed=1)(x), _net(seed=2)(x))


@pytest.mark.parametrize(
    ("channels_last", "photo_skip"), [(False, False), (True, False), (True, True)]
)
def test_fast_forward_matches_reference(channels_last: bool, photo_skip: bool) -> None:
    net = _net(photo_skip=photo_skip)
    x = torch.rand(1, 3, 77, 130)
    with torch.inference_mode():
        reference = net(x)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        fast = fast_forward(net, x)
    assert fast.shape == reference.shape
    torch.testing.assert_close(fast, reference, atol=2e-5, rtol=0)


def test_fixed_statistics_reproduce_recorded_ones_and_change_the_output() -> None:
    net = _net()
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        recorded: list = []
        own = fast_forward(net, x, NormControl(record=recorded))
        assert len(recorded) == 3 + 2 * 2 + 2  # encoder, residual blocks, decoder
        torch.testing.assert_close(fast_forward(net, x, NormControl(fixed=recorded)), own)
        other: list = []
        fast_forward(net, torch.rand(1, 3, 64, 64), NormControl(record=other))
        assert not torch.allclose(fast_forward(net, x, NormControl(fixed=other)), own)


def test_run_stage_stops_in_front_of_each_norm_layer() -> None:
    """``stop_at=k`` returns exactly what the reference net feeds its k-th norm layer,
    and with the earlier layers' statistics fixed to their recorded values, too."""
    net = _net()
    x = torch.rand(1, 3, 48, 64)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    seen: list[torch.Tensor] = []
    hooks = [m.register_forward_pre_hook(lambda _m, args: seen.append(args[0])) for m in norms]
    with torch.inference_mode():
        net(x)
        for hook in hooks:
            hook.remove()
        recorded: list = []
        fast_forward(net, x, NormControl(record=recorded))
        assert count_norms(net.encoder) == 3 and count_norms(net.decoder) == 2
        for k in range(count_norms(net.encoder)):
            control = NormControl(fixed=recorded[:k], stop_at=k)
            torch.testing.assert_close(
                run_stage(net.encoder, x, control), seen[k], atol=2e-5, rtol=0
            )
            assert control.stopped
        first = 3 + 2 * 2  # the decoder's first norm layer, counted over the whole net
        decoder_input = run_stage(
            net.residuals, run_stage(net.encoder, x, NormControl()), NormControl()
        )
        for k in range(2):
            control = NormControl(fixed=recorded[first : first + k], stop_at=k)
            got = run_stage(net.decoder, decoder_input, control)
            torch.testing.assert_close(got, seen[first + k], atol=2e-5, rtol=0)
        # Without a stop, the whole stage runs (the net's final output, before clamping).
        full = run_stage(net.decoder, decoder_input, NormControl(fixed=recorded[first:]))
        torch.testing.assert_close(full.clamp(0, 1), net(x), atol=2e-5, rtol=0)
    conv_a, norm_a, conv_b, norm_b = net.residuals[0].layers()
    assert norm_a is norms[3] and norm_b is norms[4] and conv_a is not conv_b


def test_photo_skip_adds_the_photo_to_what_the_net_computes() -> None:
    plain, skip = _net(), _net(photo_skip=True)  # the same seed: the same weights
    assert all(
        torch.equal(a, b) for a, b in zip(plain.parameters(), skip.parameters(), strict=True)
    )
    x = torch.rand(1, 3, 37, 50)  # padded to the grid inside
    with torch.no_grad():
        # Train mode: no clamp (instance norm has no running statistics either way).
        torch.testing.assert_close(skip.train()(x), plain.train()(x) + x, atol=1e-6, rtol=0)
        assert (plain(x) - x).abs().mean() > 0.1  # so the skip changes the picture


def test_a_new_photo_skip_net_starts_as_the_identity() -> None:
    torch.manual_seed(0)
    net = TransformerNet(TransformerConfig(width=8, residual_blocks=1, photo_skip=True)).eval()
    x = torch.rand(1, 3, 30, 41)
    with torch.no_grad():
        assert torch.equal(net(x), x)
        assert (fast_forward(net, x) - x).abs().max() == 0


def test_photo_skip_survives_save_and_load_and_a_bad_value_is_refused(tmp_path) -> None:
    net = _net(photo_skip=True)
    folder = save_transformer(net, tmp_path / "model")
    loaded = load_transformer(folder)
    assert loaded.config.photo_skip
    x = torch.rand(1, 3, 24, 28)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), net(x), atol=0, rtol=0)
    config = json.loads((folder / "config.json").read_text())
    config["photo_skip"] = "yes"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(NSTError, match="photo_skip must be true or false"):
        load_transformer(folder)


def test_save_load_round_trip(tmp_path) -> None:
    net = _net(width=8)
    net.config.style = {"id": "test", "title": "A test"}
    folder = save_transformer(net, tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_transformer(folder)
    assert loaded.config.width == 8 and loaded.config.style["id"] == "test"
    assert not loaded.training
    x = torch.rand(1, 3, 40, 52)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), net(x), atol=0, rtol=0)
    # A .safetensors file next to its config.json loads too.
    assert load_transformer(folder / "model.safetensors").config.width == 8


def test_truncated_checkpoint_is_refused(tmp_path) -> None:
    folder = save_transformer(_net(), tmp_path / "model")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(NSTError, match="truncated"):
        load_transformer(folder)


def test_wrong_shape_checkpoint_is_refused_with_the_names(tmp_path) -> None:
    folder = save_transformer(_net(width=8), tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    config["width"] = 16
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(NSTError) as info:
        load_transformer(folder)
    message = str(info.value)
    assert "width 16" in message
    # Each mismatch names the tensor and both shapes (widths 16 vs 8 in some dimension).
    assert re.search(r"\n  \S+\.weight: expected shape \([^)]*16[^)]*\), found \([^)]*8", message)


def test_pickle_is_refused_without_being_opened(tmp_path) -> None:
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle code ran')",))

    path = tmp_path / "model.pth"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(NSTError, match="pickle"):
        load_transformer(path)
    # A pickle renamed to .safetensors is not valid safetensors either.
    disguised = tmp_path / "model.safetensors"
    disguised.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(NSTError, match="not a valid safetensors"):
        load_transformer(disguised)


def test_save_pretrained_writes_the_mixin_layout_and_from_pretrained_reads_it(tmp_path) -> None:
    from dataclasses import fields

    net = _net(width=8)
    net.config.style = {"id": "test", "title": "A test"}
    net.save_pretrained(tmp_path / "model")
    folder = tmp_path / "model"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    # config.json is the config dataclass in its own field order, as existing files are
    config = json.loads((folder / "config.json").read_text())
    assert list(config) == [f.name for f in fields(TransformerConfig)]
    assert "A test" in (folder / "README.md").read_text()
    x = torch.rand(1, 3, 24, 28)
    for name in (folder, str(folder)):
        loaded = TransformerNet.from_pretrained(name)
        assert not loaded.training and loaded.config.style["id"] == "test"
        with torch.inference_mode():
            torch.testing.assert_close(loaded(x), net(x), atol=0, rtol=0)


def test_a_folder_with_only_a_pickle_is_refused_by_name(tmp_path) -> None:
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle code ran')",))

    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps(Boom()))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(NSTError, match=r"pytorch_model\.bin' is a pickle"):
        TransformerNet.from_pretrained(tmp_path)
