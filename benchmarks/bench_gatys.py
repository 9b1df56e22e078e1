"""Gatys speed: seconds per iteration, and loss against wall time, defaults vs plain L-BFGS.

    python benchmarks/bench_gatys.py [--weights PATH] [--sizes 256 512] [--curve-size 512]

1. Seconds per iteration (one forward + backward of VGG16 up to relu5_1 with the Gatys
   losses) at each size, for this project's loss network (frozen, cut after the deepest
   layer, channels_last) and for a straightforward one (torchvision's full vgg16.features
   with trainable weights and contiguous tensors, as a first implementation writes it).
2. Loss against seconds: the default settings (coarse-to-fine) against a plain
   single-scale L-BFGS run of the same loss at the same size, both from the photo. It
   prints when the defaults first reach the plain run's 100-iteration loss, and the
   ratio of the times. Curves go to benchmarks/results/gatys_curve_<size>.csv.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import torch  # noqa: E402
import torchvision  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from nst.gatys import CONTENT_LAYERS, STYLE_LAYERS, GatysConfig, gatys_steps  # noqa: E402
from nst.hardware import summary  # noqa: E402
from nst.images import load_image, to_tensor  # noqa: E402
from nst.losses import LossWeights, PerceptualLoss, blended_gram_targets  # noqa: E402
from nst.vgg import layer_names, load_loss_network  # noqa: E402

SHARED = ROOT.parent / "shared"
LAYERS = [*CONTENT_LAYERS, *STYLE_LAYERS]


def machine() -> str:
    return summary("cuda" if torch.cuda.is_available() else "cpu")


class Straightforward(torch.nn.Module):
    """torchvision's vgg16.features as a first implementation uses it: full depth,
    weights still trainable (so backward also computes weight gradients), contiguous."""

    def __init__(self, weights: str):
        super().__init__()
        self.features = torchvision.models.vgg16().features
        state = load_file(weights)
        self.features.load_state_dict(
            {k.split(".", 1)[1]: v.float() for k, v in state.items() if k.startswith("features.")}
        )
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.index = {n: i for i, n in enumerate(layer_names("vgg16"))}

    def forward(self, x: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        wanted = {self.index[n]: n for n in layers}
        out, x = {}, (x - self.mean) / self.std
        for i, module in enumerate(self.features):
            # torchvision's ReLUs are in place: keep a copy of a requested output
            x = module(x)
            if i in wanted:
                out[wanted[i]] = x.clone()
        return out


def seconds_per_iteration(net, size: int, content, style, repeats: int) -> float:
    grams = blended_gram_targets(net, [style], STYLE_LAYERS)
    loss = PerceptualLoss(net, CONTENT_LAYERS, STYLE_LAYERS, grams, LossWeights())
    targets = loss.content_targets(content)
    image = content.clone().requires_grad_(True)
    times = []
    for _ in range(repeats + 1):  # the first one warms up oneDNN's kernels
        start = time.perf_counter()
        total, _ = loss(image, targets)
        total.backward()
        image.grad = None
        times.append(time.perf_counter() - start)
    return min(times[1:])


def curve(content: Path, style: Path, config: GatysConfig, stop_below: float | None):
    """(seconds, iteration, stage size, total loss) rows; stops early below a loss."""
    rows = []
    state = {"stop": False}
    for p in gatys_steps(content, [style], config, should_stop=lambda: state["stop"]):
        rows.append((p.seconds, p.iteration, max(p.size), p.losses.get("total", float("nan"))))
        full = max(p.size) == config.size
        if stop_below is not None and full and p.losses.get("total", 1e9) <= stop_below:
            state["stop"] = True
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--weights", default=str(SHARED / "weights/vgg16_imagenet_features.safetensors")
    )
    parser.add_argument("--content", default=str(SHARED / "data/content/tubingen.jpg"))
    parser.add_argument("--style", default=str(SHARED / "data/styles/starry_night.jpg"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--curve-size", type=int, default=512, help="0 skips the curve")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print("machine:", machine())

    ours = load_loss_network(LAYERS, weights=args.weights).to(memory_format=torch.channels_last)
    plain = Straightforward(args.weights)
    print("\n1. seconds per iteration (VGG16 to relu5_1, forward + backward)")
    for size in args.sizes:
        content = to_tensor(load_image(args.content, size))
        style = to_tensor(load_image(args.style, size))
        t_ours = seconds_per_iteration(ours, size, content, style, args.repeats)
        t_plain = seconds_per_iteration(plain, size, content, style, args.repeats)
        print(
            f"  {size:4d} px: this project {t_ours:.2f} s/it, straightforward {t_plain:.2f} s/it "
            f"({t_plain / t_ours:.2f}x)"
        )

    if args.curve_size <= 0:
        return
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
            f"({reached[1]} iterations, all stages) = {reached[0] / t_plain:.2f} of the plain time"
        )
    else:
        print(f"  defaults did not reach {target:.4f} within {defaults.iterations} iterations")
    out = ROOT / "benchmarks/results"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"gatys_curve_{size}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "seconds", "iteration", "stage_long_side", "total_loss"])
        writer.writerows(("plain", *r) for r in plain_rows)
        writer.writerows(("defaults", *r) for r in ours_rows)
    print(f"  curve: {out / f'gatys_curve_{size}.csv'}")


if __name__ == "__main__":
    main()
