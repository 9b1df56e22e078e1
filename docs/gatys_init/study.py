"""Where Gatys should start: from a trained Johnson net's output, and, for a painting with
no net, from the photo, the colour-matched photo or noise.

    python -m docs.gatys_init.study [--sizes 256 512] [--objective judge|default]
        [--iterations 100] [--uploaded-size 256] [--device cpu] [--write FILE.md] [--quick]

Pairs: the four zoo styles' own paintings, each with a held-out photo (not among the
training photos; docs.common.ZOO_PAIRS). Per pair and size:

1. plain: Gatys from the photo, one scale, ``--iterations`` (100) L-BFGS iterations: T100,
   the seconds to its 100th loss evaluation, and L100, the loss there.
2. johnson: the same optimisation started from the zoo net's output (``init="johnson"``);
   it stops at the first evaluation whose loss is at most L100. Its seconds include the
   Johnson forward pass (it runs inside ``gatys_steps``, after the clock starts).
   Goal: reach L100 in at most a third of T100. Also printed: the plain iteration whose
   loss the net's output already has (what the net is "worth" in Gatys iterations;
   Johnson et al. 2016 report 50-100 for theirs), both runs' loss after a third of
   the iterations, and the iteration from which the plain run stays ahead (the budget
   below which the net's start is the better one).

Then, at ``--uploaded-size``, the starts for a painting without a net: photo (= plain),
colour-matched photo (``init="color-matched"``) and white noise, each for ``--iterations``:
their loss after that many iterations and their time to L100.

The loss compared is the Gatys objective's own total (content + style_weight x style of
the normalised losses, nst.losses), the same function for every run of a pair; it is read
at every evaluation through ``gatys_steps(on_evaluation=...)``. With ``--objective judge``
(the default) the objective uses the judge's layers (VGG16 content relu2_2, style
relu1_2..relu4_3, as the Johnson nets were trained and as docs/johnson_recipes/study.py's
Gatys-100 runs), so it is also nst.judge's content + 10 x style; ``--objective default``
uses the library's default layers (relu4_2; relu1_1..relu5_1), what the app runs.

About 20 minutes on a quiet 2-core CPU with the defaults; ``--quick`` (one pair, 128 px,
20 iterations) about a minute.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from docs.common import CONTENT, STYLES, VGG16, loss_network, objective_layers
from docs.common import ZOO_PAIRS as PAIRS
from nst.gatys import PRECISIONS, Evaluation, GatysConfig, gatys_steps, uses_bf16
from nst.hardware import resolve_device, summary
from nst.johnson.model import TransformerNet
from nst.vgg import LossNetwork

UPLOADED_STARTS = ("content", "color-matched", "noise")


@dataclass(frozen=True)
class Curve:
    """(seconds, loss) at every evaluation of one run."""

    seconds: list[float]
    losses: list[float]

    def first_reaching(self, target: float) -> int | None:
        """1-based evaluation at which the loss first is at most ``target``."""
        return next((i + 1 for i, v in enumerate(self.losses) if v <= target), None)


def run_curve(
    photo: Path,
    painting: Path,
    config: GatysConfig,
    net: LossNetwork,
    device: str,
    stop_at: float | None = None,
) -> Curve:
    """One run's per-evaluation losses; it ends early once the loss is at most ``stop_at``."""
    curve = Curve([], [])

    def record(e: Evaluation) -> None:
        curve.seconds.append(e.seconds)
        curve.losses.append(e.losses["total"])

    def reached() -> bool:
        return stop_at is not None and bool(curve.losses) and curve.losses[-1] <= stop_at

    steps = gatys_steps(
        photo,
        [painting],
        config,
        device=device,
        loss_net=net,
        on_evaluation=record,
        should_stop=reached,
    )
    for _ in steps:
        pass
    return curve


def stays_ahead_from(plain: Sequence[float], other: Sequence[float]) -> int | None:
    """1-based iteration from which ``plain`` is below ``other`` until ``other`` ends."""
    n = min(len(plain), len(other))
    start = None
    for i in range(n):
        if plain[i] < other[i]:
            start = i + 1 if start is None else start
        else:
            start = None
    return start


def a_third(iterations: int) -> int:
    """The iteration at which the goal (L100 in a third of T100) is checked."""
    return max(1, iterations // 3)


@dataclass(frozen=True)
class PairResult:
    label: str
    t100: float
    l100: float
    start_ratio: float  # the Johnson start's loss / L100
    johnson_iterations: int | None
    johnson_seconds: float | None
    # The plain run's first iteration at least as good as the net's output: what the net
    # is "worth" in Gatys iterations (Johnson et al. report 50-100 for theirs).
    worth_iterations: int | None
    plain_at_third: float  # plain loss / L100 after a third of the iterations
    johnson_at_third: float | None  # the same from the net's output; None if it stopped first
    # The iteration from which the plain run stays below the one from the net's output, to
    # the end of that run; None when it never does (the net's start stays ahead).
    plain_ahead_from: int | None

    @property
    def ratio(self) -> float | None:
        return None if self.johnson_seconds is None else self.johnson_seconds / self.t100


def johnson_vs_plain(
    photo: Path,
    painting: Path,
    model: TransformerNet,
    base: GatysConfig,
    net: LossNetwork,
    device: str,
) -> tuple[PairResult, Curve]:
    n = base.iterations
    plain = run_curve(photo, painting, base, net, device)
    t100, l100 = plain.seconds[n - 1], plain.losses[n - 1]
    johnson_cfg = replace(base, init="johnson", init_model=model)
    johnson = run_curve(photo, painting, johnson_cfg, net, device, stop_at=l100)
    at = johnson.first_reaching(l100)
    third = a_third(n)
    result = PairResult(
        label=f"{photo.stem} x {painting.stem}",
        t100=t100,
        l100=l100,
        start_ratio=johnson.losses[0] / l100,
        johnson_iterations=at,
        johnson_seconds=None if at is None else johnson.seconds[at - 1],
        worth_iterations=plain.first_reaching(johnson.losses[0]),
        plain_at_third=plain.losses[third - 1] / l100,
        johnson_at_third=(
            johnson.losses[third - 1] / l100 if len(johnson.losses) >= third else None
        ),
        plain_ahead_from=stays_ahead_from(plain.losses, johnson.losses),
    )
    return result, plain


def print_pair(r: PairResult, n: int) -> None:
    if r.johnson_seconds is None:
        reached = f"not reached in {n} it"
    else:
        reached = (
            f"{r.johnson_seconds:6.1f} s ({r.johnson_iterations} it), ratio {r.ratio:.3f}"
            f"{' ok' if r.ratio is not None and r.ratio <= 1 / 3 else ' OVER 1/3'}"
        )
    third = a_third(n)
    worth = "-" if r.worth_iterations is None else str(r.worth_iterations)
    johnson_third = "-" if r.johnson_at_third is None else f"{r.johnson_at_third:.3f}"
    print(
        f"  {r.label:38s} T{n} {r.t100:6.1f} s, L{n} {r.l100:.4f}; johnson start at "
        f"{r.start_ratio:.2f} x L{n} (= plain iteration {worth}); to L{n}: {reached}; "
        f"at iteration {third}: plain {r.plain_at_third:.3f}, johnson {johnson_third} x L{n}; "
        f"plain ahead from iteration {'-' if r.plain_ahead_from is None else r.plain_ahead_from}",
        flush=True,
    )


def summarise(results: Sequence[PairResult], size: int, n: int) -> str:
    ratios = [r.ratio if r.ratio is not None else float("inf") for r in results]
    line = (
        f"{size} px: time to L{n} with johnson init / T{n}: min {min(ratios):.3f}, "
        f"median {statistics.median(ratios):.3f}, max {max(ratios):.3f} over {len(ratios)} "
        f"pairs (goal: at most 0.333)"
    )
    return line.replace("inf", "not reached")


def uploaded_starts(
    photo: Path,
    painting: Path,
    base: GatysConfig,
    net: LossNetwork,
    device: str,
    plain: Curve,
) -> dict[str, tuple[float, float | None]]:
    """Per start: (its loss after N / L_N, its seconds to L_N or None)."""
    n = base.iterations
    l_n = plain.losses[n - 1]
    out: dict[str, tuple[float, float | None]] = {}
    for start in UPLOADED_STARTS:
        curve = plain if start == "content" else run_curve(
            photo, painting, replace(base, init=start), net, device
        )  # fmt: skip
        at = curve.first_reaching(l_n)
        out[start] = (curve.losses[n - 1] / l_n, None if at is None else curve.seconds[at - 1])
    return out


def print_uploaded(table: dict[str, dict[str, tuple[float, float | None]]], n: int) -> str:
    lines = [f"| pair | {' | '.join(UPLOADED_STARTS)} |", "|---" * (1 + len(UPLOADED_STARTS)) + "|"]
    for label, starts in table.items():
        cells = []
        for start in UPLOADED_STARTS:
            ratio, secs = starts[start]
            cells.append(f"{ratio:.3f} x L{n}, " + (f"{secs:.1f} s" if secs else "not reached"))
        lines.append(f"| {label} | {' | '.join(cells)} |")
    medians = {
        s: statistics.median(starts[s][0] for starts in table.values()) for s in UPLOADED_STARTS
    }
    best = min(medians, key=medians.get)
    lines.append(
        f"| median loss after {n} / L{n} | "
        + " | ".join(f"{medians[s]:.3f}" for s in UPLOADED_STARTS)
        + " |"
    )
    lines.append("")
    lines.append(f"best start for a painting without a net: {best} (lowest median loss after {n})")
    return "\n".join(lines)


def warm_up(photo: Path, painting: Path, base: GatysConfig, net, model, device: str) -> None:
    """oneDNN builds kernels per shape on first use: pay that before timing anything."""
    short = replace(base, iterations=3)
    run_curve(photo, painting, short, net, device)
    run_curve(photo, painting, replace(short, init="johnson", init_model=model), net, device)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="256 512")
    parser.add_argument("--iterations", type=int, default=None, help="plain budget (100)")
    parser.add_argument("--objective", choices=("judge", "default"), default="judge")
    parser.add_argument("--uploaded-size", type=int, default=None, help="0 skips (256)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, auto")
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="auto", help="the loss network's (auto)"
    )
    parser.add_argument("--weights", type=Path, default=VGG16)
    parser.add_argument("--write", type=Path, help="also write the results to this .md file")
    parser.add_argument("--quick", action="store_true", help="one pair, 128 px, 20 iterations")
    parser.add_argument("--pairs", type=int, default=len(PAIRS), help="the first N pairs")
    args = parser.parse_args()
    sizes = args.sizes or ([128] if args.quick else [256, 512])
    n = args.iterations or (20 if args.quick else 100)
    uploaded_size = args.uploaded_size if args.uploaded_size is not None else sizes[0]
    pairs = PAIRS[:1] if args.quick else PAIRS[: args.pairs]
    device = str(resolve_device(None if args.device == "auto" else args.device))

    import zoo  # the study resolves style ids; the library only takes a net

    machine = summary(device)
    print("machine:", machine)
    print(f"objective: {args.objective} layers; loss compared: the Gatys objective's total")
    started = time.perf_counter()
    layers = objective_layers(args.objective)
    base = GatysConfig(
        iterations=n,
        scales=1,
        vgg_weights=str(args.weights),
        report_every=1,
        precision=args.precision,
        **layers,
    )
    print(f"precision: {'bf16' if uses_bf16(base, torch.device(device)) else 'fp32'} (every run)")
    net = loss_network(base, args.weights).to(device)
    models = {style: zoo.load(style, device=device, progress=False) for _, style in pairs}
    report = [f"machine: {machine}", f"objective: {args.objective} layers", ""]
    photos = {p: CONTENT / p for p, _ in pairs}
    paintings = {s: STYLES / f"{s}.jpg" for _, s in pairs}
    for size in sizes:
        cfg = replace(base, size=size)
        first_photo, first_style = pairs[0]
        warm_up(photos[first_photo], paintings[first_style], cfg, net, models[first_style], device)
        print(f"\n{size} px, plain = {n} L-BFGS iterations from the photo, one scale")
        results, uploaded = [], {}
        for photo_name, style in pairs:
            photo, painting = photos[photo_name], paintings[style]
            result, plain = johnson_vs_plain(photo, painting, models[style], cfg, net, device)
            print_pair(result, n)
            results.append(result)
            if size == uploaded_size:
                uploaded[result.label] = uploaded_starts(photo, painting, cfg, net, device, plain)
        line = summarise(results, size, n)
        print(line)
        report.append(line)
        if uploaded:
            text = print_uploaded(uploaded, n)
            print(f"\nstarts for an uploaded painting at {size} px (loss after {n}, time to L{n}):")
            print(text)
            report += ["", f"uploaded-painting starts at {size} px:", text]
    print(f"\ntook {(time.perf_counter() - started) / 60:.1f} min")
    if args.write:
        args.write.write_text("\n".join(report) + "\n")
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
