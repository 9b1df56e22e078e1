"""Training throughput (images/s) at 256 px, batch 4: the trainer against a plain fp32 loop.

    .venv/bin/python benchmarks/bench_train.py [--size 256] [--batch-size 4] [--steps 3]
        [--variants baseline,trainer,channels_last,bf16] [--threads N] [--device cuda]

``baseline`` is the straightforward loop of this recipe (as in pytorch/examples'
fast_neural_style): fp32, NCHW, and the whole loss network run on both the output and
the photos. ``trainer`` is ``train.loop.compute_loss`` with the settings ``python -m
train`` picks for the device (bf16 autocast + channels_last on CUDA, fp32 on CPU);
``channels_last`` and ``bf16`` force those on; ``compile`` adds ``torch.compile``
(``--compile yes``; its compile time is in the warm-up step, not in the timings).
Every variant runs the same network, loss network architecture, losses and optimiser,
in one process on one device. Weights of
the loss network do not change its speed, so a random VGG16 is used unless
``--vgg-weights`` is given. Timings exclude ``--warmup`` steps.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nst.hardware import environment  # noqa: E402
from nst.johnson import TransformerConfig, TransformerNet  # noqa: E402
from nst.losses import LossWeights, PerceptualLoss, gram_matrix  # noqa: E402
from nst.vgg import load_loss_network  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.loop import compute_loss, use_bf16, use_channels_last  # noqa: E402

CONTENT = ["relu2_2"]
STYLE = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]


def make_loss(device: torch.device, weights: str) -> PerceptualLoss:
    net = load_loss_network(CONTENT + STYLE, weights=weights, arch="vgg16", device=device)
    style = torch.rand(1, 3, 256, 256, device=device)
    with torch.no_grad():
        feats = net(style, STYLE)
        grams = {k: gram_matrix(v) for k, v in feats.items()}
    defaults = TrainConfig()
    lw = LossWeights(defaults.content_weight, defaults.style_weight, defaults.tv_weight)
    return PerceptualLoss(net, CONTENT, STYLE, grams, lw)


def baseline_step(model: torch.nn.Module, loss_fn: PerceptualLoss, x: torch.Tensor):
    """The plain loop: the whole loss network on the photos as well, fp32, NCHW."""
    y = model(x)
    with torch.no_grad():
        feats_x = loss_fn.net(x, loss_fn.layers)  # up to relu4_3, as the simple loop does
    targets = {k: feats_x[k] for k in loss_fn.content_layers}
    return loss_fn(y, targets)


def time_variant(
    name: str, device: torch.device, args: argparse.Namespace, loss_fn: PerceptualLoss
) -> list[float]:
    torch.manual_seed(0)
    model = TransformerNet(TransformerConfig(width=args.width)).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    config = TrainConfig(precision="auto", channels_last="auto")
    bf16 = {"baseline": False, "trainer": use_bf16(config, device), "bf16": True}.get(name, False)
    cl = name in ("channels_last", "compile") or (
        name == "trainer" and use_channels_last(config, device)
    )
    net = loss_fn.net
    net.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
    if cl:
        model = model.to(memory_format=torch.channels_last)
    if name == "compile":  # what --compile yes does: torch.compile the transformer
        model = torch.compile(model)
    step: Callable = (
        (lambda x: baseline_step(model, loss_fn, x))
        if name == "baseline"
        else (lambda x: compute_loss(model, loss_fn, x, bf16))
    )
    x = torch.rand(args.batch_size, 3, args.size, args.size, device=device)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(args.warmup + args.steps):
        _sync(device)
        t0 = time.perf_counter()
        loss, _ = step(x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    return times


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--variants", default="baseline,trainer,channels_last")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--vgg-weights", default="random")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    for key, value in environment(device).items():
        print(f"{key:>14}: {value}")
    print(
        f"{'workload':>14}: {args.size} px, batch {args.batch_size}, width {args.width}, "
        f"VGG16 to relu4_3, {args.steps} timed steps after {args.warmup} warm-up"
    )
    loss_fn = make_loss(device, args.vgg_weights)
    results: dict[str, float] = {}
    for name in args.variants.split(","):
        times = time_variant(name, device, args, loss_fn)
        per_batch = statistics.median(times)
        results[name] = args.batch_size / per_batch
        print(
            f"{name:>14}: {per_batch:7.3f} s/batch  {results[name]:7.2f} images/s  "
            f"(steps: {', '.join(f'{t:.2f}' for t in times)})",
            flush=True,
        )
    if "baseline" in results:
        for name, ips in results.items():
            if name != "baseline":
                print(f"{name:>14}: {ips / results['baseline']:.2f}x the baseline's images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
