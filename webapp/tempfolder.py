"""Gradio's temp folder, kept to the last ``age`` seconds of uploads and results.

Every upload and every result goes through Gradio's temp folder (``GRADIO_TEMP_DIR``), and
Gradio keeps them all until the server stops. ``gr.Blocks(delete_cache=...)`` is its answer,
but with gradio 6.31 it does not keep a busy server's folder bounded: each pass iterates
the live sets of file names while requests add to them, and the first "Set changed size
during iteration" ends its schedule for good; and it removes files, never the folder each
upload gets. So the app sweeps the folder itself, on the same terms: files last changed
more than ``age`` seconds ago go, except those present when the server started (the
examples and gallery pictures the page was built with), and so do folders left empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from gradio.utils import get_upload_folder

log = logging.getLogger("webapp")


def files_in(folder: Path) -> frozenset[str]:
    return frozenset(str(p) for p in folder.rglob("*") if p.is_file())


def sweep(folder: Path, age: float, keep: frozenset[str] = frozenset()) -> int:
    """Remove the files under ``folder`` changed more than ``age`` seconds ago (but those in
    ``keep``), and its folders that have been empty as long; return the files removed.

    By ctime, as Gradio ages them: it touches a cached copy it hands out again. A folder's
    mtime is when its last file went, so a folder that Gradio has just made for a file it
    is about to write is not taken from under it.
    """
    cutoff = time.time() - age
    removed = 0
    for root, _, names in os.walk(folder, topdown=False):  # files before their folders
        for name in names:
            path = os.path.join(root, name)
            try:
                if path not in keep and os.lstat(path).st_ctime < cutoff:
                    os.remove(path)
                    removed += 1
            except OSError:
                continue  # gone already, or in use: the next sweep sees it again
        if root != str(folder):
            with contextlib.suppress(OSError):  # not empty, or not old enough
                if os.stat(root).st_mtime < cutoff:
                    os.rmdir(root)
    return removed


def swept(every: float, age: float) -> Callable[[Any], AbstractAsyncContextManager[None]]:
    """A server lifespan (``demo.launch(app_kwargs={"lifespan": ...})``) that sweeps the
    temp folder every ``every`` seconds while the server runs."""

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        folder = Path(get_upload_folder())
        keep = files_in(folder) if folder.is_dir() else frozenset()
        task = asyncio.create_task(_sweep_every(every, folder, age, keep))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return lifespan


async def _sweep_every(every: float, folder: Path, age: float, keep: frozenset[str]) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            removed = await asyncio.to_thread(sweep, folder, age, keep)
        except Exception:  # noqa: BLE001 - a failed sweep must not end the schedule
            log.exception("sweeping the temp folder %s failed; trying again later", folder)
        else:
            log.debug("removed %d old files from %s", removed, folder)
