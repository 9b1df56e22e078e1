"""Optional CPU inference engines for the Johnson net: OpenVINO or onnxruntime running
the net's ONNX export (:mod:`nst.johnson.onnx_export`) instead of PyTorch.

The graph is the same function as ``TransformerNet`` in eval mode, instance norm over the
whole image included (tested: PSNR over 40 dB against fp32 PyTorch), so only the speed
differs. Engines run on the CPU and take the image whole; what ``plan`` would tile (over
the memory budget) stays on the PyTorch path, whose tiling keeps the statistics exact.
OpenVINO also runs bf16, which is what "auto" picks on CPUs with bf16 arithmetic
(AVX-512 BF16, AMX): faster than its fp32 there (docs/benchmarks.md), and over 40 dB from
fp32 PyTorch (tested).

Exporting takes seconds, so each network's ONNX bytes are kept in a disk cache under
``NST_CACHE_DIR`` (default ``$XDG_CACHE_HOME/nst`` or ``~/.cache/nst``), named by the
sha256 of its weights, config and the exporter's version; compiled engines are kept in
the process, a few networks at a time.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import queue
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from nst.errors import NSTError, UsageError
from nst.files import atomic_path
from nst.johnson import onnx_export
from nst.johnson.model import TransformerNet

ENGINES = ("auto", "torch", "openvino", "onnxruntime")
#: What "auto" tries, first installed wins: both beat our PyTorch path on the CPU, OpenVINO
#: by the most (benchmarks/bench_transformer.py --engines; numbers in docs/benchmarks.md).
AUTO_ORDER = ("openvino", "onnxruntime")
#: The precisions each engine runs (PyTorch's fp16 is for GPUs).
PRECISIONS = {
    "torch": ("fp32", "bf16", "fp16"),
    "openvino": ("fp32", "bf16"),
    "onnxruntime": ("fp32",),
}
#: The pip extra that installs each engine (pyproject.toml).
EXTRAS = {"openvino": "openvino", "onnxruntime": "onnx"}
#: Compiled engines kept per process (the app serves a handful of styles).
MAX_CACHED = 8
#: Part of the cache key: bump when the exported graph or the export settings change
#: (2: the rewritten graph of nst.johnson.inference_graph).
FORMAT_VERSION = 2


class Engine(Protocol):
    name: str

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float32 CPU in [0, 1] -> the stylised (B, 3, H, W), same form."""
        ...


# ----------------------------------------------------------------------------- choosing


@functools.cache
def missing(name: str) -> str | None:
    """Why engine ``name`` cannot run here (None when it can): its package or the ONNX
    exporter is not importable."""
    if name == "torch":
        return None
    module = {"openvino": "openvino", "onnxruntime": "onnxruntime"}[name]
    for package in (module, "onnxscript"):
        try:
            importlib.import_module(package)
        except ImportError as exc:
            return f"{package} is not installed ({exc}); pip install 'nst[{EXTRAS[name]}]'"
    return None


def check_engine(engine: str | None) -> str:
    """The engine asked for (None: ``NST_ENGINE``, default "auto"), checked by name."""
    engine = engine or os.environ.get("NST_ENGINE") or "auto"
    if engine not in ENGINES:
        raise UsageError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}.")
    return engine


def auto_engine() -> str:
    """The first installed engine of AUTO_ORDER, else "torch"."""
    return next((name for name in AUTO_ORDER if missing(name) is None), "torch")


def require(name: str) -> None:
    """Raise a clear error when engine ``name`` was asked for but cannot run."""
    reason = missing(name)
    if reason is not None:
        raise NSTError(f"The {name} engine is not available: {reason}. Or use --engine torch.")


# ----------------------------------------------------------------------------- the ONNX


_digests: weakref.WeakKeyDictionary[TransformerNet, tuple[tuple[int, ...], str]] = (
    weakref.WeakKeyDictionary()
)


def _versions(model: TransformerNet) -> tuple[int, ...]:
    """Every tensor's in-place version counter: it moves whenever a weight changes."""
    return tuple(t._version for t in (*model.parameters(), *model.buffers()))


def weights_digest(model: TransformerNet) -> str:
    """sha256 of what the exported graph depends on: the architecture, every tensor as
    float32 in a fixed order, the exporter's version. Memory format and dtype of the
    net in memory do not change it.

    Remembered per net until a weight changes: hashing every tensor costs more than a
    live webcam frame's whole budget.
    """
    versions = _versions(model)
    known = _digests.get(model)
    if known is not None and known[0] == versions:
        return known[1]
    digest = _hash_weights(model)
    _digests[model] = (versions, digest)
    return digest


def _hash_weights(model: TransformerNet) -> str:
    digest = hashlib.sha256()
    header = (
        f"nst-onnx-v{FORMAT_VERSION} opset{onnx_export.OPSET} torch{torch.__version__} "
        f"width{model.config.width} blocks{model.config.residual_blocks}"
        + (f" styles{model.config.num_styles}" if model.config.num_styles > 1 else "")
        + (" photo_skip" if model.config.photo_skip else "")
    )
    digest.update(header.encode())
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(f"{key}{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where exported graphs are kept (read at call time, like the Hub settings)."""
    if os.environ.get("NST_CACHE_DIR"):
        return Path(os.environ["NST_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nst"


def _cached_onnx(digest: str) -> Path:
    return cache_dir() / "onnx" / f"{digest}.onnx"


def onnx_model(model: TransformerNet, digest: str) -> bytes:
    """The ONNX bytes of ``model``: from the disk cache, else exported and cached."""
    path = _cached_onnx(digest)
    if path.is_file():
        return path.read_bytes()
    data = onnx_export.export_bytes(model)
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError:
        pass  # a read-only home (a container) only costs the next process an export
    return data


# ----------------------------------------------------------------------------- engines


def _threads() -> int:
    """The engines use as many threads as PyTorch would, so the choice of engine does
    not change how much of the machine a run takes."""
    return max(1, torch.get_num_threads())


class OpenVINOEngine:
    name = "openvino"

    def __init__(self, data: bytes, precision: str = "fp32"):
        import openvino as ov

        core = ov.Core()
        config = {
            # Always set: on CPUs with bf16 units OpenVINO would default to bf16.
            "INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16"}[precision],
            "INFERENCE_NUM_THREADS": _threads(),
            "PERFORMANCE_HINT": "LATENCY",
        }
        # Compiled once with dynamic shapes: any image size, no recompiling per size.
        self._compiled = core.compile_model(core.read_model(data, b""), "CPU", config)
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def run(self, x: torch.Tensor) -> torch.Tensor:
        # One infer request per concurrent caller (a request is not thread-safe), reused.
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self._compiled.create_infer_request()
        try:
            request.infer({0: _numpy(x)})
            out = np.array(request.get_output_tensor(0).data, copy=True)
        finally:
            self._idle.put(request)
        return torch.from_numpy(out)


class OnnxRuntimeEngine:
    name = "onnxruntime"

    def __init__(self, data: bytes, precision: str = "fp32"):
        import onnxruntime as ort

        if precision != "fp32":
            raise UsageError(f"The onnxruntime engine runs fp32 only, not {precision}.")
        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its warnings are about its internals
        self._session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def run(self, x: torch.Tensor) -> torch.Tensor:
        # InferenceSession.run is thread-safe.
        (out,) = self._session.run([onnx_export.OUTPUT_NAME], {onnx_export.INPUT_NAME: _numpy(x)})
        return torch.from_numpy(out)


_CLASSES = {"openvino": OpenVINOEngine, "onnxruntime": OnnxRuntimeEngine}


def _numpy(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())


#: An engine's key: weights digest, engine, precision, threads, and the style weights a
#: multi-style net's graph was specialised to (None for a one-style net).
_Key = tuple[str, str, str, int, tuple[float, ...] | None]
_engines: OrderedDict[_Key, Engine] = OrderedDict()
_key_locks: dict[_Key, threading.Lock] = {}
_registry_lock = threading.Lock()


def _graph(model: TransformerNet, digest: str, style: torch.Tensor | None) -> bytes:
    data = onnx_model(model, digest)
    return data if style is None else onnx_export.freeze_style(data, style)


def _build(
    model: TransformerNet, name: str, precision: str, digest: str, style: torch.Tensor | None
) -> Engine:
    try:
        return _CLASSES[name](_graph(model, digest, style), precision)
    except Exception:
        # A damaged cache file: export afresh once; a second failure is a real bug.
        path = _cached_onnx(digest)
        if not path.is_file():
            raise
        path.unlink(missing_ok=True)
        return _CLASSES[name](_graph(model, digest, style), precision)


def _style_key(style: torch.Tensor | None) -> tuple[float, ...] | None:
    """The style weights as a cache key: equal to 6 decimals is the same engine."""
    return None if style is None else tuple(round(float(v), 6) for v in style)


def get_engine(
    model: TransformerNet, name: str, precision: str = "fp32", style: torch.Tensor | None = None
) -> Engine:
    """A compiled ``name`` engine ("openvino" or "onnxruntime") for ``model``'s weights at
    ``precision``; built once per process and shared (concurrent callers wait for the
    first).

    A multi-style net's engine paints one style or blend, ``style`` (its weights per
    style, (S,); default the net's selected style): the net's one exported graph with the
    style frozen in (:func:`nst.johnson.onnx_export.freeze_style`). Compiling it takes a
    fraction of a second, so each style and blend gets its own, kept like any other.
    """
    require(name)
    if model.config.num_styles > 1 and style is None:
        style = model.selected_style
    if model.config.num_styles == 1:
        style = None
    key = (weights_digest(model), name, precision, _threads(), _style_key(style))
    with _registry_lock:
        if key in _engines:
            _engines.move_to_end(key)
            return _engines[key]
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:
        with _registry_lock:
            engine = _engines.get(key)
        if engine is None:
            engine = _build(model, name, precision, key[0], style)
            with _registry_lock:
                _engines[key] = engine
                while len(_engines) > MAX_CACHED:
                    old, _ = _engines.popitem(last=False)
                    _key_locks.pop(old, None)
    return engine


def clear_cache() -> None:
    """Forget the compiled engines (the disk cache of ONNX files is kept)."""
    with _registry_lock:
        _engines.clear()
        _key_locks.clear()
