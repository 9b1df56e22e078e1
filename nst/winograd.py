"""Winograd F(4x4, 3x3) convolution for the frozen loss network on CPU.

Why: one Gatys iteration is ~300 GFLOP of 3x3 stride-1 convolutions, and on an AVX2
CPU oneDNN runs them as direct/GEMM convolutions close to the matmul peak; only fewer
FLOPs make it faster. Winograd minimal filtering (Lavin & Gray 2015) computes each 4x4
output tile from a 6x6 input tile with 36 multiplies per channel pair instead of 144,
so the channel GEMMs shrink ~4x; the transforms around them are memory-bound.

How (all float32, everything in NHWC so channels are the GEMM's contiguous axis):

1. the weights are transformed once, ``U = G w G^T``, and cached (the network is frozen);
2. the input is copied, band by band of tile rows (cache-sized, see CHUNK_BYTES), into
   a zero-bordered buffer; the overlapping 6x6 tiles are gathered position-major and
   transformed, ``V = B^T d B``, by two small matmuls (rows, then columns);
3. one batched GEMM over the 36 tile positions, ``M[p] = V[p] @ U[p]``
   ((tiles x C) @ (C x K)): this is where the time goes, and where the savings are;
4. the inverse transform ``Y = A^T M A`` (two small matmuls), then the 4x4 tiles are
   written into the output with the bias, and cropped to H x W.

Backward gives the input gradient only (the loss network's weights are frozen): the
input gradient of a 3x3 pad-1 convolution is a 3x3 pad-1 convolution of the output
gradient with the kernel flipped spatially and its in/out channels swapped, so it runs
through the same path with a second pre-transformed weight. Double backward is not
supported (it is not needed for Gatys or Johnson training).

Accuracy: fp32 F(4,3) differs from direct convolution by ~1e-6..1e-5 of the
activations' scale per layer (see tests/test_winograd.py for the measured bounds).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from nst.errors import NSTError

TILE = 4  # output tile side m
ALPHA = TILE + 2  # input tile side m + r - 1

# Lavin & Gray's F(4x4, 3x3) matrices (interpolation points 0, +-1, +-2, infinity).
_BT = (
    (4.0, 0.0, -5.0, 0.0, 1.0, 0.0),
    (0.0, -4.0, -4.0, 1.0, 1.0, 0.0),
    (0.0, 4.0, -4.0, -1.0, 1.0, 0.0),
    (0.0, -2.0, -1.0, 2.0, 1.0, 0.0),
    (0.0, 2.0, -1.0, -2.0, 1.0, 0.0),
    (0.0, 4.0, 0.0, -5.0, 0.0, 1.0),
)
_G = (
    (1 / 4, 0.0, 0.0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0.0, 0.0, 1.0),
)
_AT = (
    (1.0, 1.0, 1.0, 1.0, 1.0, 0.0),
    (0.0, 1.0, -1.0, 2.0, -2.0, 0.0),
    (0.0, 1.0, 1.0, 4.0, 4.0, 0.0),
    (0.0, 1.0, -1.0, 8.0, -8.0, 1.0),
)

CONV_MODES = ("auto", "direct", "winograd")
ENV_CONV = "NST_CONV"


_MATRICES: dict[tuple[str, str], torch.Tensor] = {}


def _matrix(name: str, device: torch.device) -> torch.Tensor:
    key = (name, str(device))
    if key not in _MATRICES:
        _MATRICES[key] = torch.tensor(_BT if name == "BT" else _AT, device=device)
    return _MATRICES[key]


def _transform(matrix: torch.Tensor, tiles: torch.Tensor) -> torch.Tensor:
    """``(matrix x matrix) @ tiles`` for (36, N) tiles, as two small matmuls.

    Separable (rows, then columns): 2 * 6 multiply-adds per element instead of 36 for
    the Kronecker product; measured 3x faster on cache-sized bands.
    """
    rows, n = matrix.shape[0], tiles.shape[1]
    half = torch.mm(matrix, tiles.view(ALPHA, -1)).view(rows, ALPHA, n)
    return torch.matmul(matrix, half).view(rows * rows, n)


def transform_weight(weight: torch.Tensor) -> torch.Tensor:
    """(K, C, 3, 3) -> (36, C, K): ``G w G^T`` per channel pair, computed in float64.

    The layout is the right operand of the per-position GEMM ``V[p] @ U[p]``.
    """
    if weight.dim() != 4 or weight.shape[-2:] != (3, 3):
        raise NSTError(f"Winograd needs a (K, C, 3, 3) weight, not {tuple(weight.shape)}.")
    g = torch.tensor(_G, dtype=torch.float64, device=weight.device)
    u = torch.einsum("ia,kcab,jb->ijck", g, weight.detach().double(), g)
    return u.reshape(ALPHA * ALPHA, weight.shape[1], weight.shape[0]).float().contiguous()


def input_grad_weight(weight: torch.Tensor) -> torch.Tensor:
    """The kernel whose 3x3 pad-1 convolution of grad_output is grad_input."""
    return weight.detach().flip(2, 3).transpose(0, 1)


def _tiles(size: int) -> int:
    return -(-size // TILE)


#: Bytes of tiles + transformed tiles + products held at once. Cache-sized bands make the
#: memory-bound transforms ~3x faster than whole-image passes and stay below glibc's 32 MiB
#: mmap threshold (buffers are recycled instead of page-faulted in afresh on each call);
#: they also keep batch-8 training from allocating GBs of tiles. Measured best of
#: 2/4/8/16/24 MiB on the 2-core EPYC. A band is never smaller than twice the transformed
#: weight, which every band reads again (37 MiB for a 512-channel layer).
CHUNK_BYTES = 16 << 20


def _tile_bytes(c: int, k: int) -> int:
    return 4 * (ALPHA * ALPHA * (2 * c + k) + TILE * TILE * k)


def _convolve_tiles(
    padded: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor
) -> None:
    """Winograd on whole tiles: ``padded`` (b, 4n+2, 4tw+2, C) -> ``out`` (b, n, 4, tw, 4, K)."""
    b, n, _, tw, _, k = out.shape
    c = padded.shape[3]
    sb, sh, sw, _ = padded.stride()
    # overlapping 6x6 tiles with stride 4, gathered position-major: (36, tiles * C)
    tiles = padded.as_strided(
        (ALPHA, ALPHA, b, n, tw, c), (sh, sw, sb, TILE * sh, TILE * sw, 1)
    ).reshape(ALPHA * ALPHA, b * n * tw * c)
    v = _transform(_matrix("BT", padded.device), tiles)  # (36, T*C)
    del tiles
    m = torch.bmm(v.view(ALPHA * ALPHA, b * n * tw, c), u)  # the channel GEMMs: (36, T, K)
    del v
    y = _transform(_matrix("AT", padded.device), m.view(ALPHA * ALPHA, -1))
    y = y.view(TILE, TILE, b, n, tw, k).permute(2, 3, 0, 4, 1, 5)
    if bias is not None:
        torch.add(y, bias, out=out)
    else:
        out.copy_(y)


def winograd_nhwc(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """3x3 stride-1 pad-1 convolution of NHWC ``x`` (B, H, W, C) with transformed weights
    ``u`` (36, C, K); returns NHWC (B, H, W, K), contiguous.

    Small layers go in one block (the GEMMs see every tile, so the large transformed weight
    of a deep layer is read once); large ones in bands of tile rows of at most CHUNK_BYTES.
    """
    b, h, w, c = x.shape
    k = u.shape[2]
    th, tw = _tiles(h), _tiles(w)
    wp = TILE * tw + 2
    out = x.new_empty(b, th, TILE, tw, TILE, k)
    row_bytes = tw * _tile_bytes(c, k)
    budget = max(CHUNK_BYTES, 2 * u.numel() * u.element_size())
    if b * th * row_bytes <= budget:
        images, rows = [slice(0, b)], th
    else:
        images, rows = [slice(i, i + 1) for i in range(b)], max(1, budget // row_bytes)
    band = x.new_empty(images[0].stop - images[0].start, TILE * rows + 2, wp, c)
    band[:, :, 0].zero_()  # left halo and right halo + fill: never written below
    band[:, :, w + 1 :].zero_()
    for image in images:
        for r0 in range(0, th, rows):
            n = min(rows, th - r0)
            top = TILE * r0 - 1  # image row of the band's first row (-1: the top halo)
            lo, hi = max(top, 0), min(top + TILE * n + 2, h)
            part = band[:, : TILE * n + 2]
            part[:, : lo - top].zero_()
            part[:, hi - top :].zero_()
            part[:, lo - top : hi - top, 1 : w + 1].copy_(x[image, lo:hi])
            _convolve_tiles(part, u, bias, out[image, r0 : r0 + n])
    out = out.view(b, TILE * th, TILE * tw, k)
    if TILE * th != h or TILE * tw != w:
        out = out[:, :h, :w].contiguous()
    return out


def _to_nhwc(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) in any memory format -> NHWC view (a copy only when not channels_last)."""
    return x.permute(0, 2, 3, 1)


def _from_nhwc(y: torch.Tensor) -> torch.Tensor:
    """NHWC contiguous -> (B, K, H, W) channels_last view."""
    return y.permute(0, 3, 1, 2)


class _WinogradConvFunction(torch.autograd.Function):
    """conv2d(x, w, b, padding=1) by Winograd; backward: input gradient only."""

    @staticmethod
    def forward(ctx, x, u_forward, u_backward, bias):  # type: ignore[override]
        ctx.u_backward = u_backward  # the transformed flipped kernel; x itself is not needed
        return _from_nhwc(winograd_nhwc(_to_nhwc(x), u_forward, bias))

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        grad_input = None
        if ctx.needs_input_grad[0]:
            grad_input = _from_nhwc(winograd_nhwc(_to_nhwc(grad_output), ctx.u_backward, None))
        return grad_input, None, None, None


def _check(x: torch.Tensor, weight: torch.Tensor) -> None:
    if weight.requires_grad and torch.is_grad_enabled():
        raise NSTError(
            "Winograd convolution gives no weight gradient: freeze the weights "
            "(weight.requires_grad_(False)) or use conv='direct'."
        )
    if x.dim() != 4 or x.shape[1] != weight.shape[1] or weight.shape[-2:] != (3, 3):
        raise NSTError(
            f"Winograd convolution needs x (B, {weight.shape[1]}, H, W) and a 3x3 kernel; got "
            f"x {tuple(x.shape)} and weight {tuple(weight.shape)}."
        )
    if x.dtype != torch.float32:
        raise NSTError(f"Winograd convolution is float32 only, not {x.dtype}.")


def winograd_conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=1)`` for a frozen 3x3 kernel, by Winograd F(4,3).

    Differentiable w.r.t. ``x`` only; transforms the weight on every call (modules cache it).
    """
    _check(x, weight)
    return _WinogradConvFunction.apply(
        x, transform_weight(weight), transform_weight(input_grad_weight(weight)), bias
    )


# Which convolutions "auto" runs by Winograd, decided by measurement on the 2-core AVX2
# EPYC (`benchmarks/bench_gatys.py --layers --threads 1`, forward + input backward of each
# VGG16 layer of a 512x384 photo, interleaved with oneDNN's direct conv), Winograd/direct
# speed-up: conv1_1 (3->64) 0.23x (3 input channels: transforms, no GEMM to save),
# conv1_2 (64->64) 0.81x (the transforms of 384x512x64 maps are memory-bound), conv2_1
# (64->128) 1.02x, conv2_2 1.14x, conv3_1 1.47x, conv3_2/3 1.8-2.2x, conv4_x 1.9-2.5x,
# conv5_1 2.1x. So Winograd from 128 input channels on.
AUTO_MIN_IN_CHANNELS = 128


def auto_uses_winograd(in_channels: int, out_channels: int) -> bool:
    """Whether conv="auto" picks Winograd for a layer of this width (CPU only)."""
    del out_channels  # the transforms scale with C and K alike; the input side decides
    return in_channels >= AUTO_MIN_IN_CHANNELS


@dataclass
class _Transformed:
    key: tuple
    forward: torch.Tensor
    backward: torch.Tensor


class Conv3x3(nn.Conv2d):
    """A frozen 3x3 pad-1 ``nn.Conv2d`` that runs by Winograd on CPU float32 inputs.

    Same parameters and state_dict as ``nn.Conv2d``. It falls back to the parent's direct
    convolution when Winograd is off, on CUDA (cuDNN is faster there), for other dtypes,
    and when the weight requires grad (Winograd gives no weight gradient).
    """

    def __init__(self, in_channels: int, out_channels: int, winograd: bool = False):
        super().__init__(in_channels, out_channels, 3, padding=1)
        self.winograd = winograd
        self._transformed: _Transformed | None = None

    def _weights(self) -> _Transformed:
        w = self.weight
        key = (w.data_ptr(), w._version, w.device, tuple(w.shape))
        if self._transformed is None or self._transformed.key != key:
            self._transformed = _Transformed(
                key, transform_weight(w), transform_weight(input_grad_weight(w))
            )
        return self._transformed

    def uses_winograd(self, x: torch.Tensor) -> bool:
        return (
            self.winograd
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and not (self.weight.requires_grad and torch.is_grad_enabled())
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.uses_winograd(x):
            return super().forward(x)
        t = self._weights()
        return _WinogradConvFunction.apply(x, t.forward, t.backward, self.bias.detach())

    def extra_repr(self) -> str:
        return super().extra_repr() + f", winograd={self.winograd}"


def resolve_conv_mode(conv: str | None) -> str:
    """The argument, else env ``NST_CONV``, else "auto"; refuses unknown modes."""
    mode = conv if conv is not None else os.environ.get(ENV_CONV, "auto")
    mode = mode.strip().lower()
    if mode not in CONV_MODES:
        raise NSTError(
            f"conv must be one of {', '.join(CONV_MODES)}, not '{mode}' "
            f"(from {'the argument' if conv is not None else ENV_CONV})."
        )
    return mode


def layer_uses_winograd(mode: str, in_channels: int, out_channels: int) -> bool:
    if mode == "winograd":
        return True
    if mode == "auto":
        return auto_uses_winograd(in_channels, out_channels)
    return False


__all__ = [
    "CONV_MODES",
    "Conv3x3",
    "resolve_conv_mode",
    "transform_weight",
    "winograd_conv2d",
]
