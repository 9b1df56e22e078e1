"""python -m train.publish against the fake Hub: upload, pinned catalogue entry, zoo round trip,
dry run, and a token that is missing, refused, or must never be printed."""

from __future__ import annotations

import json
from pathlib import Path

import fakehub
import pytest
import torch
from fakehub import FAKE_TOKEN, FakeHub
from test_train import TINY, make_photos, make_style

import zoo
from nst.errors import NSTError
from nst.johnson import load_transformer
from train.__main__ import main as train_main
from train.publish import main as publish_main
from train.publish import publish

fake_hub = fakehub.fake_hub  # the fixture, made visible to this module

REPO = "tester/stripes-style"


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny trained export shared by the tests of this module (read-only)."""
    tmp = tmp_path_factory.mktemp("publish")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        args = ["--style", str(make_style(tmp / "stripes.png")), "--data"]
        args += [str(make_photos(tmp / "photos")), "--out", str(tmp / "run"), *TINY]
        args += ["--artist", "Nobody", "--year", "2024"]
        assert train_main(args) == 0
    finally:
        torch.set_num_threads(threads)
    return tmp / "run" / "export"


def test_publish_uploads_one_commit_and_adds_a_pinned_zoo_entry(
    fake_hub: FakeHub, export_dir: Path, tmp_path: Path, capsys
):
    fake_hub.token = FAKE_TOKEN
    catalogue = tmp_path / "zoo" / "catalogue.json"
    code = publish_main([str(export_dir), "--repo", REPO, "--catalogue", str(catalogue)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert FAKE_TOKEN not in out + err

    entry = json.loads(catalogue.read_text())["styles"][0]
    revision = entry["weights"]["revision"]
    assert f"commit {revision}" in out
    assert entry["id"] == "stripes" and entry["artist"] == "Nobody" and entry["year"] == "2024"
    assert entry["weights"] == {
        "repo_id": REPO,
        "filename": "model.safetensors",
        "revision": revision,
    }
    assert entry["license"] == "mit" and entry["training"]["batch_size"] == 2
    assert (catalogue.parent / entry["preview"]).is_file()

    uploaded = fake_hub.files(REPO, revision)
    local = sorted(
        p.relative_to(export_dir).as_posix() for p in export_dir.rglob("*") if p.is_file()
    )
    assert sorted(uploaded) == local
    assert uploaded["model.safetensors"] == (export_dir / "model.safetensors").read_bytes()
    card = uploaded["README.md"].decode()  # the card names the repo it lives in
    assert f'TransformerNet.from_pretrained("{REPO}")' in card and f'zoo.load("{REPO}")' in card

    # the zoo downloads the pinned commit, checks the sha256 and runs the same network
    zoo.clear_cache()
    model = zoo.load("stripes", catalogue=catalogue, progress=False)
    local_model = load_transformer(export_dir)
    photo = torch.rand(1, 3, 40, 48)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), local_model.state_dict().values(), strict=True)
    )
    with torch.no_grad():  # zoo.load places it channels-last: the same sums in another order
        assert torch.allclose(model(photo), local_model(photo), atol=1e-5)


def test_dry_run_lists_exactly_the_files_and_needs_no_token(
    export_dir: Path, tmp_path: Path, monkeypatch, capsys
):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    catalogue = tmp_path / "catalogue.json"
    code = publish_main(
        [str(export_dir), "--repo", REPO, "--dry-run", "--catalogue", str(catalogue)]
    )
    out = capsys.readouterr().out
    assert code == 0
    listed = [line.split()[0] for line in out.splitlines()[1:]]
    expected = sorted(
        p.relative_to(export_dir).as_posix() for p in export_dir.rglob("*") if p.is_file()
    )
    assert listed == expected
    assert "model.safetensors" in listed and "README.md" in listed
    assert not catalogue.exists()


def test_missing_token_is_a_clear_error(export_dir: Path, tmp_path: Path, monkeypatch, capsys):
    from huggingface_hub import constants

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    assert publish_main([str(export_dir), "--repo", REPO]) == 1
    err = capsys.readouterr().err
    assert "No Hugging Face token" in err and "HF_TOKEN" in err and "hf auth login" in err


def test_refused_token_is_reported_without_showing_it(
    fake_hub: FakeHub, export_dir: Path, tmp_path: Path, monkeypatch, capsys
):
    secret = "hf_secret_value_that_must_not_leak_123"
    fake_hub.token = FAKE_TOKEN  # the server accepts only FAKE_TOKEN
    monkeypatch.setenv("HF_TOKEN", secret)
    catalogue = tmp_path / "catalogue.json"
    code = publish_main([str(export_dir), "--repo", REPO, "--catalogue", str(catalogue)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "token was refused" in err
    assert secret not in out + err
    assert REPO not in fake_hub.repos and not catalogue.exists()


def test_upload_failure_leaves_the_catalogue_alone(
    fake_hub: FakeHub, export_dir: Path, tmp_path: Path, monkeypatch
):
    fakehub.fast_retries(monkeypatch)  # the client retries a 500 with back-off: no sleeps
    catalogue = tmp_path / "catalogue.json"
    fake_hub.fail("status", "*/commit/*", status=500, methods=("POST",))
    with pytest.raises(NSTError, match="Uploading to 'tester/stripes-style' failed"):
        publish(export_dir, REPO, catalogue=catalogue)
    assert not catalogue.exists()


def test_incomplete_export_and_bad_repo_are_refused(tmp_path: Path, export_dir: Path):
    with pytest.raises(NSTError, match="USER/NAME"):
        publish(export_dir, "no-slash", dry_run=True)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text((export_dir / "config.json").read_text())
    with pytest.raises(NSTError, match="lacks model.safetensors"):
        publish(partial, REPO, dry_run=True)
