"""The Johnson net rewritten for the inference engines: the same function as
``TransformerNet`` in eval mode (equal to float rounding), with the two full-resolution
layers that OpenVINO runs worst put into shapes it runs well.

Profiled in OpenVINO (docs/inference_graph/README.md), the straightforward graph spends
a large share of its time in the last 9x9 convolution, which has 3 output channels:
its vector lanes are mostly idle. The upsample-then-convolve stages add a full-size
nearest upsampling and run all nine taps on pixels that are copies of each other.
Two exact rewrites:

* **Upsample, reflect-pad, 3x3 conv = replicate-pad, transposed 4x4 conv with stride 2.**
  After a nearest 2x upsampling each output pixel's 3x3 window covers only 2x2 distinct
  input pixels, so the nine taps fold into four per output phase: 4/9 of the multiplies,
  and no upsampled map. Reflecting the upsampled map by one pixel gives back the edge
  pixel itself, which is a replicate pad of the small map.
* **A 9x9 conv = space-to-depth by 2, a 5x5 conv, depth-to-space.** The 2x2 pixel blocks
  become channels: 4x the input and output channels on a quarter of the pixels, which
  fills the vector lanes (12 output channels, not 3), for 1.23x the multiplies.

``export_bytes`` in :mod:`nst.johnson.onnx_export` exports this graph; tiling and
training keep ``TransformerNet``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from nst.johnson.model import GRID, TransformerNet, run_with_mix

#: Output phase a (row 2i + a) of a 3x3 conv on a nearest-upsampled map, as taps on the
#: small map's rows i - 1, i, i + 1 (rows of the matrix) from the original taps (columns).
#: Phase 0 sees small rows i-1, i, i; phase 1 sees i, i, i+1.
#: The transposed conv's tap k (0..3) lands input row m on output row 2m + k - 3 of the
#: replicate-padded map (m = i + 1): k = 3 and 1 make phase 0, k = 2 and 0 phase 1.
_TRANSPOSED_TAPS = torch.tensor(
    [
        [0.0, 0.0, 1.0],  # k=0: row i+1 into phase 1 -> original tap 2
        [0.0, 1.0, 1.0],  # k=1: row i into phase 0 -> taps 1 + 2
        [1.0, 1.0, 0.0],  # k=2: row i into phase 1 -> taps 0 + 1
        [1.0, 0.0, 0.0],  # k=3: row i-1 into phase 0 -> tap 0
    ]
)


def transposed_upsample_conv(conv: nn.Conv2d) -> nn.ConvTranspose2d:
    """The transposed conv that equals nearest-upsample x2 -> reflect-pad 1 -> ``conv``
    (3x3, stride 1) when run on the small map replicate-padded by 1."""
    if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.bias is None:
        raise ValueError("expected a 3x3, stride-1 conv with a bias")
    weight = conv.weight.detach().float()
    taps = _TRANSPOSED_TAPS.to(weight.device)
    # (out, in, 3, 3) -> (in, out, 4, 4): ConvTranspose2d keeps in-channels first.
    folded = torch.einsum("kp,oipq,lq->iokl", taps, weight, taps)
    out = nn.ConvTranspose2d(conv.in_channels, conv.out_channels, 4, stride=2, padding=3)
    out.weight.data = folded.contiguous()
    out.bias.data = conv.bias.detach().float().clone()
    return out


def space_to_depth_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """The conv on ``space_to_depth(x, 2)`` whose depth-to-space (``pixel_shuffle(., 2)``)
    equals ``conv`` (odd k x k, stride 1, no padding) on x, for x of even height and width.

    Its input channels are in SpaceToDepth's order (block offset major, then channel),
    its output channels in pixel_shuffle's (channel major, then block offset).
    """
    k = conv.kernel_size[0]
    if conv.kernel_size != (k, k) or k % 2 == 0 or conv.stride != (1, 1) or conv.bias is None:
        raise ValueError("expected an odd square, stride-1 conv with a bias")
    weight = conv.weight.detach().float()
    oc, ic = weight.shape[:2]
    k2 = k // 2 + 1
    out = weight.new_zeros(oc, 2, 2, 2, 2, ic, k2, k2)  # o, a, b | p, q, c | u, v
    # Output pixel 2i + a reads input pixel 2(i + u) + p with the original tap t = 2u + p - a.
    for a in range(2):
        for p in range(2):
            for u in range(k2):
                t = 2 * u + p - a
                if not 0 <= t < k:
                    continue
                for b in range(2):
                    for q in range(2):
                        for v in range(k2):
                            s = 2 * v + q - b
                            if 0 <= s < k:
                                out[:, a, b, p, q, :, u, v] = weight[:, :, t, s]
    new = nn.Conv2d(4 * ic, 4 * oc, k2)
    new.weight.data = out.reshape(4 * oc, 4 * ic, k2, k2).contiguous()
    new.bias.data = conv.bias.detach().float().repeat_interleave(4)
    return new


@torch.library.custom_op("nst::space_to_depth", mutates_args=())
def space_to_depth(x: torch.Tensor, block: int) -> torch.Tensor:
    """ONNX SpaceToDepth: (B, C, H, W) -> (B, block² C, H / block, W / block), output
    channel (dy * block + dx) * C + c. Its own op so that the export writes the one ONNX
    node (engines run it natively) instead of a reshape-transpose-reshape."""
    b, c, h, w = x.shape
    y = x.reshape(b, c, h // block, block, w // block, block).permute(0, 3, 5, 1, 2, 4)
    return y.reshape(b, block * block * c, h // block, w // block).contiguous()


@space_to_depth.register_fake
def _space_to_depth_shape(x: torch.Tensor, block: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.new_empty(b, block * block * c, h // block, w // block)


def space_to_depth_onnx(x, block: int):  # noqa: ANN001, ANN201 (onnxscript's types)
    """The ONNX translation of :func:`space_to_depth` for ``torch.onnx.export``."""
    from onnxscript import opset18 as op

    return op.SpaceToDepth(x, blocksize=block)


#: For ``torch.onnx.export(custom_translation_table=...)``.
ONNX_TRANSLATIONS = {torch.ops.nst.space_to_depth.default: space_to_depth_onnx}


class InferenceNet(nn.Module):
    """``TransformerNet`` in eval mode, rewritten (see the module's docstring); its
    forward includes the reflection pad to the grid, the crop back and the clamp."""

    def __init__(self, net: TransformerNet):
        super().__init__()
        net = copy.deepcopy(net).to("cpu", torch.float32).eval().requires_grad_(False)
        self.encoder = net.encoder
        self.residuals = net.residuals
        self.ups = nn.ModuleList()
        for stage in net.upsampling:
            (_pad, conv), norm, _relu = stage[1]
            self.ups.append(nn.ModuleList([transposed_upsample_conv(conv), norm]))
        head = net.head
        self.head_pad = head[0].padding[0]
        self.head = space_to_depth_conv(head[1])
        self.photo_skip = net.config.photo_skip
        self.requires_grad_(False).eval()

    def forward(self, image: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        """``style``: a multi-style net's weight per style (S,), an input of the graph, so
        one export serves every style and blend."""
        h, w = image.shape[-2], image.shape[-1]
        # Always pad (a zero pad is a no-op): a branch would freeze at the export's size.
        pad_h, pad_w = (GRID - h % GRID) % GRID, (GRID - w % GRID) % GRID
        padded = F.pad(image, (0, pad_w, 0, pad_h), mode="reflect")
        if style is None:
            x = self.residuals(self.encoder(padded))
        else:
            x = run_with_mix(self.residuals, run_with_mix(self.encoder, padded, style), style)
        for conv, norm in self.ups:
            x = F.relu(norm(conv(F.pad(x, (1, 1, 1, 1), mode="replicate")), style))
        p = self.head_pad
        x = F.pad(x, (p, p, p, p), mode="reflect")
        y = F.pixel_shuffle(self.head(space_to_depth(x, 2)), 2)
        if self.photo_skip:
            y = y + padded
        return y[..., :h, :w].clamp(0, 1)
