"""Training throughput (images/s): ``python -m train``'s step against a straightforward one.

    .venv/bin/python benchmarks/bench_train.py [--size 256] [--batch-size 4] [--width 32]
        [--rounds 5] [--steps 3] [--variants baseline,trainer] [--threads N] [--device cuda]

``baseline`` is the training step of pytorch/examples' fast_neural_style, written out here
(not imported): its TransformerNet (reflection-pad convs, instance norm, nearest-upsample
convs), torchvision's VGG16 cut at relu4_3 run on the stylised batch *and* on the photos,
Gram matrices by ``bmm``, MSE losses, Adam, fp32, NCHW. ``trainer`` is
``train.loop.compute_loss`` with what ``python -m train`` picks for the device (on a CPU:
bf16 autocast where the CPU has bf16 arithmetic, else fp32; channels_last where the CPU
has AMX and the step runs bf16; the VGG on the photos only up to relu2_2, Winograd for the
VGG's wide layers in fp32, the one-GEMM Gram backward). ``channels_last`` and ``bf16``
force those on; ``compile`` is ``python -m train --compile yes --channels-last on`` (the
trainer's precision, channels_last, the transformer through ``torch.compile``: what
``scripts/train_default_styles.sh`` runs); any other name (``fp32``) is the trainer's step
in fp32.

Both run the same architecture at the same width, batch and size, in one process, in
alternation: ``--rounds`` rounds, each timing ``--steps`` steps of every variant after one
warm-up step, so that a machine whose speed drifts slows every variant alike. Prints each
round's images/s, the min/median, the ratio to the baseline per round, and the machine.
The loss network's weights do not change its speed: a random VGG16 unless --vgg-weights.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nst.hardware import matmul_gflops, summary  # noqa: E402
from nst.johnson import TransformerConfig, TransformerNet  # noqa: E402
from nst.losses import LossWeights, PerceptualLoss, gram_matrix  # noqa: E402
from nst.vgg import load_loss_network  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.loop import compute_loss, use_bf16, use_channels_last  # noqa: E402

CONTENT = ["relu2_2"]
STYLE = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]


# ------------------------------------------------- the pytorch/examples-style baseline


class _Conv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, upsample: int = 1):
        super().__init__()
        self.upsample = upsample
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(cin, cout, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample > 1:
            x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv(self.pad(x))


class _Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1, self.in1 = (
            _Conv(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )
        self.conv2, self.in2 = (
            _Conv(channels, channels, 3),
            nn.InstanceNorm2d(channels, affine=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.in2(self.conv2(F.relu(self.in1(self.conv1(x)))))


class ExamplesTransformerNet(nn.Module):
    """The image transformation network as pytorch/examples writes it (width ``w``)."""

    def __init__(self, w: int = 32, blocks: int = 5):
        super().__init__()
        self.down = nn.ModuleList(
            [_Conv(3, w, 9), _Conv(w, 2 * w, 3, 2), _Conv(2 * w, 4 * w, 3, 2)]
        )
        self.down_norms = nn.ModuleList(
            [nn.InstanceNorm2d(c, affine=True) for c in (w, 2 * w, 4 * w)]
        )
        self.res = nn.Sequential(*(_Residual(4 * w) for _ in range(blocks)))
        self.up = nn.ModuleList(
            [_Conv(4 * w, 2 * w, 3, upsample=2), _Conv(2 * w, w, 3, upsample=2)]
        )
        self.up_norms = nn.ModuleList([nn.InstanceNorm2d(c, affine=True) for c in (2 * w, w)])
        self.out = _Conv(w, 3, 9)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.down, self.down_norms, strict=True):
            x = F.relu(norm(conv(x)))
        x = self.res(x)
        for conv, norm in zip(self.up, self.up_norms, strict=True):
            x = F.relu(norm(conv(x)))
        return self.out(x)


class ExamplesVgg16(nn.Module):
    """torchvision's VGG16 features to relu4_3, returning the four style layers."""

    def __init__(self, weights: str):
        super().__init__()
        import torchvision

        features = torchvision.models.vgg16(weights=None).features[:23]
        if weights != "random":
            from safetensors.torch import load_file

            state = {k[len("features.") :]: v.float() for k, v in load_file(weights).items()}
            features.load_state_dict({k: v for k, v in state.items() if int(k.split(".")[0]) < 23})
        self.slices = [features[:4], features[4:9], features[9:16], features[16:23]]
        self.features = features
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for part in self.slices:
            x = part(x)
            out.append(x)
        return out  # relu1_2, relu2_2, relu3_3, relu4_3


def _gram(y: torch.Tensor) -> torch.Tensor:
    b, ch, h, w = y.size()
    features = y.view(b, ch, w * h)
    return features.bmm(features.transpose(1, 2)) / (ch * h * w)


_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _normalize(batch: torch.Tensor) -> torch.Tensor:
    return (batch - _MEAN.to(batch.device)) / _STD.to(batch.device)


def baseline_step(args: argparse.Namespace, device: torch.device) -> Callable[[], None]:
    """One pytorch/examples training step, as a closure over its own model and VGG."""
    torch.manual_seed(0)
    model = ExamplesTransformerNet(args.width).to(device).train()
    vgg = ExamplesVgg16(args.vgg_weights).to(device)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    style = torch.rand(1, 3, 256, 256, device=device)
    with torch.no_grad():
        gram_style = [_gram(f) for f in vgg(_normalize(style))]
    x = torch.rand(args.batch_size, 3, args.size, args.size, device=device)

    def step() -> None:
        optimizer.zero_grad()
        y = _normalize(model(x))
        features_y, features_x = vgg(y), vgg(_normalize(x))
        content = 1e5 * F.mse_loss(features_y[1], features_x[1])
        style_loss = sum(
            F.mse_loss(_gram(fy), gs.expand(len(x), -1, -1))
            for fy, gs in zip(features_y, gram_style, strict=True)
        )
        (content + 1e10 * style_loss).backward()
        optimizer.step()

    return step


# ------------------------------------------------------------------- the trainer


def trainer_step(name: str, args: argparse.Namespace, device: torch.device) -> Callable[[], None]:
    """``python -m train``'s step (``compute_loss``), with the variant's options forced."""
    torch.manual_seed(0)
    net = load_loss_network(CONTENT + STYLE, weights=args.vgg_weights, arch="vgg16", device=device)
    style = torch.rand(1, 3, 256, 256, device=device)
    with torch.no_grad():
        grams = {k: gram_matrix(v) for k, v in net(style, STYLE).items()}
    defaults = TrainConfig()
    weights = LossWeights(defaults.content_weight, defaults.style_weight, defaults.tv_weight)
    loss_fn = PerceptualLoss(net, CONTENT, STYLE, grams, weights)
    model: nn.Module = TransformerNet(TransformerConfig(width=args.width)).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    config = TrainConfig(precision="auto", channels_last="auto")
    bf16 = name == "bf16" or (name in ("trainer", "compile") and use_bf16(config, device))
    cl = name in ("channels_last", "compile") or (
        name == "trainer" and use_channels_last(config, device)
    )
    x = torch.rand(args.batch_size, 3, args.size, args.size, device=device)
    if cl:
        net.to(memory_format=torch.channels_last)
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if name == "compile":
        model = torch.compile(model)

    def step() -> None:
        loss, _ = compute_loss(model, loss_fn, x, bf16)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def step_gflop(step: Callable[[], None]) -> float:
    """One step's floating-point work as direct convolution would do it (GFLOP).

    Counted by torch's FlopCounterMode from the convolutions', matmuls' and their
    backward's shapes. The Winograd layers are counted by their own (smaller) batched
    GEMMs, so the trainer's count is measured with ``NST_CONV=direct`` by the caller.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / 1e9


def roofline(args: argparse.Namespace, device: torch.device, best: dict[str, float]) -> None:
    """What the machine's matmul peak allows: images/s if every FLOP ran at that rate.

    A goal above this bound needs fewer FLOPs (Winograd) across most of the step, not a
    faster schedule of the same work.
    """
    import os

    previous = os.environ.get("NST_CONV")
    os.environ["NST_CONV"] = "direct"
    try:
        work = {"baseline": step_gflop(baseline_step(args, device))}
        work["trainer"] = step_gflop(trainer_step("trainer", args, device))
    finally:
        if previous is None:
            os.environ.pop("NST_CONV", None)
        else:
            os.environ["NST_CONV"] = previous
    peak = matmul_gflops()
    print(f"\nroofline: fp32 matmul {peak:.0f} GFLOP/s on this machine now")
    peaks = {"baseline": peak, "trainer": peak}
    if use_bf16(TrainConfig(precision="auto"), device):  # its convs run bf16: its own peak
        peaks["trainer"] = matmul_gflops(torch.bfloat16)
        rate = peaks["trainer"]
        print(f"{'':>14}  the trainer runs bf16 autocast: bf16 matmul {rate:.0f} GFLOP/s")
    for name, gflop in work.items():
        bound = args.batch_size * peaks[name] / gflop
        line = f"{name:>14}: {gflop:.0f} GFLOP per step, at most {bound:.2f} images/s at that rate"
        if name in best:
            line += f" (measured best {best[name]:.2f}, {best[name] / bound:.0%} of it)"
        print(line)
    if "baseline" in best:
        need = 2.5 * best["baseline"] * work["trainer"] / args.batch_size
        print(
            f"{'':>14}  2.5x the baseline's best is {2.5 * best['baseline']:.2f} images/s: "
            f"{need:.0f} GFLOP/s of direct-convolution work, {need / peak:.2f}x the matmul rate"
        )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], None], steps: int, device: torch.device) -> float:
    """Seconds per step, median of ``steps`` (after the caller's warm-up)."""
    times = []
    for _ in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    parser.add_argument("--variants", default="baseline,trainer")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--vgg-weights", default="random")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    print(f"machine: {summary(device)}")
    print(
        f"workload: {args.size} px crops, batch {args.batch_size}, width {args.width}, "
        f"VGG16 to relu4_3; {args.rounds} rounds x {args.steps} timed steps per variant, "
        "alternating, each variant warmed up by one step first"
    )
    names = args.variants.split(",")
    steps = {}
    for name in names:
        steps[name] = (
            baseline_step(args, device) if name == "baseline" else trainer_step(name, args, device)
        )
        steps[name]()  # warm-up (and compilation, for "compile")
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.rounds):
        row = []
        for name in names:
            rates[name].append(args.batch_size / time_steps(steps[name], args.steps, device))
            row.append(f"{name} {rates[name][-1]:.2f}")
        ratio = (
            f"  trainer/baseline {rates['trainer'][-1] / rates['baseline'][-1]:.2f}x"
            if {"trainer", "baseline"} <= set(names)
            else ""
        )
        print(f"round {r + 1}: " + ", ".join(row) + " images/s" + ratio, flush=True)
    for name in names:
        values = rates[name]
        print(f"{name:>14}: min {min(values):.2f}, median {statistics.median(values):.2f} images/s")
    if "baseline" in names:
        for name in names:
            if name != "baseline":
                per_round = [a / b for a, b in zip(rates[name], rates["baseline"], strict=True)]
                print(
                    f"{name:>14}: {statistics.median(per_round):.2f}x the baseline's images/s "
                    f"(per round: {', '.join(f'{v:.2f}' for v in per_round)})"
                )
    if device.type == "cpu" and {"trainer", "baseline"} <= set(names):
        roofline(args, device, {name: max(rates[name]) for name in names})
    return 0


if __name__ == "__main__":
    sys.exit(main())
