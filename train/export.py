"""RUN_DIR/export: the trained network as the zoo and the Hub take it, with a model card.

The folder holds ``model.safetensors`` (fp16: half the download, no visible change),
``config.json`` (architecture, style metadata, hyper-parameters), ``style.jpg``,
``samples/*.jpg`` and ``README.md``, the model card (:mod:`nst.johnson.card`, filled from
``config.json``, whose ``training`` record holds the steps run, the time, the machine and
the licence). It is written beside the final folder and renamed into place, so an export
is complete or absent.

``python -m train.export RUN_DIR [--step N]`` exports any checkpoint again.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nst.cli import run_command
from nst.errors import NSTError
from nst.files import atomic_path, file_sha256
from nst.hub import WEIGHTS_NAME
from nst.images import load_image, save_image, to_tensor
from nst.johnson import TransformerNet, load_transformer, save_transformer
from nst.johnson.adapter import save_adapter
from nst.johnson.card import write_card
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


def style_metadata(config: TrainConfig) -> list[dict[str, str]]:
    """One ``style`` block of config.json per painting (also read by the model card and
    publish): a one-style run's from --title, --artist, ...; a multi-style run's from the
    files' names, its images under ``styles/``."""
    ids = config.style_ids
    if len(ids) == 1:
        return [
            {
                "id": ids[0],
                "title": config.title,
                "painting": config.painting,
                "artist": config.artist,
                "year": config.year,
                "image": "style.jpg",
            }
        ]
    entries = []
    for style_id in ids:
        title = style_id.replace("_", " ").title()
        entries.append(
            {"id": style_id, "title": title, "painting": title, "artist": "", "year": "",
             "image": f"styles/{style_id}.jpg"}
        )  # fmt: skip
    return entries


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
    meta["license"] = config.license  # of the trained weights: the card's licence
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
    ids = model.config.style_ids
    names = []
    for path in photos:
        try:
            photo = to_tensor(load_image(path, long_side=SAMPLE_SIZE))
        except NSTError:
            continue
        for index, style_id in enumerate(ids):
            # A multi-style net: one folder of samples per style.
            where = "samples" if len(ids) == 1 else f"samples/{style_id}"
            name = f"{where}/{path.stem}.jpg"
            (folder.parent / name).parent.mkdir(parents=True, exist_ok=True)
            save_image(model(photo, style=index), folder.parent / name)
            names.append(name)
    return names


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
    # Run settings a card states too.
    for key in ("lr_final", "lr_warmup", "max_minutes", "style_repeat", "style_scale"):
        if run.get(key):  # a warm-up of 0 steps is none
            training[key] = run[key]
    record_progress(training, found.step, float(found.state.get("train_seconds", 0)))
    for key in ("hardware", "precision"):  # what the card states of the machine
        if found.state.get(key):
            training[key] = found.state[key]
    save_transformer(model, tmp, half=True)
    _write_style_images(tmp, model, run)
    photos: list[Path] = []
    try:
        if run.get("val_dir"):
            photos = data.list_images(run["val_dir"])[: run.get("val_count", 4)]
        elif run.get("data"):
            files = data.list_images(run["data"])
            photos = data.split_validation(files, run.get("val_count", 4))[1]
    except NSTError:
        photos = []  # the photos moved away since training: a card without samples
    if run.get("add_style") and run.get("init_from"):
        # The new style alone, pinned to its base: publishing it needs no copy of the base.
        save_adapter(model, tmp / ADAPTER_FOLDER, base_pin(Path(run["init_from"])))
    write_samples(model, photos, tmp / "samples")
    write_card(tmp)


#: The export's subfolder holding an added style's adapter (nst.johnson.adapter).
ADAPTER_FOLDER = "adapter"


def base_pin(init_from: Path) -> dict[str, str]:
    """What an adapter pins of the net it was trained on: its weights file's sha256."""
    weights = init_from / WEIGHTS_NAME if init_from.is_dir() else init_from
    return {"sha256": file_sha256(weights), "file": weights.name}


def _write_style_images(folder: Path, model: TransformerNet, run: dict[str, Any]) -> None:
    """Each painting, downscaled, where its style entry's ``image`` says."""
    paths = [run["add_style"]] if run.get("add_style") else run.get("style", "")
    paths = [paths] if isinstance(paths, str) else list(paths)
    entries = model.config.styles or [model.config.style]
    # The run's paintings are the last rows (all of them, or the one --add-style added).
    for entry, path in zip(entries[len(entries) - len(paths) :], paths, strict=True):
        source = Path(path)
        if source.is_file() and entry.get("image"):
            (folder / entry["image"]).parent.mkdir(parents=True, exist_ok=True)
            image = load_image(source, long_side=STYLE_PREVIEW_SIZE)
            image.save(folder / entry["image"], quality=92)


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
