"""Johnson vs Gatys on the same photo and style: wall time at 256, 512 and 1024 px.

    python -m docs.johnson_vs_gatys.study [--sizes 256 512 1024] [--model starry_night]
        [--gatys-cap 120] [--write docs/johnson_vs_gatys/results.md]

Johnson: ``nst.johnson.stylize`` with a trained network (a zoo id or a model folder),
median of ``--repeats`` runs after a warm-up. Gatys: ``nst.gatys.gatys_steps`` with the
library's default settings (``nst.gatys.DEFAULT_SCHEDULE``; L-BFGS) and the
real VGG16, the loss network loaded once beforehand. On a slow CPU a full Gatys run at
1024 px takes an hour, so each Gatys run stops after ``--gatys-cap`` seconds and the rest
is estimated from the measured seconds per iteration (a convolution network's cost is
proportional to the pixels, so a later stage's rate is the current one scaled by its pixel
count); such rows are marked "est." with the iterations actually run. ``--gatys-cap 0``
runs everything (use it on a GPU).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from docs.common import CONTENT, STYLES, VGG16
from nst.gatys import GatysConfig, gatys_steps, stage_budgets, stage_sizes
from nst.hardware import summary
from nst.images import load_image
from nst.johnson import stylize
from nst.vgg import load_loss_network


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def johnson_seconds(model: torch.nn.Module, photo, size: int, device: str, repeats: int) -> float:
    stylize(model, photo, size=size, device=device)  # warm-up (allocations, kernels)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        stylize(model, photo, size=size, device=device)
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gatys_seconds(
    photo, style, config: GatysConfig, net, device: str, cap: float
) -> tuple[float, int, bool]:
    """(seconds, iterations actually run, estimated?) for one default Gatys run."""
    ratio = min(photo.size) / max(photo.size)
    sizes = stage_sizes(config.size, ratio, config.scales)
    budgets = stage_budgets(config.iterations, sizes)
    # (seconds, iteration) of each report in the current stage; its first report carries
    # the stage's set-up (targets, first kernels), so the rate is taken after it.
    reports: list[tuple[float, int]] = []
    stage, last = 0, None
    start = time.perf_counter()
    for progress in gatys_steps(photo, [style], config, device=device, loss_net=net):
        sync(device)
        now = time.perf_counter() - start
        if progress.stage != stage:
            stage, reports = progress.stage, []
        reports.append((now, progress.iteration))
        last = progress
        if cap and now > cap and len(reports) >= 3 and not progress.done:
            break
    elapsed = time.perf_counter() - start
    assert last is not None
    if last.done:
        return elapsed, last.iteration, False
    # Estimate the rest from the current stage's measured rate, scaled by pixel count.
    (t0, i0), (t1, i1) = reports[1], reports[-1]
    rate = (t1 - t0) / (i1 - i0)
    remaining = (sum(budgets[: stage + 1]) - last.iteration) * rate
    for later in range(stage + 1, len(sizes)):
        remaining += budgets[later] * rate * (sizes[later] / sizes[stage]) ** 2
    return elapsed + remaining, last.iteration, True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--model", default="starry_night", help="zoo id or model folder")
    parser.add_argument("--photo", type=Path, default=CONTENT / "tubingen.jpg")
    parser.add_argument("--style", type=Path, default=STYLES / "starry_night.jpg")
    parser.add_argument("--weights", type=Path, default=VGG16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--gatys-cap", type=float, default=None,
                        help="seconds per Gatys run before estimating (default 120 on CPU, "
                        "0 = no cap on CUDA)")  # fmt: skip
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--write", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args()
    cap = args.gatys_cap if args.gatys_cap is not None else (0 if args.device == "cuda" else 120)

    import zoo

    machine = summary(args.device)
    print(f"machine: {machine}")
    model = zoo.load(args.model, device=args.device, progress=False)
    photo, style = load_image(args.photo), load_image(args.style)
    config = GatysConfig(vgg_weights=str(args.weights), report_every=5)
    layers = list(dict.fromkeys([*config.content_layers, *config.style_layers]))
    net = load_loss_network(layers, weights=str(args.weights), device=args.device)

    rows = [
        f"| long side | Johnson | Gatys (default: {config.iterations} L-BFGS it, "
        f"{config.scales} scale{'s' if config.scales > 1 else ''}) | speed-up |",
        "|---|---|---|---|",
    ]
    for size in args.sizes:
        johnson = johnson_seconds(model, photo, size, args.device, args.repeats)
        cfg = replace(config, size=size)
        gatys, ran, estimated = gatys_seconds(photo, style, cfg, net, args.device, cap)
        note = f" (est.; {ran} of {cfg.iterations} it run)" if estimated else ""
        row = f"| {size} px | {johnson:.3f} s | {gatys:.1f} s{note} | {gatys / johnson:,.0f}x |"
        rows.append(row)
        print(row, flush=True)
    text = (
        f"Photo {args.photo.name}, style {args.style.name}, Johnson model '{args.model}'; "
        f"{machine}\n\n" + "\n".join(rows) + "\n"
    )
    print(text)
    if args.write:
        args.write.write_text(text)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
