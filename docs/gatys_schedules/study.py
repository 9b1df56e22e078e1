"""Gatys schedules: judged loss against wall seconds, the data behind the default schedule.

    python -m docs.gatys_schedules.study [--size 256] [--objective default|judge]
        [--weights PATH] [--out docs/gatys_schedules] [--quick]

Four held-out photo/painting pairs (the photos are not among the training photos, the
paintings are four different ones). Each candidate schedule below runs on each pair, and
every loss evaluation is recorded through ``gatys_steps(on_evaluation=...)``: its wall
seconds (since the run started: targets and the start image included, the recording
itself excluded) and the picture, which one fixed judge scores at the full size
(:mod:`nst.judge`: VGG16 content relu2_2, style relu1_2..relu4_3, normalised; coarse
stages' pictures are upsampled to the full size first). One long run per schedule gives
every shorter iteration count as a prefix, so "single scale, 50 iterations" is the first
50 evaluations of the 200-iteration run.

The judged loss is ``content + 10 x style`` of the judge (10: the library's default style
weight), one number per picture. ``--objective`` says what the runs minimise: the library's
default layers (``default``: content relu4_2, style relu1_1..relu5_1, what a user gets) or
the judge's own (``judge``, as docs/johnson_recipes/study.py's Gatys-100 reference).

Writes ``curves.png`` (judged loss against seconds, one panel per pair), ``results.md`` (the
tables) and ``results.csv`` (every judged evaluation) into ``--out``; prints the machine.
About 12-15 minutes at 256 px on a quiet 2-core CPU (0.37 s per full-size iteration);
``--quick`` is a one-pair smoke run at 128 px with a tenth of the iterations (~1 minute),
written to runs/ instead. The default schedule lives in one place:
``nst.gatys.DEFAULT_SCHEDULE``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from docs.common import CONTENT, ROOT, STYLES, VGG16, loss_network, objective_layers
from nst.gatys import (
    DEFAULT_SCHEDULE,
    Evaluation,
    GatysConfig,
    gatys_steps,
    stage_budgets,
    stage_sizes,
)
from nst.hardware import summary
from nst.images import load_image, to_tensor
from nst.judge import Judge, judge_network
from nst.vgg import LossNetwork

#: Held-out photos (not among the training photos), each with its own painting.
PAIRS = (
    ("tubingen.jpg", "starry_night.jpg"),
    ("golden_gate.jpg", "woman_with_hat.jpg"),
    ("dog.jpg", "udnie.jpg"),
    ("kodim08_town_houses.png", "water_lilies.jpg"),
)
QUICK_PAIRS = (("kodim08_town_houses.png", "water_lilies.jpg"),)
#: Combines the judge's two errors into one number: the library's default style weight.
JUDGED_STYLE_WEIGHT = 10.0
#: Every full-size evaluation up to this one is judged, then every JUDGE_EVERY-th.
JUDGE_ALL_UP_TO = 10
JUDGE_EVERY = 5
#: Iteration counts of the single-scale reference shown in the table.
PREFIXES = (10, 25, 50, 100, 150, 200)


@dataclass(frozen=True)
class Candidate:
    """One schedule; the run is long at full size so shorter budgets are its prefixes."""

    name: str
    final_iterations: int  # at the full size
    scales: int = 1
    coarse_iterations: int | None = None  # per coarse stage
    history_size: int = 100

    def scaled(self, factor: float) -> Candidate:
        """The same schedule with fewer iterations (the --quick smoke run)."""
        coarse = self.coarse_iterations
        return replace(
            self,
            final_iterations=max(5, round(self.final_iterations * factor)),
            coarse_iterations=None if coarse is None else max(2, round(coarse * factor)),
        )

    def config(self, base: GatysConfig) -> GatysConfig:
        coarse = self.coarse_iterations or 0
        return replace(
            base,
            iterations=self.final_iterations + coarse * (self.scales - 1),
            scales=self.scales,
            coarse_iterations=self.coarse_iterations if self.scales > 1 else None,
            history_size=self.history_size,
        )


CANDIDATES = (
    Candidate("1 scale, history 100", 200),  # the reference: every prefix is a budget
    Candidate("1 scale, history 20", 80, history_size=20),
    Candidate("1 scale, history 10", 80, history_size=10),
    Candidate("2 scales, 25 coarse", 80, scales=2, coarse_iterations=25),
    Candidate("2 scales, 100 coarse", 80, scales=2, coarse_iterations=100),
    Candidate("3 scales, 25 + 25 coarse", 80, scales=3, coarse_iterations=25),
    Candidate("3 scales, 100 + 100 coarse", 80, scales=3, coarse_iterations=100),
)


@dataclass(frozen=True)
class Point:
    """One judged evaluation of a run."""

    iteration: int  # evaluations so far, all stages
    stage: int
    seconds: float  # wall seconds since the run started, judging excluded
    work: float  # full-size evaluations so far (a half-size one counts a quarter)
    objective: float  # the run's own total loss, at its stage's size
    content: float  # the judge's, at the full size
    style: float

    @property
    def judged(self) -> float:
        return self.content + JUDGED_STYLE_WEIGHT * self.style


class Recorder:
    """An ``on_evaluation`` hook that judges the pictures a run passes through."""

    def __init__(self, judge: Judge, photo: torch.Tensor, budgets: Sequence[int]) -> None:
        self.judge, self.photo = judge, photo
        ends = [sum(budgets[: i + 1]) for i in range(len(budgets))]
        # the first and last evaluation of every stage: where the curve jumps
        self.always = {*ends, *(end + 1 for end in ends[:-1]), 1}
        self.full_pixels = photo.shape[-2] * photo.shape[-1]
        self.work = 0.0
        self.points: list[Point] = []

    def __call__(self, e: Evaluation) -> None:
        self.work += e.size[0] * e.size[1] / self.full_pixels
        full = e.size == (self.photo.shape[-1], self.photo.shape[-2])
        if not self._judged(e, full):
            return
        picture = e.image.clamp(0, 1)
        if not full:  # a coarse stage: the picture a user would get if it stopped here
            picture = F.interpolate(
                picture, size=self.photo.shape[-2:], mode="bicubic", align_corners=False
            ).clamp_(0, 1)
        score = self.judge.score(picture, self.photo)
        self.points.append(
            Point(
                e.iteration,
                e.stage,
                e.seconds,
                self.work,
                e.losses["total"],
                score.content,
                score.style,
            )
        )

    def _judged(self, e: Evaluation, full: bool) -> bool:
        if e.iteration in self.always:
            return True
        if not full:
            return False
        return e.iteration <= JUDGE_ALL_UP_TO or e.iteration % JUDGE_EVERY == 0


def stage_plan(config: GatysConfig, photo: torch.Tensor) -> tuple[list[int], list[int]]:
    """The stage sizes and budgets ``gatys_steps`` will use for this photo."""
    h, w = photo.shape[-2:]
    sizes = stage_sizes(config.size, min(h, w) / max(h, w), config.scales)
    return sizes, stage_budgets(config.iterations, sizes, config.coarse_iterations)


def record(
    photo_path: Path,
    painting_path: Path,
    config: GatysConfig,
    net: LossNetwork,
    judge: Judge,
    photo: torch.Tensor,
) -> list[Point]:
    """Judged points of one run (``photo``: the photo at the full size, as the run sees it)."""
    _sizes, budgets = stage_plan(config, photo)
    recorder = Recorder(judge, photo, budgets)
    for _ in gatys_steps(
        photo_path, [painting_path], config, device="cpu", loss_net=net, on_evaluation=recorder
    ):
        pass
    return recorder.points


def warm_up(net: LossNetwork, photo: Path, painting: Path, config: GatysConfig) -> None:
    """oneDNN builds its kernels on first use per shape: pay that before any timing."""
    for size in (config.size // 2, config.size):
        warm = replace(config, size=size, iterations=3, scales=1, coarse_iterations=None)
        for _ in gatys_steps(photo, [painting], warm, device="cpu", loss_net=net):
            pass


# ----------------------------------------------------------------------------- analysis


def first_reaching(points: Sequence[Point], target: float) -> Point | None:
    return next((p for p in points if p.judged <= target), None)


def at_iteration(points: Sequence[Point], iteration: int) -> Point | None:
    return next((p for p in points if p.iteration == iteration), None)


def best_within(points: Sequence[Point], seconds: float) -> float | None:
    values = [p.judged for p in points if p.seconds <= seconds]
    return min(values) if values else None


def _median(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.2f}" if values else "-"


def prefix_table(runs: dict, pairs: Sequence[str], reference: str) -> list[str]:
    """The single-scale reference at each iteration count: seconds and judged loss."""
    rows = [
        "| iterations | seconds (median over pairs) | judged loss / loss at the last "
        "(median) | loss drop per second vs the previous row (median, % of the last) |",
        "|---|---|---|---|",
    ]
    last_its = max(p.iteration for pair in pairs for p in runs[pair][reference])
    previous: dict[str, Point] = {}
    for n in (*(n for n in PREFIXES if n < last_its), last_its):
        secs, ratios, rates = [], [], []
        for pair in pairs:
            pts = runs[pair][reference]
            end, here = pts[-1], at_iteration(pts, n)
            if here is None:
                continue
            secs.append(here.seconds)
            ratios.append(here.judged / end.judged)
            if pair in previous and here.seconds > previous[pair].seconds:
                drop = (previous[pair].judged - here.judged) / end.judged * 100
                rates.append(drop / (here.seconds - previous[pair].seconds))
            previous[pair] = here
        rows.append(f"| {n} | {_median(secs)} | {_median(ratios)} | {_median(rates)} |")
    return rows


def candidate_table(
    runs: dict, pairs: Sequence[str], candidates: Sequence[Candidate], targets: Sequence[int]
) -> list[str]:
    """Per candidate: time (and work) to reach the reference's loss after N iterations,
    relative to the reference's own, and its loss when the reference's time is up."""
    reference = candidates[0].name
    head = "| schedule |"
    for n in targets:
        head += f" time to L{n} / reference's (median, max) | work to L{n} |"
    head += f" best loss within T{targets[-1]} / L{targets[-1]} (median) | pairs run |"
    rows = [head, "|---" * (2 + 2 * len(targets) + 1) + "|"]
    for c in candidates:
        row = f"| {c.name} |"
        ran = [pair for pair in pairs if c.name in runs[pair]]
        for n in targets:
            ratios, work = [], []
            for pair in ran:
                ref = runs[pair][reference]
                target = at_iteration(ref, n)
                if target is None:
                    continue
                mine = first_reaching(runs[pair][c.name], target.judged)
                theirs = first_reaching(ref, target.judged)
                if mine is None or theirs is None:
                    ratios.append(float("inf"))
                    continue
                ratios.append(mine.seconds / theirs.seconds)
                work.append(mine.work)
            shown = f"{_median(ratios)}, {max(ratios):.2f}" if ratios else "-"
            row += f" {shown.replace('inf', 'not reached')} | {_median(work)} |"
        equal_time = []
        for pair in ran:
            ref_end = at_iteration(runs[pair][reference], targets[-1])
            best = best_within(runs[pair][c.name], ref_end.seconds) if ref_end else None
            if best is not None and ref_end is not None:
                equal_time.append(best / ref_end.judged)
        row += f" {_median(equal_time)} | {len(ran)} of {len(pairs)} |"
        rows.append(row)
    return rows


def plot(runs: dict, pairs: Sequence[str], candidates: Sequence[Candidate], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 2 if len(pairs) > 1 else 1
    rows = -(-len(pairs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.4 * rows), squeeze=False)
    for ax, pair in zip(axes.flat, pairs, strict=False):
        for c in candidates:
            pts = runs[pair].get(c.name)
            if pts:
                ax.plot([p.seconds for p in pts], [p.judged for p in pts], label=c.name, lw=1.2)
        ax.set_title(pair, fontsize=9)
        ax.set_xlabel("wall seconds")
        ax.set_ylabel(f"judged loss (content + {JUDGED_STYLE_WEIGHT:g} x style)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    for ax in list(axes.flat)[len(pairs) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_csv(runs: dict, path: Path) -> None:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(
            ["pair", "schedule", "iteration", "stage", "seconds", "work", "objective"]
            + ["judge_content", "judge_style", "judged"]
        )
        for pair, by_candidate in runs.items():
            for name, pts in by_candidate.items():
                for p in pts:
                    out.writerow(
                        [pair, name, p.iteration, p.stage, f"{p.seconds:.3f}", f"{p.work:.2f}"]
                        + [f"{v:.5f}" for v in (p.objective, p.content, p.style, p.judged)]
                    )


# ----------------------------------------------------------------------------- main


def run_pair(
    photo_name: str,
    painting_name: str,
    candidates: Sequence[Candidate],
    base: GatysConfig,
    net: LossNetwork,
    judge_net: LossNetwork,
) -> dict[str, list[Point]]:
    photo_path = CONTENT / photo_name
    painting_path = STYLES / painting_name
    photo = to_tensor(load_image(photo_path, long_side=base.size))
    judge = Judge(judge_net, painting_path, base.size)
    results: dict[str, list[Point]] = {}
    for c in candidates:
        config = c.config(base)
        sizes, budgets = stage_plan(config, photo)
        if len(sizes) < c.scales:  # the photo's short side leaves no room for the stage
            print(f"  {c.name}: skipped, only {len(sizes)} stage(s) fit at {base.size} px")
            continue
        points = record(photo_path, painting_path, config, net, judge, photo)
        results[c.name] = points
        end = points[-1]
        print(
            f"  {c.name}: stages {sizes} x {budgets} it; {end.iteration} it in "
            f"{end.seconds:.1f} s, judged {end.judged:.4f} (work {end.work:.0f})",
            flush=True,
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--size", type=int, default=None, help="long side (256; --quick 128)")
    parser.add_argument("--objective", choices=("default", "judge"), default="default")
    parser.add_argument("--weights", type=Path, default=VGG16)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="one pair, few iterations")
    args = parser.parse_args()
    size = args.size or (128 if args.quick else 256)
    out = args.out or (
        ROOT / "runs/gatys_schedules_quick" if args.quick else Path(__file__).resolve().parent
    )
    candidates = [c.scaled(0.1) for c in CANDIDATES] if args.quick else list(CANDIDATES)
    pairs = QUICK_PAIRS if args.quick else PAIRS
    machine = summary("cpu")
    print("machine:", machine)
    print(f"current default: {DEFAULT_SCHEDULE} (nst.gatys.DEFAULT_SCHEDULE)")
    started = time.perf_counter()
    layers = objective_layers(args.objective)
    base = GatysConfig(size=size, vgg_weights=str(args.weights), report_every=50, **layers)
    net = loss_network(base, args.weights)
    judge_net = judge_network(str(args.weights))
    warm_up(net, CONTENT / pairs[0][0], STYLES / pairs[0][1], base)
    runs: dict[str, dict[str, list[Point]]] = {}
    for photo_name, painting_name in pairs:
        label = f"{Path(photo_name).stem} x {Path(painting_name).stem}"
        print(f"{label} at {size} px", flush=True)
        runs[label] = run_pair(photo_name, painting_name, candidates, base, net, judge_net)
    minutes = (time.perf_counter() - started) / 60
    labels = list(runs)
    reference = candidates[0]
    targets = [n for n in (50, 100) if n < reference.final_iterations] or [
        reference.final_iterations // 2
    ]
    out.mkdir(parents=True, exist_ok=True)
    plot(runs, labels, candidates, out / "curves.png")
    write_csv(runs, out / "results.csv")
    text = report(args, size, machine, minutes, runs, labels, candidates, targets)
    (out / "results.md").write_text(text)
    print(text)
    print(f"wrote {out / 'curves.png'}, {out / 'results.md'}, {out / 'results.csv'}")


def report(args, size, machine, minutes, runs, labels, candidates, targets) -> str:
    reference = candidates[0].name
    lines = [
        "# Gatys schedules: judged loss against wall seconds",
        "",
        f"Made by `python -m docs.gatys_schedules.study --size {size} --objective "
        f"{args.objective}{' --quick' if args.quick else ''}` in {minutes:.1f} min on: "
        f"{machine}.",
        "",
        f"Objective minimised: {'the judge' if args.objective == 'judge' else 'the library'}"
        "'s layers. Judged loss: nst.judge (VGG16 content relu2_2, style relu1_2..relu4_3, "
        f"normalised) at {size} px, content + {JUDGED_STYLE_WEIGHT:g} x style. Seconds: wall "
        "time since the run started (targets and start image included, judging excluded). "
        "Work: full-size evaluations (a half-size one counts a quarter), free of machine noise.",
        "",
        f"Pairs: {', '.join(labels)}. Current default: `{DEFAULT_SCHEDULE}` "
        "(`nst.gatys.DEFAULT_SCHEDULE`).",
        "",
        "![judged loss against seconds](curves.png)",
        "",
        f"## Single scale, history 100: what each iteration count buys ({reference})",
        "",
        *prefix_table(runs, labels, reference),
        "",
        "## Schedules against the single-scale reference",
        "",
        "LN: the reference's judged loss after N iterations, per pair; TN: its time. "
        "A ratio below 1 reaches the same picture quality sooner.",
        "",
        *candidate_table(runs, labels, candidates, targets),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
