"""The engines' rewritten graph (nst.johnson.inference_graph) is the same function as
TransformerNet: each rewrite against the layers it replaces, then the whole net, then the
exported ONNX."""

from __future__ import annotations

import pytest
import torch
from nets import small_transformer
from torch import nn
from torch.nn import functional as F

import zoo
from nst.johnson.inference_graph import (
    InferenceNet,
    space_to_depth,
    space_to_depth_conv,
    transposed_upsample_conv,
)

# Float32 rounding of sums reordered by the rewrite: the outputs are in [0, 1].
TOLERANCE = 1e-5


def _conv(in_ch: int, out_ch: int, kernel: int, seed: int) -> nn.Conv2d:
    torch.manual_seed(seed)
    conv = nn.Conv2d(in_ch, out_ch, kernel)
    nn.init.normal_(conv.bias)  # the default init's biases are tiny: make them count
    return conv


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (7, 5), (16, 16)])
def test_upsample_pad_conv_is_the_transposed_conv_on_the_replicate_padded_map(size) -> None:
    conv = _conv(6, 5, 3, seed=0)
    x = torch.randn(2, 6, *size)
    with torch.no_grad():
        expected = conv(F.pad(F.interpolate(x, scale_factor=2.0), (1, 1, 1, 1), mode="reflect"))
        got = transposed_upsample_conv(conv)(F.pad(x, (1, 1, 1, 1), mode="replicate"))
    assert got.shape == expected.shape == (2, 5, 2 * size[0], 2 * size[1])
    assert (got - expected).abs().max() < TOLERANCE


@pytest.mark.parametrize("kernel", [3, 5, 9])
@pytest.mark.parametrize("size", [(2, 2), (6, 10), (12, 8)])
def test_a_conv_on_space_to_depth_blocks_is_the_full_resolution_conv(kernel, size) -> None:
    conv = _conv(4, 3, kernel, seed=1)
    p = kernel // 2
    x = F.pad(torch.randn(2, 4, *size), (p, p, p, p))  # any padding: the conv is what differs
    with torch.no_grad():
        expected = conv(x)
        got = F.pixel_shuffle(space_to_depth_conv(conv)(space_to_depth(x, 2)), 2)
    assert got.shape == expected.shape == (2, 3, *size)
    assert (got - expected).abs().max() < TOLERANCE


def test_space_to_depth_has_onnx_channel_order() -> None:
    """Output channel (dy * block + dx) * C + c holds pixel (block i + dy, block j + dx) of
    channel c: ONNX SpaceToDepth's order, which the exported node computes."""
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6)
    y = space_to_depth(x, 2)
    assert y.shape == (2, 12, 2, 3)
    for dy in range(2):
        for dx in range(2):
            for c in range(3):
                assert torch.equal(y[:, (dy * 2 + dx) * 3 + c], x[:, c, dy::2, dx::2])


def test_the_rewrites_refuse_layers_they_do_not_cover() -> None:
    with pytest.raises(ValueError, match="3x3, stride-1"):
        transposed_upsample_conv(nn.Conv2d(2, 2, 3, stride=2))
    with pytest.raises(ValueError, match="odd square"):
        space_to_depth_conv(nn.Conv2d(2, 2, 4))
    with pytest.raises(ValueError, match="odd square"):
        space_to_depth_conv(nn.Conv2d(2, 2, 9, bias=False))


@pytest.mark.parametrize(
    ("size", "photo_skip"),
    [((5, 5), False), ((37, 53), False), ((64, 48), False), ((90, 121), False), ((37, 53), True)],
)
def test_the_inference_net_is_the_transformer_net(size, photo_skip: bool) -> None:
    net = small_transformer(photo_skip=photo_skip)
    torch.manual_seed(2)
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        expected, got = net(x), InferenceNet(net)(x)
    assert got.shape == x.shape
    assert (got - expected).abs().max() < TOLERANCE
    assert (expected - x).abs().mean() > 0.05  # the net did change the picture


def test_a_zoo_style_rewritten_gives_the_same_picture() -> None:
    net = zoo.load("the_scream")
    torch.manual_seed(3)
    x = torch.rand(1, 3, 70, 99)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        assert (InferenceNet(net)(x) - net(x)).abs().max() < TOLERANCE
    # The rewrite works on a copy: the net itself is untouched.
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert isinstance(net.decoder[0][0], nn.Upsample)


def test_the_export_writes_the_rewritten_graph_and_the_plain_one_on_request() -> None:
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (nst[onnx])")
    pytest.importorskip("onnxscript", reason="onnxscript (the ONNX exporter) is not installed")
    from nst.johnson import onnx_export

    net = small_transformer()

    def ops(rewrite: bool) -> set[str]:
        model = onnx.load_from_string(onnx_export.export_bytes(net, rewrite=rewrite))
        return {node.op_type for node in model.graph.node}

    rewritten, plain = ops(True), ops(False)
    assert {"SpaceToDepth", "ConvTranspose", "DepthToSpace"} <= rewritten
    assert "Resize" not in rewritten  # no upsampled map
    assert "Resize" in plain and "ConvTranspose" not in plain
