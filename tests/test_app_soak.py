"""Gradio's temp folder stays bounded under load (slow: a few hundred calls).

The app in its own process, as a Space runs it, with its own temp folder
(``GRADIO_TEMP_DIR``) and a short sweep (``webapp.tempfolder``); 300 ``/johnson`` calls
through ``gradio_client``, each uploading a photo no call sent before (as visitors do) to a
tiny random style network. Every upload (in a folder of its own) and every result lands in
the temp folder; it must hold only the last few seconds' worth, not one of each call, and
nothing once the server is idle. The table of calls, folder size and the server's memory
is printed (``pytest -s``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from tests.test_app import STYLE_ID, _free_port, _synthetic_photo, build_catalogue  # noqa: E402
from tests.test_deploy import _wait_for  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
ROOT = Path(__file__).resolve().parents[1]
CALLS = int(os.environ.get("NST_SOAK_CALLS", 300))
CHECK_EVERY = 50
SWEEP = (2, 4)  # every 2 s, files older than 4 s

#: The server: the page at small sizes, launched as app.py launches it.
SERVER = r"""
import sys
from pathlib import Path
from webapp import AppConfig, create_app, launch
port, catalogue, every, age = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
settings = AppConfig(catalogue=Path(catalogue), johnson_size=128, sweep_every=int(every),
                     temp_age=int(age))
launch(create_app(settings), settings, server_name="127.0.0.1", server_port=int(port),
       quiet=True)
"""


def _folder(path: Path) -> tuple[int, int, int]:
    """(bytes in files, files, folders) under ``path``."""
    size = files = folders = 0
    for item in path.rglob("*"):
        if item.is_file():
            size, files = size + item.stat().st_size, files + 1
        elif item.is_dir():
            folders += 1
    return size, files, folders


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _photo(base: np.ndarray, number: int, folder: Path) -> Path:
    """``base`` with the call's number written into its corner: a new file each time."""
    pixels = base.copy()
    pixels[0, :4] = np.frombuffer(number.to_bytes(12, "big"), dtype=np.uint8).reshape(4, 3)
    path = folder / f"photo_{number}.png"
    Image.fromarray(pixels).save(path)
    return path


def test_the_temp_folder_stops_growing(tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    painting = _synthetic_photo(tmp_path / "painting.png", (200, 160))
    catalogue = build_catalogue(tmp_path / "zoo", painting)
    base = np.asarray(Image.open(_synthetic_photo(tmp_path / "photo.png", (320, 240))))
    temp = tmp_path / "gradio-temp"
    env = {**os.environ, "GRADIO_TEMP_DIR": str(temp), "PYTHONPATH": str(ROOT)}
    port = _free_port()
    command = [sys.executable, "-c", SERVER, str(port), str(catalogue), *map(str, SWEEP)]
    server = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    rows: list[tuple[int, float, int, int, int, float]] = []
    uploaded = produced = 0
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_for(url, server)
        client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
        photos = tmp_path / "photos"
        photos.mkdir()
        start = time.monotonic()
        for number in range(1, CALLS + 1):
            photo = _photo(base, number, photos)
            image, status = client.predict(
                photo=handle_file(photo), style=STYLE_ID, style_image=None, size=128,
                strength=1.0, preserve_colors=False, api_name="/johnson",
            )  # fmt: skip
            assert status.startswith("**Johnson"), status
            uploaded += photo.stat().st_size
            produced += photo.stat().st_size + Path(image).stat().st_size
            photo.unlink()
            if number % CHECK_EVERY == 0:
                rows.append((number, time.monotonic() - start, *_folder(temp), _rss_mb(server.pid)))
        time.sleep(2 * SWEEP[1] + 2 * SWEEP[0])  # idle: every file and its folder may go
        rows.append((CALLS, time.monotonic() - start, *_folder(temp), _rss_mb(server.pid)))
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0]

    print(f"\n{CALLS} /johnson calls, temp folder swept every {SWEEP[0]} s of files over "
          f"{SWEEP[1]} s old; "
          f"{produced / 1e6:.1f} MB uploaded and returned in all")  # fmt: skip
    print("calls  seconds  temp MB  files  folders  server RSS MB")
    for calls, seconds, size, files, folders, rss in rows:
        print(f"{calls:5d}  {seconds:7.1f}  {size / 1e6:7.2f}  {files:5d}  {folders:7d}  "
              f"{rss:13.0f}")  # fmt: skip
    if "Traceback" in log:
        print(log)
    *during, idle = rows
    # Under load the folder holds the last few seconds of calls, far from one of each.
    assert max(size for _, _, size, *_ in during) < produced / 4
    assert max(files for _, _, _, files, *_ in during) < CALLS / 2
    assert max(folders for *_, folders, _ in during) < CALLS / 2
    # It levels off: the last check is no bigger than the first by more than noise.
    assert during[-1][2] <= 2 * during[0][2] + 1_000_000
    # Idle, every upload and result is gone, and its folder: only the gallery picture the
    # page was built with stays.
    assert idle[3] <= 1 and idle[4] <= 1, idle
