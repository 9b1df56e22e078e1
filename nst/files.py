"""Files the project writes and reads safely: atomic replacement, and the pickle rule.

Every file or folder a reader may open while it is being written (a model, a checkpoint,
the zoo catalogue, a CSV log) is written beside its final name and renamed over it, so a
reader, or a run killed half-way, sees the old or the new, never half of one.

Pickles (``.pth``, ``.bin``, ...) can run arbitrary code when loaded. Models are loaded
from safetensors only; the one exception is a local VGG file the user points at, read
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pth", ".pt", ".ckpt", ".pkl")
_TMP_MARK = ".tmp-"


def is_pickle(path: str | os.PathLike) -> bool:
    """True for the file names of pickle checkpoints (never loaded from the network)."""
    return str(path).lower().endswith(PICKLE_SUFFIXES)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """A fresh temporary path beside ``target`` to write a file or a folder into.

    When the block ends normally it replaces ``target`` (an old folder is removed first);
    when it raises, the temporary is removed and ``target`` is left as it was.
    """
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if tmp.is_dir() and final.is_dir():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def remove_stale_temporaries(folder: Path) -> None:
    """Remove what :func:`atomic_path` left in ``folder`` when another process was killed
    mid-write (this process's own temporaries are left alone)."""
    mine = f"{_TMP_MARK}{os.getpid()}-"
    for stale in folder.glob(f".*{_TMP_MARK}*"):
        if mine not in stale.name:
            _remove(stale)


def file_sha256(path: str | os.PathLike) -> str:
    """The file's sha256, hex (what the zoo catalogue pins)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
