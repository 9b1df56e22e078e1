"""Why coarse-to-fine does not reach the plain run's loss in a third of the time, and what
else was tried: the same Gatys loss at one size, minimised five ways.

    python -m docs.gatys_schedules.convergence [--size 256] [--evals 100] [--weights PATH]

Work is counted in loss evaluations at the full size (one forward + backward each; a
coarse-to-fine stage at half the long side counts a quarter per evaluation), so machine
noise does not touch the result. Every variant minimises the same loss (content relu4_2,
style relu1_1..relu5_1, style weight 10, the defaults); each row says how much work it
needed to reach the plain run's final loss, and its own loss after the same work.

1. plain: L-BFGS on the pixels from the photo, no line search (the reference).
2. coarse-to-fine: the defaults' three stages (quarter, half, full size), 100 each.
3. pyramid: L-BFGS on a Laplacian-style pyramid (the image is the sum of 5 levels, each
   upsampled; level k scaled by 0.5^k), a preconditioner for the low frequencies.
4. line search: L-BFGS with strong-Wolfe line search (more evaluations per step).
5. colour init: start from the photo with its RGB mean and covariance matched to the
   painting's, so the first style layer starts close to its target.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F

from docs.common import add_gatys_inputs
from nst.color import match_colors
from nst.gatys import CONTENT_LAYERS, STYLE_LAYERS, GatysConfig, gatys_steps
from nst.hardware import summary
from nst.images import load_image, to_tensor
from nst.losses import LossWeights, PerceptualLoss, blended_gram_targets
from nst.vgg import load_loss_network


def lbfgs_losses(
    loss: Callable[[torch.Tensor], torch.Tensor],
    params: list[torch.Tensor],
    image: Callable[[], torch.Tensor],
    evals: int,
    line_search: bool = False,
) -> list[float]:
    """Total loss at each evaluation of L-BFGS (history 100, as nst.gatys) on ``params``."""
    optimizer = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=1,
        max_eval=25 if line_search else 1,
        history_size=100,
        tolerance_grad=-1.0,
        tolerance_change=-1.0,
        line_search_fn="strong_wolfe" if line_search else None,
    )
    losses: list[float] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        total = loss(image())
        total.backward()
        losses.append(float(total.detach()))
        return total

    while len(losses) < evals:
        optimizer.step(closure)
    return losses[:evals]


def pyramid(photo: torch.Tensor, levels: int = 5, decay: float = 0.5):
    """Parameters and the image they make: level 0 is the photo, the others start at 0."""
    h, w = photo.shape[-2:]
    params = [photo.clone()] + [
        torch.zeros(1, 3, -(-h // 2**k), -(-w // 2**k)) for k in range(1, levels)
    ]
    for p in params:
        p.requires_grad_(True)

    def image() -> torch.Tensor:
        x = params[0]
        for k in range(1, levels):
            up = F.interpolate(params[k], size=(h, w), mode="bilinear", align_corners=False)
            x = x + decay**k * up
        return x

    return params, image


def coarse_to_fine(args, evals: int) -> tuple[list[float], list[float]]:
    """(full-size loss, work so far) at each full-size evaluation of the defaults."""
    config = GatysConfig(size=args.size, vgg_weights=args.weights, report_every=1)
    losses, work, done, last = [], [], 0.0, 0
    for p in gatys_steps(args.content, [args.style], config):
        done += (p.iteration - last) * (max(p.size) / args.size) ** 2
        last = p.iteration
        if max(p.size) == args.size and not p.done:
            losses.append(p.losses["total"])
            work.append(done)
        if len(losses) >= evals:
            break
    return losses, work


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    add_gatys_inputs(parser)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--evals", type=int, default=100)
    args = parser.parse_args()
    print("machine:", summary("cpu"))
    layers = [*CONTENT_LAYERS, *STYLE_LAYERS]
    net = load_loss_network(layers, weights=args.weights).to(memory_format=torch.channels_last)
    photo = to_tensor(load_image(args.content, args.size)).contiguous()
    painting = to_tensor(load_image(args.style, args.size))
    grams = blended_gram_targets(net, [painting], list(STYLE_LAYERS))
    defaults = GatysConfig()
    weights = LossWeights(content=defaults.content_weight, style=defaults.style_weight)
    perceptual = PerceptualLoss(net, CONTENT_LAYERS, STYLE_LAYERS, grams, weights)
    targets = perceptual.content_targets(photo)

    def loss(x: torch.Tensor) -> torch.Tensor:
        return perceptual(x, targets)[0]

    def pixels(start: torch.Tensor) -> tuple[list[torch.Tensor], Callable[[], torch.Tensor]]:
        x = start.clone().requires_grad_(True)
        return [x], lambda: x

    n = args.evals
    runs: dict[str, tuple[list[float], list[float]]] = {}
    unit = [float(i + 1) for i in range(n)]
    runs["plain"] = (lbfgs_losses(loss, *pixels(photo), n), unit)
    target = runs["plain"][0][-1]
    print(f"\n{args.size} px, {n} evaluations; plain L-BFGS ends at loss {target:.4f}")
    runs["coarse-to-fine (defaults)"] = coarse_to_fine(args, n)
    runs["pyramid (5 levels)"] = (lbfgs_losses(loss, *pyramid(photo), n), unit)
    runs["strong-Wolfe line search"] = (lbfgs_losses(loss, *pixels(photo), n, True), unit)
    runs["colour-matched init"] = (
        lbfgs_losses(loss, *pixels(match_colors(photo, painting)), n),
        unit,
    )
    print(f"{'variant':28s} {'work to reach it':>18s} {'loss after ' + str(n):>16s}")
    for name, (losses, work) in runs.items():
        best, reached = float("inf"), None
        for value, w in zip(losses, work, strict=True):
            best = min(best, value)
            if reached is None and best <= target:
                reached = w
        where = f"{reached:.1f}" if reached is not None else "not reached"
        after = [v for v, w in zip(losses, work, strict=True) if w <= n]
        print(f"{name:28s} {where:>18s} {min(after):16.4f}")
    print("(work: full-size evaluations, coarse stages counted by their pixel share)")


if __name__ == "__main__":
    main()
