"""Hub access for the zoo's style models, on the project's one Hub path (:mod:`nst.hub`):
``model.safetensors`` with its ``config.json``, checked against the catalogue's sha256;
a repo that offers only pickles is refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nst.errors import NSTError
from nst.files import is_pickle
from nst.hub import download_file, evict, hub_settings, list_repo_files
from nst.johnson.model import CONFIG_NAME, WEIGHTS_NAME

__all__ = ["download_file", "evict", "fetch_model", "hub_settings", "snapshot_cached_weights"]


def fetch_model(
    subject: str, repo_id: str, revision: str, filename: str = WEIGHTS_NAME, **options: Any
) -> Path:
    """Download ``filename`` (+ ``config.json`` beside it) and return the weights path.

    With ``sha256`` (from the catalogue) the file must match it: a mismatch deletes the
    cached copy and raises. A repo that only has pickles is refused by name. ``tqdm_class``
    replaces huggingface_hub's progress bar (which hides itself when stderr is no TTY).
    ``options``: ``sha256``, and ``progress`` / ``tqdm_class`` as for :func:`download_file`.
    """
    sha256: str | None = options.pop("sha256", None)
    progress: bool = options.pop("progress", True)
    tqdm_class: type | None = options.pop("tqdm_class", None)
    if options:
        raise TypeError(f"fetch_model() got unexpected options {sorted(options)}")
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    if not filename.endswith(".safetensors"):
        raise NSTError(_pickle_message(subject, repo_id, [filename]))
    config_name = str(Path(filename).with_name(CONFIG_NAME).as_posix())
    try:
        weights = download_file(
            subject,
            repo_id,
            filename,
            revision,
            progress=progress,
            tqdm_class=tqdm_class,
            sha256=sha256,
            pin_hint="if the style was retrained on purpose, update the catalogue's revision "
            "and sha256",
        )
    except NSTError as exc:
        cause = exc.__cause__
        if isinstance(cause, EntryNotFoundError) and not isinstance(cause, LocalEntryNotFoundError):
            pickles = _pickles_in(repo_id, revision)
            if pickles:
                raise NSTError(_pickle_message(subject, repo_id, pickles)) from exc
        raise
    try:
        download_file(subject, repo_id, config_name, revision, progress=False)
    except NSTError as exc:
        # Without config.json the architecture is unknown; load_transformer would guess.
        raise NSTError(f"{exc} ({CONFIG_NAME} is needed to rebuild the network.)") from exc
    return weights


def _pickles_in(repo_id: str, revision: str) -> list[str]:
    try:
        files = list_repo_files(repo_id, revision)
    except Exception:  # listing is only used to improve the message
        return []
    return [f for f in files if is_pickle(f)]


def _pickle_message(subject: str, repo_id: str, pickles: list[str]) -> str:
    return (
        f"{subject}: the Hub repo '{repo_id}' offers only pickle checkpoints "
        f"({', '.join(pickles[:3])}), no model.safetensors. Pickles can run arbitrary code, "
        "so the zoo loads safetensors only: ask the owner to upload model.safetensors "
        "(safetensors.torch.save_file) or convert it yourself and load the folder."
    )


def snapshot_cached_weights(repo_id: str, revision: str, filename: str) -> Path | None:
    """The cached weights file for this repo/revision, or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    result: Any = try_to_load_from_cache(
        repo_id, filename, cache_dir=hub_settings().cache_dir, revision=revision
    )
    return Path(result) if isinstance(result, str) else None
