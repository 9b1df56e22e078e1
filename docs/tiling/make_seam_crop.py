"""docs/tiling/seam_crop_100pct.png: a 100% crop across a corner where four output
tiles meet, tiled vs untiled, and their difference amplified.

    .venv/bin/python -m docs.tiling.make_seam_crop [--model zoo/models/<style>]

Uses a random width-32 net (seed 0) unless --model names a trained one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from docs.common import CONTENT
from nst.images import load_image, to_pil, to_tensor
from nst.johnson import TransformerNet, load_transformer, stylize_tensor
from nst.johnson.tiling import _geometry

PHOTO = CONTENT / "golden_gate.jpg"
OUT = Path(__file__).resolve().parent / "seam_crop_100pct.png"
TILE, CROP, GAIN = 512, 192, 20000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a trained model folder")
    args = parser.parse_args()
    if args.model:
        net = load_transformer(args.model)
        name = str(net.config.style.get("title") or Path(args.model).name)
    else:
        torch.manual_seed(0)
        net, name = TransformerNet().eval(), "random width-32 net"
    x = to_tensor(load_image(PHOTO, long_side=1600))
    untiled = stylize_tensor(net, x, device="cpu", tile=None, precision="fp32")
    tiled = stylize_tensor(net, x, device="cpu", tile=TILE, precision="fp32")
    # The output's tiles: cores of the last decoder pass, which runs on the 1/2-scale map.
    corner = 2 * _geometry(net.decoder[1:], TILE, net.config.width).core
    top, left = corner - CROP // 2, corner - CROP // 2
    crop = (slice(None), slice(None), slice(top, top + CROP), slice(left, left + CROP))
    diff = (tiled - untiled).abs()[crop].mul(GAIN).clamp(0, 1).expand(1, 3, -1, -1)
    panels = [to_pil(tiled[crop]), to_pil(untiled[crop]), to_pil(diff)]
    labels = ["tiled (512 px)", "untiled", f"|difference| x {GAIN}"]
    pad, band = 8, 42
    sheet = Image.new("RGB", (3 * CROP + 4 * pad, CROP + band + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (panel, label) in enumerate(zip(panels, labels, strict=True)):
        x0 = pad + i * (CROP + pad)
        sheet.paste(panel, (x0, band))
        draw.text((x0, 4), label, fill="black")
        # Ticks outside the picture where the tile borders run through it.
        mid = x0 + CROP // 2
        draw.line([(mid, band - 6), (mid, band - 1)], fill="red")
        draw.line([(x0 - 6, band + CROP // 2), (x0 - 1, band + CROP // 2)], fill="red")
    draw.text((pad, 18), f"{name}; red ticks: tile borders", fill="grey")
    sheet.save(OUT)
    print(
        f"wrote {OUT}: corner at ({corner}, {corner}), max |diff| in crop "
        f"{(tiled - untiled).abs()[crop].max():.1e}, whole image "
        f"{(tiled - untiled).abs().max():.1e}"
    )


if __name__ == "__main__":
    main()
