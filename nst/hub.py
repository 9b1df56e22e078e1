"""The project's one path to the Hugging Face Hub, through ``huggingface_hub`` only.

Downloads: the style networks (:func:`fetch_model`, used by
``TransformerNet.from_pretrained`` and the zoo) and the VGG loss network (:mod:`nst.vgg`)
are fetched by :func:`download_file`. Uploads: ``TransformerNet.push_to_hub`` and
``python -m train.publish`` go through :func:`upload_folder`.

The Hub's own settings are read from the environment at *call* time, because
``huggingface_hub.constants`` froze them when it was imported: ``HF_ENDPOINT`` (a mirror or
a private Hub), ``HF_HOME``/``HF_HUB_CACHE`` (the cache), ``HF_HUB_OFFLINE`` (cache only)
and ``HF_TOKEN`` (private repos, uploads). Every failure becomes an :class:`NSTError` that
names what was fetched or sent and says what to do; an LFS file whose sha256 differs from
the Hub's (its ETag) is removed from the cache, never served as good; a token is never
shown in a message.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nst.errors import NSTError
from nst.files import file_sha256, is_pickle

_SHA256_ETAG = re.compile(r"^[0-9a-f]{64}$")
#: A Hub repo id, ``user/name`` (or ``org/name``).
REPO_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.\-]{0,95}/[A-Za-z0-9][\w.\-]{0,95}$")
#: The files of a model repo, as ``PyTorchModelHubMixin.save_pretrained`` names them.
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def is_repo_id(value: object) -> bool:
    """``user/name``, and not a local path (which the Hub cannot resolve)."""
    return (
        isinstance(value, str)
        and bool(REPO_ID_PATTERN.match(value))
        and not value.startswith((".", "/", "~"))
        and not Path(value).exists()
    )


@dataclass(frozen=True)
class HubSettings:
    endpoint: str | None
    cache_dir: str | None
    offline: bool
    token: str | None


def _is_true(value: str | None) -> bool:
    return (value or "").strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_settings() -> HubSettings:
    """The Hub settings as the environment says now (not as it said at import)."""
    from huggingface_hub import constants

    cache_dir = os.environ.get("HF_HUB_CACHE")
    if not cache_dir and os.environ.get("HF_HOME"):
        cache_dir = os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    offline_env = os.environ.get("HF_HUB_OFFLINE")
    offline = _is_true(offline_env) if offline_env is not None else constants.HF_HUB_OFFLINE
    return HubSettings(
        endpoint=(os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None,
        cache_dir=cache_dir or None,
        offline=offline,
        token=os.environ.get("HF_TOKEN") or None,
    )


#: What an offline miss tells a person to do, unless the caller says better.
OFFLINE_HINT = "run `python -m zoo download` while online, then it works offline"


def _explain(
    exc: BaseException,
    subject: str,
    repo_id: str,
    revision: str,
    filename: str,
    offline_hint: str = OFFLINE_HINT,
) -> NSTError:
    """Turn a huggingface_hub/httpx failure into a message for a person."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"'{repo_id}' (revision {revision})"
    if isinstance(exc, GatedRepoError):
        return NSTError(
            f"{subject}: the Hub repo {where} is gated. Accept its terms on the Hub and set "
            "HF_TOKEN to a token of that account."
        )
    if isinstance(exc, RepositoryNotFoundError):
        return NSTError(
            f"{subject}: the Hub repo '{repo_id}' was not found. Check the repo id (user/name); "
            "if the repo is private, set HF_TOKEN to a token that can read it."
        )
    if isinstance(exc, RevisionNotFoundError):
        return NSTError(
            f"{subject}: the Hub repo '{repo_id}' has no revision '{revision}'. Check the "
            "catalogue's 'revision' (a commit id, branch or tag)."
        )
    if isinstance(exc, EntryNotFoundError) and not isinstance(exc, LocalEntryNotFoundError):
        return NSTError(
            f"{subject}: the Hub repo {where} has no file '{filename}'. Check the repo's files "
            "and the catalogue's 'filename'."
        )
    if isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        cause = exc.__cause__ or exc.__context__
        if hub_settings().offline or isinstance(exc, OfflineModeIsEnabled):
            return NSTError(
                f"{subject}: '{filename}' from {where} is not in the local cache and offline mode "
                f"is on (HF_HUB_OFFLINE=1). Unset HF_HUB_OFFLINE and {offline_hint}."
            )
        if isinstance(cause, HfHubHTTPError) and cause.response is not None:
            return _server_error(subject, where, cause.response.status_code)
        return NSTError(
            f"{subject}: could not reach the Hub ({_endpoint_name()}) to fetch '{filename}' from "
            f"{where}, and it is not in the cache ({_short(cause or exc)}). Check the network "
            "(or HF_ENDPOINT) and try again, or set HF_HUB_OFFLINE=1 to use cached styles only."
        )
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        return _server_error(subject, where, exc.response.status_code)
    if _is_timeout(exc):
        return NSTError(
            f"{subject}: the Hub ({_endpoint_name()}) stopped sending '{filename}' from {where} "
            "(timed out; the limit is HF_HUB_DOWNLOAD_TIMEOUT seconds). The partial download "
            "was discarded; try again later or raise HF_HUB_DOWNLOAD_TIMEOUT."
        )
    return NSTError(
        f"{subject}: downloading '{filename}' from {where} failed ({_short(exc)}). The partial "
        "download was discarded; try again."
    )


def _is_timeout(exc: BaseException) -> bool:
    import httpx2

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (httpx2.TimeoutException, TimeoutError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _server_error(subject: str, where: str, status: int) -> NSTError:
    if status in (401, 403):
        return NSTError(
            f"{subject}: the Hub refused access to {where} (HTTP {status}). Set HF_TOKEN to a "
            "token that can read the repo."
        )
    return NSTError(
        f"{subject}: the Hub ({_endpoint_name()}) answered HTTP {status} for {where}. This is "
        "on the server's side: try again later (nothing was saved)."
    )


def _endpoint_name() -> str:
    from huggingface_hub import constants

    return hub_settings().endpoint or constants.ENDPOINT


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def evict(path: str | os.PathLike) -> None:
    """Remove a cached file: the snapshot link and the blob it points to."""
    link = Path(path)
    blob = link.resolve() if link.exists() else None
    link.unlink(missing_ok=True)
    if blob is not None and blob != link:
        blob.unlink(missing_ok=True)


def download_file(
    subject: str,
    repo_id: str,
    filename: str,
    revision: str,
    *,
    progress: bool = True,
    tqdm_class: type | None = None,
    offline_hint: str = OFFLINE_HINT,
    sha256: str | None = None,
    pin_hint: str = "update the pinned revision and sha256",
) -> Path:
    """``hf_hub_download`` one file into the Hub cache; NSTError on any failure.

    LFS files (the Hub's ETag is their sha256) are checked against it, so a body that was
    corrupted in transit is caught even when no pin is known. With ``sha256`` (a pin: the
    catalogue's, or the VGG's) the file must also match it, so that a repo whose file was
    replaced is refused even when the Hub serves the new file faithfully; a mismatch
    deletes the cached copy and says what to do (``pin_hint``).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    settings = hub_settings()
    was_disabled = are_progress_bars_disabled()
    if not progress:
        disable_progress_bars()
    try:
        path = hf_hub_download(
            repo_id,
            filename,
            revision=revision,
            cache_dir=settings.cache_dir,
            endpoint=settings.endpoint,
            token=settings.token,
            local_files_only=settings.offline,
            tqdm_class=tqdm_class if progress else None,
        )
    except NSTError:
        raise
    except Exception as exc:  # every Hub/network failure, explained below
        raise _explain(exc, subject, repo_id, revision, filename, offline_hint) from exc
    finally:
        if not progress and not was_disabled:
            enable_progress_bars()
    path = Path(path)
    etag = path.resolve().name
    if _SHA256_ETAG.match(etag) and file_sha256(path) != etag:
        evict(path)
        raise NSTError(
            f"{subject}: '{filename}' from '{repo_id}' arrived corrupted (its sha256 does not "
            "match the Hub's); the bad copy was deleted. Try again."
        )
    if sha256 is not None:
        actual = file_sha256(path)
        if actual != sha256.lower():
            evict(path)
            raise NSTError(
                f"{subject}: '{filename}' from '{repo_id}' (revision {revision}) has sha256 "
                f"{actual[:12]}…, but {sha256[:12]}… is expected. The file was deleted from "
                f"the cache. If the file was changed on purpose, {pin_hint}; otherwise "
                "report it to the repo's owner."
            )
    return path


def list_repo_files(repo_id: str, revision: str) -> list[str]:
    from huggingface_hub import HfApi

    settings = hub_settings()
    api = HfApi(endpoint=settings.endpoint, token=settings.token)
    return api.list_repo_files(repo_id, revision=revision)


def fetch_model(
    subject: str, repo_id: str, revision: str, filename: str = WEIGHTS_NAME, **download: Any
) -> Path:
    """Download a model's ``filename`` and the ``config.json`` beside it; the weights' path.

    ``download``: ``sha256`` (the zoo catalogue's pin: the weights must match it),
    ``progress`` and ``tqdm_class``, as for :func:`download_file`. A repo that offers only
    pickles (``pytorch_model.bin``, ...) is refused by name without downloading them:
    loading a pickle can run arbitrary code.
    """
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    if not filename.endswith(".safetensors"):
        raise NSTError(_pickle_message(subject, repo_id, [filename]))
    try:
        weights = download_file(
            subject,
            repo_id,
            filename,
            revision,
            pin_hint="if the style was retrained on purpose, update the catalogue's revision "
            "and sha256",
            **download,
        )
    except NSTError as exc:
        cause = exc.__cause__
        if isinstance(cause, EntryNotFoundError) and not isinstance(cause, LocalEntryNotFoundError):
            pickles = _pickles_in(repo_id, revision)
            if pickles:
                raise NSTError(_pickle_message(subject, repo_id, pickles)) from exc
        raise
    config_name = Path(filename).with_name(CONFIG_NAME).as_posix()
    try:
        download_file(subject, repo_id, config_name, revision, progress=False)
    except NSTError as exc:
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
        f"({', '.join(pickles[:3])}), no {WEIGHTS_NAME}. Pickles can run arbitrary code, "
        f"so only safetensors are loaded: ask the owner to upload {WEIGHTS_NAME} "
        "(safetensors.torch.save_file) or convert it yourself and load the folder."
    )


def cached_file(repo_id: str, revision: str, filename: str) -> Path | None:
    """The cached ``filename`` of this repo and revision, or None; never touches the network."""
    from huggingface_hub import try_to_load_from_cache

    result: Any = try_to_load_from_cache(
        repo_id, filename, cache_dir=hub_settings().cache_dir, revision=revision
    )
    return Path(result) if isinstance(result, str) else None


# ---- uploads ---------------------------------------------------------------------------


def resolve_token(token: str | None = None) -> str:
    """The token to upload with: the argument, ``HF_TOKEN``, or the login cache."""
    from huggingface_hub import get_token

    token = token or hub_settings().token or get_token()
    if not token:
        raise NSTError(
            "No Hugging Face token: set HF_TOKEN to a token with write access "
            "(https://huggingface.co/settings/tokens) or run `hf auth login` once."
        )
    return token


def _upload_error(action: str, exc: Exception, token: str) -> NSTError:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 401:
        hint = "The token was refused: check HF_TOKEN (or log in again with `hf auth login`)."
    elif status == 403:
        hint = "The token may not write to this namespace: use a write token for it."
    else:
        hint = "Check the network and the repo name, then run the same command again."
    detail = f"{type(exc).__name__}: {exc}".replace(token, "***")  # never show the token
    return NSTError(f"{action} failed ({detail}). {hint}")


def upload_folder(
    repo_id: str,
    folder: str | os.PathLike,
    *,
    commit_message: str,
    private: bool = False,
    token: str | None = None,
) -> Any:
    """Upload ``folder`` to the model repo ``repo_id`` (created if missing) as one commit.

    The token is checked first, so a refused one creates nothing. Returns huggingface_hub's
    ``CommitInfo`` (a ``str``, the commit's URL, with ``.oid``, the commit id).
    """
    from huggingface_hub import HfApi

    token = resolve_token(token)
    api = HfApi(endpoint=hub_settings().endpoint, token=token)
    try:
        api.whoami()
    except Exception as exc:  # refuse early, before anything is created
        raise _upload_error("Checking the Hugging Face token", exc, token) from None
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        return api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message)
    except Exception as exc:  # HTTP, network, validation: all end the same way
        raise _upload_error(f"Uploading to '{repo_id}'", exc, token) from None
