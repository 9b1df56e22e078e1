"""Johnson et al. 2016: a feed-forward network per style, stylising in one pass.

- :mod:`nst.johnson.model`: the network, its config, safetensors save and load;
- :mod:`nst.johnson.fast`: the inference path (fused instance norm, controllable statistics);
- :mod:`nst.johnson.tiling`: exact tiled inference for images over a memory budget;
- :mod:`nst.johnson.stylize`: the public entry points (device, precision, tiling, strength);
- :mod:`nst.johnson.onnx_export`, :mod:`nst.johnson.engines`: the net as ONNX, and the
  optional OpenVINO / onnxruntime engines that run it on the CPU.
"""

from nst.johnson.model import TransformerConfig, TransformerNet, load_transformer, save_transformer
from nst.johnson.stylize import plan, stylize, stylize_tensor

__all__ = [
    "TransformerConfig",
    "TransformerNet",
    "load_transformer",
    "plan",
    "save_transformer",
    "stylize",
    "stylize_tensor",
]
