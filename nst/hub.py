"""The project's one path to the Hugging Face Hub, through ``huggingface_hub`` only.

The zoo's style models (:mod:`zoo.hub`) and the VGG loss network (:mod:`nst.vgg`) are both
fetched by :func:`download_file`. The Hub's own settings are read from the environment at
*call* time, because ``huggingface_hub.constants`` froze them when it was imported:
``HF_ENDPOINT`` (a mirror or a private Hub), ``HF_HOME``/``HF_HUB_CACHE`` (the cache),
``HF_HUB_OFFLINE`` (cache only) and ``HF_TOKEN`` (private repos). Every failure becomes an
:class:`NSTError` that names what was fetched and says what to do; an LFS file whose
sha256 differs from the Hub's (its ETag) is removed from the cache, never served as good.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from nst.errors import NSTError
from nst.files import file_sha256

_SHA256_ETAG = re.compile(r"^[0-9a-f]{64}$")


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
