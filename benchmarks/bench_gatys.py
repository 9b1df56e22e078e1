"""Gatys speed: seconds per iteration, and loss against wall time, defaults vs plain L-BFGS.

    python benchmarks/bench_gatys.py [--weights PATH] [--sizes 256 512] [--curve-size 512]
        [--conv-modes direct auto winograd] [--layers] [--skip-plain]

1. Seconds per L-BFGS iteration (one forward + backward of VGG16 up to relu5_1 with the
   Gatys losses, and the L-BFGS update) at each size: this project (``gatys_steps``, one
   scale, the default layers) against a neural-style-pt-like baseline written below
   (torchvision's VGG16 layers loaded from the same weights file, cut after the last loss
   layer and frozen, loss modules after the chosen ReLUs, autograd Gram matrices,
   ``torch.optim.LBFGS``), in alternating rounds of ``--round-iterations`` iterations so
   load from other processes hits both alike; min and median per iteration and the ratio.
2. Loss against seconds: the default settings (coarse-to-fine) against a plain
   single-scale L-BFGS run of the same loss at the same size, both from the photo. It
   prints when the defaults first reach the plain run's 100-iteration loss, and the
   ratio of the times. Curves go to benchmarks/results/gatys_curve_<size>.csv.

Between 1 and 2, "1b" times the same iteration for each ``--conv-modes`` of
``load_loss_network(conv=...)`` (direct = oneDNN, winograd = Winograd everywhere, auto =
Winograd where it wins; the tile, F(4,3) or F(6,3), is picked by map size), interleaved
round by round so that load from other processes hits every mode alike. ``--layers`` adds
a per-layer micro-benchmark (direct vs F(4,3) vs F(6,3), conv + ReLU forward + input
backward, each VGG16 layer at its size for the largest ``--sizes``): the measurement
behind nst.vgg.AUTO_MIN_IN_CHANNELS and nst.kernels.winograd.MIN_TILES_FOR_F6. A 2048^3
matmul rate is printed at the start and the end: this shared VM's speed drifts, and every
timing with it.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from benchmarks.common import CONTENT, STYLES, VGG16, machine  # noqa: E402
from nst.gatys import CONTENT_LAYERS, STYLE_LAYERS, GatysConfig, gatys_steps  # noqa: E402
from nst.hardware import matmul_gflops  # noqa: E402
from nst.images import load_image, to_tensor  # noqa: E402
from nst.kernels.winograd import TILES, Conv3x3, tile_for  # noqa: E402
from nst.losses import LossWeights, PerceptualLoss, blended_gram_targets  # noqa: E402
from nst.vgg import layer_names, layer_uses_winograd, load_loss_network  # noqa: E402

LAYERS = [*CONTENT_LAYERS, *STYLE_LAYERS]


class _Normalize(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class _LossModule(torch.nn.Module):
    """neural-style-pt's ContentLoss / StyleLoss: passes its input on; in "capture" mode it
    keeps the target, in "loss" mode it sets ``self.loss``."""

    def __init__(self, style: bool, strength: float) -> None:
        super().__init__()
        self.style, self.strength, self.mode = style, strength, "none"
        self.target = torch.empty(0)
        self.loss = torch.zeros(())

    @staticmethod
    def gram(x: torch.Tensor) -> torch.Tensor:
        flat = x.view(x.shape[1], -1)  # autograd's own backward of the product
        return torch.mm(flat, flat.t()).div(x.nelement())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value = self.gram(x) if self.style else x
        if self.mode == "capture":
            self.target = value.detach().clone()
        elif self.mode == "loss":
            self.loss = F.mse_loss(value, self.target) * self.strength
        return x


class NeuralStylePtLike:
    """A Gatys iteration as neural-style-pt (the PyTorch port of jcjohnson/neural-style)
    runs it, on torchvision's VGG16 layers with the same weights file: the network cut
    after the last loss layer, its parameters frozen, a loss module after each chosen ReLU
    (MSE of the features; MSE of Gram matrices F F^T / numel with autograd's backward),
    and ``torch.optim.LBFGS`` on the pixels with neural-style-pt's settings (lr 1, history
    100, no line search, tolerances off). Its weights (content 5, style 100) are
    neural-style-pt's; they change the numbers, not the work."""

    def __init__(self, weights: str, content: torch.Tensor, style: torch.Tensor) -> None:
        features = torchvision.models.vgg16(weights=None).features
        state = load_file(weights)
        features.load_state_dict(
            {k.split(".", 1)[1]: v.float() for k, v in state.items() if k.startswith("features.")}
        )
        index = {n: i for i, n in enumerate(layer_names("vgg16"))}
        content_at, style_at = {index[n] for n in CONTENT_LAYERS}, {index[n] for n in STYLE_LAYERS}
        modules: list[torch.nn.Module] = [_Normalize()]
        self.content_losses, self.style_losses = [], []
        for i, layer in enumerate(features[: max(content_at | style_at) + 1]):
            modules.append(layer)
            if i in content_at:
                self.content_losses.append(_LossModule(style=False, strength=5.0))
                modules.append(self.content_losses[-1])
            if i in style_at:
                self.style_losses.append(_LossModule(style=True, strength=100.0))
                modules.append(self.style_losses[-1])
        self.net = torch.nn.Sequential(*modules).eval()
        for param in self.net.parameters():
            param.requires_grad = False
        self._capture(self.content_losses, content)
        self._capture(self.style_losses, style)
        for m in self.content_losses + self.style_losses:
            m.mode = "loss"
        self.image = content.clone(memory_format=torch.contiguous_format).requires_grad_(True)
        self.optimizer = torch.optim.LBFGS(
            [self.image], lr=1.0, history_size=100, tolerance_grad=-1, tolerance_change=-1
        )

    def _capture(self, modules: list[_LossModule], image: torch.Tensor) -> None:
        for m in modules:
            m.mode = "capture"
        with torch.no_grad():
            self.net(image)
        for m in modules:
            m.mode = "none"

    def iterations(self, n: int) -> None:
        """``n`` L-BFGS iterations: one loss evaluation and one update each."""

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad()
            self.net(self.image)
            loss = sum(m.loss for m in self.content_losses + self.style_losses)
            loss.backward()
            return loss

        for group in self.optimizer.param_groups:
            group["max_iter"] = group["max_eval"] = n
        self.optimizer.step(closure)


def iteration(net, content, style):
    """A function that runs one Gatys iteration (forward + backward to the image)."""
    grams = blended_gram_targets(net, [style], STYLE_LAYERS)
    loss = PerceptualLoss(net, CONTENT_LAYERS, STYLE_LAYERS, grams, LossWeights())
    targets = loss.content_targets(content)
    image = content.clone().requires_grad_(True)

    def run() -> None:
        total, _ = loss(image, targets)
        total.backward()
        image.grad = None

    return run


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def interleaved(runs: dict[str, object], repeats: int) -> dict[str, list[float]]:
    """Seconds of each run, one of each per round, so load changes hit them all alike."""
    for run in runs.values():
        run()  # warm-up: oneDNN kernels, transformed Winograd weights
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(timed(run))
    return times


def conv_modes(args, nets: dict[str, torch.nn.Module]) -> None:
    """1b: seconds per iteration for each conv mode, interleaved in this process."""
    print("\n1b. conv modes, interleaved (min / median s per iteration)")
    for size in args.sizes:
        content = to_tensor(load_image(args.content, size))
        style = to_tensor(load_image(args.style, size))
        runs = {mode: iteration(net, content, style) for mode, net in nets.items()}
        times = interleaved(runs, args.repeats)
        base = min(times[args.conv_modes[0]])
        parts = [
            f"{mode} {min(t):.2f} / {sorted(t)[len(t) // 2]:.2f} ({base / min(t):.2f}x)"
            for mode, t in times.items()
        ]
        print(f"  {size:4d} px: " + ", ".join(parts))


def layer_benchmark(args, net: torch.nn.Module) -> None:
    """Direct vs Winograd F(4,3) vs F(6,3) per layer (conv + ReLU, forward + input
    backward) at the largest size: the measurement behind nst.vgg's auto choices
    (docs/winograd/README.md)."""
    size = max(args.sizes)
    content = to_tensor(load_image(args.content, size))
    h, w = content.shape[-2:]
    print(f"\n1c. per layer at {size} px ({w}x{h} image), conv + ReLU forward + input backward")
    print("    min ms over interleaved rounds (speed-up over direct)")
    for name, module in zip(net.names, net.features, strict=True):
        if name.startswith("pool"):
            h, w = h // 2, w // 2
        if not isinstance(module, Conv3x3):
            continue
        c, k = module.in_channels, module.out_channels
        x = torch.randn(1, c, h, w).contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        variants = {"direct": (False, 4), **{f"F({t},3)": (True, t) for t in TILES}}

        def run(winograd: bool, tile: int, x=x, module=module, c=c, k=k):
            conv = Conv3x3(c, k, winograd, tile).requires_grad_(False)
            conv.load_state_dict(module.state_dict())  # its own cache of transformed weights

            def go() -> None:
                y = conv(x, relu=True)
                y.backward(torch.ones_like(y))
                x.grad = None

            return go

        runs = {label: run(*variant) for label, variant in variants.items()}
        times = interleaved(runs, args.repeats)
        d = min(times["direct"])
        parts = ", ".join(f"{n} {min(t) * 1e3:6.1f} ({d / min(t):.2f}x)" for n, t in times.items())
        auto = f"F({tile_for(h, w)},3)" if layer_uses_winograd("auto", c) else "direct"
        print(f"  {name:8s} {c:3d}->{k:3d} {h:3d}x{w:3d}: {parts}; auto: {auto}")


def curve(content: Path, style: Path, config: GatysConfig, stop_below: float | None):
    """(seconds, iteration, stage size, total loss, cost) rows; stops early below a loss.

    cost: work done so far in full-size iterations (a stage at half the long side costs a
    quarter per iteration), a measure that machine noise does not touch.
    """
    rows = []
    state = {"stop": False}
    cost, last_iteration = 0.0, 0
    for p in gatys_steps(content, [style], config, should_stop=lambda: state["stop"]):
        cost += (p.iteration - last_iteration) * (max(p.size) / config.size) ** 2
        last_iteration = p.iteration
        total = p.losses.get("total", float("nan"))
        rows.append((p.seconds, p.iteration, max(p.size), total, round(cost, 2)))
        full = max(p.size) == config.size
        if stop_below is not None and full and total <= stop_below:
            state["stop"] = True
    return rows


def add_inputs(parser: argparse.ArgumentParser) -> None:
    """--weights, --content and --style, defaulting to the data folder's files."""
    parser.add_argument("--weights", default=str(VGG16))
    parser.add_argument("--content", default=str(CONTENT / "tubingen.jpg"))
    parser.add_argument("--style", default=str(STYLES / "starry_night.jpg"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    add_inputs(parser)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per comparison")
    parser.add_argument(
        "--round-iterations", type=int, default=3, help="L-BFGS iterations per round in 1"
    )
    parser.add_argument("--curve-size", type=int, default=512, help="0 skips the curve")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--conv-modes",
        nargs="*",
        default=["direct", "auto", "winograd"],
        help="conv modes compared in 1b (none: skip 1b); the first is the 1.00x baseline",
    )
    parser.add_argument("--layers", action="store_true", help="per-layer micro-benchmark")
    parser.add_argument(
        "--skip-plain", action="store_true", help="skip 1 (this project vs neural-style-pt-like)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print("machine:", machine())
    print(f"calibration at start: fp32 matmul {matmul_gflops():.0f} GFLOP/s")

    def net(conv: str | None = None) -> torch.nn.Module:
        loss_net = load_loss_network(LAYERS, weights=args.weights, conv=conv)
        return loss_net.to(memory_format=torch.channels_last)

    ours = net()
    if not args.skip_plain:
        plain_vs_ours(args, ours)
    if args.conv_modes:
        conv_modes(args, {mode: net(mode) for mode in args.conv_modes})
    if args.layers:
        layer_benchmark(args, net("direct"))

    if args.curve_size > 0:
        loss_curves(args)
    print(f"\ncalibration at end: fp32 matmul {matmul_gflops():.0f} GFLOP/s")


def plain_vs_ours(args, ours: torch.nn.Module) -> None:
    """1: this project's L-BFGS iteration against the neural-style-pt-like one, interleaved."""
    k = args.round_iterations
    print(
        f"\n1. seconds per L-BFGS iteration (VGG16 to relu5_1, forward + backward + update; "
        f"conv={ours.spec.conv}), {args.repeats} alternating rounds of {k} iterations"
    )
    for size in args.sizes:
        content = to_tensor(load_image(args.content, size))
        style = to_tensor(load_image(args.style, size))
        config = GatysConfig(size=size, scales=1, iterations=k * (args.repeats + 1), report_every=k)
        project = gatys_steps(content, [style], config, device="cpu", loss_net=ours)
        baseline = NeuralStylePtLike(args.weights, content, style)
        runs = {
            "this project": partial(next, project),
            "neural-style-pt-like": partial(baseline.iterations, k),
        }
        # the first round of each (oneDNN kernels, targets, Winograd weights) is left out
        times = interleaved(runs, args.repeats)
        ours_t = [t / k for t in times["this project"]]
        base_t = [t / k for t in times["neural-style-pt-like"]]
        print(
            f"  {size:4d} px: this project {min(ours_t):.2f} s/it min, "
            f"{statistics.median(ours_t):.2f} median; neural-style-pt-like {min(base_t):.2f} "
            f"min, {statistics.median(base_t):.2f} median; ratio {min(base_t) / min(ours_t):.2f}x "
            f"(min), {statistics.median(base_t) / statistics.median(ours_t):.2f}x (median)"
        )


def loss_curves(args) -> None:
    size = args.curve_size
    print(f"\n2. loss against seconds at {size} px")
    defaults = GatysConfig(size=size, vgg_weights=args.weights, report_every=5)
    plain_cfg = replace(defaults, scales=1, iterations=100)
    plain_rows = curve(Path(args.content), Path(args.style), plain_cfg, None)
    target, t_plain = plain_rows[-1][3], plain_rows[-1][0]
    print(f"  plain single-scale L-BFGS: 100 iterations in {t_plain:.1f} s, loss {target:.4f}")
    ours_rows = curve(Path(args.content), Path(args.style), defaults, target)
    reached = next((r for r in ours_rows if r[2] == size and r[3] <= target), None)
    if reached:
        print(
            f"  defaults ({defaults.scales} scales): reach {target:.4f} after {reached[0]:.1f} s "
            f"({reached[1]} iterations, all stages) = {reached[0] / t_plain:.2f} of the plain "
            f"time; work: {reached[4]:.1f} full-size iterations (plain: 100)"
        )
    else:
        print(f"  defaults did not reach {target:.4f} within {defaults.iterations} iterations")
    # Each stage's loss is measured at its own size; the jump at the start of a stage is
    # what upsampling the previous stage's result costs at the new size.
    for stage_size in sorted({r[2] for r in ours_rows}):
        stage = [r for r in ours_rows if r[2] == stage_size]
        print(
            f"  defaults, {stage_size} px stage: loss {stage[0][3]:.3f} at its first report "
            f"(iteration {stage[0][1]}) -> {stage[-1][3]:.3f} at iteration {stage[-1][1]}"
        )
    out = ROOT / "benchmarks/results"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"gatys_curve_{size}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["run", "seconds", "iteration", "stage_long_side", "total_loss", "full_size_work"]
        )
        writer.writerows(("plain", *r) for r in plain_rows)
        writer.writerows(("defaults", *r) for r in ours_rows)
    print(f"  curve: {out / f'gatys_curve_{size}.csv'}")


if __name__ == "__main__":
    main()
