"""Checkpoints that survive SIGKILL: written into a temporary folder, then renamed.

A checkpoint is ``RUN_DIR/checkpoints/step_NNNNNNN/`` holding
- ``model.safetensors`` + ``config.json``: the transformer, loadable by
  :func:`nst.johnson.load_transformer` as it is;
- ``optimizer.safetensors``: Adam's moment tensors (no pickle anywhere);
- ``state.json``: the step, the optimiser's hyper-parameters, the run config, the time spent.

The rename of the whole folder is atomic, so a run killed at any moment leaves either
the complete new checkpoint or none; the newest complete folder is the one resumed.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from nst.errors import NSTError
from nst.files import atomic_path, remove_stale_temporaries
from nst.johnson import TransformerNet, load_transformer, save_transformer

CHECKPOINTS = "checkpoints"
STATE_NAME = "state.json"
OPTIMIZER_NAME = "optimizer.safetensors"


@dataclass
class Checkpoint:
    path: Path
    step: int
    state: dict[str, Any]


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINTS / f"step_{step:07d}"


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, list]:
    """Adam's state_dict split into flat tensors and JSON-able parameter groups."""
    sd = optimizer.state_dict()
    tensors = {
        f"{index}.{key}": value.detach().cpu().contiguous()
        for index, slots in sd["state"].items()
        for key, value in slots.items()
        if isinstance(value, torch.Tensor)
    }
    return tensors, sd["param_groups"]


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: TransformerNet,
    optimizer: torch.optim.Optimizer,
    extra: dict[str, Any],
    keep: int,
) -> Path:
    """Write the checkpoint of ``step`` atomically and prune all but the newest ``keep``."""
    final = checkpoint_dir(run_dir, step)
    # A re-run of the same step after a resume replaces the old folder.
    with atomic_path(final) as tmp:
        save_transformer(model, tmp)
        tensors, groups = _optimizer_tensors(optimizer)
        save_file(tensors, str(tmp / OPTIMIZER_NAME))
        state = {"step": step, "param_groups": groups, **extra}
        (tmp / STATE_NAME).write_text(json.dumps(state, indent=2) + "\n")
        _fsync_tree(tmp)
    _prune(run_dir, keep)
    return final


def _fsync_tree(folder: Path) -> None:
    """Flush the files to disk before the rename makes them the checkpoint of record."""
    for path in folder.iterdir():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())


def _prune(run_dir: Path, keep: int) -> None:
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old.path, ignore_errors=True)
    remove_stale_temporaries(run_dir / CHECKPOINTS)  # left by a killed run


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """Complete checkpoints, oldest first."""
    found = []
    for path in sorted((run_dir / CHECKPOINTS).glob("step_*")):
        state_file = path / STATE_NAME
        if not state_file.is_file():
            continue
        try:
            state = json.loads(state_file.read_text())
        except json.JSONDecodeError:
            continue
        found.append(Checkpoint(path, int(state["step"]), state))
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None


def load_checkpoint(
    checkpoint: Checkpoint, model: TransformerNet, optimizer: torch.optim.Optimizer
) -> None:
    """Restore the weights and Adam's state in place (same devices as ``model``)."""
    device = next(model.parameters()).device
    loaded = load_transformer(checkpoint.path, device=device)
    model.load_state_dict(loaded.state_dict())
    try:
        tensors = load_file(str(checkpoint.path / OPTIMIZER_NAME))
    except Exception as exc:  # safetensors raises several types for a damaged file
        raise NSTError(f"The optimiser state in '{checkpoint.path}' cannot be read: {exc}") from exc
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    groups = checkpoint.state["param_groups"]
    for group in groups:  # JSON turned Adam's betas tuple into a list
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})
