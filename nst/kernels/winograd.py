"""Winograd F(4x4, 3x3) and F(6x6, 3x3) convolution of frozen 3x3 kernels on CPU.

The kernel only: which layers of the loss network use it is decided in :mod:`nst.vgg`.

Why: one Gatys iteration is ~230 GFLOP of 3x3 stride-1 convolutions at 512x384, and on
a CPU oneDNN runs them as direct/GEMM convolutions close to the matmul peak; only
fewer FLOPs make it faster. Winograd minimal filtering (Lavin & Gray 2015) computes each
m x m output tile from an (m+2) x (m+2) input tile: per channel pair 36 multiplies for 16
outputs with m = 4 (instead of 144), 64 for 36 outputs with m = 6 (instead of 324), so
the channel GEMMs shrink 4x or 5x; the transforms around them are memory-bound.

How (all float32, everything in NHWC so channels are the GEMM's contiguous axis):

1. the weights are transformed once, ``U = G w G^T``, and cached (the network is frozen);
2. the input is copied, band by band of tile rows (cache-sized, see CHUNK_BYTES), into
   a zero-bordered buffer; the overlapping input tiles are gathered position-major and
   transformed, ``V = B^T d B``, by two small matmuls (rows, then columns);
3. one batched GEMM over the (m+2)^2 tile positions, ``M[p] = V[p] @ U[p]``
   ((tiles x C) @ (C x K)): this is where the time goes, and where the savings are;
4. the inverse transform ``Y = A^T M A`` (two small matmuls), then the m x m tiles are
   written into the output with the bias (and the ReLU, when fused), cropped to H x W.

Backward gives the input gradient only (the loss network's weights are frozen): the
input gradient of a 3x3 pad-1 convolution is a 3x3 pad-1 convolution of the output
gradient with the kernel flipped spatially and its in/out channels swapped, so it runs
through the same path with a second pre-transformed weight. Double backward is not
supported (it is not needed for Gatys or Johnson training).

Accuracy: fp32 F(4,3) and F(6,3) differ from direct convolution by ~1e-6..1e-5 of the
activations' scale per layer (see tests/test_winograd.py for the measured bounds).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn

from nst.errors import NSTError

TILES = (4, 6)  # output tile sides m supported: F(4x4, 3x3) and F(6x6, 3x3)
DEFAULT_TILE = 4
#: F(6,3) needs 21% fewer multiplies per output than F(4,3) and moves 21% less data, but
#: has 2.25x fewer tiles: on a small map its GEMMs get too few rows to run fast. The
#: threshold comes from `benchmarks/bench_gatys.py --layers` (numbers in docs/winograd/README.md).
MIN_TILES_FOR_F6 = 64


def tile_for(height: int, width: int) -> int:
    """The Winograd tile for a feature map of this size: 6 where it gives enough tiles."""
    return 6 if -(-height // 6) * -(-width // 6) >= MIN_TILES_FOR_F6 else 4


# Interpolation points of the Cook-Toom construction, plus the point at infinity.
# F(4,3): Lavin & Gray's 0, +-1, +-2. F(6,3): 0, +-1, +-2, +-1/2, the set NNPACK uses
# in fp32; larger tiles need larger points and lose accuracy fast.
_POINTS = {
    4: (0, 1, -1, 2, -2),
    6: (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2)),
}


def _solve_transpose_inverse(v: list[list[Fraction]]) -> list[list[Fraction]]:
    """(V^-1)^T by Gauss-Jordan elimination in exact arithmetic."""
    n = len(v)
    a = [row[:] + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(v)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if a[r][col] != 0)
        a[col], a[pivot] = a[pivot], a[col]
        p = a[col][col]
        a[col] = [x / p for x in a[col]]
        for r in range(n):
            if r != col and a[r][col] != 0:
                f = a[r][col]
                a[r] = [x - f * y for x, y in zip(a[r], a[col], strict=True)]
    inverse = [row[n:] for row in a]
    return [[inverse[j][i] for j in range(n)] for i in range(n)]


@functools.cache
def winograd_matrices(tile: int) -> tuple[tuple, tuple, tuple]:
    """(B^T, G, A^T) of F(tile x tile, 3x3), exact, as nested tuples of floats.

    Toom-Cook: correlating a 3-tap filter g with n = tile + 2 inputs d is the transpose
    of multiplying polynomials, so ``y = A^T [(G g) * (B^T d)]`` with A^T = V_m^T,
    G = V_r and B^T = V^-T, where V, V_r and V_m evaluate polynomials of degree n-1, 2
    and tile-1 at the points. Each row of B^T is then scaled to coprime integers and the
    matching row of G by the inverse, as Lavin & Gray write them (same product).
    """
    if tile not in _POINTS:
        raise NSTError(f"Winograd tile must be one of {TILES}, not {tile}.")
    points = [Fraction(p) for p in _POINTS[tile]]
    n = tile + 2

    def vandermonde(cols: int) -> list[list[Fraction]]:
        rows = [[p**k for k in range(cols)] for p in points]
        return rows + [[Fraction(int(k == cols - 1)) for k in range(cols)]]  # infinity

    bt = _solve_transpose_inverse(vandermonde(n))
    g = vandermonde(3)
    at = [list(col) for col in zip(*vandermonde(tile), strict=True)]
    for j in range(n):
        denominators = math.lcm(*(x.denominator for x in bt[j]))
        numerators = math.gcd(*(int(x * denominators) for x in bt[j]))
        scale = Fraction(denominators, numerators)
        bt[j] = [x * scale for x in bt[j]]
        g[j] = [x / scale for x in g[j]]

    def floats(m: list[list[Fraction]]) -> tuple:
        return tuple(tuple(float(x) for x in row) for row in m)

    return floats(bt), floats(g), floats(at)


@functools.cache
def _matrix(name: str, tile: int, device: torch.device) -> torch.Tensor:
    """B^T ("BT") or A^T ("AT") of F(tile, 3) as a tensor on ``device``, made once."""
    bt, _, at = winograd_matrices(tile)
    return torch.tensor(bt if name == "BT" else at, device=device)


def _transform(matrix: torch.Tensor, tiles: torch.Tensor) -> torch.Tensor:
    """``(matrix x matrix) @ tiles`` for (alpha^2, N) tiles, as two small matmuls.

    Separable (rows, then columns): 2 * alpha multiply-adds per element instead of
    alpha^2 for the Kronecker product (faster on cache-sized bands: docs/winograd/README.md).
    """
    rows, alpha, n = matrix.shape[0], matrix.shape[1], tiles.shape[1]
    half = torch.mm(matrix, tiles.view(alpha, -1)).view(rows, alpha, n)
    return torch.matmul(matrix, half).view(rows * rows, n)


def transform_weight(weight: torch.Tensor, tile: int = DEFAULT_TILE) -> torch.Tensor:
    """(K, C, 3, 3) -> (alpha^2, C, K): ``G w G^T`` per channel pair, computed in float64.

    The layout is the right operand of the per-position GEMM ``V[p] @ U[p]``.
    """
    if weight.dim() != 4 or weight.shape[-2:] != (3, 3):
        raise NSTError(f"Winograd needs a (K, C, 3, 3) weight, not {tuple(weight.shape)}.")
    alpha = tile + 2
    g = torch.tensor(winograd_matrices(tile)[1], dtype=torch.float64, device=weight.device)
    u = torch.einsum("ia,kcab,jb->ijck", g, weight.detach().double(), g)
    return u.reshape(alpha * alpha, weight.shape[1], weight.shape[0]).float().contiguous()


def input_grad_weight(weight: torch.Tensor) -> torch.Tensor:
    """The kernel whose 3x3 pad-1 convolution of grad_output is grad_input."""
    return weight.detach().flip(2, 3).transpose(0, 1)


#: Bytes of tiles + transformed tiles + products held at once. Cache-sized bands make the
#: memory-bound transforms faster than whole-image passes and stay below glibc's 32 MiB
#: mmap threshold (buffers are recycled instead of page-faulted in afresh on each call);
#: they also keep batch-8 training from allocating GBs of tiles. The size was the best of
#: several measured (docs/winograd/README.md). A band is never smaller than twice the transformed
#: weight, which every band reads again (37 MiB for a 512-channel layer).
CHUNK_BYTES = 16 << 20


def _tile_bytes(c: int, k: int, tile: int) -> int:
    alpha = tile + 2
    return 4 * (alpha * alpha * (2 * c + k) + tile * tile * k)


def _convolve_tiles(
    padded: torch.Tensor,
    u: torch.Tensor,
    bias: torch.Tensor | None,
    out: torch.Tensor,
    relu: bool,
) -> None:
    """Winograd on whole tiles: ``padded`` (b, m*n+2, m*tw+2, C) -> ``out`` (b, n, m, tw, m, K)."""
    b, n, tile, tw, _, k = out.shape
    alpha = tile + 2
    c = padded.shape[3]
    sb, sh, sw, _ = padded.stride()
    # overlapping alpha x alpha tiles with stride m, gathered position-major: (alpha^2, T*C)
    tiles = padded.as_strided(
        (alpha, alpha, b, n, tw, c), (sh, sw, sb, tile * sh, tile * sw, 1)
    ).reshape(alpha * alpha, b * n * tw * c)
    v = _transform(_matrix("BT", tile, padded.device), tiles)  # (alpha^2, T*C)
    del tiles
    m = torch.bmm(v.view(alpha * alpha, b * n * tw, c), u)  # the channel GEMMs: (a^2, T, K)
    del v
    y = _transform(_matrix("AT", tile, padded.device), m.view(alpha * alpha, -1))
    y = y.view(tile, tile, b, n, tw, k).permute(2, 3, 0, 4, 1, 5)
    if bias is not None:
        torch.add(y, bias, out=out)
    else:
        out.copy_(y)
    if relu:  # while the band is still in cache
        out.clamp_(min=0)


def winograd_nhwc(
    x: torch.Tensor,
    u: torch.Tensor,
    bias: torch.Tensor | None,
    tile: int = DEFAULT_TILE,
    relu: bool = False,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """3x3 stride-1 pad-1 convolution of NHWC ``x`` (B, H, W, C) with transformed weights
    ``u`` (alpha^2, C, K); returns NHWC (B, H, W, K), contiguous.

    ``relu`` applies a ReLU to the output; ``mask`` (NHWC like ``x``) zeroes ``x`` where
    it is <= 0 first (the backward of a fused ReLU). Both work band by band, in cache.
    Small layers go in one block (the GEMMs see every tile, so the large transformed weight
    of a deep layer is read once); large ones in bands of tile rows of at most CHUNK_BYTES.
    """
    b, h, w, c = x.shape
    k = u.shape[2]
    th, tw = -(-h // tile), -(-w // tile)
    wp = tile * tw + 2
    out = x.new_empty(b, th, tile, tw, tile, k)
    row_bytes = tw * _tile_bytes(c, k, tile)
    budget = max(CHUNK_BYTES, 2 * u.numel() * u.element_size())
    if b * th * row_bytes <= budget:
        images, rows = [slice(0, b)], th
    else:
        images, rows = [slice(i, i + 1) for i in range(b)], max(1, budget // row_bytes)
    band = x.new_empty(images[0].stop - images[0].start, tile * rows + 2, wp, c)
    band[:, :, 0].zero_()  # left halo and right halo + fill: never written below
    band[:, :, w + 1 :].zero_()
    for image in images:
        for r0 in range(0, th, rows):
            n = min(rows, th - r0)
            top = tile * r0 - 1  # image row of the band's first row (-1: the top halo)
            lo, hi = max(top, 0), min(top + tile * n + 2, h)
            part = band[:, : tile * n + 2]
            part[:, : lo - top].zero_()
            part[:, hi - top :].zero_()
            inner = part[:, lo - top : hi - top, 1 : w + 1]
            inner.copy_(x[image, lo:hi])
            if mask is not None:
                inner.mul_(mask[image, lo:hi] > 0)
            _convolve_tiles(part, u, bias, out[image, r0 : r0 + n], relu)
    out = out.view(b, tile * th, tile * tw, k)
    if tile * th != h or tile * tw != w:
        out = out[:, :h, :w].contiguous()
    return out


def _to_nhwc(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) in any memory format -> NHWC view (a copy only when not channels_last)."""
    return x.permute(0, 2, 3, 1)


def _from_nhwc(y: torch.Tensor) -> torch.Tensor:
    """NHWC contiguous -> (B, K, H, W) channels_last view."""
    return y.permute(0, 3, 1, 2)


class _WinogradConvFunction(torch.autograd.Function):
    """conv2d(x, w, b, padding=1), optionally followed by a ReLU, by Winograd; backward:
    input gradient only."""

    @staticmethod
    def forward(ctx, x, u_forward, u_backward, bias, tile, relu):  # type: ignore[override]
        ctx.u_backward = u_backward  # the transformed flipped kernel; x itself is not needed
        ctx.tile = tile
        y = _from_nhwc(winograd_nhwc(_to_nhwc(x), u_forward, bias, tile, relu))
        if relu:  # the ReLU's backward needs to know where the output is positive
            ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        grad_input = None
        if ctx.needs_input_grad[0]:
            mask = _to_nhwc(ctx.saved_tensors[0]) if ctx.saved_tensors else None
            grad = winograd_nhwc(_to_nhwc(grad_output), ctx.u_backward, None, ctx.tile, mask=mask)
            grad_input = _from_nhwc(grad)
        return grad_input, None, None, None, None, None


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
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    tile: int = DEFAULT_TILE,
    relu: bool = False,
) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, padding=1)`` (then ReLU if ``relu``) for a frozen 3x3
    kernel, by Winograd F(tile, 3).

    Differentiable w.r.t. ``x`` only; transforms the weight on every call (modules cache it).
    """
    _check(x, weight)
    return _WinogradConvFunction.apply(
        x,
        transform_weight(weight, tile),
        transform_weight(input_grad_weight(weight), tile),
        bias,
        tile,
        relu,
    )


@dataclass
class _Transformed:
    key: tuple
    forward: torch.Tensor
    backward: torch.Tensor


class Conv3x3(nn.Conv2d):
    """A frozen 3x3 pad-1 ``nn.Conv2d`` that runs by Winograd on CPU float32 inputs.

    Same parameters and state_dict as ``nn.Conv2d``. It falls back to the parent's direct
    convolution when Winograd is off, on CUDA (cuDNN is faster there), for other dtypes,
    and when the weight requires grad (Winograd gives no weight gradient). ``tile`` is
    the output tile side of F(tile, 3), 4 or 6; None picks it per call from the size of
    the map (``tile_for``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        winograd: bool = False,
        tile: int | None = None,
    ):
        super().__init__(in_channels, out_channels, 3, padding=1)
        if tile is not None and tile not in TILES:
            raise NSTError(f"Winograd tile must be one of {TILES}, not {tile}.")
        self.winograd = winograd
        self.tile = tile
        self._transformed: _Transformed | None = None

    def _weights(self, tile: int) -> _Transformed:
        """Transformed weights for ``tile``, cached for one tile at a time: the weights
        of a 512-channel layer take 75 MB (F(4,3)) to 134 MB (F(6,3)) for both passes."""
        w = self.weight
        key = (w.data_ptr(), w._version, w.device, tuple(w.shape), tile)
        if self._transformed is None or self._transformed.key != key:
            self._transformed = None  # free the old tile's weights before making new ones
            self._transformed = _Transformed(
                key,
                transform_weight(w, tile),
                transform_weight(input_grad_weight(w), tile),
            )
        return self._transformed

    def uses_winograd(self, x: torch.Tensor) -> bool:
        return (
            self.winograd
            and x.device.type == "cpu"
            and x.dtype == torch.float32
            and not (self.weight.requires_grad and torch.is_grad_enabled())
        )

    def forward(self, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
        """The convolution; with ``relu`` also the ReLU after it (fused under Winograd:
        no separate pass over the output, forward or backward)."""
        if not self.uses_winograd(x):
            y = super().forward(x)
            # In place: the convolution's backward needs its input, not its output.
            return torch.relu_(y) if relu else y
        tile = self.tile or tile_for(x.shape[-2], x.shape[-1])
        t = self._weights(tile)
        return _WinogradConvFunction.apply(x, t.forward, t.backward, self.bias.detach(), tile, relu)

    def extra_repr(self) -> str:
        tile = f", tile={self.tile or 'by size'}" if self.winograd else ""
        return super().extra_repr() + f", winograd={self.winograd}{tile}"


__all__ = [
    "Conv3x3",
    "tile_for",
    "transform_weight",
    "winograd_conv2d",
]
