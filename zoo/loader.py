"""Loading a style: resolve a name (catalogue id, Hub repo id or folder) to weights, check
them, build the network once per process and device, and share it between callers."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nst import hub
from nst.errors import NSTError
from nst.files import file_sha256
from nst.hub import REPO_ID_PATTERN, WEIGHTS_NAME
from nst.johnson import TransformerNet
from zoo.catalogue import StyleEntry, catalogue_path, read_catalogue

_models: dict[tuple[Any, ...], TransformerNet] = {}
_key_locks: dict[tuple[Any, ...], threading.Lock] = {}
_registry_lock = threading.Lock()


def list_styles(catalogue: str | os.PathLike | None = None) -> list[StyleEntry]:
    """The catalogue's styles, in catalogue order."""
    return read_catalogue(catalogue)


def get_style(style_id: str, catalogue: str | os.PathLike | None = None) -> StyleEntry:
    entries = read_catalogue(catalogue)
    for entry in entries:
        if entry.id == style_id:
            return entry
    known = ", ".join(e.id for e in entries) or "none yet"
    raise NSTError(
        f"Unknown style '{style_id}'. Known styles: {known}. Run `python -m zoo list`, or "
        "pass a Hub repo id ('user/name') or a folder with model.safetensors + config.json."
    )


def card_evaluation(
    folder: str | os.PathLike, catalogue: str | os.PathLike | None = None
) -> dict[str, Any] | None:
    """The judged losses a bundled net's model card shows: its catalogue entry's, or for a
    multi-style net ``{"styles": {id: record}}`` over the entries that name its rows."""
    folder = Path(folder).resolve()
    entries = [
        e for e in read_catalogue(catalogue)
        if e.bundled_path is not None and e.bundled_path.resolve() == folder and e.evaluation
    ]  # fmt: skip
    if not entries:
        return None
    if entries[0].net_style is None:
        return dict(entries[0].evaluation)
    return {"styles": {e.net_style: dict(e.evaluation) for e in entries}}


def clear_cache() -> None:
    """Forget the in-process models (the Hub's disk cache is untouched)."""
    with _registry_lock:
        _models.clear()
        _key_locks.clear()


@dataclass(frozen=True)
class _Source:
    """Where a name's weights come from, resolved without touching the network."""

    label: str  # how errors name it: "Style 'x'", "Hub repo 'u/n'", "Folder '...'"
    entry: StyleEntry | None = None
    folder: Path | None = None
    repo_id: str | None = None
    revision: str = "main"
    catalogue: Path | None = None  # the catalogue the entry is from

    def key(self, device: str) -> tuple[Any, ...]:
        if self.entry is not None:
            # The weights file, not the entry: the styles of one multi-style net share it.
            e = self.entry
            weights = tuple(sorted((k, v) for k, v in e.weights.items() if k != "style"))
            return ("style", str(e.base_dir), e.sha256, weights, device)
        if self.folder is not None:
            weights = self.folder / WEIGHTS_NAME
            stamp = weights.stat().st_mtime_ns if weights.exists() else 0
            return ("folder", str(self.folder), stamp, device)
        return ("hub", self.repo_id, self.revision, device)


def _resolve(name: str | os.PathLike, catalogue: str | os.PathLike | None) -> _Source:
    if isinstance(name, os.PathLike):
        return _folder_source(Path(name))
    if not isinstance(name, str) or not name.strip():
        raise NSTError(f"A style name is needed, not {name!r}. Run `python -m zoo list`.")
    name = name.strip()
    entries = {e.id: e for e in read_catalogue(catalogue)}
    if name in entries:
        return _Source(f"Style '{name}'", entry=entries[name], catalogue=catalogue_path(catalogue))
    path = Path(name).expanduser()
    if path.exists():
        return _folder_source(path)
    repo_id, _, revision = name.partition("@")
    if REPO_ID_PATTERN.match(repo_id) and not name.startswith((".", "/", "~")):
        return _Source(f"Hub repo '{repo_id}'", repo_id=repo_id, revision=revision or "main")
    get_style(name, catalogue)  # raises the unknown-style error with the known names
    raise AssertionError("unreachable")


def _folder_source(path: Path) -> _Source:
    folder = path if path.is_dir() else path.parent
    if not (folder / WEIGHTS_NAME).is_file():
        raise NSTError(
            f"Folder '{path}' holds no {WEIGHTS_NAME}: a zoo model folder needs "
            f"{WEIGHTS_NAME} + config.json (as TransformerNet.save_pretrained writes)."
        )
    return _Source(f"Folder '{folder}'", folder=folder.resolve())


def _load_from_entry(entry: StyleEntry, device: str, progress: bool) -> TransformerNet:
    subject = f"Style '{entry.id}'"
    if not entry.is_bundled:
        assert entry.repo_id is not None and entry.revision is not None
        return TransformerNet.from_pretrained(
            entry.repo_id,
            revision=entry.revision,
            filename=entry.filename,
            sha256=entry.sha256,
            progress=progress,
            subject=subject,
            map_location=device,
        )
    folder = entry.bundled_path
    assert folder is not None
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise NSTError(
            f"{subject}: the bundled model '{weights}' is missing. Restore it from git "
            "(git checkout -- zoo/models) or remove the entry from the catalogue."
        )
    actual = file_sha256(weights)
    if actual != entry.sha256:
        raise NSTError(
            f"{subject}: the bundled '{weights}' has sha256 {actual[:12]}…, the catalogue "
            f"expects {entry.sha256[:12]}…. Restore the file from git or re-add the style "
            "with zoo.add_style."
        )
    return _load_folder(subject, folder, device)


def _load_folder(subject: str, folder: Path, device: str) -> TransformerNet:
    try:
        return TransformerNet.from_pretrained(folder, map_location=device)
    except NSTError as exc:
        raise NSTError(f"{subject}: {exc}") from exc


def _load_adapter(
    entry: StyleEntry, catalogue: Path | None, device: str, progress: bool
) -> TransformerNet:
    """The base net of an adapter entry with the adapter's style appended; both pinned
    (the base by its own entry's sha256, the adapter by this entry's)."""
    from nst.johnson.adapter import ADAPTER_CONFIG, ADAPTER_WEIGHTS, apply_adapter

    subject = f"Style '{entry.id}'"
    assert entry.base is not None
    base_entry = get_style(entry.base, catalogue)
    if base_entry.base is not None:
        raise NSTError(f"{subject}: its base '{entry.base}' is itself an adapter.")
    base = load(base_entry.id, device, catalogue=catalogue, progress=progress)
    if entry.is_bundled:
        assert entry.bundled_path is not None
        folder = entry.bundled_path
        weights = folder / ADAPTER_WEIGHTS
        if not weights.is_file() or file_sha256(weights) != entry.sha256:
            raise NSTError(f"{subject}: '{weights}' is missing or not the pinned file.")
    else:
        assert entry.repo_id is not None and entry.revision is not None
        weights = hub.download_file(
            subject, entry.repo_id, entry.filename, entry.revision, progress=progress,
            sha256=entry.sha256,
        )  # fmt: skip
        hub.download_file(subject, entry.repo_id, ADAPTER_CONFIG, entry.revision, progress=False)
        folder = weights.parent
    try:
        return apply_adapter(base, base_entry.sha256, folder)
    except NSTError as exc:
        raise NSTError(f"{subject}: {exc}") from exc


def _load_source(source: _Source, device: str, progress: bool) -> TransformerNet:
    if source.entry is not None and source.entry.base is not None:
        return _load_adapter(source.entry, source.catalogue, device, progress)
    if source.entry is not None:
        return _load_from_entry(source.entry, device, progress)
    if source.folder is not None:
        return _load_folder(source.label, source.folder, device)
    assert source.repo_id is not None
    return TransformerNet.from_pretrained(
        source.repo_id,
        revision=source.revision,
        progress=progress,
        subject=source.label,
        map_location=device,
    )


def load(
    name_or_repo_or_folder: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    catalogue: str | os.PathLike | None = None,
    progress: bool = True,
) -> TransformerNet:
    """A ready :class:`TransformerNet` (eval mode) for a style id, Hub repo id or folder.

    Loaded once per process and device: concurrent callers wait for the first one and
    share its network (treat it as read-only). Errors are :class:`NSTError`.
    """
    source = _resolve(name_or_repo_or_folder, catalogue)
    key = source.key(str(torch.device(device)))
    net = _load_shared(source, key, device, progress)
    row = source.entry.net_style if source.entry is not None else None
    if row is None:
        return net
    return _view(net, key, row, source.label)


def load_blend(
    shares: Mapping[str, float],
    device: str | torch.device = "cpu",
    *,
    catalogue: str | os.PathLike | None = None,
    progress: bool = True,
) -> TransformerNet:
    """A net that paints a blend of catalogue styles, e.g. ``{"starry_night": 0.7,
    "water_lilies": 0.3}``: a view of one multi-style net (the convex combination of its
    rows). That is the net the styles all belong to or, when some of them ship as nets of
    their own, the first multi-style net (theirs first, then the catalogue's) that has a row
    for each of them: its own version of those paintings. Otherwise they cannot blend."""
    if not shares:
        raise NSTError("A blend needs at least one style.")
    sources = [_resolve(style_id, catalogue) for style_id in shares]
    dev = str(torch.device(device))
    tried = set()
    for style_id, candidate in _blend_candidates(shares, sources, catalogue):
        if not _is_row(candidate) or candidate.key(dev) in tried:
            continue
        tried.add(candidate.key(dev))
        rows = {
            (source.entry.net_style if source.key(dev) == candidate.key(dev) else other): w
            for other, source, w in zip(shares, sources, shares.values(), strict=True)
        }  # fmt: skip
        net = load(style_id, device, catalogue=catalogue, progress=progress)
        if all(row in net.config.style_ids for row in rows):
            return net.with_style({row: float(w) for row, w in rows.items()})
    raise NSTError(
        f"{', '.join(repr(k) for k in shares)} belong to different networks, and no "
        "multi-style network has a row for each; only styles of one multi-style network "
        "blend (`python -m zoo info ID` names a style's network)."
    )


def _blend_candidates(
    shares: Mapping[str, float], sources: list[_Source], catalogue: str | os.PathLike | None
) -> Iterator[tuple[str, _Source]]:
    """The blend's own styles, then the catalogue's; lazily, so a blend of one net's rows
    never reads the catalogue again."""
    yield from zip(shares, sources, strict=True)
    yield from ((e.id, _Source(f"Style '{e.id}'", e)) for e in read_catalogue(catalogue))


def _is_row(source: _Source) -> bool:
    """Whether ``source`` is a style of a multi-style net (a row of it)."""
    return source.entry is not None and source.entry.net_style is not None


def _view(net: TransformerNet, key: tuple[Any, ...], row: str, subject: str) -> TransformerNet:
    """The one view per process of ``net`` that paints its style ``row``."""
    if row not in net.config.style_ids:
        raise NSTError(
            f"{subject}: the net has no style '{row}' (it has {', '.join(net.config.style_ids)})."
        )
    view_key = (*key, "view", row)
    with _registry_lock:
        view = _models.get(view_key)
        if view is None:
            view = _models[view_key] = net.with_style(row)
    return view


def _load_shared(
    source: _Source, key: tuple[Any, ...], device: str | torch.device, progress: bool
) -> TransformerNet:
    with _registry_lock:
        model = _models.get(key)
        if model is not None:
            return model
        lock = _key_locks.setdefault(key, threading.Lock())
    with lock:  # one download/load per key; others wait here, then find it cached
        model = _models.get(key)
        if model is None:
            model = _load_source(source, str(torch.device(device)), progress)
            # Placed as inference runs it (eval, fp32, channels-last), so stylize uses
            # this network as it is instead of copying it on every request.
            model.requires_grad_(False).to(memory_format=torch.channels_last)
            with _registry_lock:
                _models[key] = model
    return model


def download(
    name: str,
    *,
    catalogue: str | os.PathLike | None = None,
    progress: bool = True,
    tqdm_class: type | None = None,
) -> Path:
    """Fetch (or check) a style's weights into the cache without building the net."""
    source = _resolve(name, catalogue)
    if source.entry is not None and not source.entry.is_bundled:
        e = source.entry
        assert e.repo_id is not None and e.revision is not None
        return hub.fetch_model(
            source.label,
            e.repo_id,
            e.revision,
            e.filename,
            sha256=e.sha256,
            progress=progress,
            tqdm_class=tqdm_class,
        )
    if source.entry is not None:
        _load_source(source, "cpu", progress)  # checks sha256 and shapes
        assert source.entry.bundled_path is not None
        return source.entry.bundled_path / source.entry.filename
    if source.folder is not None:
        return source.folder / WEIGHTS_NAME
    assert source.repo_id is not None
    return hub.fetch_model(
        source.label, source.repo_id, source.revision, progress=progress, tqdm_class=tqdm_class
    )


@dataclass(frozen=True)
class VerifyResult:
    id: str
    ok: bool
    status: str  # "ok", "not downloaded", or what is wrong


def verify(catalogue: str | os.PathLike | None = None) -> list[VerifyResult]:
    """Check every style that is on disk (bundled or cached) against its sha256, and that
    its preview exists; never touches the network."""
    results = []
    for entry in read_catalogue(catalogue):
        problems = []
        if not entry.preview_path.is_file():
            problems.append(f"preview missing ({entry.preview_path})")
        if entry.is_bundled:
            assert entry.bundled_path is not None
            weights: Path | None = entry.bundled_path / entry.filename
            if not weights.is_file():
                problems.append(f"bundled weights missing ({weights})")
                weights = None
        else:
            assert entry.repo_id is not None and entry.revision is not None
            weights = hub.cached_file(entry.repo_id, entry.revision, entry.filename)
        if weights is not None and file_sha256(weights) != entry.sha256:
            problems.append(f"sha256 mismatch ({weights})")
        if problems:
            results.append(VerifyResult(entry.id, False, "; ".join(problems)))
        elif weights is None:
            results.append(VerifyResult(entry.id, True, "not downloaded"))
        else:
            results.append(VerifyResult(entry.id, True, "ok"))
    return results
