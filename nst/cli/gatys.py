"""Stylise a photo by optimising its pixels (Gatys et al. 2015).

Example: python -m nst gatys photo.jpg starry_night.jpg -o out.png --size 512
Several style images blend: ... a.jpg b.jpg --style-blend 0.7,0.3
Start from a trained Johnson net's output (a zoo style): ... --init johnson --model starry_night
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

from nst.cli import comma_floats, comma_list
from nst.errors import NSTError, UsageError
from nst.gatys import (
    CONTENT_LAYERS,
    INITS,
    OPTIMIZERS,
    PRECISIONS,
    STYLE_LAYERS,
    GatysConfig,
    gatys_steps,
)
from nst.images import save_image

if TYPE_CHECKING:
    from nst.johnson.model import TransformerNet

HELP = "optimise a photo's pixels to match a painting's style (slow, any style image)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = GatysConfig()
    parser.add_argument("content", help="the photo")
    parser.add_argument("styles", nargs="+", metavar="style", help="one or more style images")
    parser.add_argument("-o", "--output", required=True, help="output image (.png, .jpg)")
    parser.add_argument("--size", type=int, default=defaults.size, help="output long side, px")
    parser.add_argument("--iterations", type=int, default=defaults.iterations)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=defaults.optimizer)
    parser.add_argument("--init", choices=INITS, default=defaults.init)
    parser.add_argument("--init-image", help="start image when --init image")
    parser.add_argument(
        "--model",
        help="--init johnson: the trained net (zoo style id, Hub repo id or model folder); "
        "default: the zoo style named like the style image's file (starry_night.jpg)",
    )
    parser.add_argument("--content-layers", type=comma_list, default=list(CONTENT_LAYERS))
    parser.add_argument("--style-layers", type=comma_list, default=list(STYLE_LAYERS))
    parser.add_argument("--content-weight", type=float, default=defaults.content_weight)
    parser.add_argument("--style-weight", type=float, default=defaults.style_weight)
    parser.add_argument("--tv-weight", type=float, default=defaults.tv_weight)
    parser.add_argument("--style-scale", type=float, default=defaults.style_scale)
    parser.add_argument("--style-blend", type=comma_floats, help="weights per style, e.g. 0.7,0.3")
    parser.add_argument("--preserve-colors", action="store_true", help="keep the photo's colours")
    parser.add_argument(
        "--scales", type=int, default=defaults.scales, help="coarse-to-fine stages (1 = off)"
    )
    parser.add_argument(
        "--coarse-iterations",
        type=int,
        default=defaults.coarse_iterations,
        help="iterations per coarse stage, the rest at full size (default: equal shares)",
    )
    parser.add_argument(
        "--history-size", type=int, default=defaults.history_size, help="L-BFGS memory"
    )
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument(
        "--strength", type=float, default=defaults.strength, help="1 = full style, 0 = the photo"
    )
    parser.add_argument("--pooling", choices=("max", "avg"), default=defaults.pooling)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=defaults.precision,
        help="the loss network's: auto = bf16 on CPUs with bf16 arithmetic (faster there), "
        "else fp32",
    )
    parser.add_argument(
        "--vgg-weights", help="VGG .safetensors (default: $NST_VGG_WEIGHTS, then the Hub)"
    )
    parser.add_argument("--save-every", type=int, default=0, help="also save every N iterations")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> GatysConfig:
    if args.style_blend is not None and len(args.style_blend) != len(args.styles):
        raise UsageError(
            f"--style-blend has {len(args.style_blend)} weights for {len(args.styles)} styles."
        )
    return GatysConfig(
        init_model=init_model(args),
        size=args.size,
        iterations=args.iterations,
        optimizer=args.optimizer,
        init=args.init,
        init_image=args.init_image,
        content_layers=args.content_layers,
        style_layers=args.style_layers,
        content_weight=args.content_weight,
        style_weight=args.style_weight,
        tv_weight=args.tv_weight,
        style_scale=args.style_scale,
        style_blend=args.style_blend,
        preserve_colors=args.preserve_colors,
        strength=args.strength,
        scales=args.scales,
        coarse_iterations=args.coarse_iterations,
        history_size=args.history_size,
        seed=args.seed,
        learning_rate=args.learning_rate,
        pooling=args.pooling,
        precision=args.precision,
        vgg_weights=args.vgg_weights,
        report_every=args.save_every if args.save_every > 0 else 10,
    )


def init_model(args: argparse.Namespace) -> TransformerNet | None:
    """The Johnson net ``--init johnson`` starts from, resolved through the zoo (the
    library itself only takes a net); None for every other start."""
    if args.init != "johnson":
        if args.model:
            raise UsageError("--model is the net for --init johnson; add --init johnson.")
        return None
    name = args.model or _style_id(args.styles)
    import zoo  # deferred: only this start needs the zoo

    try:
        return zoo.load(name, progress=not args.quiet)
    except NSTError as exc:
        raise NSTError(f"--init johnson: {exc}") from exc


def _style_id(styles: list[str]) -> str:
    """The zoo style that the one style image is named after, or a UsageError that says
    which styles have a trained net."""
    import zoo

    known = [entry.id for entry in zoo.list_styles()]
    stem = Path(styles[0]).stem if len(styles) == 1 else None
    if stem in known:
        return stem
    which = f"'{Path(styles[0]).name}'" if stem else f"a blend of {len(styles)} styles"
    raise UsageError(
        f"--init johnson needs a trained Johnson net of the style, and {which} has none "
        f"in the zoo (styles with a net: {', '.join(known)}). Name one with --model "
        "(a zoo style, a Hub repo id or a model folder), train one (python -m train), "
        "or use --init content or --init color-matched."
    )


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    device = None if args.device == "auto" else args.device
    bar = tqdm(total=config.iterations, unit="it", disable=args.quiet, desc="gatys")
    last = None
    try:
        for last in gatys_steps(args.content, args.styles, config, device=device):
            bar.update(last.iteration - bar.n)
            bar.set_postfix(
                loss=f"{last.losses.get('total', 0):.3g}",
                size=f"{last.size[0]}x{last.size[1]}",
            )
            if args.save_every > 0 and not last.done:
                save_image(last.image, _numbered(args.output, last.iteration))
    finally:
        bar.close()
    assert last is not None
    out = save_image(last.image, args.output)
    print(f"saved {out} ({last.size[0]}x{last.size[1]}, {last.seconds:.1f} s, {last.precision})")
    return 0


def _numbered(path: str, iteration: int) -> str:
    stem, dot, ext = path.rpartition(".")
    return f"{stem}_{iteration:05d}.{ext}" if dot else f"{path}_{iteration:05d}"
