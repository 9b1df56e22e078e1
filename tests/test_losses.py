"""The loss math: Gram matrices, normalisation, blending, total variation."""

from __future__ import annotations

import pytest
import torch

from nst.losses import (
    LossWeights,
    PerceptualLoss,
    blended_gram_targets,
    content_loss,
    gram_matrix,
    style_loss,
    total_variation,
)
from nst.vgg import load_loss_network


def test_gram_matrix_matches_definition() -> None:
    f = torch.randn(2, 4, 3, 5)
    g = gram_matrix(f)
    flat = f[1].reshape(4, 15)
    assert g.shape == (2, 4, 4)
    torch.testing.assert_close(g[1], flat @ flat.T / 60)
    torch.testing.assert_close(g, g.transpose(1, 2))


def test_losses_are_scale_free() -> None:
    """Scaling every activation by 255 (Caffe vs torchvision VGG) leaves the terms unchanged."""
    f, t = torch.rand(1, 8, 6, 6), torch.rand(1, 8, 6, 6)
    torch.testing.assert_close(content_loss(f * 255, t * 255), content_loss(f, t))
    g, tg = gram_matrix(f), gram_matrix(t)
    torch.testing.assert_close(
        style_loss(gram_matrix(f * 255), gram_matrix(t * 255)), style_loss(g, tg)
    )
    assert content_loss(t, t) == 0 and style_loss(tg, tg) == 0
    # about 1 for an output of zeros: "unrelated to the target"
    torch.testing.assert_close(content_loss(torch.zeros_like(t), t), torch.tensor(1.0))


def test_style_loss_broadcasts_a_single_target_over_a_batch() -> None:
    g = gram_matrix(torch.rand(3, 4, 5, 5))
    target = gram_matrix(torch.rand(1, 4, 5, 5))
    per_item = torch.stack([style_loss(g[i : i + 1], target) for i in range(3)])
    torch.testing.assert_close(style_loss(g, target), per_item.mean())


def test_total_variation_is_zero_on_flat_and_positive_on_noise() -> None:
    assert total_variation(torch.full((1, 3, 8, 8), 0.3)) == 0
    assert total_variation(torch.rand(1, 3, 8, 8)) > 0.1


def test_blended_targets_mix_gram_matrices() -> None:
    net = load_loss_network(["relu1_1"], weights="random", width_divisor=8)
    a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 24, 20) * 0.2
    ga = blended_gram_targets(net, [a], ["relu1_1"])["relu1_1"]
    gb = blended_gram_targets(net, [b], ["relu1_1"])["relu1_1"]
    mix = blended_gram_targets(net, [a, b], ["relu1_1"], [3.0, 1.0])["relu1_1"]
    torch.testing.assert_close(mix, 0.75 * ga + 0.25 * gb)
    with pytest.raises(ValueError, match="blend weights"):
        blended_gram_targets(net, [a, b], ["relu1_1"], [1.0])


def test_perceptual_loss_combines_weighted_terms() -> None:
    net = load_loss_network(["relu1_1", "relu2_1"], weights="random", width_divisor=8)
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    grams = blended_gram_targets(net, [style], ["relu1_1", "relu2_1"])
    weights = LossWeights(content=2.0, style=5.0, tv=0.5)
    loss = PerceptualLoss(net, ["relu2_1"], ["relu1_1", "relu2_1"], grams, weights)
    targets = loss.content_targets(content)
    out = torch.rand(1, 3, 32, 32, requires_grad=True)
    total, parts = loss(out, targets)
    expected = 2.0 * parts["content"] + 5.0 * parts["style"] + 0.5 * parts["tv"]
    torch.testing.assert_close(total.detach(), expected)
    total.backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    _, at_content = loss(content, targets)
    assert at_content["content"] == 0


@pytest.mark.parametrize("channels_last", [False, True])
def test_gram_backward_matches_autograd_of_the_definition(channels_last: bool) -> None:
    """The one-GEMM backward gives autograd's gradient, in the input's memory format."""
    f = torch.randn(2, 5, 4, 3, dtype=torch.float64)
    if channels_last:
        f = f.contiguous(memory_format=torch.channels_last)
    target = torch.randn(2, 5, 5, dtype=torch.float64)
    x = f.clone().requires_grad_(True)
    (gram_matrix(x) * target).sum().backward()
    y = f.clone().requires_grad_(True)
    flat = y.reshape(2, 5, 12)
    ((flat @ flat.transpose(1, 2) / 60) * target).sum().backward()
    torch.testing.assert_close(x.grad, y.grad)
    assert x.grad.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert torch.autograd.gradcheck(gram_matrix, (f[:1, :3, :2, :2].clone().requires_grad_(True),))


def test_network_dtype_lowers_only_the_network_and_keeps_the_losses_fp32() -> None:
    net = load_loss_network(["relu1_1", "relu2_1"], weights="random", width_divisor=8)
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    grams = blended_gram_targets(net, [style], ["relu1_1", "relu2_1"])
    loss = PerceptualLoss(net, ["relu2_1"], ["relu1_1", "relu2_1"], grams, LossWeights(style=5.0))
    targets = loss.content_targets(content)
    out = torch.rand(1, 3, 32, 32, requires_grad=True)
    grams_seen: list[torch.dtype] = []
    original = torch.bmm

    def spy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        result = original(a, b)
        grams_seen.append(result.dtype)
        return result

    exact, _ = loss(out, targets)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "bmm", spy)
        lowered, parts = loss(out, targets, network_dtype=torch.bfloat16)
    assert grams_seen and set(grams_seen) == {torch.float32}  # Grams outside autocast
    assert lowered.dtype == torch.float32 and all(v.dtype == torch.float32 for v in parts.values())
    assert lowered.item() != exact.item()  # the network did run in bf16
    torch.testing.assert_close(lowered, exact, rtol=0.05, atol=0)
    lowered.backward()
    assert out.grad is not None and out.grad.dtype == torch.float32
