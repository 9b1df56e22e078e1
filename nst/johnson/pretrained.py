"""The style network on the Hugging Face Hub: ``huggingface_hub``'s ``PyTorchModelHubMixin``
with this project's rules.

The mixin gives :class:`~nst.johnson.model.TransformerNet` ``save_pretrained``,
``from_pretrained`` and ``push_to_hub``, in its folder layout: ``model.safetensors``,
``config.json`` and ``README.md`` (the card). What this class changes, and why:

- ``config.json`` is the network's config dataclass as it is (``asdict``, fields in their
  order): the file every bundled style, export and Hub repo already holds, so they load
  unchanged. (The mixin would write the same keys sorted.)
- Safetensors only. The mixin falls back to ``pytorch_model.bin`` through ``torch.load``;
  loading a pickle can run code, so a folder or repo that has only pickles is refused by name.
- Strict: every tensor's name and shape must fit the network ``config.json`` describes,
  and a mismatch names them (the mixin loads with ``strict=False``).
- Hub traffic goes through :mod:`nst.hub`: settings read at call time, an optional pinned
  revision and sha256 (the zoo's), the ETag check, errors that say what to do.
- The card is the project's one template (:mod:`nst.johnson.card`), filled from the config.
"""

from __future__ import annotations

import json
import os
import tempfile
import typing
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin

from nst.errors import NSTError
from nst.files import atomic_path, atomic_write_text, is_pickle
from nst.hub import CONFIG_NAME, WEIGHTS_NAME, evict, fetch_model, is_repo_id, upload_folder

_Model = typing.TypeVar("_Model", bound="StyleNetHubMixin")


class StyleNetHubMixin(PyTorchModelHubMixin):
    """For an ``nn.Module`` whose ``__init__`` takes ``config``, a dataclass with a
    ``from_dict`` that checks a ``config.json``; the module keeps it as ``self.config``."""

    config: Any

    # ---- writing -----------------------------------------------------------------------
    def save_weights(self, folder: str | os.PathLike, *, half: bool = False) -> Path:
        """Write ``model.safetensors`` (fp16 when ``half``) and ``config.json`` into
        ``folder``, each atomically: what ``save_pretrained`` writes, less the card."""
        from safetensors.torch import save_file

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        dtype = torch.float16 if half else torch.float32
        state = {
            k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
            for k, v in self.state_dict().items()  # type: ignore[attr-defined]
        }
        metadata = {"format": "pt", "model_type": str(getattr(self.config, "model_type", ""))}
        with atomic_path(out / WEIGHTS_NAME) as tmp:  # never a half-written model
            save_file(state, str(tmp), metadata=metadata)
        atomic_write_text(out / CONFIG_NAME, json.dumps(asdict(self.config), indent=2) + "\n")
        return out

    def _save_pretrained(self, save_directory: Path) -> None:
        # config.json is written here, so save_pretrained leaves it as it is.
        self.save_weights(save_directory)

    def generate_model_card(self, *args: Any, **kwargs: Any) -> Any:
        """The project's card for this network; ``kwargs`` as for
        :func:`nst.johnson.card.model_card` (``samples``, ``repo_id``, ``evaluation``)."""
        from nst.johnson.card import model_card

        return model_card(asdict(self.config), **kwargs)

    def push_to_hub(  # type: ignore[override]
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        private: bool = False,
        token: str | None = None,
        model_card_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        """Upload weights, ``config.json`` and a card naming ``repo_id`` as one commit
        (:func:`nst.hub.upload_folder`); returns its ``CommitInfo`` (the commit's URL)."""
        card_kwargs = {"repo_id": repo_id, **(model_card_kwargs or {})}
        with tempfile.TemporaryDirectory(prefix="nst-push-") as tmp:
            self.save_pretrained(tmp, model_card_kwargs=card_kwargs)
            return upload_folder(
                repo_id,
                tmp,
                commit_message=commit_message or "Upload style network",
                private=private,
                token=token,
            )

    # ---- reading -----------------------------------------------------------------------
    @classmethod
    def config_class(cls) -> type:
        """The dataclass ``__init__``'s ``config`` is annotated with (as the mixin finds it)."""
        hint = typing.get_type_hints(cls.__init__)["config"]
        return next(t for t in (*typing.get_args(hint), hint) if is_dataclass(t))

    @classmethod
    def load_weights(
        cls: type[_Model], path: str | os.PathLike, map_location: torch.device | str = "cpu"
    ) -> _Model:
        """Load a local folder (``model.safetensors`` + ``config.json``) or a
        ``.safetensors`` file with its ``config.json`` beside it; strictly, in eval mode."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        if path.is_dir():
            weights, config_file = path / WEIGHTS_NAME, path / CONFIG_NAME
            pickles = sorted(p.name for p in path.iterdir() if is_pickle(p))
            if not weights.is_file() and pickles:
                weights = path / pickles[0]
        else:
            weights, config_file = path, path.with_name(CONFIG_NAME)
        if is_pickle(weights):
            raise NSTError(
                f"'{weights}' is a pickle checkpoint; only .safetensors models are loaded "
                "(a pickle can run arbitrary code). Convert it with safetensors first."
            )
        if not weights.is_file():
            raise NSTError(
                f"No model at '{path}': expected a folder with {WEIGHTS_NAME} and {CONFIG_NAME}."
            )
        config_class: Any = cls.config_class()
        config = config_class()  # without config.json: the default architecture
        if config_file.is_file():
            try:
                config = config_class.from_dict(json.loads(config_file.read_text()))
            except json.JSONDecodeError as exc:
                raise NSTError(f"'{config_file}' is not valid JSON: {exc}") from exc
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError, ValueError) as exc:
            raise NSTError(
                f"'{weights}' is not a valid safetensors file ({exc}); it may be truncated. "
                "Download or export it again."
            ) from exc
        model = cls(config)  # type: ignore[call-arg]
        load_strictly(model, state, f"'{weights}'")
        return model.to(map_location).eval()  # type: ignore[attr-defined]

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls: type[_Model],
        pretrained_model_name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        map_location: torch.device | str = "cpu",
        filename: str = WEIGHTS_NAME,
        sha256: str | None = None,
        progress: bool = True,
        subject: str | None = None,
    ) -> _Model:
        """A network from a local folder (or ``.safetensors`` file) or a Hub repo id.

        For a repo: ``revision`` (a commit, branch or tag; default ``main``), ``filename``
        of the weights in it, ``sha256`` they must have (a pin), ``progress`` (a download
        bar), ``subject`` (how errors name it; default "Hub repo 'user/name'"). A downloaded
        file that fails to load is removed from the cache, so it is never used again.
        """
        name = os.fspath(pretrained_model_name_or_path)
        if isinstance(pretrained_model_name_or_path, os.PathLike) or not is_repo_id(name):
            return cls.load_weights(name, map_location)
        subject = subject or f"Hub repo '{name}'"
        weights = fetch_model(
            subject, name, revision or "main", filename, sha256=sha256, progress=progress
        )
        try:
            return cls.load_weights(weights, map_location)
        except NSTError as exc:
            evict(weights)
            raise NSTError(
                f"{subject}: {exc} The downloaded file was removed from the cache."
            ) from exc


def load_strictly(model: Any, state: dict[str, torch.Tensor], where: str) -> None:
    """Load ``state`` into ``model``: every tensor by name and shape, else an NSTError that
    names the tensors that differ. The model's own load hooks run (older layouts)."""
    try:
        result = model.load_state_dict(state, strict=False)
        failure = bool(result.missing_keys or result.unexpected_keys)
    except RuntimeError:  # a shape differs
        failure = True
    if failure:
        raise NSTError(_mismatch(model, state, where))


def _mismatch(model: Any, state: dict[str, torch.Tensor], where: str) -> str:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    described = ", ".join(
        f"{k} {json.dumps(v)}"
        for k, v in asdict(model.config).items()
        if isinstance(v, int | float | bool)
    )
    lines = [f"The checkpoint {where} does not fit a {type(model).__name__} of {described}:"]
    if missing:
        lines.append(f"  missing tensors ({len(missing)}): {', '.join(missing[:6])}")
    if unexpected:
        lines.append(f"  unexpected tensors ({len(unexpected)}): {', '.join(unexpected[:6])}")
    for k in wrong[:6]:
        lines.append(f"  {k}: expected shape {expected[k]}, found {found[k]}")
    lines.append("Check that config.json belongs to this model.safetensors.")
    return "\n".join(lines)
