"""Every setting of a training run in one dataclass, and the command line that fills it.

Defaults follow Johnson et al. 2016 ("Perceptual Losses for Real-Time Style Transfer"):
256 x 256 crops, batch 4, Adam lr 1e-3, VGG16 loss network, content relu2_2, style
relu1_2 / relu2_2 / relu3_3 / relu4_3, a total-variation term. The loss weights are for
the normalised losses of :mod:`nst.losses` (each term about 1 for an unrelated image),
not the paper's raw numbers.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from nst.cli import comma_list
from nst.errors import UsageError
from nst.precision import AUTOCAST_PRECISIONS

#: Settings that may change when a run is resumed; every other one defines the run.
RESUMABLE_OVERRIDES = frozenset(
    {
        "iterations",
        "epochs",
        "max_minutes",
        "checkpoint_every",
        "preview_every",
        "keep_checkpoints",
        "lr",
        "lr_final",
        "workers",
        "progress",
        "export",
        "save_rank_weights",
        "compile",
        "style_repeat",  # how often each painting trains from here on
        "style_scale",  # how hard each painting's style pulls from here on
    }
)


@dataclass
class TrainConfig:
    """One training run. Saved as ``RUN_DIR/run.json`` and in every checkpoint."""

    # The painting (a path), or several paintings, or folders of them, for one multi-style
    # net (conditional instance norm): each step trains one style on one batch of photos.
    style: str | list[str] = ""
    data: str = ""  # folder of training photos (COCO 2014 train in production)
    out: str = ""  # RUN_DIR: checkpoints, previews, metrics, export
    iterations: int = 40_000  # optimiser steps (Johnson: 2 epochs of COCO at batch 4)
    epochs: float | None = None  # when set, iterations = epochs over the data (all processes)
    # Stop (checkpoint, export) once this much training time is spent, resumes included:
    # a CPU-hour budget instead of a step count. None = run all the iterations.
    max_minutes: float | None = None
    image_size: int = 256  # side of the square random crops
    # Short side the photos are scaled to before cropping. None = image_size: the whole
    # photo squashed into the crop (Johnson et al.). Near the short side of the pictures
    # the net will stylise (341 for 512 px 3:2 photos) it trains at the content's real scale.
    photo_size: int | None = None
    batch_size: int = 4  # per process; torchrun multiplies it by the number of processes
    style_size: int = 512  # long side of the style image when its Gram matrices are taken
    lr: float = 1e-3  # Adam learning rate
    # When set, the rate falls linearly from lr to lr_final over the run (its iterations, or
    # its --max-minutes, whichever ends it first): less noise in the last weights.
    lr_final: float | None = None
    # Steps over which the rate climbs linearly from near 0 to lr. A warm start (--init-from)
    # begins with a fresh Adam, whose first updates are about lr per weight whatever the
    # gradient: without a warm-up they shake a trained net off its minimum for hundreds of
    # steps before the run gains anything.
    lr_warmup: int = 0
    content_weight: float = 1.0
    style_weight: float = 10.0  # normalised losses: 30 matched the style no better, lost content
    tv_weight: float = 10.0  # total variation: smooths the 9x9 output conv's speckle
    content_layers: list[str] = field(default_factory=lambda: ["relu2_2"])
    style_layers: list[str] = field(
        default_factory=lambda: ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    )
    vgg_weights: str | None = None  # path, "random" (tests), or None = env / Hub
    vgg_width_divisor: int = 1  # >1 only with vgg_weights="random" (fast tests)
    width: int = 32  # transformer width (32 = Johnson's net; 16 = a faster, lighter one)
    residual_blocks: int = 5
    # Output = photo + the net's last conv (nst.johnson.TransformerConfig.photo_skip).
    photo_skip: bool = False
    # Start from a trained network (folder or .safetensors) instead of random weights: a
    # photo-reconstruction net or another style. Same width and blocks; weights only.
    init_from: str | None = None
    precision: str = "auto"  # "auto" = bf16 autocast on GPUs and CPUs with bf16 arithmetic
    channels_last: str = "auto"  # "auto" = on CUDA only (it pays there); "on" / "off"
    compile: bool = False  # torch.compile the transformer (pays on long GPU runs)
    seed: int = 0  # model init, data order and crops all derive from it
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    preview_every: int = 500
    val_count: int = 4  # fixed validation photos (held out of the data when there are enough)
    val_dir: str | None = None  # take validation photos from here instead
    workers: int = -1  # data loader processes; -1 = 0 on CPU, 4 on CUDA
    progress: bool = True  # tqdm bar
    export: bool = True  # write RUN_DIR/export at the end
    save_rank_weights: bool = False  # every DDP rank also saves its final weights (DDP test)
    # Style metadata for config.json, the model card and the zoo catalogue.
    style_id: str = ""  # default: the style file's stem
    title: str = ""
    painting: str = ""
    artist: str = ""
    year: str = ""
    license: str = "mit"  # licence of the trained weights (the model card's metadata)
    dataset: str = ""  # dataset name for the model card; default: the data folder's name
    # Multi-style nets: which style each step trains ("round_robin" or "random").
    style_order: str = "round_robin"
    # "ID=N": train painting ID N times per round instead of once (round robin), or N times
    # as often (random); for a painting that lags the others, e.g. one new to the net.
    style_repeat: list[str] = field(default_factory=list)
    # "ID=F": painting ID's style weight is --style-weight x F; for a painting whose style
    # lags at a content the others' weight leaves to spare.
    style_scale: list[str] = field(default_factory=list)
    # Add one painting to the multi-style (or plain) net of --init-from: only the new style's
    # (gamma, beta) rows train; the shared convolutions stay frozen.
    add_style: str | None = None
    # Where the new rows start: "nearest" = the rows of the existing style whose Gram
    # matrices are closest to the new painting's; "mean" = the mean of all rows.
    add_style_init: str = "nearest"
    # Temporal stability (for video and the webcam), each term one more forward pass:
    # shift: weight x mean squared difference between the output of the photo shifted by
    # 1..max_shift px and the output shifted the same way (a 8 px border left out);
    # noise: weight x mean squared difference between the outputs of the photo and of the
    # photo plus Gaussian noise of noise_sigma (Gupta et al. 2017).
    # The norm layers' (gamma, beta) learn at this times --lr: in a multi-style net they are
    # each style's own, while the convolutions are shared by all.
    norm_lr_scale: float = 1.0
    shift_weight: float = 0.0
    max_shift: int = 3
    noise_weight: float = 0.0
    noise_sigma: float = 0.02

    @property
    def style_paths(self) -> list[str]:
        """The paintings this run trains, in the order of the net's style rows."""
        if self.add_style:
            return [self.add_style]
        return [self.style] if isinstance(self.style, str) else list(self.style)

    @property
    def style_counts(self) -> list[int]:
        """How many steps each painting trains per round (--style-repeat; 1 by default)."""
        return _per_style(self.style_ids, self.style_repeat, 1, int)

    @property
    def style_weights(self) -> list[float]:
        """Each painting's style weight: --style-weight, times its --style-scale."""
        scales = _per_style(self.style_ids, self.style_scale, 1.0, float)
        return [self.style_weight * scale for scale in scales]

    @property
    def style_cycle(self) -> list[int]:
        """One round of style indices: each painting its count of times, spread out
        (smooth weighted round robin, so a repeated painting's steps do not bunch)."""
        counts = self.style_counts
        total = sum(counts)
        credit = [0] * len(counts)
        cycle = []
        for _ in range(total):
            credit = [c + n for c, n in zip(credit, counts, strict=True)]
            pick = max(range(len(counts)), key=credit.__getitem__)
            credit[pick] -= total
            cycle.append(pick)
        return cycle

    @property
    def style_ids(self) -> list[str]:
        """One id per painting: --style-id for a one-style run, else the files' stems."""
        paths = self.style_paths
        if len(paths) == 1 and self.style_id:
            return [self.style_id]
        return [Path(p).stem for p in paths]

    def finish(self) -> TrainConfig:
        """Fill derived defaults and check every value (UsageError, an NSTError, if bad)."""
        if self.add_style:
            if not self.init_from:
                raise UsageError(
                    "--add-style needs --init-from NET: the net whose convolutions it reuses."
                )
            if self.style:
                raise UsageError("Give the new painting with --add-style only, not --style too.")
        else:
            self.style = _expand_styles(self.style)
        if not self.style and not self.add_style:
            raise UsageError("--style is required: the path of the style image (a painting).")
        if not self.data:
            raise UsageError("--data is required: a folder of training photos.")
        if not self.out:
            raise UsageError("--out is required: the run folder for checkpoints and the export.")
        positive = (
            "iterations",
            "image_size",
            "batch_size",
            "style_size",
            "width",
            "checkpoint_every",
            "preview_every",
            "keep_checkpoints",
        )
        for name in positive:
            if int(getattr(self, name)) <= 0:
                raise UsageError(
                    f"--{name.replace('_', '-')} must be positive, not {getattr(self, name)}."
                )
        if self.image_size < 32:
            raise UsageError(f"--image-size {self.image_size} is too small: use at least 32 px.")
        if self.photo_size is not None and self.photo_size < self.image_size:
            raise UsageError(
                f"--photo-size {self.photo_size} must be at least the crop size "
                f"(--image-size {self.image_size})."
            )
        if self.val_count < 0:
            raise UsageError(
                f"--val-count must be 0 (no validation) or more, not {self.val_count}."
            )
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise UsageError(f"--max-minutes must be positive, not {self.max_minutes}.")
        if self.lr <= 0:
            raise UsageError(f"--lr must be positive, not {self.lr}.")
        if self.lr_final is not None and not 0 < self.lr_final <= self.lr:
            raise UsageError(f"--lr-final must be in (0, --lr], not {self.lr_final}.")
        if self.lr_warmup < 0:
            raise UsageError(f"--lr-warmup must not be negative, not {self.lr_warmup}.")
        for name in ("content_weight", "style_weight", "tv_weight"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must not be negative.")
        if self.precision not in AUTOCAST_PRECISIONS:
            raise UsageError(
                f"--precision must be one of {', '.join(AUTOCAST_PRECISIONS)}, "
                f"not '{self.precision}'."
            )
        if self.channels_last not in ("auto", "on", "off"):
            raise UsageError("--channels-last must be auto, on or off.")
        if not self.content_layers or not self.style_layers:
            raise UsageError("At least one content layer and one style layer are needed.")
        if self.style_order not in ("round_robin", "random"):
            raise UsageError("--style-order must be round_robin or random.")
        repeat_form = "ID=N with N a whole number of at least 1"
        self._check_per_style("--style-repeat", self.style_repeat, repeat_form, _is_count)
        scale_form = "ID=F with F a positive number"
        self._check_per_style("--style-scale", self.style_scale, scale_form, _is_scale)
        if self.add_style_init not in ("nearest", "mean"):
            raise UsageError("--add-style-init must be nearest or mean.")
        if self.norm_lr_scale <= 0:
            raise UsageError(f"--norm-lr-scale must be positive, not {self.norm_lr_scale}.")
        for name in ("shift_weight", "noise_weight", "noise_sigma"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must not be negative.")
        if not 1 <= self.max_shift <= self.image_size // 4:
            raise UsageError(f"--max-shift must be between 1 and {self.image_size // 4} px.")
        ids = self.style_ids
        if len(set(ids)) != len(ids):
            raise UsageError(f"Two paintings share a file name (the style id): {ids}.")
        if not self.style_id:
            self.style_id = ids[0] if len(ids) == 1 else Path(self.out).name
        if not self.title:
            self.title = self.style_id.replace("_", " ").title()
        if not self.painting:
            self.painting = self.title
        if not self.dataset:
            self.dataset = Path(self.data).name
        return self

    def _check_per_style(
        self, flag: str, items: list[str], form: str, valid: Callable[[str], bool]
    ) -> None:
        """``ID=VALUE`` settings of a multi-style run: each names one of its paintings."""
        ids = self.style_ids
        for item in items:
            style_id, sep, value = item.partition("=")
            if not sep or not valid(value):
                raise UsageError(f"{flag} takes {form}, not '{item}'.")
            if len(ids) < 2:
                raise UsageError(f"{flag} is for multi-style runs (several --style).")
            if style_id not in ids:
                raise UsageError(
                    f"{flag} names '{style_id}', which is not one of this run's "
                    f"paintings: {', '.join(ids)}."
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


T = TypeVar("T")


def _per_style(ids: list[str], items: list[str], default: T, parse: Callable[[str], T]) -> list[T]:
    """One value per painting, in ``ids`` order: ``default``, or what an ``ID=VALUE`` item
    gives it (items checked by ``TrainConfig._check_per_style``)."""
    values = dict.fromkeys(ids, default)
    for item in items:
        style_id, _, value = item.partition("=")
        values[style_id] = parse(value)
    return list(values.values())


def _is_count(value: str) -> bool:
    return value.isdigit() and int(value) >= 1


def _is_scale(value: str) -> bool:
    try:
        return math.isfinite(float(value)) and float(value) > 0
    except ValueError:
        return False


def _expand_styles(style: str | list[str]) -> str | list[str]:
    """One painting stays a path; several paintings, or folders of them, become a list."""
    from train.data import list_images

    given = [style] if isinstance(style, str) else list(style)
    paths: list[str] = []
    for item in given:
        if item and Path(item).is_dir():
            paths.extend(str(p) for p in list_images(item))
        elif item:
            paths.append(str(item))
    return paths[0] if len(paths) == 1 else paths


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, not '{text}'")


def build_parser() -> argparse.ArgumentParser:
    """Every option defaults to None, so a resumed run can tell what was given explicitly."""
    p = argparse.ArgumentParser(
        prog="python -m train",
        description="Train a Johnson et al. 2016 feed-forward style network. "
        "Multi-GPU / multi-process: torchrun --nproc_per_node N -m train ...",
        argument_default=None,
    )
    d = TrainConfig()
    p.add_argument(
        "--style",
        nargs="+",
        help="style image (a painting); several, or a folder, train one multi-style net",
    )
    p.add_argument(
        "--add-style",
        help="add this painting to the net of --init-from: only its own norm rows train",
    )
    p.add_argument(
        "--add-style-init",
        choices=["nearest", "mean"],
        help="start the new rows from the nearest style's (default) or the mean of all",
    )
    p.add_argument(
        "--style-order",
        choices=["round_robin", "random"],
        help="multi-style runs: the style each step trains (default round_robin)",
    )
    p.add_argument(
        "--style-repeat",
        nargs="+",
        metavar="ID=N",
        help="multi-style runs: train painting ID N times per round (default once each)",
    )
    p.add_argument(
        "--style-scale",
        nargs="+",
        metavar="ID=F",
        help="multi-style runs: painting ID's style weight is --style-weight x F (default 1)",
    )
    p.add_argument(
        "--norm-lr-scale",
        type=float,
        help="the norm layers' (each style's own) learning rate over --lr (default 1)",
    )
    p.add_argument("--shift-weight", type=float, help="shift-consistency weight (default 0)")
    p.add_argument("--max-shift", type=int, help="largest shift in px for it (default 3)")
    p.add_argument("--noise-weight", type=float, help="noise-stability weight (default 0)")
    p.add_argument("--noise-sigma", type=float, help="its noise std on [0, 1] (default 0.02)")
    p.add_argument("--data", help="folder of training photos (searched recursively)")
    p.add_argument("--out", help="run folder: checkpoints, previews, metrics.csv, export/")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--iterations", type=int, help=f"optimiser steps (default {d.iterations})")
    p.add_argument("--epochs", type=float, help="alternative to --iterations: passes over --data")
    p.add_argument(
        "--max-minutes",
        type=float,
        help="stop after this many minutes of training (resumes included), then checkpoint "
        "and export: a time budget instead of a step count",
    )
    p.add_argument("--image-size", type=int, help=f"crop side in px (default {d.image_size})")
    p.add_argument(
        "--photo-size",
        type=int,
        help="scale each photo's short side to this before cropping (default: the crop "
        "size, the whole photo in the crop); e.g. 341 trains at the scale of 512 px pictures",
    )
    p.add_argument("--batch-size", type=int, help=f"per process (default {d.batch_size})")
    p.add_argument("--style-size", type=int, help=f"style long side px (default {d.style_size})")
    p.add_argument("--lr", type=float, help=f"Adam learning rate (default {d.lr})")
    p.add_argument(
        "--lr-final",
        type=float,
        help="decay the rate linearly to this over the run (its steps or --max-minutes)",
    )
    p.add_argument(
        "--lr-warmup",
        type=int,
        metavar="STEPS",
        help="raise the rate linearly from 0 over the first STEPS steps: steadies a warm "
        "start's fresh Adam (default 0)",
    )
    p.add_argument("--content-weight", type=float, help=f"default {d.content_weight}")
    p.add_argument("--style-weight", type=float, help=f"default {d.style_weight}")
    p.add_argument("--tv-weight", type=float, help=f"default {d.tv_weight}")
    p.add_argument("--content-layers", type=comma_list, help="comma-separated (default relu2_2)")
    p.add_argument(
        "--style-layers", type=comma_list, help="comma-separated (default relu1_2,...,relu4_3)"
    )
    p.add_argument(
        "--vgg-weights",
        help="VGG16 .safetensors (default: $NST_VGG_WEIGHTS or the Hub); 'random' for tests",
    )
    p.add_argument("--vgg-width-divisor", type=int, help=argparse.SUPPRESS)
    p.add_argument("--width", type=int, help=f"transformer width (default {d.width})")
    p.add_argument("--residual-blocks", type=int, help=f"default {d.residual_blocks}")
    p.add_argument(
        "--photo-skip",
        type=_bool,
        help="yes: the net outputs the photo plus what it learns to add (default no)",
    )
    p.add_argument(
        "--init-from",
        help="start from this trained network (folder or .safetensors) instead of random "
        "weights, e.g. a photo-reconstruction net (style weight 0) or another style",
    )
    p.add_argument("--precision", choices=AUTOCAST_PRECISIONS, help="default auto")
    p.add_argument("--channels-last", choices=["auto", "on", "off"], help="default auto")
    p.add_argument("--compile", type=_bool, help="torch.compile the transformer (yes/no)")
    p.add_argument("--seed", type=int, help=f"default {d.seed}")
    p.add_argument("--checkpoint-every", type=int, help=f"steps (default {d.checkpoint_every})")
    p.add_argument("--keep-checkpoints", type=int, help=f"default {d.keep_checkpoints}")
    p.add_argument("--preview-every", type=int, help=f"steps (default {d.preview_every})")
    p.add_argument("--val-count", type=int, help=f"validation photos (default {d.val_count})")
    p.add_argument("--val-dir", help="folder of validation photos (default: held out of --data)")
    p.add_argument("--workers", type=int, help="data loader processes (default: 0 CPU, 4 CUDA)")
    p.add_argument("--progress", type=_bool, help="show a tqdm bar (yes/no, default yes)")
    p.add_argument("--export", type=_bool, help="write RUN_DIR/export at the end (default yes)")
    p.add_argument("--save-rank-weights", action="store_const", const=True, help=argparse.SUPPRESS)
    p.add_argument("--style-id", help="catalogue id (default: the style file's name)")
    p.add_argument("--title", help="style title for the model card and the zoo")
    p.add_argument("--painting", help="painting name")
    p.add_argument("--artist", help="painter")
    p.add_argument("--year", help="year of the painting")
    p.add_argument("--license", help="licence of the trained weights (default mit)")
    p.add_argument("--dataset", help="dataset name for the model card")
    return p


def explicit_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig fields given on the command line (argparse left the rest None)."""
    known = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in known and v is not None}
    if isinstance(given.get("style"), list) and len(given["style"]) == 1:
        given["style"] = given["style"][0]  # one painting: a path, as run.json keeps it
    return given
