"""Real stylisation quality with the real ImageNet VGG16 from ../shared (skipped without it).

These are the library's quality claims for Gatys, checked on losses measured at full size:
- the output's Gram-matrix style loss is at least 10x below the content photo's;
- its content loss stays well below the style painting's;
- starting from the photo keeps content better than starting from white noise.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nst.gatys import GatysConfig, gatys, gatys_steps
from nst.hardware import native_bf16_cpu
from nst.images import load_image, to_tensor
from nst.losses import LossWeights, PerceptualLoss, blended_gram_targets
from nst.vgg import load_loss_network

pytestmark = pytest.mark.real_vgg
SIZE = 192


@pytest.fixture(scope="module")
def pair(content_dir: Path, style_dir: Path) -> tuple[Path, Path]:
    return content_dir / "tubingen.jpg", style_dir / "starry_night.jpg"


@pytest.fixture(scope="module")
def config(real_vgg16: Path) -> GatysConfig:
    # Coarse-to-fine, the default when these claims were measured (2026-11-27). The default
    # is now one scale (docs/gatys_schedules: the same judged quality per second); at 150
    # iterations its own style loss ends 9x, not 10x, below the photo's.
    return GatysConfig(
        size=SIZE, iterations=150, scales=3, vgg_weights=str(real_vgg16), report_every=50
    )


@pytest.fixture(scope="module")
def measure(pair, config):
    """Losses of any image against the pair's targets, at the output size."""
    content_path, style_path = pair
    net = load_loss_network([*config.content_layers, *config.style_layers], config.vgg_weights)
    content = to_tensor(load_image(content_path, SIZE))
    style = to_tensor(load_image(style_path, SIZE))
    grams = blended_gram_targets(net, [style], config.style_layers)
    loss = PerceptualLoss(net, config.content_layers, config.style_layers, grams, LossWeights())
    targets = loss.content_targets(content)

    def losses(image: torch.Tensor) -> dict[str, float]:
        if image.shape != content.shape:
            image = F.interpolate(image, size=content.shape[-2:], mode="bilinear")
        with torch.no_grad():
            return {k: float(v) for k, v in loss(image, targets)[1].items()}

    return losses, content, style


def test_output_takes_the_style_and_keeps_the_content(pair, config, measure) -> None:
    losses, content, style = measure
    result = to_tensor(gatys(pair[0], [pair[1]], config, device="cpu"))
    out, photo, painting = losses(result), losses(content), losses(style)
    assert out["style"] * 10 <= photo["style"], (out, photo)
    assert out["content"] < 0.5 * painting["content"], (out, painting)


def test_content_init_keeps_content_better_than_noise(pair, config, measure) -> None:
    losses, _, _ = measure
    budget = replace(config, iterations=60, scales=1, report_every=60)
    finals = {}
    for init in ("content", "noise"):
        *_, last = gatys_steps(pair[0], [pair[1]], replace(budget, init=init), device="cpu")
        finals[init] = losses(to_tensor(last.image))
    assert finals["content"]["content"] < 0.9 * finals["noise"]["content"], finals


@pytest.mark.skipif(not native_bf16_cpu(), reason="bf16 is emulated on this CPU (slow)")
def test_bf16_reaches_the_fp32_loss_judged_in_fp32(pair, config, measure) -> None:
    """precision="auto" is bf16 on this CPU: its picture must be as good, scored in fp32."""
    losses, _, _ = measure
    budget = replace(config, iterations=40, scales=1, report_every=40)
    totals = {}
    for precision in ("fp32", "bf16"):
        cfg = replace(budget, precision=precision)
        *_, last = gatys_steps(pair[0], [pair[1]], cfg, device="cpu")
        parts = losses(to_tensor(last.image))
        totals[precision] = parts["content"] + cfg.style_weight * parts["style"]
    assert totals["bf16"] <= 1.05 * totals["fp32"], totals
