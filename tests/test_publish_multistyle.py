"""Publishing a multi-style net (one zoo entry per style) and a style added to it (only
its adapter goes up, pinned to the base), through the fake Hub."""

from __future__ import annotations

import json
from pathlib import Path

import fakehub
import pytest
import torch
from fakehub import FAKE_TOKEN, FakeHub
from PIL import Image
from test_train import TINY, make_photos, make_style

import zoo
from nst.errors import NSTError
from nst.johnson import load_transformer
from train.__main__ import main as train_main
from train.publish import main as publish_main

fake_hub = fakehub.fake_hub  # the fixture, made visible to this module
BASE_REPO, ADAPTER_REPO = "painter/multi", "painter/turned-adapter"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-style run, and a third painting added to its export."""
    tmp = tmp_path_factory.mktemp("multi")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        stripes = make_style(tmp / "stripes.png")
        Image.open(stripes).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(tmp / "flipped.png")
        Image.open(stripes).rotate(90).save(tmp / "turned.png")
        photos = str(make_photos(tmp / "photos"))
        both = ["--style", str(stripes), str(tmp / "flipped.png")]
        assert train_main([*both, "--data", photos, "--out", str(tmp / "base"), *TINY]) == 0
        added = ["--add-style", str(tmp / "turned.png"), "--init-from", str(tmp / "base/export")]
        assert train_main([*added, "--data", photos, "--out", str(tmp / "added"), *TINY]) == 0
    finally:
        torch.set_num_threads(threads)
    return tmp


def test_a_multi_style_net_then_an_added_style(
    fake_hub: FakeHub, runs: Path, tmp_path: Path, capsys
) -> None:
    fake_hub.token = FAKE_TOKEN
    catalogue = tmp_path / "zoo" / "catalogue.json"
    base = runs / "base" / "export"
    assert publish_main([str(base), "--repo", BASE_REPO, "--catalogue", str(catalogue)]) == 0
    styles = json.loads(catalogue.read_text())["styles"]
    assert [s["id"] for s in styles] == ["stripes", "flipped"]
    assert [s["weights"]["style"] for s in styles] == ["stripes", "flipped"]
    assert len({s["sha256"] for s in styles}) == 1  # one net behind both

    added = runs / "added" / "export"
    args = [str(added), "--repo", ADAPTER_REPO, "--catalogue", str(catalogue)]
    assert publish_main(args) != 0  # the base it was trained on must be named
    assert "--base" in capsys.readouterr().err
    assert publish_main([*args, "--base", "stripes"]) == 0
    uploaded = fake_hub.files(ADAPTER_REPO, _newest(catalogue, "turned"))
    assert "model.safetensors" not in uploaded  # the base was not uploaded again
    assert sorted(uploaded) == ["adapter.safetensors", "adapter_config.json"]

    zoo.clear_cache()
    turned = zoo.load("turned", catalogue=catalogue, progress=False)
    whole = load_transformer(added)
    photo = torch.rand(1, 3, 40, 48)
    with torch.no_grad():
        expected = whole(photo, style="turned")
        torch.testing.assert_close(turned(photo), expected, atol=5e-3, rtol=0)
    zoo.clear_cache()


def test_an_adapter_for_another_base_is_refused(fake_hub: FakeHub, runs: Path, tmp_path) -> None:
    from train.publish import check_adapter

    catalogue = tmp_path / "catalogue.json"
    Image.new("RGB", (8, 8)).save(tmp_path / "p.jpg")
    weights = {"repo_id": "a/b", "filename": "model.safetensors", "revision": "0" * 40}
    entry = {
        "id": "other", "title": "O", "painting": "O", "artist": "A", "year": 1,
        "license": "mit", "preview": "p.jpg", "weights": weights, "sha256": "1" * 64,
    }  # fmt: skip
    catalogue.write_text(json.dumps({"styles": [entry]}))
    with pytest.raises(NSTError, match="trained on another net"):
        check_adapter(runs / "added" / "export" / "adapter", "other", catalogue)


def _newest(catalogue: Path, style_id: str) -> str:
    styles = json.loads(catalogue.read_text())["styles"]
    return next(s["weights"]["revision"] for s in styles if s["id"] == style_id)
