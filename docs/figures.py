"""Figure helpers shared by the scripts in docs/ (not part of the library)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw


def labelled_grid(
    rows: list[tuple[str, list[Image.Image]]],
    path: Path,
    cell: int = 192,
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
