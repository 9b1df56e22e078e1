"""``python -m zoo``: list, info, download (with progress), verify, and clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fakehub
import pytest
import torch
from fakehub import FakeHub
from PIL import Image

import zoo
from nst.files import file_sha256
from nst.johnson import TransformerConfig, TransformerNet, save_transformer
from zoo.__main__ import main

fake_hub = fakehub.fake_hub  # the fixture, made visible to this module
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _fresh_zoo() -> None:
    zoo.clear_cache()


def entry(style: str, weights: dict, sha256: str) -> dict:
    return {
        "id": style,
        "title": f"Title of {style}",
        "painting": "Painting",
        "artist": "Artist",
        "year": 1900,
        "license": "CC0",
        "preview": f"previews/{style}.jpg",
        "weights": weights,
        "sha256": sha256,
        "training": {"steps": 40000},
    }


@pytest.fixture
def catalogue(fake_hub: FakeHub, tmp_path: Path) -> Path:
    """A catalogue with 'local' (bundled) and 'remote' (on the fake Hub)."""
    torch.manual_seed(0)
    base = tmp_path / "cat"
    model = TransformerNet(TransformerConfig(width=8, residual_blocks=1))
    save_transformer(model, tmp_path / "export")
    # The same bytes both ways: safetensors' header order varies between saves.
    shutil.copytree(tmp_path / "export", base / "models" / "local")
    commit = fake_hub.add_folder("alice/remote", tmp_path / "export")
    sha = file_sha256(base / "models/local/model.safetensors")
    entries = [
        entry("local", {"bundled": "models/local"}, sha),
        entry("remote", {"repo_id": "alice/remote", "revision": commit}, sha),
    ]
    (base / "previews").mkdir()
    for e in entries:
        Image.new("RGB", (32, 32), "red").save(base / e["preview"])
    path = base / "catalogue.json"
    path.write_text(json.dumps({"styles": entries}))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_info_download_verify(catalogue: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cat = f"--catalogue={catalogue}"
    code, out, _ = run(capsys, cat, "list")
    assert code == 0
    assert "local" in out and "[bundled]" in out and "[not downloaded]" in out

    code, out, _ = run(capsys, cat, "info", "remote")
    assert code == 0 and "alice/remote" in out and "steps: 40000" in out

    code, out, err = run(capsys, cat, "download", "remote")
    assert code == 0 and out.startswith("remote: ") and out.strip().endswith("model.safetensors")
    assert "100%" in err  # the progress bar
    code, out, _ = run(capsys, cat, "list")
    assert "[not downloaded]" not in out and "[cached]" in out

    code, out, _ = run(capsys, cat, "download", "--all", "--quiet")
    assert code == 0 and "local: " in out and "remote: " in out

    code, out, _ = run(capsys, cat, "verify")
    assert code == 0 and "2 of 2 styles verified" in out


def test_verify_reports_a_damaged_bundled_model(
    catalogue: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = catalogue.parent / "models/local/model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    code, out, _ = run(capsys, f"--catalogue={catalogue}", "verify")
    assert code == 1
    assert "BAD  local: sha256 mismatch" in out and "remote: not downloaded" in out


def test_errors_are_one_clear_line(catalogue: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cat = f"--catalogue={catalogue}"
    code, _, err = run(capsys, cat, "info", "nope")
    assert code == 1 and err.startswith("error: Unknown style 'nope'") and "Traceback" not in err
    code, _, err = run(capsys, cat, "download")
    assert code == 2 and "--all" in err
    code, out, err = run(capsys, cat, "download", "nope", "remote", "--quiet")
    assert code == 1 and "Unknown style 'nope'" in err and "remote: " in out  # others go on


def test_module_entry_point_runs(tmp_path: Path) -> None:
    catalogue = tmp_path / "catalogue.json"
    catalogue.write_text('{"styles": []}')
    env = {**os.environ, "NST_ZOO_CATALOGUE": str(catalogue), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "zoo", "list"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"No styles in {catalogue}" in result.stdout
