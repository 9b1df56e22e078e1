"""Arithmetic precision: which one a computation runs in, decided in one place.

bf16 halves the bytes of every tensor, but it is fast only where the hardware has bf16
arithmetic: CPUs with AVX-512 BF16 or AMX (:func:`nst.hardware.native_bf16_cpu`) and GPUs
with bf16 units. Elsewhere it is emulated and slower than fp32, so "auto" never picks it.

- Autocast (Gatys' loss network, training): "fp32", or "bf16" autocast with the targets,
  losses and optimiser state kept fp32. "auto" is bf16 where it is native; for Gatys' loss
  network only on CPUs, because on GPUs it has not been measured (fp32 there).
- Johnson inference: "fp32", "bf16" or "fp16". "auto" is fp16 on GPUs (3 more mantissa bits
  than bf16, and instance-normalised activations stay far from fp16's range limit) and on
  CPUs the fastest the inference engine runs: bf16 where native, else fp32.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nst.errors import UsageError
from nst.hardware import native_bf16_cpu

#: What an autocast computation takes (``--precision`` of ``nst gatys`` and of training).
AUTOCAST_PRECISIONS = ("auto", "fp32", "bf16")
#: What Johnson inference takes (``--precision`` of ``nst stylize``).
INFERENCE_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def check(precision: str, allowed: Sequence[str] = AUTOCAST_PRECISIONS) -> str:
    """``precision`` if it is one of ``allowed``, else a UsageError naming them."""
    if precision not in allowed:
        raise UsageError(f"precision must be one of {', '.join(allowed)}, not {precision!r}.")
    return precision


def native_bf16(device: torch.device) -> bool:
    """True where bf16 arithmetic is native on ``device`` (so faster than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and native_bf16_cpu()


def bf16_autocast(precision: str, device: torch.device, *, on_gpus: bool = True) -> bool:
    """Whether a computation asked to run in ``precision`` runs in bf16 autocast.
    ``on_gpus=False``: "auto" keeps fp32 on GPUs (where bf16 was not measured)."""
    if check(precision) != "auto":
        return precision == "bf16"
    if device.type == "cuda" and not on_gpus:
        return False
    return native_bf16(device)


def inference_precision(
    precision: str, device: torch.device, runs: Sequence[str] = ("fp32", "bf16", "fp16")
) -> str:
    """``precision`` checked, "auto" resolved for ``device`` and an engine that ``runs``
    these precisions."""
    if check(precision, INFERENCE_PRECISIONS) != "auto":
        return precision
    if device.type == "cuda":
        return "fp16"
    return "bf16" if "bf16" in runs and native_bf16(device) else "fp32"
