"""The device a run uses, and what it ran on in words (printed by benchmarks, written in
model cards)."""

from __future__ import annotations

import functools
import os
import platform

import torch

from nst.errors import NSTError


def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: CPU flags that change which precision is fast; a benchmark line names those present.
FAST_PATH_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    """The CPU's feature flags (from /proc/cpuinfo on Linux; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def describe(device: torch.device | str, world_size: int = 1) -> str:
    """e.g. '1 x NVIDIA H100 80GB HBM3' or 'CPU: AMD EPYC (2 cores)'."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{world_size} x {torch.cuda.get_device_name(device)}"
    cores = os.cpu_count() or 1
    procs = f", {world_size} processes" if world_size > 1 else ""
    return f"CPU: {cpu_model()} ({cores} cores{procs})"


def environment(device: torch.device | str) -> dict[str, str]:
    """The facts a benchmark number needs beside it."""
    return {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "device": describe(device),
        "python": platform.python_version(),
    }


def summary(device: torch.device | str = "cpu") -> str:
    """One line for a benchmark's output: CPU, cores, threads, torch, device."""
    env = environment(device)
    capability = torch.backends.cpu.get_cpu_capability()
    extra = sorted(cpu_flags() & set(FAST_PATH_FLAGS))
    if extra:
        capability += ", " + ", ".join(extra)
    return (
        f"{env['cpu']}, {env['cores']} cores ({capability}), torch {env['torch']} "
        f"with {env['torch_threads']} threads, python {env['python']}; device {env['device']}"
    )


def resolve_device(device: torch.device | str | None) -> torch.device:
    """None or "auto": CUDA when there is a GPU, else the CPU. Refuses what cannot run here.

    The one device rule of the library (Gatys, Johnson inference and the CLIs).
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise NSTError(f"'{device}' is not a device. Use 'auto', 'cpu' or 'cuda'.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NSTError("CUDA was asked for but no CUDA GPU is available. Use --device cpu.")
    if dev.type not in ("cpu", "cuda"):
        raise NSTError(f"Device '{device}' is not supported. Use 'auto', 'cpu' or 'cuda'.")
    return dev


@functools.cache  # asked on every plan (each live frame); the CPU does not change
def native_bf16_cpu() -> bool:
    """True on CPUs with bf16 arithmetic (AVX-512 BF16, AMX), where bf16 convs run faster
    than fp32 (benchmarks/bench_train.py); elsewhere bf16 is emulated and slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@functools.cache
def amx_cpu() -> bool:
    """True on CPUs with AMX tile units for bf16 (Intel Sapphire Rapids and later). There
    oneDNN's bf16 convolutions run faster on channels_last tensors than on NCHW ones
    (benchmarks/bench_train.py), so training keeps its tensors channels_last."""
    return "amx_bf16" in cpu_flags()


def matmul_gflops(dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 5) -> float:
    """This machine's large-matmul rate right now, GFLOP/s (best of ``repeats``).

    The benchmarks print it as the machine's practical peak: on a shared VM it drifts by
    tens of percent, and every timing with it.
    """
    import time

    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9
