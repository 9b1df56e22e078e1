"""Multi-style nets (conditional instance norm, Dumoulin et al. 2017): one style per row of
(gamma, beta), blends as convex combinations of rows, and every inference path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from nst.errors import NSTError
from nst.files import file_sha256
from nst.johnson import (
    TransformerConfig,
    TransformerNet,
    engines,
    load_transformer,
    onnx_export,
    save_transformer,
)
from nst.johnson.model import ConditionalInstanceNorm2d, bake_style
from nst.johnson.stylize import stylize_tensor

IDS = ["dots", "waves", "blocks"]


def multi_transformer(width: int = 8, seed: int = 0, ids: list[str] = IDS) -> TransformerNet:
    """A small random multi-style net whose rows differ from each other."""
    torch.manual_seed(seed)
    config = TransformerConfig(
        width=width, residual_blocks=2, styles=[{"id": i, "title": i.title()} for i in ids]
    )
    net = TransformerNet(config).eval()
    net.head[1].reset_parameters()
    for norm in net.norms:
        nn.init.normal_(norm.weight, 1.0, 0.3)
        nn.init.normal_(norm.bias, 0.0, 0.3)
    return net


def plain_with_rows(net: TransformerNet, mix: torch.Tensor) -> TransformerNet:
    """A one-style net built independently, its norms holding ``mix @ rows``."""
    plain = TransformerNet(TransformerConfig(width=net.config.width, residual_blocks=2)).eval()
    mine = net.state_dict()
    state = {}
    for key in plain.state_dict():
        source = mine[key]
        state[key] = mix @ source if source.dim() == 2 else source
    plain.load_state_dict(state)
    return plain


def multi_style_catalogue(folder: Path, net: TransformerNet, ids: list[str]) -> Path:
    """A catalogue listing styles ``ids`` of ``net``, bundled once in ``folder/models/multi``."""
    from tests.test_zoo import hub_entry, write_catalogue

    save_transformer(net, folder / "models" / "multi")
    sha = file_sha256(folder / "models" / "multi" / "model.safetensors")
    entries = []
    for style_id in ids:
        entry = hub_entry(style_id, "x/y", "0" * 40, sha)
        entry["weights"] = {"bundled": "models/multi", "style": style_id}
        entries.append(entry)
    return write_catalogue(folder, *entries)


@pytest.fixture
def photo() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(1, 3, 52, 61)


def test_a_one_style_norm_is_torchs_instance_norm(photo: torch.Tensor) -> None:
    mine = ConditionalInstanceNorm2d(3)
    theirs = nn.InstanceNorm2d(3, affine=True)
    nn.init.normal_(theirs.weight)
    nn.init.normal_(theirs.bias)
    mine.load_state_dict(theirs.state_dict())
    assert mine.weight.shape == (3,) and set(mine.state_dict()) == {"weight", "bias"}
    torch.testing.assert_close(mine(photo), theirs(photo))


def test_bundled_one_style_files_load_as_they_are() -> None:
    net = load_transformer(Path(__file__).parents[1] / "zoo/models/the_scream")
    assert net.config.num_styles == 1 and net.config.styles == []
    assert all(norm.weight.dim() == 1 for norm in net.norms)


def test_each_style_is_its_own_row(photo: torch.Tensor) -> None:
    net = multi_transformer()
    outputs = []
    for index, style_id in enumerate(IDS):
        mix = torch.nn.functional.one_hot(torch.tensor(index), len(IDS)).float()
        with torch.no_grad():
            expected = plain_with_rows(net, mix)(photo)
            torch.testing.assert_close(net(photo, style=style_id), expected)
            torch.testing.assert_close(net(photo, style=index), expected)
        outputs.append(expected)
    assert (outputs[0] - outputs[1]).abs().mean() > 1e-3  # the rows really differ


def test_a_blend_is_the_convex_combination_of_rows(photo: torch.Tensor) -> None:
    net = multi_transformer()
    with torch.no_grad():
        blended = net(photo, style={"dots": 3.0, "blocks": 1.0})
        expected = plain_with_rows(net, torch.tensor([0.75, 0.0, 0.25]))(photo)
        torch.testing.assert_close(blended, expected)
        # The same blend as a weight vector, not normalised.
        torch.testing.assert_close(net(photo, style=[6.0, 0.0, 2.0]), expected)


@pytest.mark.parametrize(
    ("style", "message"),
    [
        ("cubism", "no style 'cubism'"),
        (3, "out of range"),
        ({"dots": -1.0, "waves": 2.0}, "not negative"),
        ([1.0, 0.0], "one weight per style"),
        ({"dots": 0.0}, "at least one positive"),
    ],
)
def test_a_bad_style_choice_is_refused_clearly(style: object, message: str) -> None:
    with pytest.raises(NSTError, match=message):
        multi_transformer().style_weights(style)


def test_save_and_load_keep_the_styles(tmp_path: Path, photo: torch.Tensor) -> None:
    net = multi_transformer()
    loaded = load_transformer(save_transformer(net, tmp_path / "multi"))
    assert loaded.config.style_ids == IDS
    with torch.no_grad():
        torch.testing.assert_close(loaded(photo, style="waves"), net(photo, style="waves"))


def test_config_refuses_repeated_style_ids() -> None:
    with pytest.raises(NSTError, match="repeat"):
        TransformerConfig.from_dict({"styles": [{"id": "a"}, {"id": "a"}]})


def test_a_baked_style_shares_the_convolutions(photo: torch.Tensor) -> None:
    net = multi_transformer()
    baked = bake_style(net, {"waves": 0.5, "blocks": 0.5})
    assert baked.config.num_styles == 1
    assert baked.head[1].weight is net.head[1].weight
    with torch.no_grad():
        torch.testing.assert_close(baked(photo), net(photo, style={"waves": 1, "blocks": 1}))
    assert baked.config.style["id"] == "waves:0.5+blocks:0.5"
    assert bake_style(net, "dots").config.style["title"] == "Dots"


@pytest.mark.parametrize(
    ("engine", "tile"), [("torch", None), ("torch", 64), ("onnxruntime", None), ("openvino", None)]
)
def test_every_inference_path_paints_a_blend_as_the_plain_forward(
    engine: str, tile: int | None, photo: torch.Tensor
) -> None:
    if engine != "torch" and engines.missing(engine):
        pytest.skip(engines.missing(engine))
    net = multi_transformer()
    blend = {"dots": 0.2, "blocks": 0.8}
    with torch.no_grad():
        expected = net(photo, style=blend)
    out = stylize_tensor(net, photo, engine=engine, tile=tile, precision="fp32", style=blend)
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=0)


@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_one_export_serves_every_style_and_blend(
    engine: str, photo: torch.Tensor, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if engines.missing(engine):
        pytest.skip(engines.missing(engine))
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path))
    engines.clear_cache()
    exports = []
    real_export = onnx_export.export_bytes
    monkeypatch.setattr(
        onnx_export, "export_bytes", lambda *a, **k: exports.append(1) or real_export(*a, **k)
    )
    net = multi_transformer(seed=3)
    for style in ["dots", "waves", {"dots": 0.5, "waves": 0.5}, "blocks"]:
        out = stylize_tensor(net, photo, engine=engine, precision="fp32", style=style)
        with torch.no_grad():
            torch.testing.assert_close(out, net(photo, style=style), atol=2e-5, rtol=0)
    assert len(exports) == 1
    engines.clear_cache()


def test_the_engine_graph_has_the_style_frozen_in_and_the_export_keeps_the_input() -> None:
    pytest.importorskip("onnxscript")
    import onnx

    net = multi_transformer(seed=5)
    data = onnx_export.export_bytes(net)
    names = [i.name for i in onnx.load_from_string(data).graph.input]
    assert names == [onnx_export.INPUT_NAME, onnx_export.STYLE_INPUT_NAME]
    frozen = onnx.load_from_string(onnx_export.freeze_style(data, net.style_weights("waves")))
    assert [i.name for i in frozen.graph.input] == [onnx_export.INPUT_NAME]
    kept = {t.name: t for t in frozen.graph.initializer}[onnx_export.STYLE_INPUT_NAME]
    assert onnx.numpy_helper.to_array(kept).tolist() == [0.0, 1.0, 0.0]
    plain = onnx_export.export_bytes(bake_style(net, "waves"))
    with pytest.raises(ValueError, match="one-style"):
        onnx_export.freeze_style(plain, net.style_weights("waves"))


def test_each_style_gets_its_own_engine_from_the_one_export(
    photo: torch.Tensor, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine = "onnxruntime" if not engines.missing("onnxruntime") else "openvino"
    if engines.missing(engine):
        pytest.skip(engines.missing(engine))
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path))
    engines.clear_cache()
    net = multi_transformer(seed=6)
    dots = engines.get_engine(net, engine, "fp32", net.style_weights("dots"))
    assert engines.get_engine(net, engine, "fp32") is dots  # the selected style: dots
    waves = engines.get_engine(net.with_style("waves"), engine, "fp32")
    assert waves is not dots
    assert engines.get_engine(net, engine, "fp32", net.style_weights("waves")) is waves
    with torch.no_grad():
        torch.testing.assert_close(waves.run(photo), net(photo, style="waves"), atol=2e-5, rtol=0)
        torch.testing.assert_close(dots.run(photo), net(photo, style="dots"), atol=2e-5, rtol=0)
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 1  # one export for both
    engines.clear_cache()


def test_selecting_a_style_does_not_change_the_weights_digest() -> None:
    net = multi_transformer()
    before = engines.weights_digest(net)
    net.select_style("blocks")
    after = engines.weights_digest(copy.deepcopy(net))
    assert before == after


def test_blend_keeps_the_rest_for_the_base_style() -> None:
    net = multi_transformer()
    torch.testing.assert_close(
        net.blend({"blocks": 0.25}, base="waves"), torch.tensor([0.0, 0.75, 0.25])
    )
    with pytest.raises(NSTError, match="at most 1"):
        net.blend({"blocks": 0.7, "dots": 0.6}, base="waves")


def test_a_style_with_a_net_of_its_own_blends_through_the_multi_style_net_that_has_its_row(
    tmp_path: Path, photo: torch.Tensor
) -> None:
    """'dots' and 'blocks' ship as one-style nets, 'waves' as a row of a net that also has
    rows for them: blends of them paint with that net's rows; 'lines', a one-style net with
    no row anywhere, cannot blend."""
    import zoo
    from tests.test_zoo import hub_entry, write_catalogue

    multi = multi_transformer(seed=3)
    save_transformer(multi, tmp_path / "models" / "multi")
    single = TransformerNet(TransformerConfig(width=8, residual_blocks=2)).eval()
    save_transformer(single, tmp_path / "models" / "single")
    save_transformer(single, tmp_path / "models" / "single2")
    entries = []
    listed = [("dots", "single", None), ("waves", "multi", "waves"),
              ("lines", "single2", None), ("blocks", "single", None)]  # fmt: skip
    for style_id, folder, row in listed:
        sha = file_sha256(tmp_path / "models" / folder / "model.safetensors")
        entry = hub_entry(style_id, "x/y", "0" * 40, sha)
        entry["weights"] = {"bundled": f"models/{folder}", **({"style": row} if row else {})}
        entries.append(entry)
    catalogue = write_catalogue(tmp_path, *entries)
    zoo.clear_cache()
    try:
        _the_cli_blends_them_too(tmp_path, catalogue, multi, photo)
        blend = zoo.load_blend({"dots": 0.6, "waves": 0.4}, catalogue=catalogue, progress=False)
        assert zoo.load_blend({"waves": 0.4, "dots": 0.6}, catalogue=catalogue, progress=False)
        with torch.no_grad():
            torch.testing.assert_close(
                blend(photo), multi(photo, style={"dots": 0.6, "waves": 0.4}), atol=1e-5, rtol=0
            )
        both_own = zoo.load_blend({"dots": 0.5, "blocks": 0.5}, catalogue=catalogue, progress=False)
        with torch.no_grad():
            torch.testing.assert_close(
                both_own(photo), multi(photo, style={"dots": 0.5, "blocks": 0.5}), atol=1e-5, rtol=0
            )
        with pytest.raises(NSTError, match="no multi-style network has a row for each"):
            zoo.load_blend({"dots": 0.5, "lines": 0.5}, catalogue=catalogue, progress=False)
    finally:
        zoo.clear_cache()


def _the_cli_blends_them_too(
    folder: Path, catalogue: Path, multi: TransformerNet, photo: torch.Tensor
) -> None:
    """``nst stylize --model dots --blend blocks:0.25`` with 'dots' a one-style zoo net."""
    import os

    from nst.cli import main
    from nst.images import load_image, save_image, to_tensor

    save_image(photo, folder / "photo.png")
    out = folder / "cli.png"
    args = ["stylize", str(folder / "photo.png"), "--model", "dots", "--engine", "torch",
            "--precision", "fp32", "-o", str(out)]  # fmt: skip
    before = os.environ.get("NST_ZOO_CATALOGUE")
    os.environ["NST_ZOO_CATALOGUE"] = str(catalogue)
    try:
        assert main([*args, "--blend", "blocks:0.25"]) == 0
        assert main([*args, "--blend", "lines:0.5"]) != 0  # no net has both rows
    finally:
        if before is None:
            os.environ.pop("NST_ZOO_CATALOGUE")
        else:
            os.environ["NST_ZOO_CATALOGUE"] = before
    with torch.no_grad():
        saved = to_tensor(load_image(folder / "photo.png"))
        expected = multi(saved, style={"dots": 0.75, "blocks": 0.25})
    assert (to_tensor(load_image(out)) - expected).abs().max() <= 1 / 255 + 1e-6


def test_a_view_paints_its_own_style_and_shares_the_weights(photo: torch.Tensor) -> None:
    net = multi_transformer()
    view = net.with_style("blocks")
    assert view.head[1].weight is net.head[1].weight and view.norms[0].weight is net.norms[0].weight
    assert engines.weights_digest(view) == engines.weights_digest(net)  # one engine for both
    out = stylize_tensor(view, photo, engine="torch", precision="fp32")
    torch.testing.assert_close(net.selected_style, torch.tensor([1.0, 0.0, 0.0]))  # untouched
    with torch.no_grad():
        torch.testing.assert_close(out, net(photo, style="blocks"), atol=2e-5, rtol=0)


def test_cli_style_and_blend(tmp_path: Path, photo: torch.Tensor) -> None:
    from nst.cli import main
    from nst.images import load_image, save_image, to_tensor

    net = multi_transformer()
    folder = save_transformer(net, tmp_path / "multi")
    save_image(photo, tmp_path / "photo.png")
    args = ["stylize", str(tmp_path / "photo.png"), "--model", str(folder), "--engine", "torch",
            "--precision", "fp32"]  # fmt: skip
    out = tmp_path / "out.png"
    assert main([*args, "--style", "waves", "--blend", "blocks:0.25", "-o", str(out)]) == 0
    with torch.no_grad():
        saved = to_tensor(load_image(tmp_path / "photo.png"))  # the photo as 8-bit PNG
        expected = load_transformer(folder)(saved, style={"waves": 0.75, "blocks": 0.25})
    assert (to_tensor(load_image(out)) - expected).abs().max() <= 1 / 255 + 1e-6
    assert main([*args, "--blend", "blocks", "-o", str(out)]) == 2
    assert main([*args, "--blend", "cubism:0.5", "-o", str(out)]) != 0


def test_the_zoo_lists_each_style_of_a_multi_style_net(tmp_path: Path, photo) -> None:
    import zoo

    zoo.clear_cache()
    net = multi_transformer(seed=5)
    catalogue = multi_style_catalogue(tmp_path, net, ["waves", "blocks"])
    assert [s.id for s in zoo.list_styles(catalogue)] == ["waves", "blocks"]
    waves = zoo.load("waves", catalogue=catalogue)
    blocks = zoo.load("blocks", catalogue=catalogue)
    assert zoo.load("waves", catalogue=catalogue) is waves  # one view per style
    assert waves.head[1].weight is blocks.head[1].weight  # one net behind both
    with torch.no_grad():
        for view, style_id in ((waves, "waves"), (blocks, "blocks")):
            out = stylize_tensor(view, photo, engine="torch", precision="fp32")
            torch.testing.assert_close(out, net(photo, style=style_id), atol=2e-5, rtol=0)
    # A blend of two catalogue styles of one net, as the app and the CLI ask for it.
    mixed = waves.with_style(waves.blend({"blocks": 0.5}))
    with torch.no_grad():
        expected = net(photo, style={"waves": 0.5, "blocks": 0.5})
    out = stylize_tensor(mixed, photo, engine="torch", precision="fp32")
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=0)
    zoo.clear_cache()


def test_a_catalogue_entry_for_a_missing_style_is_a_clear_error(tmp_path: Path) -> None:
    import zoo

    zoo.clear_cache()
    catalogue = multi_style_catalogue(tmp_path, multi_transformer(), ["cubism"])
    with pytest.raises(NSTError, match="no style 'cubism'"):
        zoo.load("cubism", catalogue=catalogue)


def test_an_adapter_entry_adds_a_style_to_its_pinned_base(tmp_path: Path, photo) -> None:
    import zoo
    from nst.johnson.adapter import save_adapter
    from tests.test_zoo import hub_entry, write_catalogue

    zoo.clear_cache()
    base = multi_transformer(seed=7, ids=["dots", "waves"])
    save_transformer(base, tmp_path / "models" / "multi")
    base_sha = file_sha256(tmp_path / "models" / "multi" / "model.safetensors")
    grown = multi_transformer(seed=8, ids=["dots", "waves", "stars"])
    state = grown.state_dict()
    for key, value in base.state_dict().items():  # the same convolutions and first rows
        state[key][: len(value)] = value
    grown.load_state_dict(state)
    save_adapter(grown, tmp_path / "models" / "stars", {"sha256": base_sha})
    adapter_sha = file_sha256(tmp_path / "models" / "stars" / "adapter.safetensors")
    first = hub_entry("dots", "x/y", "0" * 40, base_sha)
    first["weights"] = {"bundled": "models/multi", "style": "dots"}
    added = hub_entry("stars", "x/y", "0" * 40, adapter_sha)
    added["weights"] = {"bundled": "models/stars", "style": "stars", "base": "dots"}
    catalogue = write_catalogue(tmp_path, first, added)
    stars = zoo.load("stars", catalogue=catalogue)
    assert stars.config.style_ids == ["dots", "waves", "stars"]
    out = stylize_tensor(stars, photo, engine="torch", precision="fp32")
    with torch.no_grad():
        torch.testing.assert_close(out, grown(photo, style="stars"), atol=2e-5, rtol=0)
    # A base that is not the one the adapter was trained on is refused.
    other = hub_entry("dots", "x/y", "0" * 40, base_sha)
    save_transformer(multi_transformer(seed=9, ids=["dots", "waves"]), tmp_path / "models/multi")
    other["sha256"] = file_sha256(tmp_path / "models" / "multi" / "model.safetensors")
    other["weights"] = {"bundled": "models/multi", "style": "dots"}
    catalogue = write_catalogue(tmp_path, other, added)
    zoo.clear_cache()
    with pytest.raises(NSTError, match="trained on the base net"):
        zoo.load("stars", catalogue=catalogue)
    zoo.clear_cache()
