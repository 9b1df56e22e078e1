"""The style catalogue: ``zoo/catalogue.json`` = ``{"styles": [entry, ...]}``.

Each entry says what a style is (title, painting, artist, year, licence, preview) and
where its weights live: bundled in the repo (``{"bundled": "models/<id>"}``, a folder
relative to the catalogue) or on the Hub (``{"repo_id", "filename", "revision"}`` with
a pinned 40-hex commit, so a style cannot change under a user's feet). ``sha256`` of
``model.safetensors`` is checked before any load, for both kinds.

A style of a multi-style net (conditional instance norm: many paintings share one set of
convolutions) adds ``"style": "<id in the net's config.json>"`` to its weights; every entry
of one net names the same file and sha256, so the net is fetched and built once and each
entry is a view of it that paints its own row. A style added to such a net later is an
adapter (:mod:`nst.johnson.adapter`: only its own rows): its weights name
``adapter.safetensors`` (bundled: a folder holding it and ``adapter_config.json``), its
``style``, and ``"base": "<catalogue id of a style of the base net>"``; ``sha256`` is the
adapter file's, and the base entry pins the base.

``evaluation`` (optional) holds the style network's judged losses against Gatys-100, as
its model card shows them (:func:`nst.johnson.card.model_card`).

Paths in an entry are relative to the catalogue file's folder, so a catalogue and its
previews/models can live anywhere (``NST_ZOO_CATALOGUE`` points the zoo at another one).
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nst.errors import NSTError
from nst.files import atomic_path, atomic_write_text, file_sha256
from nst.hub import REPO_ID_PATTERN, WEIGHTS_NAME
from nst.johnson.adapter import ADAPTER_WEIGHTS

ZOO_DIR = Path(__file__).resolve().parent
DEFAULT_CATALOGUE = ZOO_DIR / "catalogue.json"
PREVIEW_LONG_SIDE = 512

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
COMMIT_PATTERN = re.compile(r"^[0-9a-f]{40}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
REQUIRED_FIELDS = ("id", "title", "painting", "artist", "year", "license", "preview", "weights")

_write_lock = threading.Lock()


@dataclass(frozen=True)
class StyleEntry:
    """One catalogue entry; ``preview_path`` is absolute, ``preview`` as written."""

    id: str
    title: str
    painting: str
    artist: str
    year: int | str
    license: str
    preview: str
    preview_path: Path
    weights: dict[str, str]
    sha256: str
    training: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)  # judged losses (model card)
    base_dir: Path = ZOO_DIR  # the folder the relative paths start from

    @property
    def is_bundled(self) -> bool:
        return "bundled" in self.weights

    @property
    def bundled_path(self) -> Path | None:
        """Folder holding ``model.safetensors`` + ``config.json`` for bundled styles."""
        return self.base_dir / self.weights["bundled"] if self.is_bundled else None

    @property
    def net_style(self) -> str | None:
        """The style id inside a multi-style net's config.json; None for a one-style net."""
        return self.weights.get("style")

    @property
    def base(self) -> str | None:
        """For an adapter (a style added to a multi-style net): the base's catalogue id."""
        return self.weights.get("base")

    @property
    def repo_id(self) -> str | None:
        return self.weights.get("repo_id")

    @property
    def filename(self) -> str:
        """The weights file whose sha256 the entry pins: the net's, or an adapter's."""
        default = ADAPTER_WEIGHTS if self.base is not None else WEIGHTS_NAME
        return self.weights.get("filename", default)

    @property
    def revision(self) -> str | None:
        return self.weights.get("revision")

    @property
    def source(self) -> str:
        """Where the weights are, in words (for ``info`` and error messages)."""
        if self.is_bundled:
            return f"bundled: {self.bundled_path}"
        return f"hub: {self.repo_id}/{self.filename} @ {self.revision}"

    def to_dict(self) -> dict[str, Any]:
        evaluation = {"evaluation": dict(self.evaluation)} if self.evaluation else {}
        return {
            "id": self.id,
            "title": self.title,
            "painting": self.painting,
            "artist": self.artist,
            "year": self.year,
            "license": self.license,
            "preview": self.preview,
            "weights": dict(self.weights),
            "sha256": self.sha256,
            "training": dict(self.training),
            **evaluation,
        }


def catalogue_path(catalogue: str | os.PathLike | None = None) -> Path:
    """The catalogue to use: the argument, else ``NST_ZOO_CATALOGUE``, else the bundled one."""
    if catalogue is not None:
        return Path(catalogue)
    env = os.environ.get("NST_ZOO_CATALOGUE")
    return Path(env) if env else DEFAULT_CATALOGUE


def _check_weights(style: str, weights: Any) -> dict[str, str]:
    if not isinstance(weights, dict):
        raise NSTError(f"Style '{style}': 'weights' must be an object, not {weights!r}.")
    row, base = weights.get("style"), weights.get("base")
    if row is not None and not (isinstance(row, str) and row):
        raise NSTError(f"Style '{style}': weights' 'style' names a style of the net ({row!r}).")
    if base is not None and not (isinstance(base, str) and ID_PATTERN.match(base) and row):
        raise NSTError(
            f"Style '{style}': an adapter's weights name its 'style' and, as 'base', the "
            f"catalogue id of a style of its base net (got {base!r})."
        )
    picked = {k: v for k, v in (("style", row), ("base", base)) if v is not None}
    weights = {k: v for k, v in weights.items() if k not in ("style", "base")}
    if "bundled" in weights:
        if set(weights) != {"bundled"} or not isinstance(weights["bundled"], str):
            raise NSTError(
                f'Style \'{style}\': bundled weights are written {{"bundled": "models/{style}"}}.'
            )
        if Path(weights["bundled"]).is_absolute() or ".." in Path(weights["bundled"]).parts:
            raise NSTError(
                f"Style '{style}': the bundled folder must be relative to the catalogue, "
                f"inside it (got '{weights['bundled']}')."
            )
        return {**weights, **picked}
    repo_id, filename = weights.get("repo_id"), weights.get("filename", WEIGHTS_NAME)
    revision = weights.get("revision")
    if not (isinstance(repo_id, str) and REPO_ID_PATTERN.match(repo_id)):
        raise NSTError(
            f"Style '{style}': weights need either 'bundled' or a Hub 'repo_id' like "
            f"'user/name' (got {repo_id!r})."
        )
    if not (isinstance(filename, str) and filename.endswith(".safetensors")):
        raise NSTError(
            f"Style '{style}': the weights file must be a .safetensors file (got {filename!r}); "
            "pickles (.bin/.pth) are not loaded because they can run code."
        )
    if not (isinstance(revision, str) and COMMIT_PATTERN.match(revision)):
        raise NSTError(
            f"Style '{style}': a Hub entry must pin 'revision' to a 40-hex commit id "
            f"(got {revision!r}); find it with `HfApi().model_info('{repo_id}').sha`."
        )
    return {"repo_id": repo_id, "filename": filename, "revision": revision, **picked}


def entry_from_dict(data: Any, base_dir: Path) -> StyleEntry:
    """Validate one entry's structure (not the files it names) and build a StyleEntry."""
    if not isinstance(data, dict):
        raise NSTError(f"A catalogue entry must be an object, not {data!r}.")
    style = data.get("id")
    if not (isinstance(style, str) and ID_PATTERN.match(style)):
        raise NSTError(
            f"Catalogue entry id {style!r} is not valid: use lower-case letters, digits, "
            "'_' and '-' (e.g. 'starry_night')."
        )
    missing = [k for k in REQUIRED_FIELDS if k not in data]
    if missing:
        raise NSTError(f"Style '{style}': the catalogue entry lacks {', '.join(missing)}.")
    sha = data.get("sha256")
    if not (isinstance(sha, str) and SHA256_PATTERN.match(sha)):
        raise NSTError(
            f"Style '{style}': 'sha256' must be the 64-hex sha256 of {WEIGHTS_NAME} (got {sha!r})."
        )
    training = data.get("training", {})
    if not isinstance(training, dict):
        raise NSTError(f"Style '{style}': 'training' must be an object of settings.")
    evaluation = data.get("evaluation", {})
    if not isinstance(evaluation, dict):
        raise NSTError(f"Style '{style}': 'evaluation' must be an object (the judged losses).")
    preview = str(data["preview"])
    return StyleEntry(
        id=style,
        title=str(data["title"]),
        painting=str(data["painting"]),
        artist=str(data["artist"]),
        year=data["year"],
        license=str(data["license"]),
        preview=preview,
        preview_path=(base_dir / preview).resolve(),
        weights=_check_weights(style, data["weights"]),
        sha256=sha,
        training=training,
        evaluation=evaluation,
        base_dir=base_dir,
    )


#: Parsed catalogues by resolved path: (inode, mtime_ns, size) of the file, and its entries.
#: An atomic rewrite makes a new inode, so even a same-size rewrite within the clock's
#: granularity is seen.
_parsed: dict[Path, tuple[tuple[int, int, int], tuple[StyleEntry, ...]]] = {}
_parsed_lock = threading.Lock()


def read_catalogue(catalogue: str | os.PathLike | None = None) -> list[StyleEntry]:
    """All entries of a catalogue; a missing file is an empty catalogue.

    Parsed and checked once, and again only when the file changes (its inode, modification
    time or size), so a lookup per request costs a ``stat``.
    """
    path = catalogue_path(catalogue)
    try:
        info = path.stat()
    except FileNotFoundError:
        return []
    key, stamp = path.resolve(), (info.st_ino, info.st_mtime_ns, info.st_size)
    with _parsed_lock:
        cached = _parsed.get(key)
    if cached is not None and cached[0] == stamp:
        return list(cached[1])
    entries = _parse_catalogue(path)
    with _parsed_lock:
        _parsed[key] = (stamp, tuple(entries))
    return entries


def _parse_catalogue(path: Path) -> list[StyleEntry]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NSTError(f"The style catalogue '{path}' is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict) or not isinstance(data.get("styles"), list):
        raise NSTError(f"The style catalogue '{path}' must be {{\"styles\": [...]}}.")
    entries = [entry_from_dict(item, path.resolve().parent) for item in data["styles"]]
    seen: set[str] = set()
    for entry in entries:
        if entry.id in seen:
            raise NSTError(f"The style catalogue '{path}' lists '{entry.id}' twice.")
        seen.add(entry.id)
    return entries


def write_preview(source_image: str | os.PathLike, target: Path) -> Path:
    """Write a downscaled JPEG (long side 512 px) of the painting: the app's style image.

    A JPEG that is already small enough (an export's ``styles/<id>.jpg``) is copied byte for
    byte: a second encoding would drift from the painting the net was trained and is judged
    on (tests/test_zoo_styles.py measures the style against this file)."""
    from nst.images import load_image

    image = load_image(source_image)
    with atomic_path(target) as tmp:
        if _is_small_jpeg(Path(source_image), image.size):
            Path(tmp).write_bytes(Path(source_image).read_bytes())
        else:
            image.thumbnail((PREVIEW_LONG_SIDE, PREVIEW_LONG_SIDE))
            image.save(tmp, format="JPEG", quality=90)
    return target


def _is_small_jpeg(path: Path, size: tuple[int, int]) -> bool:
    """A plain RGB JPEG, upright, within the preview size: safe to serve as it is."""
    from PIL import Image

    with Image.open(path) as original:
        upright = original.getexif().get(0x0112, 1) == 1  # EXIF orientation tag
        plain = original.format == "JPEG" and original.mode == "RGB" and upright
        return plain and original.size == size and max(size) <= PREVIEW_LONG_SIDE


def _write_json_atomically(path: Path, data: dict[str, Any]) -> None:
    # readers see the old or the new catalogue, never half of one
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def add_style(
    entry: dict[str, Any],
    catalogue: str | os.PathLike | None = None,
    *,
    source_image: str | os.PathLike | None = None,
) -> None:
    """Add ``entry`` to the catalogue (replacing one with the same id, in its place) and write
    it atomically.

    With ``source_image`` (the painting), a downscaled preview is written to
    ``previews/<id>.jpg`` next to the catalogue and ``entry["preview"]`` is set to it.
    For bundled weights a missing ``sha256`` is computed; a given one must match.
    """
    path = catalogue_path(catalogue)
    base_dir = path.resolve().parent
    entry = dict(entry)
    style = entry.get("id")
    if not (isinstance(style, str) and ID_PATTERN.match(style)):
        raise NSTError(f"Style id {style!r} is not valid: use e.g. 'starry_night'.")
    if source_image is not None:
        write_preview(source_image, base_dir / "previews" / f"{style}.jpg")
        entry["preview"] = f"previews/{style}.jpg"
    weights = entry.get("weights")
    if isinstance(weights, dict) and isinstance(weights.get("bundled"), str):
        name = ADAPTER_WEIGHTS if weights.get("base") else WEIGHTS_NAME
        model_file = base_dir / weights["bundled"] / name
        if not model_file.is_file():
            raise NSTError(
                f"Style '{style}': no {name} in '{model_file.parent}'. Export the model "
                "there first (TransformerNet.save_pretrained or python -m train.export)."
            )
        actual = file_sha256(model_file)
        entry.setdefault("sha256", actual)
        if entry["sha256"] != actual:
            raise NSTError(
                f"Style '{style}': sha256 {entry['sha256']} does not match the bundled "
                f"{model_file} ({actual})."
            )
    checked = entry_from_dict(entry, base_dir)
    if not checked.preview_path.is_file():
        raise NSTError(
            f"Style '{style}': the preview '{checked.preview_path}' does not exist; pass "
            "source_image= (the painting) to have one written."
        )
    with _write_lock:
        styles = [e.to_dict() for e in read_catalogue(path)]
        ids = [s["id"] for s in styles]
        # A replaced style keeps its place: the list's order is the app's order.
        if style in ids:
            styles[ids.index(style)] = checked.to_dict()
        else:
            styles.append(checked.to_dict())
        _write_json_atomically(path, {"styles": styles})


def repin(folder: str | os.PathLike, catalogue: str | os.PathLike | None = None) -> int:
    """Give every entry whose weights are the bundled net in ``folder`` (not an adapter on
    it) that file's current sha256: after the net was replaced in place. Returns how many
    entries changed."""
    path = catalogue_path(catalogue)
    base_dir = path.resolve().parent
    where = Path(folder).resolve().relative_to(base_dir).as_posix()
    sha = file_sha256(Path(folder) / WEIGHTS_NAME)
    with _write_lock:
        data = json.loads(path.read_text(encoding="utf-8"))
        changed = 0
        for entry in data.get("styles", []):
            weights = entry.get("weights") or {}
            if weights.get("bundled") == where and not weights.get("base"):
                changed += entry.get("sha256") != sha
                entry["sha256"] = sha
        if changed:
            _write_json_atomically(path, data)
    return changed
