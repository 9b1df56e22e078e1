"""Stylise a photo or a video with a trained Johnson et al. 2016 transformer net (fast,
any size).

--model takes a model folder (model.safetensors + config.json), a .safetensors file, or a
style name / Hub repo id from the zoo (``python -m zoo list``). A video (.mp4, .mov, .mkv,
.webm, .avi, ...) is stylised frame by frame into -o (.mp4, .m4v, .mov, .mkv or .avi),
keeping its frame rate and audio (needs PyAV: pip install 'nst[video]').
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from nst.errors import NSTError, UsageError
from nst.images import save_image
from nst.johnson import TransformerNet, load_transformer, stylize
from nst.johnson.engines import ENGINES
from nst.johnson.tiling import Progress
from nst.precision import INFERENCE_PRECISIONS
from nst.temporal import DEFAULT_STEADY, check_steady
from nst.video import is_video

HELP = "stylise a photo or video with a trained transformer net (Johnson et al. 2016)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("content", help="the photo (JPEG, PNG, WebP, ...) or video (MP4, ...)")
    parser.add_argument(
        "--model", required=True, help="model folder, .safetensors file, or zoo style name"
    )
    parser.add_argument("-o", "--output", required=True, help="where to write the result")
    parser.add_argument(
        "--style",
        default=None,
        help="a multi-style net's style (id or index; default: the model's own or its first)",
    )
    parser.add_argument(
        "--blend",
        action="append",
        default=[],
        metavar="STYLE:SHARE",
        help="mix in another style of the same multi-style net, e.g. --blend the_scream:0.3 "
        "(70 %% the model's style, 30 %% The Scream); repeatable",
    )
    parser.add_argument("--size", type=int, default=None, help="output long side in px")
    parser.add_argument("--strength", type=float, default=1.0, help="1 = full style, 0 = the photo")
    parser.add_argument("--preserve-colors", action="store_true", help="keep the photo's colours")
    parser.add_argument(
        "--steady",
        type=float,
        nargs="?",
        const=DEFAULT_STEADY,
        default=0.0,
        metavar="S",
        help="video only: keep strokes still where the scene is still, S in [0, 1) the weight "
        f"of the last frames (--steady alone: {DEFAULT_STEADY:g}; default 0, off)",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument(
        "--tile",
        default="auto",
        help="'auto' (tile only above the memory budget), a tile side in px, or 0 (never)",
    )
    parser.add_argument(
        "--precision", default="auto", choices=INFERENCE_PRECISIONS, help="arithmetic precision"
    )
    parser.add_argument(
        "--engine",
        default=None,
        choices=ENGINES,
        help="inference engine; 'auto' (default, or NST_ENGINE): OpenVINO or onnxruntime "
        "when installed, on the CPU in fp32, else PyTorch",
    )


def parse_tile(value: str) -> int | str | None:
    if value == "auto":
        return "auto"
    try:
        return int(value) or None
    except ValueError:
        raise UsageError(f"--tile takes 'auto', 0 or a side in pixels, not '{value}'.") from None


def parse_blend(values: list[str]) -> dict[str, float]:
    """``["the_scream:0.3", ...]`` -> ``{"the_scream": 0.3, ...}``."""
    shares: dict[str, float] = {}
    for value in values:
        style, sep, share = value.rpartition(":")
        try:
            shares[style] = float(share)
        except ValueError:
            style = ""
        if not sep or not style:
            raise UsageError(f"--blend takes STYLE:SHARE, e.g. the_scream:0.3, not '{value}'.")
    return shares


def choose_style(model: TransformerNet, style: str | None, blend: list[str]) -> TransformerNet:
    """The model painting --style with the --blend shares mixed in (a view that shares
    the weights); the model itself when neither is given."""
    shares = parse_blend(blend)
    if style is None and not shares:
        return model
    base: str | int | None = int(style) if style is not None and style.isdigit() else style
    if shares and model.config.num_styles == 1:
        raise UsageError(
            "--blend mixes styles of one multi-style net; this model holds one style "
            f"('{model.config.style_ids[0]}')."
        )
    return model.with_style(model.blend(shares, base) if shares else base)


def blend_through_zoo(name: str, shares: dict[str, float]) -> TransformerNet:
    """--model ID --blend OTHER:SHARE where ID's own net holds one style: the zoo's blend,
    through a multi-style net that has a row for each (else its error says why)."""
    import zoo

    return zoo.load_blend({name: 1.0 - sum(shares.values()), **shares})


def resolve_model(name: str) -> TransformerNet:
    """A path that exists is loaded directly; anything else is asked of the zoo."""
    if Path(name).exists():
        return load_transformer(name)
    try:
        import zoo
    except ImportError as exc:
        raise NSTError(
            f"'{name}' is not a file or folder, and the style zoo is not available to "
            f"look it up ({exc}). Pass the path of a model folder instead."
        ) from exc
    try:
        return zoo.load(name)
    except NSTError:
        raise
    except Exception as exc:  # the zoo's own bugs or network failures: say which model
        raise NSTError(
            f"Could not load '{name}' from the style zoo: {exc}. Check the name with "
            "'python -m zoo list' or pass the path of a model folder."
        ) from exc


def _bar(unit: str, min_total: int) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A tqdm bar over ``unit``s, drawn at the first update whose total is at least
    ``min_total`` (total 0: unknown), so a run that never gets there prints nothing."""
    from tqdm import tqdm

    state: dict[str, tqdm] = {}

    def update(done: int, total: int) -> None:
        if total and total < min_total:
            return
        if "bar" not in state:
            state["bar"] = tqdm(total=total or None, unit=unit, desc="stylising")
        state["bar"].n = done
        state["bar"].refresh()

    def close() -> None:
        if "bar" in state:
            state["bar"].close()

    return update, close


def _progress_bar() -> tuple[Progress, Callable[[], None]]:
    """A bar over tiles that appears only once a run turns out to be tiled."""
    return _bar("tile", min_total=2)


def _frame_bar() -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A bar over the video's frames (total 0: the container does not say), shown from
    the first frame on, so a file refused at once prints only its error."""
    return _bar("frame", min_total=0)


def _options(args: argparse.Namespace, tile: int | str | None) -> dict[str, object]:
    """The stylising options a photo and a video share."""
    return {
        "size": args.size,
        "strength": args.strength,
        "preserve_colors": args.preserve_colors,
        "device": args.device,
        "tile": tile,
        "precision": args.precision,
        "engine": args.engine,
    }


def run_video(args: argparse.Namespace, model: TransformerNet, tile: int | str | None) -> int:
    from nst.video import stylize_video

    progress, close = _frame_bar()
    start = time.perf_counter()
    try:
        result = stylize_video(
            model,
            args.content,
            args.output,
            steady=args.steady,
            **_options(args, tile),
            progress=progress,
        )
    finally:
        close()
    seconds = time.perf_counter() - start
    print(
        f"wrote {result.path} ({result.width} x {result.height}, {result.frames} frames at "
        f"{float(result.fps):g} fps, {result.video_codec}, audio {result.audio}, {seconds:.1f} s)"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    tile = parse_tile(args.tile)  # a bad --tile fails before the model is loaded
    parse_blend(args.blend)  # so does a bad --blend
    check_steady(args.steady)  # and a bad --steady, or one for a photo
    if args.steady and not is_video(args.content):
        raise UsageError("--steady steadies the frames of a video; a photo has only one.")
    model = resolve_model(args.model)
    zoo_id = not Path(args.model).exists()
    if args.blend and args.style is None and model.config.num_styles == 1 and zoo_id:
        model = blend_through_zoo(args.model, parse_blend(args.blend))
    else:
        model = choose_style(model, args.style, args.blend)
    if is_video(args.content):
        return run_video(args, model, tile)
    progress, close = _progress_bar()
    start = time.perf_counter()
    try:
        result = stylize(model, args.content, **_options(args, tile), progress=progress)
    finally:
        close()
    out = save_image(result, args.output)
    seconds = time.perf_counter() - start
    print(f"wrote {out} ({result.width} x {result.height}, {seconds:.1f} s)")
    return 0
