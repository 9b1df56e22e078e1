"""Johnson's content layer and batch size, and the photo skip, on the CPU recipe.

    python -m docs.johnson_experiments.study [--steps 1000] [--jobs 2] [--only content|batch|skip]
                                             [--init-from FOLDER|none]

Do the choices of Johnson et al. 2016 (Perceptual Losses for Real-Time Style Transfer and
Super-Resolution: content at relu2_2, batch 4) hold for this project's CPU recipe?
Trains one style (The Starry Night by default) with the real VGG16 and the training photos,
with the zoo's final CPU recipe (scripts/train_default_styles.sh: 256 px crops of the photos
scaled to 256 px, width 16, style image 512 px, style weight 10, Adam 5e-4 falling linearly
to 5e-5, the trainer's precision and layout, torch.compile), from random weights, the same
number of steps each:

- content layer relu1_2 vs relu2_2 vs relu3_3 vs relu4_3 (batch 4, seed 0);
- batch size 1 vs 4 vs 8 (content relu2_2), each with seeds 0 and 1, so that the spread
  between two seeds shows how much of a difference is noise. The batch-4 seed-0 run is
  shared with the first set;
- the plain net against one with ``--photo-skip yes`` (output = photo + the net's last
  conv), batch 4, seeds 0 and 1; the plain runs are the batch set's batch-4 runs.

Runs go to runs/experiments/<name>/ (ignored by git). A finished run is not trained again,
an interrupted one is resumed, so the script can be re-run to redo only the figures. Then
every final network stylises the same held-out photos (docs.common.PHOTOS), and one
fixed loss (content at relu2_2, style at relu1_2/2_2/3_3/4_3, each normalised as in
nst.losses) scores them all, whatever content layer they were trained with. Writes
docs/johnson_experiments/crop<size>px/{content_layer,batch_size,photo_skip}.jpg, results.csv
and results.md, and prints the machine it ran on. Each finished run is scored once, and its
score and pictures are kept in docs/johnson_experiments/crop<size>px/scored/ (committed: run
folders do not survive a lost machine), so the runs of one table can be trained on different
days and machines;
a set is reported with the runs scored so far and names the missing ones.

    --runs batch_8,batch_1   trains just these runs, in this order (for two workers
                             started by hand)
    --report-only            trains nothing; scores what has finished and reports
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from docs.common import (
    CELL,
    CONTENT,
    PHOTOS,
    ROOT,
    STYLES,
    TRAIN,
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

DOCS = Path(__file__).resolve().parent  # one folder per crop size: crop<size>px
RUNS = ROOT / "runs" / "experiments"
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


@dataclass(frozen=True)
class Variant:
    name: str  # run folder
    label: str  # row label in the grid and the table
    content_layer: str
    batch: int
    seed: int = 0
    photo_skip: bool = False  # output = photo + the net's last conv


CONTENT_SET = [Variant(f"content_{c}", f"content {c}", c, 4) for c in STYLE_LAYERS]
BATCH_SET = [
    Variant("batch_1", "batch 1, seed 0", "relu2_2", 1),
    Variant("batch_1_seed1", "batch 1, seed 1", "relu2_2", 1, seed=1),
    Variant("content_relu2_2", "batch 4, seed 0", "relu2_2", 4),  # = content relu2_2
    Variant("batch_4_seed1", "batch 4, seed 1", "relu2_2", 4, seed=1),
    Variant("batch_8", "batch 8, seed 0", "relu2_2", 8),
    Variant("batch_8_seed1", "batch 8, seed 1", "relu2_2", 8, seed=1),
]
#: The plain net against one that adds its output to the photo (batch 4, relu2_2, two
#: seeds each; the plain runs are shared with the batch set).
SKIP_SET = [
    Variant("content_relu2_2", "plain, seed 0", "relu2_2", 4),
    Variant("batch_4_seed1", "plain, seed 1", "relu2_2", 4, seed=1),
    Variant("photo_skip", "photo skip, seed 0", "relu2_2", 4, photo_skip=True),
    Variant("photo_skip_seed1", "photo skip, seed 1", "relu2_2", 4, seed=1, photo_skip=True),
]
#: Each set's grid.
GRIDS = {"content": "content_layer.jpg", "batch": "batch_size.jpg", "skip": "photo_skip.jpg"}


def last_row(path: Path) -> dict[str, str]:
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    return rows[-1] if rows else {}


def active_seconds(metrics: Path, pause_factor: float = 20.0) -> float:
    """A run's wall time without pauses (a process stopped while the CPU ran a test suite).

    A gap between two logged steps longer than ``pause_factor`` times the median step is a
    pause and counts as one median step. The first row's time (start-up, compile) counts.
    """
    with metrics.open() as fh:
        seconds = [float(row["seconds"]) for row in csv.DictReader(fh)]
    if len(seconds) < 3:
        return seconds[-1] if seconds else 0.0
    gaps = [b - a for a, b in itertools.pairwise(seconds)]
    median = statistics.median(gaps)
    paused = sum(gap - median for gap in gaps if gap > pause_factor * median)
    return seconds[-1] - paused


def finished_steps(run: Path) -> int:
    metrics = run / "metrics.csv"
    return int(last_row(metrics).get("step", -1)) + 1 if metrics.is_file() else 0


def train(variant: Variant, args: argparse.Namespace) -> None:
    """Train one variant in a subprocess (its own wall time; resumable)."""
    run = RUNS / variant.name
    if finished_steps(run) >= args.steps:
        print(f"{variant.name}: already trained ({args.steps} steps)")
        return
    command = [
        sys.executable, "-m", "train",
        "--style", str(args.style), "--data", str(TRAIN), "--out", str(run),
        "--vgg-weights", str(args.weights), "--iterations", str(args.steps),
        "--image-size", str(args.size), "--photo-size", str(args.train_photo_size),
        "--batch-size", str(variant.batch), "--compile", args.compile,
        "--style-size", str(args.style_size), "--width", str(args.width),
        "--style-weight", str(args.style_weight), "--content-layers", variant.content_layer,
        "--lr", str(args.lr), "--lr-final", str(args.lr_final), "--seed", str(variant.seed),
        "--checkpoint-every", str(max(1, args.steps // 4)), "--val-count", "0",
        "--preview-every", str(args.steps), "--progress", "no", "--export", "no",
    ]  # fmt: skip
    if variant.photo_skip:
        command += ["--photo-skip", "yes"]
    if args.init_from and str(args.init_from) != "none":
        command += ["--init-from", str(args.init_from)]
    if (run / "run.json").is_file():
        command.append("--resume")
    print(f"{variant.name}: training {args.steps} steps", flush=True)
    env = dict(os.environ)
    if args.jobs > 1:
        env.setdefault("OMP_NUM_THREADS", "1")
    log = run.with_suffix(".log")
    run.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        subprocess.run(command, cwd=ROOT, check=True, env=env, stdout=out, stderr=out)
    print(f"{variant.name}: done (log {log.relative_to(ROOT)})", flush=True)


def final_network(variant: Variant) -> torch.nn.Module:
    from train.checkpoint import latest_checkpoint

    found = latest_checkpoint(RUNS / variant.name)
    if found is None:
        raise SystemExit(f"{variant.name}: no checkpoint in {RUNS / variant.name}")
    return load_transformer(found.path)


def seed_group(variant: Variant) -> str:
    """The variant's label without its seed: the runs that differ only in the seed."""
    return variant.label.rsplit(", seed", 1)[0]


def seed_spread(variants: list[Variant], scored: dict[str, Scored]) -> list[str]:
    """Per setting run with two seeds: their mean and their difference, so noise shows."""
    lines = [
        "Two seeds per setting: mean, and the difference between the seeds.",
        "",
        "| setting | content (mean) | content (seed diff) | style (mean) | style (seed diff) |",
        "|---|---|---|---|---|",
    ]
    for group in dict.fromkeys(seed_group(v) for v in variants):
        runs = [scored[v.name] for v in variants if seed_group(v) == group and v.name in scored]
        if len(runs) < 2:
            continue
        contents, styles = [r.content for r in runs], [r.style for r in runs]
        lines.append(
            f"| {group} | {sum(contents) / len(runs):.3f} | {max(contents) - min(contents):.3f} "
            f"| {sum(styles) / len(runs):.3f} | {max(styles) - min(styles):.3f} |"
        )
    return lines if len(lines) > 4 else []  # no setting has both seeds yet


def pick_runs(names: str, sets: dict[str, list[Variant]]) -> list[Variant]:
    """The named runs, in the order given; a name that is not a run is an error."""
    known = {v.name: v for vs in sets.values() for v in vs}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"unknown run(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in wanted]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256, help="training crop side")
    parser.add_argument(
        "--train-photo-size", type=int, default=256, help="photos' short side before the crop"
    )
    parser.add_argument("--compile", choices=["yes", "no"], default="yes")
    parser.add_argument("--style-size", type=int, default=512)
    parser.add_argument("--style-weight", type=float, default=10.0)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--lr-final", type=float, default=5e-5, help="linear decay to this")
    parser.add_argument("--width", type=int, default=16, help="transformer width")
    parser.add_argument("--style", type=Path, default=STYLES / "starry_night.jpg")
    parser.add_argument("--weights", type=Path, default=VGG16)
    parser.add_argument(
        "--init-from",
        type=Path,
        default="none",
        help="warm start every variant from this exported net; 'none' = random weights",
    )
    parser.add_argument("--only", choices=list(GRIDS))
    parser.add_argument("--photo-size", type=int, default=512, help="judged at this long side")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once")
    parser.add_argument(
        "--runs",
        help="comma-separated run names to train, in this order (default: every run of the "
        "chosen sets, longest first)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: score the finished runs and write the report (safe while other "
        "workers are still training)",
    )
    args = parser.parse_args()
    require_vgg16(args.weights)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"machine: {summary(device)}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")

    sets = {"content": CONTENT_SET, "batch": BATCH_SET, "skip": SKIP_SET}
    chosen = {k: v for k, v in sets.items() if args.only in (None, k)}
    variants = list({v.name: v for vs in chosen.values() for v in vs}.values())
    variants.sort(key=lambda v: -v.batch)  # longest first: the two workers end together
    if args.runs:
        variants = pick_runs(args.runs, sets)
    if args.report_only:
        variants = []
    # Each run in its own process; --jobs 2 keeps two single-threaded runs going at once,
    # which on a 2-core CPU beats one two-threaded run (no OpenMP spin-waits).
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(lambda v: train(v, args), variants))

    # Score each finished run once and keep the score in docs/ (the run folders do not
    # survive a lost machine), then report every set from the kept scores, listing the runs
    # still missing, so the runs can be trained on different days and still land in one table.
    out = DOCS / f"crop{args.size}px"
    recipe = recipe_of(args)
    every = list({v.name: v for vs in sets.values() for v in vs}.values())
    scored = {
        v.name: found
        for v in every
        if (found := load_scored(out / "scored", v, recipe)) is not None
    }
    todo = [
        v for v in every if v.name not in scored and finished_steps(RUNS / v.name) >= args.steps
    ]
    scored.update(score_runs(todo, args, out, recipe, device))
    chosen = {k: vs for k, vs in sets.items() if any(v.name in scored for v in vs)}
    if not chosen:
        raise SystemExit("no experiment run has finished yet")
    write_report(chosen, scored, args, out)


def recipe_of(args: argparse.Namespace) -> dict[str, str]:
    """What makes two runs comparable; a kept score from another recipe is not reused."""
    return {
        "steps": str(args.steps),
        "crop": str(args.size),
        "photos": str(args.train_photo_size),
        "compile": args.compile,
        "style": args.style.name,
        "style_size": str(args.style_size),
        "style_weight": f"{args.style_weight:g}",
        "lr": f"{args.lr:g}",
        "lr_final": f"{args.lr_final:g}",
        "width": str(args.width),
        "init_from": shown(args.init_from),
        "judged_at": str(args.photo_size),
    }


@dataclass
class Scored:
    content: float
    style: float
    seconds: float
    machine: str
    images: list[Image.Image]


def save_scored(folder: Path, variant: Variant, scored: Scored, recipe: dict[str, str]) -> None:
    """One run's score as JSON, and its pictures side by side in one small JPEG."""
    folder.mkdir(parents=True, exist_ok=True)
    thumbs = []
    for image in scored.images:
        thumb = image.copy()
        thumb.thumbnail((CELL, CELL))
        thumbs.append(thumb)
    strip = Image.new("RGB", (sum(t.width for t in thumbs), max(t.height for t in thumbs)))
    x = 0
    for thumb in thumbs:
        strip.paste(thumb, (x, 0))
        x += thumb.width
    strip.save(folder / f"{variant.name}.jpg", quality=90)
    record = {
        "content": scored.content,
        "style": scored.style,
        "seconds": scored.seconds,
        "machine": scored.machine,
        "sizes": [list(t.size) for t in thumbs],
        "recipe": recipe,
    }
    (folder / f"{variant.name}.json").write_text(json.dumps(record, indent=1) + "\n")


def load_scored(folder: Path, variant: Variant, recipe: dict[str, str]) -> Scored | None:
    """A kept score for this run and recipe, or None (none kept, or another recipe's)."""
    path = folder / f"{variant.name}.json"
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    if record["recipe"] != recipe:
        print(f"{variant.name}: the kept score is from another recipe; not used")
        return None
    with Image.open(folder / f"{variant.name}.jpg") as strip:
        strip.load()
        images, x = [], 0
        for width, height in record["sizes"]:
            images.append(strip.crop((x, 0, x + width, height)))
            x += width
    return Scored(record["content"], record["style"], record["seconds"], record["machine"], images)


def score_runs(
    todo: list[Variant],
    args: argparse.Namespace,
    out: Path,
    recipe: dict[str, str],
    device: str,
) -> dict[str, Scored]:
    """Score these finished runs and keep each score; returns them by run name."""
    if not todo:
        return {}
    judge = Judge(judge_network(str(args.weights)), args.style, args.style_size)
    photos = [to_tensor(load_image(CONTENT / name, long_side=args.photo_size)) for name in PHOTOS]
    done = {}
    for variant in todo:
        images, content, style = evaluate(final_network(variant), photos, judge)
        seconds = active_seconds(RUNS / variant.name / "metrics.csv")
        scored = Scored(content, style, seconds, summary(device), images)
        save_scored(out / "scored", variant, scored, recipe)
        print(f"{variant.name}: content {content:.3f}, style {style:.4f}, {seconds:.0f} s")
        done[variant.name] = scored
    return done


def write_report(
    chosen: dict[str, list[Variant]],
    scored: dict[str, Scored],
    args: argparse.Namespace,
    out: Path,
) -> None:
    """The grids, results.md and results.csv from the kept scores."""
    originals = [
        to_pil(to_tensor(load_image(CONTENT / name, long_side=args.photo_size))) for name in PHOTOS
    ]
    table = [
        "| experiment | variant | content loss (relu2_2) | style loss | wall time (s) |",
        "|---|---|---|---|---|",
    ]
    csv_rows, missing = [], []
    for key, vs in chosen.items():
        rows = [("photo", originals)]
        for v in vs:
            if v.name not in scored:
                missing.append(v.label)
                continue
            run = scored[v.name]
            rows.append((v.label, run.images))
            table.append(
                f"| {key} | {v.label} | {run.content:.3f} | {run.style:.3f} | {run.seconds:.0f} |"
            )
            csv_rows.append(
                [key, v.label, f"{run.content:.4f}", f"{run.style:.4f}", f"{run.seconds:.1f}"]
            )
        grid(rows, out / GRIDS[key])
    # The skip set's plain runs are the batch set's batch-4 runs: count them once.
    spread = [v for v in chosen.get("batch", [])] + [
        v for v in chosen.get("skip", []) if v.photo_skip
    ]
    seeds = seed_spread(spread, scored)
    machines = sorted(
        {scored[v.name].machine for vs in chosen.values() for v in vs if v.name in scored}
    )
    setup = (
        f"{args.steps} steps, {args.size} px crops of photos at {args.train_photo_size} px, "
        f"width {args.width}, Adam {args.lr:g} to {args.lr_final:g}, compile {args.compile}, style "
        f"{args.style.name} at {args.style_size} px"
        + f", style weight {args.style_weight:g}"
        + (f", warm start from {shown(args.init_from)}" if str(args.init_from) != "none" else "")
        + f"; scored on {len(PHOTOS)} held-out photos at {args.photo_size} px; trained on "
        + "; ".join(machines)
        + "; wall time per run, without pauses (see active_seconds)"
    )
    gaps = f"\nNot finished yet: {'; '.join(missing)}.\n" if missing else ""
    (out / "results.md").write_text(
        setup
        + "\n\n"
        + "\n".join(table)
        + "\n"
        + gaps
        + ("\n" + "\n".join(seeds) + "\n" if seeds else "")
    )
    with (out / "results.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["experiment", "variant", "content_loss", "style_loss", "seconds"])
        writer.writerows(csv_rows)
    print(setup)
    print("\n".join(table + [""] + seeds) + gaps)


if __name__ == "__main__":
    main()
