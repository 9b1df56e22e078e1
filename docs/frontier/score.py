"""Score trained Johnson nets of one style against Gatys-100: where each lands between
keeping the photo (content) and matching the painting (style).

    python -m docs.frontier.score great_wave "zoo=zoo/models/great_wave" \
        "style weight 5=runs/frontier_sw5/great_wave/export" [--out docs/frontier]

Each net paints the four held-out photos at 512 px; ``nst.judge`` scores them with the one
fixed loss (content relu2_2, style relu1_2..relu4_3), and each mean is divided by Gatys-100's
on the same photos and painting (docs/zoo_training/gatys_reference.json). Writes
``<out>/<style>.md`` (the table, with the machine) and ``<out>/<style>.jpg`` (the pictures,
one row per net), and prints the table. The zoo's quality target: content at most 1.2x
Gatys-100, style at most 2.5x.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from docs.common import (
    CONTENT,
    PHOTOS,
    ROOT,
    STYLES,
    VGG16,
    evaluate,
    grid,
    require_vgg16,
    shown,
)
from nst.hardware import summary
from nst.images import load_image, to_pil, to_tensor
from nst.johnson import load_transformer
from nst.judge import Judge, judge_network

REFERENCE = ROOT / "docs" / "zoo_training" / "gatys_reference.json"
#: The zoo's quality target, times Gatys-100 from the photo.
CONTENT_TARGET, STYLE_TARGET = 1.2, 2.5


@dataclass(frozen=True)
class Scored:
    label: str
    path: str
    content: float
    style: float
    images: list[Image.Image]


def parse_net(text: str) -> tuple[str, Path]:
    """``label=path`` -> (label, path)."""
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=PATH, not '{text}'")
    return label, Path(path)


def gatys_reference(style_id: str) -> tuple[float, float]:
    kept = json.loads(REFERENCE.read_text())
    if kept["photos"] != list(PHOTOS) or style_id not in kept["styles"]:
        raise SystemExit(f"{shown(REFERENCE)} holds no Gatys-100 score for {style_id}")
    ref = kept["styles"][style_id]
    return ref["content"], ref["style"]


def table(scored: list[Scored], ref: tuple[float, float], style_id: str) -> list[str]:
    content_ref, style_ref = ref
    lines = [
        f"| {style_id} | content | style | content / Gatys | style / Gatys "
        "| content + 10 x style |",
        "|---|---|---|---|---|---|",
        f"| Gatys-100 | {content_ref:.3f} | {style_ref:.4f} | 1.00 | 1.00 "
        f"| {content_ref + 10 * style_ref:.3f} |",
        f"| the zoo's target | <= {CONTENT_TARGET * content_ref:.3f} "
        f"| <= {STYLE_TARGET * style_ref:.4f} | <= {CONTENT_TARGET} | <= {STYLE_TARGET} | |",
    ]
    for s in scored:
        lines.append(
            f"| {s.label} | {s.content:.3f} | {s.style:.4f} | {s.content / content_ref:.2f} "
            f"| {s.style / style_ref:.2f} | {s.content + 10 * s.style:.3f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("style_id", help="a bundled painting's id (its file in data/styles)")
    parser.add_argument("nets", nargs="+", type=parse_net, help="LABEL=PATH of a trained net")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--weights", type=Path, default=VGG16)
    args = parser.parse_args()
    require_vgg16(args.weights)
    ref = gatys_reference(args.style_id)
    painting = STYLES / f"{args.style_id}.jpg"
    judge = Judge(judge_network(str(args.weights)), painting, 512)
    photos = [to_tensor(load_image(CONTENT / n, long_side=512)) for n in PHOTOS]
    scored = []
    for label, path in args.nets:
        images, content, style = evaluate(load_transformer(path), photos, judge)
        scored.append(Scored(label, shown(path.resolve()), content, style, images))
        print(f"{label}: content {content:.3f}, style {style:.4f}", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    rows = [("photo", [to_pil(p) for p in photos])] + [(s.label, s.images) for s in scored]
    grid(rows, args.out / f"{args.style_id}.jpg")
    machine = summary("cpu")
    nets = "; ".join(f"{s.label}: `{s.path}`" for s in scored)
    lines = table(scored, ref, args.style_id)
    text = (
        f"{len(PHOTOS)} held-out photos at 512 px, `nst.judge`; Gatys-100 from "
        f"{shown(REFERENCE)}. Scored on {machine}.\n\n" + "\n".join(lines) + f"\n\nNets: {nets}\n"
    )
    (args.out / f"{args.style_id}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
