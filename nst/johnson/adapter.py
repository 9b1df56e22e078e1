"""A style added to a trained net by its own (gamma, beta) rows: the adapter format.

``python -m train --add-style painting.jpg --init-from NET`` trains only one new row of
every conditional instance-norm layer (Dumoulin et al. 2017); the convolutions stay NET's.
So the new style is a few thousand numbers, published without the base net:

- ``adapter.safetensors``: per norm layer, its new ``weight`` and ``bias`` rows (C,), under
  the layer's own state-dict keys;
- ``adapter_config.json``: the new style's metadata, and the base it needs, pinned: the
  sha256 of the base's ``model.safetensors`` and its style ids (plus, where it came from
  the Hub, its repo id and commit).

:func:`apply_adapter` checks the pin and returns the base with the style appended.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from nst.errors import NSTError
from nst.files import atomic_path, atomic_write_text

ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_TYPE = "johnson2016-style-adapter"


def save_adapter(net: Any, folder: str | os.PathLike, base: dict[str, Any]) -> Path:
    """Write the last style of ``net`` (a multi-style ``TransformerNet``) as an adapter of
    the base described by ``base`` (``sha256`` of its weights file, optional repo_id and
    revision); the base must be ``net`` without that style."""
    from safetensors.torch import save_file

    if not base.get("sha256"):
        raise NSTError("An adapter must pin its base net's sha256.")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rows = {
        key: value[-1].detach().to("cpu", torch.float32).contiguous()
        for key, value in net.state_dict().items()
        if value.dim() == 2  # the (S, C) tables of the norm layers
    }
    entries = net.config.styles
    with atomic_path(out / ADAPTER_WEIGHTS) as tmp:
        save_file(rows, str(tmp), metadata={"format": "pt", "model_type": ADAPTER_TYPE})
    config = {
        "model_type": ADAPTER_TYPE,
        "style": entries[-1],
        "base": {**base, "styles": [e["id"] for e in entries[:-1]]},
    }
    atomic_write_text(out / ADAPTER_CONFIG, json.dumps(config, indent=2) + "\n")
    return out


def read_adapter(folder: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(adapter_config.json, the rows) of an adapter folder, checked for form."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text())
    except FileNotFoundError:
        raise NSTError(f"'{folder}' holds no {ADAPTER_CONFIG}: not a style adapter.") from None
    except json.JSONDecodeError as exc:
        raise NSTError(f"'{folder / ADAPTER_CONFIG}' is not valid JSON: {exc}") from exc
    if config.get("model_type") != ADAPTER_TYPE or not isinstance(config.get("base"), dict):
        raise NSTError(f"'{folder / ADAPTER_CONFIG}' does not describe a {ADAPTER_TYPE}.")
    try:
        rows = load_file(str(folder / ADAPTER_WEIGHTS))
    except (SafetensorError, OSError, ValueError) as exc:
        raise NSTError(
            f"'{folder / ADAPTER_WEIGHTS}' is not a valid safetensors file: {exc}"
        ) from exc
    return config, rows


def apply_adapter(base: Any, base_sha256: str, folder: str | os.PathLike) -> Any:
    """``base`` (a ``TransformerNet``) with the adapter's style appended, after checking
    that the adapter was trained on exactly this base (its sha256 and style ids)."""
    from dataclasses import replace

    from nst.johnson.model import is_norm_key

    config, rows = read_adapter(folder)
    pin = config["base"]
    if pin.get("sha256") != base_sha256:
        raise NSTError(
            f"The style adapter '{folder}' was trained on the base net with sha256 "
            f"{str(pin.get('sha256'))[:12]}…, not this one ({base_sha256[:12]}…). Load the "
            f"base it pins{' (' + pin['repo_id'] + ')' if pin.get('repo_id') else ''}."
        )
    styles = base.config.styles or [base.config.style]
    if [s.get("id") for s in styles] != pin.get("styles"):
        raise NSTError(f"The style adapter '{folder}' expects the base styles {pin.get('styles')}.")
    grown = type(base)(replace(base.config, styles=[*styles, config["style"]], style={}))
    state = {}
    for key, value in base.state_dict().items():
        if not is_norm_key(base, key):
            state[key] = value  # the shared convolutions
            continue
        if key not in rows:
            raise NSTError(f"The style adapter '{folder}' lacks the rows of '{key}'.")
        table = value if value.dim() == 2 else value.unsqueeze(0)  # (S, C)
        state[key] = torch.cat([table, rows[key].to(table).unsqueeze(0)])
    grown.load_state_dict(state)
    return grown.to(next(base.parameters()).device).eval()
