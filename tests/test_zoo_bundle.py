"""``python -m zoo add EXPORT``: a trained export bundled under models/ and listed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

import zoo
from nst.errors import NSTError
from nst.files import file_sha256
from nst.johnson import TransformerConfig, TransformerNet, save_transformer
from zoo.__main__ import main
from zoo.bundle import bundle_export

INFO = {
    "red": {"title": "Red Square", "artist": "A. Painter", "year": "1915"},
    "blue": {"title": "Blue Lake", "painting": "The Blue Lake", "license": "CC0"},
}
EVALUATION = {
    "red": {
        "photos": ["a.jpg"],
        "size": 512,
        "content": 1.0,
        "style": 0.1,
        "total": 2.0,
        "gatys_100": {"content": 0.5, "style": 0.05},
        "ratio": {"content": 2.0, "style": 2.0},
        "judged": "2026-12-06",
    }
}


@pytest.fixture(autouse=True)
def _fresh_zoo() -> None:
    zoo.clear_cache()


def multi_export(folder: Path, ids: tuple[str, ...] = ("red", "green", "blue"), seed: int = 0):
    """A multi-style export as ``python -m train`` writes one: weights, config.json naming
    each painting's image, and the paintings."""
    torch.manual_seed(seed)
    styles = [{"id": i, "title": i.title(), "image": f"styles/{i}.jpg"} for i in ids]
    net = TransformerNet(TransformerConfig(width=8, residual_blocks=1, styles=styles))
    for norm in net.norms:
        torch.nn.init.normal_(norm.weight, 1.0, 0.5)
        torch.nn.init.normal_(norm.bias, 0.0, 0.5)
    save_transformer(net, folder)
    (folder / "styles").mkdir()
    for i in ids:
        Image.new("RGB", (64, 48), i).save(folder / f"styles/{i}.jpg")
    return net.eval()


def empty_catalogue(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "catalogue.json"
    path.write_text(json.dumps({"styles": []}))
    return path


def test_each_chosen_style_is_listed_with_its_row_info_and_card(tmp_path: Path) -> None:
    net = multi_export(tmp_path / "export")
    book = empty_catalogue(tmp_path / "cat")
    listed = bundle_export(
        tmp_path / "export", "colours", styles=["red", "blue"], info=INFO,
        evaluation=EVALUATION, training={"dataset": "Photos (3)"}, license="public domain",
        catalogue=book,
    )  # fmt: skip
    assert listed == ["red", "blue"]
    entries = {e.id: e for e in zoo.list_styles(book)}
    assert sorted(entries) == ["blue", "red"]
    red, blue = entries["red"], entries["blue"]
    assert (red.title, red.artist, red.year, red.license) == (
        "Red Square", "A. Painter", "1915", "public domain"
    )  # fmt: skip
    assert (blue.painting, blue.license) == ("The Blue Lake", "CC0")
    assert red.weights == {"bundled": "models/colours", "style": "red"}
    assert red.training["dataset"] == "Photos (3)"
    assert red.evaluation == EVALUATION["red"] and not blue.evaluation
    assert red.preview_path.is_file()
    photo = torch.rand(1, 3, 32, 32)
    for style_id in listed:
        with torch.no_grad():
            expected = net.with_style(style_id)(photo)
            got = zoo.load(style_id, catalogue=book, progress=False)(photo)
        torch.testing.assert_close(got, expected)
    folder = tmp_path / "cat/models/colours"
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "config.json", "model.safetensors", "styles"
    ]  # fmt: skip
    config = json.loads((folder / "config.json").read_text())
    assert config["styles"][0]["title"] == "Red Square"
    card = (folder / "README.md").read_text()
    assert "Red Square" in card and "A. Painter" in card and "Photos (3)" in card
    assert "Gatys" in card  # the evaluation table
    assert all(r.ok for r in zoo.verify(book))


def test_a_replaced_net_repins_the_entries_that_use_it(tmp_path: Path) -> None:
    multi_export(tmp_path / "old", seed=0)
    newer = multi_export(tmp_path / "new", seed=1)
    book = empty_catalogue(tmp_path / "cat")
    bundle_export(tmp_path / "old", "colours", styles=["red"], license="CC0", catalogue=book)
    bundle_export(tmp_path / "new", "colours", styles=["blue"], license="CC0", catalogue=book)
    sha = file_sha256(tmp_path / "cat/models/colours/model.safetensors")
    assert {e.id: e.sha256 for e in zoo.list_styles(book)} == {"red": sha, "blue": sha}
    assert all(r.ok for r in zoo.verify(book))
    photo = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            zoo.load("red", catalogue=book, progress=False)(photo), newer.with_style("red")(photo)
        )


def test_a_net_without_a_listed_row_does_not_replace_it(tmp_path: Path) -> None:
    multi_export(tmp_path / "old")
    multi_export(tmp_path / "new", ids=("green", "blue"))
    book = empty_catalogue(tmp_path / "cat")
    bundle_export(tmp_path / "old", "colours", styles=["red"], license="CC0", catalogue=book)
    before = book.read_bytes(), (tmp_path / "cat/models/colours/model.safetensors").read_bytes()
    with pytest.raises(NSTError, match="'red'.*no row 'red'.*another --name"):
        bundle_export(tmp_path / "new", "colours", license="CC0", catalogue=book)
    after = book.read_bytes(), (tmp_path / "cat/models/colours/model.safetensors").read_bytes()
    assert after == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"styles": ["purple"]}, "has no style purple; its styles: red, green, blue"),
        ({"styles": ["red"], "license": None}, "Style 'red': give the painting's licence"),
        ({"name": "Bad Name!"}, "name 'Bad Name!' is not valid"),
    ],
)
def test_bad_input_is_refused_before_anything_is_written(
    tmp_path: Path, kwargs: dict, message: str
) -> None:
    multi_export(tmp_path / "export")
    book = empty_catalogue(tmp_path / "cat")
    settings = {"name": "colours", "license": "CC0", **kwargs}
    with pytest.raises(NSTError, match=message):
        bundle_export(tmp_path / "export", settings.pop("name"), catalogue=book, **settings)
    assert json.loads(book.read_text()) == {"styles": []}
    assert not (tmp_path / "cat/models").exists()


def test_the_command_line_bundles_and_names_what_it_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    multi_export(tmp_path / "export")
    book = empty_catalogue(tmp_path / "cat")
    (tmp_path / "info.json").write_text(json.dumps(INFO))
    (tmp_path / "evaluation.json").write_text(json.dumps(EVALUATION))
    cat = ["--catalogue", str(book)]
    export = str(tmp_path / "export")
    assert main([*cat, "add", export, "--license", "CC0"]) == 2  # a multi-style net needs --name
    assert "needs --name" in capsys.readouterr().err
    code = main([
        *cat, "add", export, "--name", "colours", "--styles", "red", "green",
        "--info", str(tmp_path / "info.json"), "--evaluation", str(tmp_path / "evaluation.json"),
        "--license", "public domain", "--dataset", "Photos (3)", "--warm-start", "an older net",
    ])  # fmt: skip
    assert code == 0
    assert "listed red, green" in capsys.readouterr().out
    training = zoo.get_style("red", book).training
    assert (training["dataset"], training["init_from"]) == ("Photos (3)", "an older net")
    assert main([*cat, "list"]) == 0
    out = capsys.readouterr().out
    assert "Red Square" in out and "Green" in out and "Blue" not in out


def test_a_bundled_net_can_be_bundled_again_from_its_own_folder(tmp_path: Path) -> None:
    """Re-listing (new info, say) from models/<name> itself keeps the weights."""
    multi_export(tmp_path / "export")
    book = empty_catalogue(tmp_path / "cat")
    bundle_export(tmp_path / "export", "colours", styles=["red"], license="CC0", catalogue=book)
    folder = tmp_path / "cat/models/colours"
    weights = (folder / "model.safetensors").read_bytes()
    bundle_export(folder, "colours", info=INFO, license="CC0", catalogue=book)
    assert (folder / "model.safetensors").read_bytes() == weights
    assert [e.title for e in zoo.list_styles(book)] == ["Red Square", "Green", "Blue Lake"]
    assert all(r.ok for r in zoo.verify(book))
    assert not list(folder.parent.glob(".*"))


def test_a_one_style_export_is_bundled_under_its_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    net = TransformerNet(TransformerConfig(width=8, residual_blocks=1, style={"id": "mono"}))
    save_transformer(net, tmp_path / "export")
    Image.new("RGB", (40, 30), "gray").save(tmp_path / "export/style.jpg")
    book = empty_catalogue(tmp_path / "cat")
    assert (
        main(["--catalogue", str(book), "add", str(tmp_path / "export"), "--license", "CC0"]) == 0
    )
    assert "as models/mono; listed mono" in capsys.readouterr().out
    entry = zoo.get_style("mono", book)
    assert entry.weights == {"bundled": "models/mono"} and entry.license == "CC0"
    assert (tmp_path / "cat/models/mono/style.jpg").is_file()
    photo = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = net.eval()(photo)
        torch.testing.assert_close(
            zoo.load("mono", catalogue=book, progress=False)(photo), expected
        )
