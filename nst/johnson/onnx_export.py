"""The Johnson net as an ONNX graph: any batch, height and width; what ``python -m zoo
export-onnx`` writes and what the optional inference engines (:mod:`nst.johnson.engines`)
run.

The graph takes ``image`` (batch, 3, height, width), float32 RGB in [0, 1], and returns
``stylised`` of the same shape, clamped to [0, 1], exactly as ``TransformerNet`` in eval
mode: the reflection padding of height and width to multiples of 4 (the two stride-2
stages must come back to size) and the crop back are inside the graph, so any size works,
and instance norm uses each image's statistics over the whole image.

By default the graph is :class:`nst.johnson.inference_graph.InferenceNet`: the same
function, with the upsampling convs as transposed convs and the last 9x9 conv on
space-to-depth blocks, which OpenVINO runs faster than the straightforward graph
(``rewrite=False``, kept as the benchmark's peer; docs/inference_graph/README.md).

Exported by ``torch.onnx.export(dynamo=True)`` (needs ``onnxscript``): the legacy
TorchScript exporter still runs in torch 2.14 but warns that it will be removed. The
dynamo exporter's lowest opset is 18, which onnxruntime (1.17+) and OpenVINO (2023.1+)
both load.
"""

from __future__ import annotations

import copy
import os
import threading
import warnings
from pathlib import Path

import torch
from torch import nn

from nst.errors import NSTError
from nst.files import atomic_path
from nst.johnson.model import GRID, TransformerNet, run_with_mix

OPSET = 18
INPUT_NAME = "image"
STYLE_INPUT_NAME = "style"  # multi-style nets: (S,) weights, one-hot or a blend
OUTPUT_NAME = "stylised"
#: Smallest side the graph is exported for: padded to 8, the 1/4-scale map is 2 px,
#: the least a 3x3 reflection padding accepts.
MIN_SIDE = 5

# torch.export traces with process-wide state; two threads exporting at once (two styles
# asked for at the same moment in the app) would interfere.
_export_lock = threading.Lock()


class ExportableNet(nn.Module):
    """``TransformerNet.forward`` in eval mode written so the exporter keeps the padding
    symbolic: ``pad_to_grid`` skips the pad when it is zero, a branch a trace would freeze
    at the example's size, while a pad of zero rows is a no-op the graph can always run."""

    def __init__(self, net: TransformerNet):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        h, w = image.shape[-2], image.shape[-1]
        pad_h, pad_w = (GRID - h % GRID) % GRID, (GRID - w % GRID) % GRID
        x = nn.functional.pad(image, (0, pad_w, 0, pad_h), mode="reflect")
        if style is None:
            y = self.net.decoder(self.net.residuals(self.net.encoder(x)))
        else:
            net = self.net
            y = run_with_mix(net.encoder, x, style)
            y = run_with_mix(net.decoder, run_with_mix(net.residuals, y, style), style)
        if self.net.config.photo_skip:
            y = y + x
        return y[..., :h, :w].clamp(0, 1)


def _require_exporter() -> None:
    try:
        import onnxscript  # noqa: F401  (torch.onnx's dynamo exporter is built on it)
    except ImportError as exc:
        raise NSTError(
            "ONNX export needs the onnxscript package: pip install 'nst[onnx]' "
            "(or pip install onnxscript onnx)."
        ) from exc


def export_bytes(model: TransformerNet, rewrite: bool = True) -> bytes:
    """The serialised ONNX model of ``model`` (never changed: a float32 CPU copy is
    exported), with dynamic batch, height and width: the engines' rewritten graph, or with
    ``rewrite=False`` the net's layers as they are."""
    _require_exporter()
    from nst.johnson.inference_graph import ONNX_TRANSLATIONS, InferenceNet

    net = copy.deepcopy(model).to("cpu", torch.float32, memory_format=torch.contiguous_format)
    net = net.eval().requires_grad_(False)
    graph = InferenceNet(net) if rewrite else ExportableNet(net).eval()
    example: tuple[torch.Tensor, ...] = (torch.rand(1, 3, 64, 64),)
    dims: tuple[dict[int, torch.export.Dim] | None, ...] = (
        {
            0: torch.export.Dim("batch", min=1),
            2: torch.export.Dim("height", min=MIN_SIDE),
            3: torch.export.Dim("width", min=MIN_SIDE),
        },
    )
    names = [INPUT_NAME]
    if model.config.num_styles > 1:
        # A multi-style net takes its style weights as a second input: one graph for all.
        example = (*example, net.style_weights(0))
        dims = (*dims, None)
        names.append(STYLE_INPUT_NAME)
    with _export_lock, warnings.catch_warnings():
        # The exporter warns about its own internals (deprecations in onnxscript);
        # nothing a user of this function could act on.
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            graph,
            example,
            dynamo=True,
            dynamic_shapes=dims,
            input_names=names,
            output_names=[OUTPUT_NAME],
            opset_version=OPSET,
            optimize=True,
            verbose=False,
            custom_translation_table=ONNX_TRANSLATIONS,
        )
    if program is None:  # only the legacy exporter returns None
        raise RuntimeError("torch.onnx.export(dynamo=True) returned no program")
    return program.model_proto.SerializeToString()


def freeze_style(data: bytes, style: torch.Tensor) -> bytes:
    """A multi-style graph with its ``style`` input replaced by the constant ``style``
    (S,): what an engine compiles for one style or blend.

    The engines fold the constant rows into each norm's scale and shift and fuse them with
    the normalisation, as they do for a one-style net; with the style as a run-time input
    they cannot, and OpenVINO runs such a graph about 1.5x slower (benchmarks/
    bench_multistyle.py). Freezing edits the exported graph, so one export still serves
    every style and blend.
    """
    import onnx
    from onnx import numpy_helper

    proto = onnx.load_from_string(data)
    inputs = {i.name: i for i in proto.graph.input}
    if STYLE_INPUT_NAME not in inputs:
        raise ValueError("the graph has no style input: it is a one-style net's")
    proto.graph.input.remove(inputs[STYLE_INPUT_NAME])
    values = style.detach().to("cpu", torch.float32).numpy()
    proto.graph.initializer.append(numpy_helper.from_array(values, STYLE_INPUT_NAME))
    return proto.SerializeToString()


def export_onnx(model: TransformerNet, path: str | os.PathLike) -> Path:
    """Write ``model`` as an ONNX file at ``path`` (atomically: never half a file)."""
    data = export_bytes(model)
    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target
