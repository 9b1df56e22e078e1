"""The app's settings, and this machine's defaults: on a 2-core CPU Gatys must finish a
picture in well under a minute, on a GPU it can run to the end."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

import zoo
from nst.errors import NSTError
from nst.hardware import native_bf16_cpu
from zoo.catalogue import StyleEntry, catalogue_path

#: CC0 / public-domain photos for the example rows (absent from an installed package).
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: Photos the example rows prefer, each shown with another style.
EXAMPLE_PHOTOS = ("golden_gate", "dog", "cat_chelsea", "astronaut")
#: The Gatys column's default size on CPUs with bf16 arithmetic (AVX-512 BF16, AMX).
BF16_CPU_GATYS_SIZE = 512


@dataclass(frozen=True)
class AppConfig:
    """Everything the page, its queue and its server are built from; see :func:`default_config`."""

    catalogue: Path | None = None  # a zoo catalogue.json; None = the zoo's own
    device: str = "cpu"
    johnson_size: int = 1024  # default output long side (px) of the Johnson column
    # CPU defaults, for a finished 384 px picture within 45 s of pressing Stylise on a 2-core
    # CPU (docs/app_gatys/ measures it): one scale, and the run ends at gatys_seconds with
    # the picture as it is then, whatever the iterations say.
    gatys_size: int = 384  # default output long side (px) of the Gatys column
    gatys_iterations: int = 200  # default iterations (loss evaluations), an upper bound
    gatys_seconds: float | None = 40.0  # time budget of one Gatys run; None = no limit
    gatys_scales: int = 1  # a time budget must not end in a coarse stage
    # The start. "content": from the photo, Gatys reaches a given loss sooner than from the
    # zoo nets' output (docs/gatys_init/); "johnson" is one click away.
    gatys_init: str = "content"
    gatys_report_every: int = 1  # iterations between progress reports (the stop granularity)
    max_size: int = 2048  # the largest long side a person may ask for
    max_gatys_size: int = 768
    max_iterations: int = 1000
    johnson_concurrency: int = 2  # Johnson runs at once: one decodes/encodes, one computes
    live_size: int = 320  # default long side (px) of the live webcam frames
    max_live_size: int = 640
    live_concurrency: int = 1  # webcam streams at once: each wants the whole CPU
    live_seconds: int = 120  # one stream's time before it must be restarted (fair turns)
    gatys_concurrency: int = 1  # Gatys runs at once: one on a CPU, it owns the machine
    queue_size: int = 64  # requests waiting at most; more get "queue full" at once
    max_file_size: str = "20mb"  # uploads larger than this are refused by the server
    # Gradio's temp folder holds every upload and result: every `sweep_every` seconds its
    # files older than `temp_age` seconds go (webapp.tempfolder), so a result stays an hour.
    sweep_every: int = 600
    temp_age: int = 3600
    vgg_weights: str | None = None  # None: NST_VGG_WEIGHTS, then the Hub
    examples: tuple[tuple[str, str], ...] = ()  # (photo path, style id) rows
    gatys_overrides: dict[str, Any] = field(default_factory=dict)  # extra GatysConfig fields


def installed_styles(catalogue: Path | None) -> tuple[list[StyleEntry], str | None]:
    """The catalogue's styles, or none and a message saying why (the page still works)."""
    try:
        styles = zoo.list_styles(catalogue)
    except NSTError as exc:
        return [], f"The style catalogue could not be read: {exc}"
    if not styles:
        where = catalogue_path(catalogue)
        return [], (
            f"No trained styles are installed ({where} lists none), so the Johnson column "
            "has nothing to run. Upload a style image below: Gatys works with any painting. "
            "Train a Johnson model with the `train` package to add one."
        )
    return list(styles), None


def example_rows(styles: list[StyleEntry]) -> tuple[tuple[str, str], ...]:
    """(photo, style id) rows from ``examples/``, each photo with another style."""
    if not styles or not EXAMPLES.is_dir():
        return ()
    photos = sorted(p for p in EXAMPLES.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    chosen = [p for p in photos if p.stem in EXAMPLE_PHOTOS] or photos[:4]
    return tuple((str(p), styles[i % len(styles)].id) for i, p in enumerate(chosen))


def default_config(catalogue: Path | None = None) -> AppConfig:
    """Settings for this machine and the catalogue (None: the zoo's, or NST_ZOO_CATALOGUE)."""
    if torch.cuda.is_available():
        config = AppConfig(
            device="cuda",
            gatys_size=512,
            gatys_iterations=300,
            gatys_seconds=None,
            gatys_scales=1,
            gatys_report_every=5,
            max_size=4096,
            max_gatys_size=1024,
            johnson_concurrency=4,
            gatys_concurrency=1,
            live_concurrency=2,
        )
    elif native_bf16_cpu():
        # Gatys runs its loss network in bf16 here, faster at the same loss
        # (docs/gatys_precision/): the same time budget finishes a bigger picture.
        config = AppConfig(gatys_size=BF16_CPU_GATYS_SIZE)
    else:
        config = AppConfig()
    styles, _ = installed_styles(catalogue)
    return replace(config, catalogue=catalogue, examples=example_rows(styles))
