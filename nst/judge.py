"""One fixed yardstick for stylised pictures, whatever made them (a Johnson net, Gatys).

Content at relu2_2, style at relu1_2 / relu2_2 / relu3_3 / relu4_3 of VGG16, each term
normalised as in :mod:`nst.losses` and reported separately. These are the layers of
Johnson et al. 2016's training loss, so a trained network and a Gatys run on the same
photo and painting can be compared on the objective both minimise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nst.images import ImageSource, load_image, to_tensor
from nst.losses import LossWeights, PerceptualLoss, blended_gram_targets
from nst.vgg import LossNetwork, load_loss_network

CONTENT_LAYERS = ("relu2_2",)
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


@dataclass(frozen=True)
class Score:
    """Normalised content and style errors of one picture (lower is closer)."""

    content: float
    style: float


def judge_network(weights: str | None, device: torch.device | str = "cpu") -> LossNetwork:
    """VGG16 cut at relu4_3, the judge's loss network."""
    layers = list(dict.fromkeys(CONTENT_LAYERS + STYLE_LAYERS))
    return load_loss_network(layers, weights=weights, arch="vgg16", device=device)


class Judge:
    """Scores pictures against one painting: ``judge.score(picture, photo)``."""

    def __init__(self, net: LossNetwork, painting: ImageSource, painting_size: int) -> None:
        device = next(net.parameters()).device
        style = to_tensor(load_image(painting, long_side=painting_size), device)
        grams = blended_gram_targets(net, [style], list(STYLE_LAYERS))
        self.loss = PerceptualLoss(
            net, list(CONTENT_LAYERS), list(STYLE_LAYERS), grams, LossWeights(1.0, 1.0, 0.0)
        )

    @torch.no_grad()
    def score(self, picture: torch.Tensor, photo: torch.Tensor) -> Score:
        """``picture`` and ``photo``: (1, 3, H, W) in [0, 1], the same size."""
        if picture.shape != photo.shape:
            raise ValueError(f"picture {tuple(picture.shape)} and photo {tuple(photo.shape)}")
        _, parts = self.loss(picture, self.loss.content_targets(photo))
        return Score(content=float(parts["content"]), style=float(parts["style"]))
