"""RUN_DIR/export: the trained network as the zoo and the Hub take it, with a model card.

The folder holds ``model.safetensors`` (fp16: half the download, no visible change),
``config.json`` (architecture, style metadata, hyper-parameters), ``style.jpg``,
``samples/*.jpg`` and ``README.md``, a model card made with ``huggingface_hub``'s
``ModelCard`` / ``ModelCardData``. It is written beside the final folder and renamed
into place, so an export is complete or absent.

``python -m train.export RUN_DIR [--step N]`` exports any checkpoint again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nst.cli import run_command
from nst.errors import NSTError
from nst.files import atomic_path
from nst.images import load_image, save_image, to_tensor
from nst.johnson import TransformerNet, load_transformer, save_transformer
from train import checkpoint as ckpt
from train import data
from train.config import TrainConfig

EXPORT_NAME = "export"
SAMPLE_SIZE = 512  # long side of the sample outputs in the card
STYLE_PREVIEW_SIZE = 512


def _find_checkpoint(run_dir: Path, step: int | None) -> ckpt.Checkpoint:
    checkpoints = ckpt.list_checkpoints(run_dir)
    if not checkpoints:
        raise NSTError(f"'{run_dir}' holds no checkpoint to export; train first.")
    if step is None:
        return checkpoints[-1]
    for found in checkpoints:
        if found.step == step:
            return found
    steps = ", ".join(str(c.step) for c in checkpoints)
    raise NSTError(f"'{run_dir}' has no checkpoint of step {step}; it has steps {steps}.")


def style_metadata(config: TrainConfig) -> dict[str, str]:
    """The ``style`` block of config.json (also read by the model card and publish)."""
    return {
        "id": config.style_id,
        "title": config.title,
        "painting": config.painting,
        "artist": config.artist,
        "year": config.year,
        "image": "style.jpg",
    }


def training_metadata(config: TrainConfig) -> dict[str, object]:
    """The hyper-parameters that define the model (paths and run mechanics left out)."""
    keys = (
        "iterations",
        "image_size",
        "photo_size",
        "batch_size",
        "style_size",
        "lr",
        "content_weight",
        "style_weight",
        "tv_weight",
        "content_layers",
        "style_layers",
        "seed",
        "dataset",
    )
    meta: dict[str, object] = {k: getattr(config, k) for k in keys}
    meta["loss_network"] = "vgg16"
    if config.init_from:
        # As given: an export folder's own name is just "export", which says nothing.
        meta["init_from"] = str(config.init_from)
    meta["optimizer"] = "adam"
    return meta


def warm_start_record(source_training: dict[str, Any]) -> dict[str, Any]:
    """What a warm-started net inherits: the steps and training time behind its start."""
    steps = source_training.get("total_steps", source_training.get("iterations", 0))
    return {
        "steps": int(steps or 0),
        "train_seconds": source_training.get("total_train_seconds"),  # None: not recorded
        "image_size": source_training.get("image_size"),
        "photo_size": source_training.get("photo_size"),
        "style_size": source_training.get("style_size"),
    }


def record_progress(training: dict[str, Any], step: int, train_seconds: float) -> None:
    """This run's steps and time, and the totals with the warm start's behind it."""
    prior = training.get("warm_start") or {}
    training["steps"] = step
    training["train_seconds"] = round(train_seconds, 1)
    training["total_steps"] = step + int(prior.get("steps") or 0)
    if prior.get("steps") and prior.get("train_seconds") is None:
        training["total_train_seconds"] = None  # the warm start's own time is unknown
    else:
        training["total_train_seconds"] = round(
            train_seconds + float(prior.get("train_seconds") or 0.0), 1
        )


@torch.no_grad()
def write_samples(model: TransformerNet, photos: Sequence[Path], folder: Path) -> list[str]:
    """Stylise the validation photos (whole, at SAMPLE_SIZE) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for path in photos:
        try:
            photo = to_tensor(load_image(path, long_side=SAMPLE_SIZE))
        except NSTError:
            continue
        name = f"samples/{path.stem}.jpg"
        save_image(model(photo), folder.parent / name)
        names.append(name)
    return names


def _format_seconds(seconds: float) -> str:
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


#: Licence ids the Hub accepts in a card's ``license:`` (a subset of
#: https://huggingface.co/docs/hub/repositories-licenses); anything else becomes ``other``
#: with a ``license_name``.
HUB_LICENSES = frozenset(
    {
        "apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "cc-by-4.0",
        "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "gpl-3.0", "lgpl-3.0",
        "openrail", "creativeml-openrail-m", "unlicense", "other",
    }
)  # fmt: skip
#: What people write that the Hub spells another way.
_LICENSE_ALIASES = {"public domain": "cc0-1.0", "public-domain": "cc0-1.0", "cc0": "cc0-1.0"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
TEMPLATE = Path(__file__).resolve().parent / "templates" / "model_card.md"
CARD_TAGS = ["style-transfer", "neural-style-transfer", "johnson2016", "pytorch", "safetensors"]


def hub_license(value: str | None) -> dict[str, str]:
    """``license`` (and ``license_name`` for ``other``) as the Hub's metadata wants them."""
    text = (value or "mit").strip()
    lowered = _LICENSE_ALIASES.get(text.lower(), text.lower())
    if lowered in HUB_LICENSES and lowered != "other":
        return {"license": lowered}
    slug = re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "custom"
    return {"license": "other", "license_name": slug}


def is_hub_id(value: object) -> bool:
    """``user/name``, not a local path (which the Hub cannot resolve)."""
    return (
        isinstance(value, str)
        and bool(_HUB_ID.match(value))
        and not value.startswith((".", "/", "~"))
        and not Path(value).exists()
    )


def card_metadata_problems(metadata: dict[str, Any]) -> list[str]:
    """What the Hub would reject or misread in a model card's metadata (empty = fine)."""
    problems = []
    license_id = metadata.get("license")
    if license_id not in HUB_LICENSES:
        problems.append(f"license {license_id!r} is not a Hub licence id")
    if license_id == "other" and not metadata.get("license_name"):
        problems.append("license 'other' needs a license_name")
    if "library_name" in metadata:
        problems.append(f"library_name {metadata['library_name']!r}: leave it out (use tags)")
    for key in ("datasets", "base_model"):
        values = metadata.get(key) or []
        for value in [values] if isinstance(values, str) else values:
            if not is_hub_id(value):
                problems.append(f"{key} {value!r} is not a Hub repo id (user/name)")
    return problems


def _shown_source(init_from: str) -> str:
    """A warm start as a card may name it: a Hub id or a relative path as given; of an
    absolute path only its last part (a card never shows where a machine keeps files)."""
    if is_hub_id(init_from) or not Path(init_from).is_absolute():
        return init_from
    return Path(init_from).name


def model_card(
    config: dict[str, Any],
    state: dict[str, Any],
    samples: Sequence[str],
    repo_id: str | None = None,
) -> Any:
    """The model card (a ``huggingface_hub.ModelCard`` from ``templates/model_card.md``)."""
    from huggingface_hub import ModelCard, ModelCardData

    run = state.get("config", {})
    style = config.get("style", {})
    training = config.get("training", {})
    dataset = run.get("dataset") or training.get("dataset") or "photos"
    init_from = training.get("init_from")
    card_data = ModelCardData(
        pipeline_tag="image-to-image",
        tags=CARD_TAGS,
        model_name=f"Johnson 2016 style network: {style.get('title', '')}",
        datasets=[dataset] if is_hub_id(dataset) else None,
        base_model=init_from if is_hub_id(init_from) else None,
        **hub_license(run.get("license")),
    )
    hyper = {
        **training,
        "width": config.get("width"),
        "residual_blocks": config.get("residual_blocks"),
        "photo_skip": config.get("photo_skip", False),
    }
    warm_start = f"`{_shown_source(init_from)}`" if init_from else None
    return ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE),
        title=style.get("title", "Style"),
        painting=style.get("painting") or style.get("title", ""),
        by=f" by {style['artist']}" if style.get("artist") else "",
        year=f" ({style['year']})" if style.get("year") else "",
        samples=[{"stem": Path(s).stem, "path": s} for s in samples],
        name=repo_id or "PATH_OR_REPO",
        hyper=[
            (k, json.dumps(v))
            for k, v in hyper.items()
            if k not in ("init_from", "warm_start") and v is not None  # None: not set
        ],
        dataset=dataset,
        hardware=state.get("hardware", "unknown"),
        precision=state.get("precision", "fp32"),
        train_time=_format_seconds(float(state.get("train_seconds", 0.0))),
        steps=state.get("step", "?"),
        warm_start=warm_start,
        prior_steps=(training.get("warm_start") or {}).get("steps"),
        total_steps=training.get("total_steps"),
        content_layers=training.get("content_layers"),
        style_layers=training.get("style_layers"),
    )


def export_run(run_dir: str | os.PathLike, step: int | None = None) -> Path:
    """Write ``RUN_DIR/export`` from the latest (or the given) checkpoint."""
    run_dir = Path(run_dir)
    found = _find_checkpoint(run_dir, step)
    model = load_transformer(found.path)
    final = run_dir / EXPORT_NAME
    with atomic_path(final) as tmp:
        _write_export(tmp, model, found)
    return final


def _write_export(tmp: Path, model: TransformerNet, found: ckpt.Checkpoint) -> None:
    """The export folder's content: fp16 weights, config, style image, samples, card."""
    run = found.state.get("config", {})
    training = model.config.training
    for key in ("lr_final", "max_minutes"):  # run settings a card should state too
        if run.get(key) is not None:
            training[key] = run[key]
    record_progress(training, found.step, float(found.state.get("train_seconds", 0)))
    save_transformer(model, tmp, half=True)
    style_path = Path(run.get("style", ""))
    if style_path.is_file():
        load_image(style_path, long_side=STYLE_PREVIEW_SIZE).save(tmp / "style.jpg", quality=92)
    photos: list[Path] = []
    try:
        if run.get("val_dir"):
            photos = data.list_images(run["val_dir"])[: run.get("val_count", 4)]
        elif run.get("data"):
            files = data.list_images(run["data"])
            photos = data.split_validation(files, run.get("val_count", 4))[1]
    except NSTError:
        photos = []  # the photos moved away since training: a card without samples
    samples = write_samples(model, photos, tmp / "samples")
    config = json.loads((tmp / "config.json").read_text())
    model_card(config, found.state, samples).save(tmp / "README.md")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m train.export", description="Export a run's checkpoint to RUN_DIR/export."
    )
    parser.add_argument("run_dir", help="the run folder (--out of python -m train)")
    parser.add_argument("--step", type=int, help="checkpoint step (default: the latest)")
    args = parser.parse_args(argv)
    return run_command(lambda: print(export_run(args.run_dir, args.step)) or 0)


if __name__ == "__main__":
    sys.exit(main())
