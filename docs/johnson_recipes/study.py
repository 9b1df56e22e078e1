"""Johnson training recipes: quality against CPU-minutes, with Gatys-100 as the reference.

    python -m docs.johnson_recipes.study train  [--minutes 12] [--jobs 2] [--only a,b]
    python -m docs.johnson_recipes.study gatys  [--style starry_night.jpg]
    python -m docs.johnson_recipes.study score   # only the checkpoints' scores (cached)
    python -m docs.johnson_recipes.study report
    python -m docs.johnson_recipes.study zoo    [--only starry_night,...]

``train`` trains every recipe below on one style (The Starry Night) for the same budget of
training time (``python -m train --max-minutes``), checkpointing every few minutes, into
runs/recipe_study/<name>/ (ignored by git; an interrupted run resumes). ``--jobs 2`` runs two
single-threaded trainings at once, the fastest use of a 2-core CPU.

``gatys`` runs the reference: Gatys with the same loss as the judge (content relu2_2,
style relu1_2..relu4_3 of VGG16, the library's default weights), 100 L-BFGS iterations at
one scale from the photo, on every held-out photo at 512 px. Cached in runs/recipe_study/.

``report`` scores every checkpoint of every run with :class:`nst.judge.Judge` on the
held-out photos at 512 px (the painting at 512 px too) and writes docs/johnson_recipes/
{curves.png, results.md, results.csv, final.jpg}.

``zoo`` scores the bundled zoo styles against Gatys-100 of their own paintings and writes
docs/zoo_training/quality.md (runs ``gatys`` for each painting first when it is not cached).

Every number is printed with the machine it ran on.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from docs.common import (
    CONTENT,
    PHOTOS,
    ROOT,
    STYLES,
    TRAIN,
    VGG16,
    labelled_grid,
    require_vgg16,
)
from nst.gatys import GatysConfig, gatys
from nst.hardware import summary
from nst.images import load_image, to_pil, to_tensor
from nst.johnson import load_transformer
from nst.judge import CONTENT_LAYERS, STYLE_LAYERS, Judge, Score, judge_network

RUNS = ROOT / "runs" / "recipe_study"
OUT = Path(__file__).resolve().parent
EVAL_SIZE = 512
GATYS_ITERATIONS = 100


@dataclass(frozen=True)
class Recipe:
    name: str  # run folder
    label: str  # legend and table
    crop: int = 128
    style_size: int = 256
    style_weight: float = 3.0
    width: int = 16
    lr: float = 1e-3
    warm_start: bool = True  # from the bundled style of the same painting
    checkpoint_every: int = 50
    folder: str = ""  # the run folder under runs/ when it is not runs/recipe_study/<name>
    trained_here: bool = True  # False: trained by scripts/train_default_styles.sh

    @property
    def run_dir(self) -> Path:
        return RUNS.parent / self.folder if self.folder else RUNS / self.name


RECIPES = [
    Recipe("old", "old CPU recipe: 128 px crops, style 256 px, sw 3"),
    Recipe("style512", "style image 512 px", style_size=512),
    Recipe("style512_sw10", "style 512 px, sw 10", style_size=512, style_weight=10.0),
    Recipe(
        "style512_crop192",
        "style 512 px, 192 px crops",
        crop=192,
        style_size=512,
        checkpoint_every=25,
    ),
    Recipe("style512_scratch", "style 512 px, from scratch", style_size=512, warm_start=False),
    Recipe("style512_lr3e-3", "style 512 px, lr 3e-3", style_size=512, lr=3e-3),
    # The final recipe, as scripts/train_default_styles.sh trains the shipped styles.
    Recipe(
        "final",
        "final: style 512 px, sw 10, lr 1e-3 -> 1e-4",
        style_size=512,
        style_weight=10.0,
        folder="starry_night",
        trained_here=False,
    ),
]


def train(recipe: Recipe, args: argparse.Namespace) -> None:
    """One recipe in its own single-threaded process, for ``args.minutes`` of training."""
    run = recipe.run_dir
    command = [
        sys.executable, "-m", "train",
        "--style", str(args.style), "--data", str(TRAIN), "--out", str(run),
        "--vgg-weights", str(VGG16), "--iterations", "1000000",
        "--max-minutes", str(args.minutes),
        "--image-size", str(recipe.crop), "--batch-size", "4",
        "--style-size", str(recipe.style_size), "--width", str(recipe.width),
        "--style-weight", str(recipe.style_weight), "--lr", str(recipe.lr),
        "--checkpoint-every", str(recipe.checkpoint_every), "--keep-checkpoints", "1000",
        "--preview-every", "1000000", "--progress", "no", "--export", "no",
    ]  # fmt: skip
    if recipe.warm_start:
        command += ["--init-from", str(ROOT / "zoo/models" / args.style.stem)]
    if (run / "run.json").is_file():
        command.append("--resume")
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    run.parent.mkdir(parents=True, exist_ok=True)
    print(f"{recipe.name}: training for {args.minutes:g} min", flush=True)
    with run.with_suffix(".log").open("a") as log:
        subprocess.run(command, cwd=ROOT, check=True, env=env, stdout=log, stderr=log)
    print(f"{recipe.name}: done", flush=True)


def photos() -> dict[str, torch.Tensor]:
    return {n: to_tensor(load_image(CONTENT / n, long_side=EVAL_SIZE)) for n in PHOTOS}


def gatys_reference(style: Path, judge: Judge, shots: dict[str, torch.Tensor]) -> dict:
    """Gatys-100 on the judge's own loss, per photo; cached as JSON with its images."""
    cache = RUNS / f"gatys{GATYS_ITERATIONS}_{style.stem}_{EVAL_SIZE}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    config = GatysConfig(
        size=EVAL_SIZE,
        iterations=GATYS_ITERATIONS,
        scales=1,
        content_layers=CONTENT_LAYERS,
        style_layers=STYLE_LAYERS,
        vgg_weights=str(VGG16),
        report_every=GATYS_ITERATIONS,
    )
    result: dict = {"machine": summary("cpu"), "photos": {}}
    for name, photo in shots.items():
        t0 = time.perf_counter()
        image = gatys(photo, [load_image(style)], config, device="cpu")
        seconds = time.perf_counter() - t0
        out = to_tensor(image)
        path = RUNS / "gatys" / style.stem / f"{Path(name).stem}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        score = judge.score(out, photo)
        as_photo = judge.score(photo, photo)
        result["photos"][name] = {
            "content": score.content,
            "style": score.style,
            "photo_style": as_photo.style,
            "seconds": seconds,
            "image": path.name,
        }
        print(f"gatys-{GATYS_ITERATIONS} {style.stem} {name}: {score} in {seconds:.0f} s")
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(result, indent=2))
    return result


def score_net(
    net: torch.nn.Module, judge: Judge, shots: dict[str, torch.Tensor]
) -> tuple[Score, dict[str, torch.Tensor]]:
    """Mean judge score of a network over the photos, and its pictures."""
    net.eval()
    outs, content, style = {}, 0.0, 0.0
    with torch.inference_mode():
        for name, photo in shots.items():
            out = net(photo).clamp(0, 1)
            s = judge.score(out, photo)
            content += s.content / len(shots)
            style += s.style / len(shots)
            outs[name] = out
    return Score(content, style), outs


def checkpoints(run: Path) -> list[tuple[int, float, Path]]:
    """(step, training minutes, folder) of every checkpoint, oldest first."""
    found = []
    for folder in sorted((run / "checkpoints").glob("step_*")):
        state_file = folder / "state.json"
        if state_file.is_file():
            state = json.loads(state_file.read_text())
            found.append((int(state["step"]), float(state["train_seconds"]) / 60, folder))
    return found


def mean_reference(ref: dict) -> Score:
    rows = ref["photos"].values()
    return Score(
        sum(r["content"] for r in rows) / len(rows), sum(r["style"] for r in rows) / len(rows)
    )


def score_runs(args: argparse.Namespace, judge: Judge, shots: dict[str, torch.Tensor]):
    """Every checkpoint's mean score, cached in runs/recipe_study/scores_*.json; and the
    last checkpoint's pictures per recipe."""
    cache_file = RUNS / f"scores_{args.style.stem}_{EVAL_SIZE}.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    rows, finals = [], {}
    recipes = [r for r in RECIPES if r.run_dir.is_dir()]
    for recipe in recipes:
        start = [(0, 0.0, args.start_from / args.style.stem)] if recipe.warm_start else []
        found = start + checkpoints(recipe.run_dir)
        for index, (step, minutes, folder) in enumerate(found):
            key = f"{recipe.name}/{step}"
            last = index == len(found) - 1
            if key in cache and not (last and args.command == "report"):
                content, style = cache[key]
            else:
                score, outs = score_net(load_transformer(folder), judge, shots)
                content, style = cache[key] = [score.content, score.style]
                if last:
                    finals[recipe.name] = outs
                cache_file.write_text(json.dumps(cache, indent=1))
            rows.append((recipe.name, step, minutes, content, style))
            print(f"{recipe.name:>18} step {step:5d} {minutes:6.1f} min  {content:.3f} {style:.4f}")
    return recipes, rows, finals


def report(args: argparse.Namespace) -> None:
    device = "cpu"
    judge = Judge(judge_network(str(VGG16), device), args.style, EVAL_SIZE)
    shots = photos()
    recipes, rows, finals = score_runs(args, judge, shots)
    if args.command == "score":
        return
    gatys_ref = mean_reference(gatys_reference(args.style, judge, shots))
    photo_style = sum(judge.score(p, p).style for p in shots.values()) / len(shots)
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "results.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["recipe", "step", "train_minutes", "content", "style"])
        writer.writerows([[r[0], r[1], f"{r[2]:.2f}", f"{r[3]:.4f}", f"{r[4]:.4f}"] for r in rows])
    plot_curves(rows, recipes, gatys_ref, photo_style, OUT / "curves.png")
    final_grid(recipes, finals, shots, OUT / "final.jpg", args.style)
    write_table(rows, recipes, gatys_ref, photo_style, args, OUT / "results.md")


def plot_curves(rows, recipes, gatys_ref: Score, photo_style: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_s, ax_c) = plt.subplots(1, 2, figsize=(12, 4.6))
    for recipe in recipes:
        mine = [r for r in rows if r[0] == recipe.name]
        ax_s.plot([r[2] for r in mine], [r[4] for r in mine], marker=".", label=recipe.label)
        ax_c.plot([r[2] for r in mine], [r[3] for r in mine], marker=".", label=recipe.label)
    for ax, ref, what in ((ax_s, gatys_ref.style, "style"), (ax_c, gatys_ref.content, "content")):
        ax.axhline(ref, color="black", linestyle="--", label=f"Gatys-{GATYS_ITERATIONS}")
        ax.set_xlabel("training time, CPU-minutes (1 thread)")
        ax.set_ylabel(f"{what} error (judge, {EVAL_SIZE} px, mean of {len(PHOTOS)} photos)")
    ax_s.axhline(photo_style, color="grey", linestyle=":", label="the photo itself")
    ax_s.axhline(2.5 * gatys_ref.style, color="red", linestyle=":", label="target: 2.5x Gatys")
    ax_c.axhline(1.2 * gatys_ref.content, color="red", linestyle=":", label="target: 1.2x Gatys")
    ax_s.set_yscale("log")
    ax_s.legend(fontsize=7)
    ax_c.legend(fontsize=7)
    fig.suptitle("Johnson recipes on The Starry Night: quality against training time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def final_grid(recipes, finals, shots, path: Path, style: Path, cell: int = 220) -> None:
    """Rows: the photos, Gatys-100, then each recipe's last checkpoint; a column per photo."""
    gatys_dir = RUNS / "gatys" / style.stem
    rows = [("photo", [to_pil(p) for p in shots.values()])]
    rows.append(
        (
            f"Gatys-{GATYS_ITERATIONS}",
            [Image.open(gatys_dir / f"{Path(n).stem}.png") for n in shots],
        )
    )
    rows += [(r.name, [to_pil(finals[r.name][n]) for n in shots]) for r in recipes]
    labelled_grid(rows, path, cell, label_width=130, quality=80)


def write_table(rows, recipes, gatys_ref: Score, photo_style: float, args, path: Path) -> None:
    here = {r.name for r in recipes if r.trained_here}
    study_minutes = max((r[2] for r in rows if r[0] in here), default=0.0)
    lines = [
        f"Style {args.style.name}; the study's recipes trained {study_minutes:.0f} CPU-minutes "
        "each (1 thread, `python -m train --max-minutes`), the final one as long as its row "
        "says; width 16, batch 4, the "
        "warm-started ones from the bundled net (500 steps at 128 px, style 256 px, sw 3); "
        "judged on "
        f"{len(PHOTOS)} held-out photos ({', '.join(PHOTOS)}) at {EVAL_SIZE} px by "
        "`nst.judge` (content relu2_2; style relu1_2..relu4_3; normalised). "
        f"Gatys-{GATYS_ITERATIONS}: the same loss, content 1 / style 10, one scale, L-BFGS, "
        f"from the photo. The photo itself has style error {photo_style:.3f}. Machine: "
        f"{summary('cpu')}.",
        "",
        "| recipe | steps | CPU-min | content | style | content / Gatys | style / Gatys |",
        "|---|---|---|---|---|---|---|",
        f"| Gatys-{GATYS_ITERATIONS} | - | - | {gatys_ref.content:.3f} | {gatys_ref.style:.4f} "
        "| 1 | 1 |",
    ]
    for recipe in recipes:
        mine = [r for r in rows if r[0] == recipe.name]
        if not mine:
            continue
        _, step, minutes, content, style = mine[-1]
        lines.append(
            f"| {recipe.label} | {step} | {minutes:.1f} | {content:.3f} | {style:.4f} | "
            f"{content / gatys_ref.content:.2f} | {style / gatys_ref.style:.2f} |"
        )
    path.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


#: Mean Gatys-100 scores per bundled painting, kept in the repo (see its "about").
ZOO_REFERENCE = ROOT / "docs" / "zoo_training" / "gatys_reference.json"


def zoo_reference(
    style_id: str, painting: Path, judge: Judge, shots: dict[str, torch.Tensor]
) -> Score:
    """Gatys-100's mean score for a bundled painting: this machine's cache, else the
    means kept in docs/zoo_training/gatys_reference.json, else run now (about 16 CPU-minutes)."""
    cache = RUNS / f"gatys{GATYS_ITERATIONS}_{painting.stem}_{EVAL_SIZE}.json"
    if not cache.is_file() and ZOO_REFERENCE.is_file():
        kept = json.loads(ZOO_REFERENCE.read_text())
        if style_id in kept["styles"] and kept["photos"] == list(PHOTOS):
            return Score(kept["styles"][style_id]["content"], kept["styles"][style_id]["style"])
    return mean_reference(gatys_reference(painting, judge, shots))


def zoo_table(args: argparse.Namespace) -> None:
    """Each bundled style against Gatys-100 of its own painting (and, with ``--compare``,
    the previous version of each style from that folder)."""
    import zoo

    net = judge_network(str(VGG16), "cpu")
    shots = photos()
    wanted = set(args.only.split(",")) if args.only else None
    lines = [
        f"{len(PHOTOS)} held-out photos ({', '.join(PHOTOS)}) at {EVAL_SIZE} px, judged by "
        f"`nst.judge`; Gatys-{GATYS_ITERATIONS} on the same loss (content 1, style 10), one "
        f"scale, from the photo. Machine: {summary('cpu')}.",
        "",
        "| style | steps in all | this version's training | content | style | content / Gatys "
        "| style / Gatys | style / the photo's | before: content, style |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in zoo.list_styles():
        if not entry.is_bundled or (wanted and entry.id not in wanted):
            continue
        painting = STYLES / f"{entry.id}.jpg"  # the file it was trained on
        if not painting.is_file():
            painting = entry.preview_path
        judge = Judge(net, painting, EVAL_SIZE)
        ref = zoo_reference(entry.id, painting, judge, shots)
        score, _ = score_net(zoo.load(entry.id, progress=False), judge, shots)
        photo_style = sum(judge.score(p, p).style for p in shots.values()) / len(shots)
        before = "-"
        if args.compare and (args.compare / entry.id).is_dir():
            old, _ = score_net(load_transformer(args.compare / entry.id), judge, shots)
            before = f"{old.content:.3f}, {old.style:.4f}"
        training = entry.training
        minutes = float(training.get("train_seconds") or 0) / 60
        lines.append(
            f"| {entry.id} | {training.get('trained_steps', '?')} | "
            f"{training.get('steps', '?')} steps, {minutes:.0f} CPU-min | {score.content:.3f} | "
            f"{score.style:.4f} | {score.content / ref.content:.2f} | "
            f"{score.style / ref.style:.2f} | {score.style / photo_style:.2f} | {before} |"
        )
        print(lines[-1], flush=True)
    (ROOT / "docs" / "zoo_training" / "quality.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["train", "gatys", "score", "report", "zoo"])
    parser.add_argument("--minutes", type=float, default=12.0, help="training time per recipe")
    parser.add_argument("--jobs", type=int, default=2, help="trainings at once")
    parser.add_argument("--only", help="comma-separated recipe names (train) or style ids (zoo)")
    parser.add_argument("--style", type=Path, default=STYLES / "starry_night.jpg")
    parser.add_argument(
        "--compare", type=Path, help="zoo: a folder of the previous <id>/ nets to score too"
    )
    parser.add_argument(
        "--start-from",
        type=Path,
        default=ROOT / "zoo" / "models",
        help="report: where the warm starts' <id>/ nets are (the zoo as it was when the runs "
        "began; a copy once the zoo has been retrained)",
    )
    args = parser.parse_args()
    require_vgg16()
    print(f"machine: {summary('cpu')}; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    if args.command == "train":
        chosen = [
            r
            for r in RECIPES
            if r.trained_here and (not args.only or r.name in args.only.split(","))
        ]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(lambda r: train(r, args), chosen))
    elif args.command == "gatys":
        judge = Judge(judge_network(str(VGG16)), args.style, EVAL_SIZE)
        print(mean_reference(gatys_reference(args.style, judge, photos())))
    elif args.command in ("score", "report"):
        report(args)
    else:
        zoo_table(args)


if __name__ == "__main__":
    main()
