"""The app's second style and blend share: Johnson blends two styles of one multi-style
network (one view of it, no new network), Gatys mixes the two paintings; and the default
style is warmed up at launch, so the first request finds its engine compiled."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

import zoo  # noqa: E402
from nst.gatys import GatysProgress  # noqa: E402
from nst.images import load_image, to_tensor  # noqa: E402
from nst.johnson import engines, stylize  # noqa: E402
from tests.test_app import STYLE_ID, build_catalogue, tiny_config  # noqa: E402
from tests.test_multistyle import multi_style_catalogue, multi_transformer  # noqa: E402
from webapp import gpu  # noqa: E402
from webapp.handlers import Handlers  # noqa: E402
from webapp.layout import warm_up  # noqa: E402

QUIET = {"progress": lambda *a, **k: None}


@pytest.fixture
def multi_catalogue(tmp_path: Path) -> Path:
    """Two catalogue styles of one multi-style net."""
    zoo.clear_cache()
    net = multi_transformer(seed=4, ids=["dots", "waves"])
    yield multi_style_catalogue(tmp_path, net, ["dots", "waves"])
    zoo.clear_cache()


@pytest.fixture
def photo() -> Image.Image:
    torch.manual_seed(0)
    return Image.fromarray((torch.rand(48, 64, 3) * 255).byte().numpy())


def test_johnson_blends_two_styles_of_one_network(multi_catalogue: Path, photo) -> None:
    page = Handlers(tiny_config(multi_catalogue, None, johnson_size=64))
    path, status = page.johnson(photo, "dots", None, 64, 1.0, False, "waves", 0.25)
    assert "Dots 75% + Waves 25%" in status
    net = zoo.load("dots", catalogue=multi_catalogue)
    expected = stylize(net, photo, size=64, style={"dots": 0.75, "waves": 0.25})
    got = to_tensor(load_image(path))
    assert (got - to_tensor(expected)).abs().max() <= 2 / 255
    # No blend (share 0, or no second style) is the first style alone.
    path0, status0 = page.johnson(photo, "dots", None, 64, 1.0, False, "waves", 0.0)
    alone = stylize(net, photo, size=64)
    assert (to_tensor(load_image(path0)) - to_tensor(alone)).abs().max() <= 2 / 255
    assert "%" not in status0


def test_johnson_refuses_to_blend_separate_networks(tmp_path: Path, photo) -> None:
    zoo.clear_cache()
    catalogue = build_catalogue(tmp_path / "zoo", _painting(tmp_path))
    page = Handlers(tiny_config(catalogue, None, johnson_size=64))
    with pytest.raises(gr.Error, match="Gatys \\(right\\) blends any two paintings"):
        page.johnson(photo, STYLE_ID, None, 64, 1.0, False, STYLE_ID, 0.5)
    zoo.clear_cache()


def test_gatys_mixes_the_two_paintings(multi_catalogue: Path, photo, monkeypatch) -> None:
    seen = []

    def fake_run(content, paintings, config, device):
        seen.append((paintings, config))
        yield GatysProgress(1, config.iterations, content, seconds=0.1, done=True)

    monkeypatch.setattr(gpu, "gatys_on_device", fake_run)
    page = Handlers(tiny_config(multi_catalogue, None))
    last = list(page.gatys(photo, "dots", None, 64, 5, "lbfgs", "content", 1.0, False,
                           "waves", 0.3, **QUIET))[-1]  # fmt: skip
    paintings, config = seen[0]
    assert len(paintings) == 2 and config.style_blend == pytest.approx([0.7, 0.3])
    assert "Dots 70% + Waves 30%" in last[1]


def test_launch_warms_the_default_style(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NST_ENGINE", "auto")  # the app's engine (the tests default to torch)
    if engines.auto_engine() == "torch":
        pytest.skip("neither OpenVINO nor onnxruntime is installed: nothing to compile")
    zoo.clear_cache()
    engines.clear_cache()
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path / "cache"))
    catalogue = build_catalogue(tmp_path / "zoo", _painting(tmp_path))
    built = []
    real = engines._build
    monkeypatch.setattr(engines, "_build", lambda *a: built.append(a[1]) or real(*a))
    thread = warm_up(tiny_config(catalogue, None, johnson_size=64))
    assert thread is not None
    thread.join(timeout=300)
    warmed = list(built)
    # The first request after the warm-up compiles nothing more.
    page = Handlers(tiny_config(catalogue, None, johnson_size=64))
    page.johnson(Image.new("RGB", (80, 60), "teal"), STYLE_ID, None, 64, 1.0, False)
    assert len(warmed) == 1 and built == warmed  # built by the warm-up, not the request
    engines.clear_cache()
    zoo.clear_cache()


def _painting(folder: Path) -> Path:
    path = folder / "painting.png"
    Image.new("RGB", (120, 90), "orange").save(path)
    return path
