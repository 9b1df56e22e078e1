"""What the benchmarks share: the one place they name the data folder, and how they name
the machine they ran on.

The benchmarks run as scripts (``python benchmarks/bench_gatys.py``); each puts the
repository root on ``sys.path`` and imports this as ``benchmarks.common``. The data folder
is ``NST_SHARED``, by default the folder ``shared`` beside the repository (``weights/``,
``data/content``, ``data/styles``), as for the tests and the studies in docs/.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from nst.hardware import summary

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NST_SHARED", ROOT.parent / "shared"))
VGG16 = SHARED / "weights" / "vgg16_imagenet_features.safetensors"
CONTENT = SHARED / "data" / "content"
STYLES = SHARED / "data" / "styles"


def machine(*extra: str) -> str:
    """The machine a benchmark ran on, for its output: the GPU if there is one, else the
    CPU, with torch and python (:func:`nst.hardware.summary`), then ``extra`` (versions of
    what else the benchmark depends on)."""
    return ", ".join([summary("cuda" if torch.cuda.is_available() else "cpu"), *extra])
