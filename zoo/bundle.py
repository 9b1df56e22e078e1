"""Bundle a trained export into a catalogue: ``python -m zoo add EXPORT``.

The export's weights, ``config.json`` and paintings are copied to ``models/<name>/`` next to
the catalogue, each chosen style gets its own entry (a multi-style net's entries name its
rows), and the folder's model card is rewritten. Replacing a bundled net re-pins every entry
that already names it, so the catalogue never points at weights it cannot verify.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nst.errors import NSTError
from nst.files import atomic_write_text
from nst.hub import CONFIG_NAME, WEIGHTS_NAME
from nst.johnson.card import write_card
from zoo.catalogue import ID_PATTERN, add_style, catalogue_path, read_catalogue, repin
from zoo.loader import card_evaluation

#: A style's fields in config.json (the model card shows them) and the catalogue.
CONFIG_FIELDS = ("title", "painting", "artist", "year")
#: The fields an --info file may give a style: those, and the painting's licence.
INFO_FIELDS = (*CONFIG_FIELDS, "license")


def bundle_export(
    export: str | os.PathLike,
    name: str,
    *,
    styles: Sequence[str] | None = None,
    info: Mapping[str, Mapping[str, Any]] | None = None,
    evaluation: Mapping[str, Mapping[str, Any]] | None = None,
    training: Mapping[str, Any] | None = None,
    license: str | None = None,
    catalogue: str | os.PathLike | None = None,
) -> list[str]:
    """Copy ``export`` to ``models/<name>`` beside the catalogue and list ``styles`` (default:
    every style of the net). ``info`` (a table that may hold other paintings too) maps a
    style id to its title, painting, artist, year
    and licence (``license``: the licence of a painting it gives none for); ``evaluation`` to
    its judged record; ``training`` overrides fields of the net's training record (e.g. the
    dataset's name). Returns the ids listed."""
    source = Path(export)
    config = _read_config(source)
    multi = bool(config.get("styles"))
    styles_of_net = config["styles"] if multi else [config["style"]]
    ids = [str(style.get("id", "")) for style in styles_of_net]
    chosen = list(styles) if styles else ids
    unknown = sorted({s for s in chosen if s not in ids})
    if unknown:
        raise NSTError(
            f"'{source}' has no style {', '.join(unknown)}; its styles: {', '.join(ids)}."
        )
    if not ID_PATTERN.match(name):
        raise NSTError(f"The name {name!r} is not valid: use e.g. 'paintings' or 'my_style'.")
    given = {i: {"license": license, **(info or {}).get(i, {})} for i in ids}
    for style in styles_of_net:
        style.update({k: v for k, v in given[style["id"]].items() if k in CONFIG_FIELDS})
    if training:
        config["training"] = {**config.get("training", {}), **training}
    listed = [style for style in styles_of_net if style["id"] in chosen]
    entries = [_entry(style, config, name, multi, given[style["id"]]) for style in listed]
    for entry in entries:
        if evaluation and entry["id"] in evaluation:
            entry["evaluation"] = dict(evaluation[entry["id"]])
    book = catalogue_path(catalogue)
    folder = book.resolve().parent / "models" / name
    _check_entries_kept(book, folder, ids)
    _copy_export(source, folder, config, styles_of_net)
    for entry, style in zip(entries, listed, strict=True):
        add_style(entry, book, source_image=folder / _image_of(style))
    repin(folder, book)
    write_card(folder, evaluation=card_evaluation(folder, book))
    return chosen


def _image_of(style: Mapping[str, Any]) -> str:
    """The painting's path in an export: a multi-style net's ``styles/<id>.jpg`` (its
    config says), a one-style net's ``style.jpg``."""
    return str(style.get("image") or "style.jpg")


def _read_config(source: Path) -> dict[str, Any]:
    if not (source / WEIGHTS_NAME).is_file() or not (source / CONFIG_NAME).is_file():
        raise NSTError(
            f"'{source}' is not an exported net: it needs {WEIGHTS_NAME} and {CONFIG_NAME} "
            "(python -m train.export RUN writes them)."
        )
    config = json.loads((source / CONFIG_NAME).read_text(encoding="utf-8"))
    if "styles" not in config and "style" not in config:
        raise NSTError(f"'{source / CONFIG_NAME}' names no style.")
    return config


def _check_entries_kept(book: Path, folder: Path, ids: Sequence[str]) -> None:
    """Refuse to replace a bundled net that catalogue entries use with one that lacks their
    rows: those entries would break."""
    if not book.is_file():
        return
    for entry in read_catalogue(book):
        if entry.bundled_path is None or entry.bundled_path.resolve() != folder.resolve():
            continue
        if entry.base is None and (entry.net_style or entry.id) not in ids:
            raise NSTError(
                f"Style '{entry.id}' in '{book}' uses '{folder}', and the new net has no "
                f"row '{entry.net_style or entry.id}'. Bundle it under another --name."
            )


def _copy_export(
    source: Path, folder: Path, config: dict[str, Any], entries: list[dict[str, Any]]
) -> None:
    """The weights, config.json and each style's painting; a bundled net holds nothing else
    (its samples stay in the run). Written beside ``folder`` first and swapped in, so a
    missing file leaves the bundled net as it was (``source`` may be ``folder`` itself)."""
    missing = [_image_of(s) for s in entries if not (source / _image_of(s)).is_file()]
    if missing:
        raise NSTError(f"'{source}' lacks the paintings its config names: {', '.join(missing)}.")
    staging = folder.with_name(f".{folder.name}.new")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    shutil.copyfile(source / WEIGHTS_NAME, staging / WEIGHTS_NAME)
    for style in entries:
        image = _image_of(style)
        (staging / image).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / image, staging / image)
    text = json.dumps(config, indent=2, ensure_ascii=False) + "\n"
    atomic_write_text(staging / CONFIG_NAME, text)
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)


def _entry(
    style: Mapping[str, Any],
    config: Mapping[str, Any],
    name: str,
    multi: bool,
    given: Mapping[str, Any],
) -> dict[str, Any]:
    """The catalogue entry of one style of the bundled net ``name``."""
    style_id = str(style["id"])
    if not given.get("license"):
        raise NSTError(
            f"Style '{style_id}': give the painting's licence (e.g. \"public domain\") in "
            "--info, or --license for every style."
        )
    weights = {"bundled": f"models/{name}"}
    if multi:
        weights["style"] = style_id
    entry: dict[str, Any] = {
        "id": style_id,
        **{k: str(given.get(k) or style.get(k, "")) for k in INFO_FIELDS},
        "weights": weights,
        "training": dict(config.get("training", {})),
    }
    return entry


def read_info(path: str | os.PathLike | None) -> dict[str, dict[str, Any]]:
    """--info's JSON: style id -> {title, painting, artist, year, license}."""
    if not path:
        return {}
    info = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(info, dict) or not all(isinstance(v, dict) for v in info.values()):
        raise NSTError(f"--info '{path}' must map each style id to an object of fields.")
    return info
