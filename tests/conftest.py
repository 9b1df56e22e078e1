"""Shared fixtures: where ../shared is, and a small random VGG for fast unit tests."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

# huggingface_hub reads HF_HUB_OFFLINE once, at import: set it before anything imports it,
# so no test waits on retries to the unreachable Hub (tests that need a Hub start a fake one).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Johnson inference on PyTorch unless a test asks for an engine (tests/test_engines.py):
# the tests written for the PyTorch path keep testing it, and none pays for an ONNX export
# of its own net. Exported graphs go to a folder of this run, never the user's cache.
os.environ.setdefault("NST_ENGINE", "torch")
if "NST_CACHE_DIR" not in os.environ:
    os.environ["NST_CACHE_DIR"] = tempfile.mkdtemp(prefix="nst-test-cache-")
    atexit.register(shutil.rmtree, os.environ["NST_CACHE_DIR"], ignore_errors=True)

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NST_SHARED", ROOT.parent / "shared"))
REAL_VGG16 = SHARED / "weights" / "vgg16_imagenet_features.safetensors"
CONTENT_DIR = SHARED / "data" / "content"
STYLE_DIR = SHARED / "data" / "styles"
TRAIN_DIR = SHARED / "data" / "train"

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (the ../shared folder is absent)")
    return path


@pytest.fixture(scope="session")
def real_vgg16() -> Path:
    """Path of the real ImageNet VGG16 weights; skips the test when ../shared lacks it."""
    return _require(REAL_VGG16, "real VGG16 weights")


@pytest.fixture(scope="session")
def content_dir() -> Path:
    return _require(CONTENT_DIR, "content photos")


@pytest.fixture(scope="session")
def style_dir() -> Path:
    return _require(STYLE_DIR, "style paintings")


@pytest.fixture(scope="session")
def train_dir() -> Path:
    return _require(TRAIN_DIR, "training photos")


@pytest.fixture(autouse=True)
def _no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the real Hub: tests that need one start their own fake server."""
    monkeypatch.setenv("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "1"))
    monkeypatch.delenv("NST_VGG_WEIGHTS", raising=False)


#: Test files whose every test takes seconds (a real server, many training runs, ...).
SLOW_FILES = {"test_app.py", "test_train_faults.py", "test_deploy.py"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers from what a test uses, so they cannot drift from it: ``real_vgg`` for every
    test that asks for the real VGG16, ``browser`` for the browser tests, and ``slow`` for
    both and for the files in SLOW_FILES (``pytest -m "not slow"``: the quick unit tests)."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "real_vgg16" in fixtures:
            item.add_marker(pytest.mark.real_vgg)
        if item.path.name == "test_browser.py":
            item.add_marker(pytest.mark.browser)
        if (
            item.get_closest_marker("real_vgg")
            or item.get_closest_marker("browser")
            or item.path.name in SLOW_FILES
        ):
            item.add_marker(pytest.mark.slow)
