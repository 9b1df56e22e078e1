"""Gatys in bf16 against fp32: seconds per iteration, and the loss reached, judged in fp32.

    python -m docs.gatys_precision.study [--sizes 256 512] [--pairs 4] [--rounds 2]
        [--iterations 100] [--threads 2] [--quick]

Per held-out photo/painting pair (docs.common.ZOO_PAIRS) and size, the same
single-scale L-BFGS run from the photo (the library's default schedule and layers) once
with ``precision="fp32"`` and once with ``precision="bf16"`` (the loss network in bf16
autocast; Grams, losses, image and L-BFGS in fp32), alternating, ``--rounds`` times.

Every image is re-scored after the run with the same fp32 objective (nst.losses through
the library's own stage loss), so bf16's own rounding does not flatter it. Printed per
pair: each precision's median T_N (seconds to the N-th evaluation), the ratio, each one's
fp32 loss after N (L_N), and the seconds bf16 needs to come within ``--tolerance`` (1 %) of
fp32's L_N (checked every ``--every`` evaluations).

bf16 only pays on CPUs with bf16 arithmetic (AVX-512 BF16, AMX), which is where
``precision="auto"`` picks it; elsewhere it is emulated and slower, and this prints so.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from docs.common import CONTENT, STYLES, VGG16, loss_network
from docs.common import ZOO_PAIRS as PAIRS
from nst.gatys import (
    Evaluation,
    GatysConfig,
    _stage_loss,
    gatys_steps,
    uses_bf16,
)
from nst.hardware import native_bf16_cpu, summary
from nst.images import load_image, to_tensor
from nst.vgg import LossNetwork

PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Run:
    seconds: list[float]  # at every evaluation
    losses: list[float]  # the fp32 objective of the image at every checked evaluation
    checked: list[int]  # 1-based evaluations whose image was re-scored


def fp32_objective(photo: Path, painting: Path, config: GatysConfig, net: LossNetwork):
    """The run's own objective, in fp32: image tensor -> total loss."""
    content = to_tensor(load_image(photo, long_side=config.size), torch.device("cpu"))
    loss = _stage_loss(
        net, [load_image(painting)], config.size, config, config.loss_weights(), content.device
    )
    targets = loss.content_targets(content)

    def score(image: torch.Tensor) -> float:
        with torch.no_grad():
            return float(loss(image, targets)[0])

    return score


def run(
    photo: Path,
    painting: Path,
    config: GatysConfig,
    net: LossNetwork,
    every: int,
    score: Callable[[torch.Tensor], float],
) -> Run:
    seconds: list[float] = []
    images: dict[int, torch.Tensor] = {}

    def record(e: Evaluation) -> None:
        seconds.append(e.seconds)
        if e.iteration % every == 0 or e.iteration == 1:
            images[e.iteration] = e.image.clone()  # time spent here is off the clock

    steps = gatys_steps(photo, [painting], config, device="cpu", loss_net=net, on_evaluation=record)
    for _ in steps:
        pass
    checked = sorted(images)
    return Run(seconds, [score(images[k]) for k in checked], checked)


def first_reaching(r: Run, target: float) -> float | None:
    """Seconds to the first checked evaluation whose fp32 loss is at most ``target``."""
    at = next((k for k, v in zip(r.checked, r.losses, strict=True) if v <= target), None)
    return None if at is None else r.seconds[at - 1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="256 512")
    parser.add_argument("--pairs", type=int, default=len(PAIRS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=None, help="100")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--every", type=int, default=5, help="re-score every N evaluations")
    parser.add_argument(
        "--tolerance", type=float, default=0.01, help="'reaches' = within this of fp32's L_N"
    )
    parser.add_argument("--weights", type=Path, default=VGG16)
    parser.add_argument("--quick", action="store_true", help="one pair, 128 px, 10 iterations")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = args.sizes or ([128] if args.quick else [256, 512])
    n = args.iterations or (10 if args.quick else 100)
    pairs = PAIRS[:1] if args.quick else PAIRS[: args.pairs]
    print("machine:", summary("cpu"), f"| torch threads {torch.get_num_threads()}")
    native = native_bf16_cpu()
    print(f"bf16 arithmetic on this CPU: {'yes' if native else 'no (bf16 is emulated, slow)'}")
    auto = "bf16" if uses_bf16(GatysConfig(), torch.device("cpu")) else "fp32"
    print(f"precision='auto' runs: {auto}")
    base = GatysConfig(iterations=n, scales=1, vgg_weights=str(args.weights), report_every=1)
    net = loss_network(base, args.weights)
    started = time.perf_counter()
    for size in sizes:
        print(f"\n{size} px, {n} L-BFGS iterations from the photo, {args.rounds} rounds")
        ratios = []
        for photo_name, style in pairs:
            photo = CONTENT / photo_name
            painting = STYLES / f"{style}.jpg"
            cfgs = {p: replace(base, size=size, precision=p) for p in PRECISIONS}
            # one fp32 objective for both precisions: the targets do not depend on it
            score = fp32_objective(photo, painting, cfgs["fp32"], net)
            for p in PRECISIONS:  # oneDNN builds kernels per shape and dtype on first use
                run(photo, painting, replace(cfgs[p], iterations=3), net, n, score)
            runs: dict[str, list[Run]] = {p: [] for p in PRECISIONS}
            for _ in range(args.rounds):
                for p in PRECISIONS:
                    runs[p].append(run(photo, painting, cfgs[p], net, args.every, score))
            t = {p: statistics.median(r.seconds[n - 1] for r in runs[p]) for p in PRECISIONS}
            loss = {p: statistics.median(r.losses[-1] for r in runs[p]) for p in PRECISIONS}
            target = loss["fp32"] * (1 + args.tolerance)
            reach = [first_reaching(r, target) for r in runs["bf16"]]
            reached = [s for s in reach if s is not None]
            ratio = t["bf16"] / t["fp32"]
            ratios.append(ratio)
            within = f"fp32's L{n} + {args.tolerance:.0%}"
            to_l = (
                f"bf16 reaches {within} in {statistics.median(reached):.1f} s "
                f"({statistics.median(reached) / t['fp32']:.2f}x fp32's T{n})"
                if len(reached) == len(reach)
                else f"bf16 reaches {within} in {len(reached)} of {len(reach)} rounds"
            )
            print(
                f"  {photo.stem} x {style}: T{n} fp32 {t['fp32']:.1f} s "
                f"(min {min(r.seconds[n - 1] for r in runs['fp32']):.1f}), bf16 {t['bf16']:.1f} s "
                f"(min {min(r.seconds[n - 1] for r in runs['bf16']):.1f}): {ratio:.2f}x; "
                f"L{n} in fp32: fp32 {loss['fp32']:.4f}, bf16 {loss['bf16']:.4f} "
                f"({loss['bf16'] / loss['fp32']:.3f}x); {to_l}",
                flush=True,
            )
        print(
            f"{size} px: bf16 T{n} / fp32 T{n}: min {min(ratios):.2f}, "
            f"median {statistics.median(ratios):.2f}, max {max(ratios):.2f}"
        )
    print(f"\ntook {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
