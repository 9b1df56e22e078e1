"""The README's figure of the zoo's bundled styles on photos not used in training.

    python -m docs.figures.make_zoo_figure [--size 320] [--photos tubingen.jpg golden_gate.jpg ...]
        [--styles starry_night great_wave ...] [--out docs/figures/zoo_styles.jpg]

One row per bundled style (or per style of ``--styles``): the painting, then each held-out
photo from the data folder's photos stylised by the style's Johnson network (nst.johnson),
with the time it took. Writes docs/figures/zoo_styles.jpg (or ``--out``) and prints the
machine.
"""

from __future__ import annotations

import argparse
import time
import unicodedata
from pathlib import Path

import torch
from PIL import Image, ImageDraw

import zoo
from docs.common import CONTENT, ROOT
from nst.hardware import summary
from nst.images import load_image
from nst.johnson import stylize

PHOTOS = ("tubingen.jpg", "golden_gate.jpg", "kodim04_portrait_red_hat.png", "dog.jpg")


def fit(image: Image.Image, cell: int) -> Image.Image:
    """Centre-crop to a square cell, so rows line up whatever the aspect ratio."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side)).resize((cell, cell))


def ascii_label(text: str) -> str:
    """``text`` without its accents: PIL's built-in font has no glyph for them."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=320, help="long side of each stylised photo")
    parser.add_argument("--cell", type=int, default=200)
    parser.add_argument("--photos", nargs="+", default=list(PHOTOS))
    parser.add_argument("--styles", nargs="+", help="these catalogue ids (default: all bundled)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures" / "zoo_styles.jpg")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"machine: {summary(device)}")

    photos = [load_image(CONTENT / name) for name in args.photos]
    styles = [s for s in zoo.list_styles() if s.is_bundled]
    if args.styles:
        styles = [s for s in styles if s.id in args.styles]
    cell, pad, strip = args.cell, 4, 18
    rows = [("photo", None, [fit(p, cell) for p in photos], [""] * len(photos))]
    for style in styles:
        model = zoo.load(style.id, device=device, progress=False)
        # Warm-up, untimed: the first call of a style exports and compiles it for the
        # engine (seconds, once per process and cached on disk), not a photo's cost.
        stylize(model, photos[0], size=64, device=device)
        images, labels = [], []
        for photo in photos:
            start = time.perf_counter()
            result = stylize(model, photo, size=args.size, device=device)
            labels.append(f"{time.perf_counter() - start:.2f} s")
            images.append(fit(result, cell))
        painting = fit(load_image(style.preview_path), cell)
        rows.append((style.title, painting, images, labels))
        print(f"{style.id}: {', '.join(labels)} at {args.size} px")

    cols = 1 + len(photos)
    sheet = Image.new("RGB", (cols * (cell + pad), len(rows) * (cell + strip + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (title, painting, images, labels) in enumerate(rows):
        y = r * (cell + strip + pad)
        if painting is not None:
            sheet.paste(painting, (0, y))
        draw.text((4, y + cell + 3), ascii_label(title), fill="black")
        for c, (image, label) in enumerate(zip(images, labels, strict=True), start=1):
            sheet.paste(image, (c * (cell + pad), y))
            draw.text((c * (cell + pad) + 4, y + cell + 3), label, fill="black")
    sheet.save(args.out, quality=88)
    print(f"wrote {args.out} ({len(styles)} styles x {len(photos)} photos)")


if __name__ == "__main__":
    main()
