"""The style zoo: a style name (or a Hub repo id, or a folder) -> a ready Johnson net.

``zoo.load("starry_night")`` looks the name up in the catalogue (``zoo/catalogue.json``),
takes the weights from the repo (bundled) or from the Hugging Face Hub (pinned commit,
cached under ``HF_HOME``), checks their sha256, rebuilds the network with
``TransformerNet.from_pretrained`` (strict, safetensors only), and keeps it in memory: the
next call, from any thread, gets the same network without touching disk or network again.

Also accepted: ``"user/name"`` or ``"user/name@revision"`` (any Hub repo holding
``model.safetensors`` + ``config.json``, the layout ``TransformerNet.save_pretrained`` and
``push_to_hub`` write) and a local folder with those two files.

The styles of one multi-style net are listed one by one and share one network;
``zoo.load_blend({"a": 0.7, "b": 0.3})`` paints a blend of them.
"""

from zoo.catalogue import StyleEntry, add_style
from zoo.loader import (
    card_evaluation,
    clear_cache,
    download,
    get_style,
    list_styles,
    load,
    load_blend,
    verify,
)

__all__ = [
    "StyleEntry",
    "add_style",
    "card_evaluation",
    "clear_cache",
    "download",
    "get_style",
    "list_styles",
    "load",
    "load_blend",
    "verify",
]
