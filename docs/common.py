"""What the studies under docs/ share: the data folder, the held-out photos, the judged
Johnson pass, the Gatys loss network, and the labelled picture grids. Not part of the library.

Every study runs from the repository root as a module, e.g.::

    python -m docs.gatys_init.study --sizes 256

The photos, paintings, training photos and the VGG16 file come from one data folder,
``SHARED`` below: the environment variable ``NST_SHARED``, by default the folder ``shared``
beside the repository (the layout the tests use too: ``weights/``, ``data/content``,
``data/styles``, ``data/train``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from nst import judge as judge_layers
from nst.gatys import GatysConfig
from nst.images import to_pil
from nst.judge import Judge
from nst.vgg import LossNetwork, load_loss_network

ROOT = Path(__file__).resolve().parents[1]
#: The one place the studies name the data folder.
SHARED = Path(os.environ.get("NST_SHARED", ROOT.parent / "shared"))
VGG16 = SHARED / "weights" / "vgg16_imagenet_features.safetensors"
CONTENT = SHARED / "data" / "content"
STYLES = SHARED / "data" / "styles"
TRAIN = SHARED / "data" / "train"

#: Held-out photos (other datasets, not in the training photos), scored by every Johnson study.
PHOTOS = ("tubingen.jpg", "golden_gate.jpg", "dog.jpg", "kodim08_town_houses.png")
#: (held-out photo, zoo style id): each zoo style's own painting is STYLES / "<id>.jpg".
ZOO_PAIRS = (
    ("tubingen.jpg", "starry_night"),
    ("golden_gate.jpg", "great_wave"),
    ("dog.jpg", "the_scream"),
    ("kodim08_town_houses.png", "composition_vii"),
)
#: Grid cell and kept thumbnail side, px.
CELL = 192


def shown(path: Path) -> str:
    """A path relative to the repo when it is inside it (no home folders in the docs)."""
    path = Path(path)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def require_vgg16(path: Path = VGG16) -> Path:
    if not Path(path).is_file():
        raise SystemExit(f"The real VGG16 is needed: {path} is missing (set NST_SHARED).")
    return Path(path)


def add_gatys_inputs(parser: argparse.ArgumentParser) -> None:
    """--weights, --content and --style, defaulting to the files in the data folder."""
    parser.add_argument("--weights", default=str(VGG16))
    parser.add_argument("--content", default=str(CONTENT / "tubingen.jpg"))
    parser.add_argument("--style", default=str(STYLES / "starry_night.jpg"))


def objective_layers(objective: str) -> dict[str, tuple[str, ...]]:
    """GatysConfig layer options: the judge's (``judge``) or the library's defaults."""
    if objective == "judge":
        return {
            "content_layers": judge_layers.CONTENT_LAYERS,
            "style_layers": judge_layers.STYLE_LAYERS,
        }
    return {}  # the library's defaults


def loss_network(config: GatysConfig, weights: Path) -> LossNetwork:
    """The VGG a Gatys config needs, loaded once and shared by every run of a study."""
    layers = list(dict.fromkeys([*config.content_layers, *config.style_layers]))
    return load_loss_network(layers, weights=str(weights)).to(memory_format=torch.channels_last)


def evaluate(
    model: torch.nn.Module, photos: list[torch.Tensor], judge: Judge
) -> tuple[list[Image.Image], float, float]:
    """Stylise each photo; mean content and style error over them (the fixed yardstick)."""
    outputs, content, style = [], 0.0, 0.0
    with torch.inference_mode():
        for photo in photos:
            out = model(photo).clamp(0, 1)
            score = judge.score(out, photo)
            content += score.content / len(photos)
            style += score.style / len(photos)
            outputs.append(to_pil(out))
    return outputs, content, style


def labelled_grid(
    rows: list[tuple[str, list[Image.Image]]],
    path: Path,
    cell: int = CELL,
    label_width: int = 120,
    quality: int = 85,
) -> Path:
    """One labelled row per entry, one column per picture, each fitted into ``cell`` px."""
    pad = 3
    cols = max(len(images) for _, images in rows)
    size = (label_width + cols * (cell + pad), len(rows) * (cell + pad))
    sheet = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, images) in enumerate(rows):
        y = r * (cell + pad)
        draw.text((5, y + cell // 2 - 6), label, fill="black")
        for c, image in enumerate(images):
            thumb = image.copy()
            thumb.thumbnail((cell, cell))
            sheet.paste(thumb, (label_width + c * (cell + pad), y))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, quality=quality)
    print(f"wrote {path}")
    return path


def grid(rows: list[tuple[str, list[Image.Image]]], path: Path) -> None:
    """The Johnson studies' grids: CELL px thumbnails, JPEG quality 90."""
    labelled_grid(rows, path, cell=CELL, label_width=120, quality=90)
