"""Make the Gatys figures of the README and docs/ from the data folder with the real VGG16.

    python -m docs.figures.make_gatys_figures [--weights PATH] [--size 384] [--iterations 300]

Writes docs/figures/gatys_example.jpg (photo | painting | result) and
docs/gatys_init/photo_vs_noise.jpg (the same iteration budget from the photo and from white
noise, as Gatys, Ecker and Bethge compare initialisations in Image Style Transfer Using
Convolutional Neural Networks, CVPR 2016).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from docs.common import CONTENT, ROOT, STYLES, VGG16, shown
from nst.gatys import GatysConfig, gatys_steps
from nst.images import load_image

EXAMPLE = ROOT / "docs" / "figures" / "gatys_example.jpg"
INIT = ROOT / "docs" / "gatys_init" / "photo_vs_noise.jpg"


def labelled_row(images: list[Image.Image], labels: list[str], height: int = 256) -> Image.Image:
    """Images side by side at one height, each with a caption strip underneath."""
    scaled = [im.resize((round(im.width * height / im.height), height)) for im in images]
    strip = 22
    row = Image.new(
        "RGB", (sum(im.width for im in scaled) + 4 * (len(scaled) - 1), height + strip), "white"
    )
    draw = ImageDraw.Draw(row)
    x = 0
    for im, label in zip(scaled, labels, strict=True):
        row.paste(im, (x, 0))
        draw.text((x + 4, height + 5), label, fill="black")
        x += im.width + 4
    return row


def run(content: Path, style: Path, config: GatysConfig) -> tuple[Image.Image, float, dict]:
    *_, last = gatys_steps(content, [style], config)
    return last.image, last.seconds, last.losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", default=str(VGG16))
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(2)
    content = CONTENT / "tubingen.jpg"
    style = STYLES / "starry_night.jpg"
    base = GatysConfig(
        size=args.size, iterations=args.iterations, vgg_weights=args.weights, report_every=50
    )

    t0 = time.perf_counter()
    result, seconds, _ = run(content, style, base)
    row = labelled_row(
        [load_image(content), load_image(style), result],
        [
            "photo: Tubingen (Neckarfront)",
            "style: The Starry Night, van Gogh",
            f"Gatys, VGG16, {base.iterations} it, {seconds:.0f} s (2-core CPU)",
        ],
    )
    row.save(EXAMPLE, quality=90)
    print(f"{shown(EXAMPLE)} in {time.perf_counter() - t0:.0f} s")

    init_cfg = replace(base, size=256, iterations=100, scales=1)
    images, labels = [], []
    for init in ("content", "noise"):
        image, seconds, losses = run(content, style, replace(init_cfg, init=init))
        images.append(image)
        labels.append(f"init {init}: content {losses['content']:.2f}, style {losses['style']:.3f}")
        print(labels[-1])
    labelled_row(images, labels).save(INIT, quality=90)
    print(shown(INIT))


if __name__ == "__main__":
    main()
