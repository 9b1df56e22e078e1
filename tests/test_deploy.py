"""Deployment smoke tests, each in a fresh venv (slow: they install torch and gradio).

- ``pip install .`` gives an ``nst`` command that works from any folder;
- the Space: a clean copy of the repository (``git archive``), only ``requirements.txt``,
  ``HF_HUB_OFFLINE=1`` and no ../shared: the app starts, shows its examples, ``/johnson``
  returns an image for a bundled style and ``/gatys`` says how to provide the VGG weights;
  with the package installed there too, ``nst app`` finds the app from any folder.

Both skip where the repository is not a git checkout. Each venv holds torch with its CUDA
libraries (about 6 GB), so each test removes its venv when it ends, pip keeps no cache, and a
test skips, saying so, where the disk cannot hold one more venv.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise AssertionError(f"{cmd} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


#: What one fresh venv with the app's requirements needs on disk, with room for pip's work.
VENV_BYTES = 8 * 1024**3


@pytest.fixture
def fresh_venv(tmp_path: Path) -> Iterator[Path]:
    """The python of a new, empty venv; the venv is deleted after the test, so that two
    such tests never hold two torch installs on the disk at once."""
    folder = tmp_path / "venv"
    free = shutil.disk_usage(tmp_path).free
    if free < VENV_BYTES:
        pytest.skip(
            f"{free / 1024**3:.1f} GiB free where a fresh venv with torch needs about "
            f"{VENV_BYTES / 1024**3:.0f} GiB"
        )
    _run([sys.executable, "-m", "venv", str(folder)])
    yield folder / "bin" / "python"
    shutil.rmtree(folder, ignore_errors=True)


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without this checkout on the path and without the dev venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PIP_NO_CACHE_DIR="1", **extra)
    return env


def _archive(target: Path) -> Path:
    """The committed tree, as a Space would receive it (no ../shared, no build outputs)."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout: no clean copy to test")
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"], capture_output=True
    )
    assert archive.returncode == 0, archive.stderr
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def test_pip_install_gives_an_nst_command_that_works_anywhere(
    tmp_path: Path, fresh_venv: Path
) -> None:
    source = _archive(tmp_path / "source")
    python = fresh_venv
    _run([str(python), "-m", "pip", "install", "--quiet", str(source)], env=_clean_env())
    nst = fresh_venv.parent / "nst"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    version = _run([str(nst), "--version"], cwd=elsewhere, env=_clean_env())
    assert version.stdout.strip().startswith("nst 0.")
    photo = source / "examples" / "golden_gate.jpg"
    out = elsewhere / "out.png"
    _run(
        [str(nst), "stylize", str(photo), "--model", "starry_night", "-o", str(out),
         "--size", "256"],
        cwd=elsewhere, env=_clean_env(),
    )  # fmt: skip
    from PIL import Image

    with Image.open(out) as image:
        assert max(image.size) == 256
    bad = _run_status(
        [str(nst), "stylize", "missing.jpg", "--model", "starry_night", "-o", "x.png"],
        cwd=elsewhere,
        env=_clean_env(),
    )
    assert bad.returncode != 0 and "error:" in bad.stderr and "Traceback" not in bad.stderr


def _run_status(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_space_starts_from_a_clean_copy_with_requirements_only(
    tmp_path: Path, fresh_venv: Path
) -> None:
    space = _archive(tmp_path / "space")
    python = fresh_venv
    _run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(space / "requirements.txt"),
         "gradio_client"],
        env=_clean_env(),
    )  # fmt: skip
    port = _free_port()
    env = _clean_env(GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1")
    env.pop("NST_VGG_WEIGHTS", None)
    server = subprocess.Popen(
        [str(python), "app.py"], cwd=space, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/"
        _wait_for(url, server)
        check = _run(
            [str(python), "-c", SPACE_CHECK, url, str(space / "examples" / "dog.jpg")],
            env=_clean_env(),
            timeout=600,
        )
        assert "examples ok" in check.stdout and "johnson ok" in check.stdout
        assert "gatys explains" in check.stdout, check.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)
    # The same venv has the app's dependencies: the installed package serves it too.
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(space)],
         env=_clean_env())  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    usage = _run([str(fresh_venv.parent / "nst"), "app", "--help"], cwd=elsewhere,
                 env=_clean_env())  # fmt: skip
    assert "--port" in usage.stdout and "Traceback" not in usage.stderr


def _wait_for(url: str, server: subprocess.Popen, seconds: float = 300) -> None:
    import urllib.request

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(
                f"the app exited:\n{server.stdout.read() if server.stdout else ''}"
            )
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise AssertionError("the app did not start in time")


#: Run in the Space's venv: the page's config, then both endpoints.
SPACE_CHECK = r"""
import json, sys, urllib.request
from gradio_client import Client, handle_file
url, photo = sys.argv[1], sys.argv[2]
config = json.loads(urllib.request.urlopen(url + "config", timeout=30).read())
datasets = [c for c in config["components"] if c.get("type") == "dataset"]
samples = datasets[0]["props"]["samples"] if datasets else []
assert len(samples) >= 4, samples
print("examples ok", len(samples))
client = Client(url, verbose=False)
image, status = client.predict(photo=handle_file(photo), style="starry_night", style_image=None,
    size=256, strength=1.0, preserve_colors=False, api_name="/johnson")
assert image and status.startswith("**Johnson"), status
print("johnson ok")
try:
    client.predict(photo=handle_file(photo), style="starry_night", style_image=None, size=64,
        iterations=2, optimizer="lbfgs", init="content", strength=1.0, preserve_colors=False,
        api_name="/gatys")
except Exception as exc:
    message = str(exc)
    assert "NST_VGG_WEIGHTS" in message, message
    print("gatys explains")
"""
