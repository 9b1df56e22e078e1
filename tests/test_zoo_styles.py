"""The zoo's bundled default styles really paint like their paintings (real VGG16).

On photos that were not in the training data, each style's output must be much closer to its
painting in Gram-matrix (style) terms than the photo is, and must still be the photo in
content terms: far closer to it than to the painting.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import zoo
from nst.images import load_image, to_tensor
from nst.johnson import stylize
from nst.losses import LossWeights, PerceptualLoss, blended_gram_targets
from nst.vgg import load_loss_network

STYLE_LAYERS = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
#: Held out of ../shared/data/train (a different dataset).
PHOTOS = ("tubingen.jpg", "golden_gate.jpg", "kodim04_portrait_red_hat.png")

pytestmark = pytest.mark.real_vgg
BUNDLED = [s for s in zoo.list_styles() if s.is_bundled]


def test_the_zoo_ships_at_least_four_default_styles() -> None:
    assert len(BUNDLED) >= 4, [s.id for s in BUNDLED]
    for style in BUNDLED:
        assert style.training.get("trained_steps", 0) >= 300, style.id
        assert style.preview_path.is_file()


@pytest.fixture(scope="module")
def vgg(real_vgg16: Path):
    return load_loss_network(["relu2_2", *STYLE_LAYERS], weights=str(real_vgg16), arch="vgg16")


@pytest.mark.parametrize("style", BUNDLED, ids=lambda s: s.id)
def test_style_is_recognisable_on_held_out_photos(style, vgg, content_dir: Path) -> None:
    painting = to_tensor(load_image(style.preview_path, long_side=256))
    grams = blended_gram_targets(vgg, [painting], STYLE_LAYERS)
    loss = PerceptualLoss(vgg, ["relu2_2"], STYLE_LAYERS, grams, LossWeights(1, 1, 0))
    model = zoo.load(style.id, progress=False)
    ratios = []
    for name in PHOTOS:
        photo = to_tensor(load_image(content_dir / name, long_side=256))
        out = to_tensor(stylize(model, photo, size=256))
        with torch.no_grad():
            targets = loss.content_targets(photo)
            _, as_photo = loss(photo, targets)
            _, result = loss(out, targets)
            resized = torch.nn.functional.interpolate(painting, size=photo.shape[-2:])
            _, as_painting = loss(resized, targets)
        # the style: well below the photo's own distance to the painting (measured 0.32-0.62;
        # a colourful photo starts nearer a colourful painting, hence the looser single bound)
        ratios.append(float(result["style"] / as_photo["style"]))
        assert ratios[-1] < 0.7, (name, result, as_photo)
        # the content: the photo is still there (measured 0.23-0.43 of the painting's)
        assert result["content"] < 0.5 * as_painting["content"], (name, result, as_painting)
    assert sum(ratios) / len(ratios) < 0.6, ratios
