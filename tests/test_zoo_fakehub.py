"""The fake Hub itself: the real huggingface_hub client must be able to use it both ways,
or every zoo and publish test built on it would prove nothing."""

from __future__ import annotations

from pathlib import Path

import fakehub
import pytest
from fakehub import FAKE_TOKEN, FakeHub
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

fake_hub = fakehub.fake_hub  # the fixture, made visible to this module


def test_download_by_branch_and_commit(fake_hub: FakeHub) -> None:
    first = fake_hub.add_file("alice/notes", "a.txt", b"one")
    second = fake_hub.add_file("alice/notes", "a.txt", b"two")
    assert first != second
    endpoint = fake_hub.endpoint
    assert Path(hf_hub_download("alice/notes", "a.txt", endpoint=endpoint)).read_bytes() == b"two"
    old = hf_hub_download("alice/notes", "a.txt", revision=first, endpoint=endpoint)
    assert Path(old).read_bytes() == b"one"
    folder = snapshot_download("alice/notes", revision=first, endpoint=endpoint)
    assert sorted(p.name for p in Path(folder).iterdir()) == ["a.txt"]


def test_errors_map_to_hub_exceptions(fake_hub: FakeHub) -> None:
    fake_hub.add_file("alice/notes", "a.txt", b"one")
    endpoint = fake_hub.endpoint
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/missing", "a.txt", endpoint=endpoint)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("alice/notes", "b.txt", endpoint=endpoint)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("alice/notes", "a.txt", revision="nope", endpoint=endpoint)


def test_upload_folder_then_download_by_commit(fake_hub: FakeHub, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 10)
    (folder / "config.json").write_text('{"width": 8}')
    api = HfApi(endpoint=fake_hub.endpoint, token=FAKE_TOKEN)
    assert api.whoami()["name"] == "tester"
    repo = api.create_repo("tester/style", exist_ok=True)
    assert repo.repo_id == "tester/style"
    api.create_repo("tester/style", exist_ok=True)  # 409 -> exists, accepted
    info = api.upload_folder(repo_id="tester/style", folder_path=folder, commit_message="add")
    assert len(info.oid) == 40
    got = hf_hub_download(
        "tester/style", "model.safetensors", revision=info.oid, endpoint=fake_hub.endpoint
    )
    assert Path(got).read_bytes() == (folder / "model.safetensors").read_bytes()
    assert sorted(api.list_repo_files("tester/style")) == ["config.json", "model.safetensors"]


def test_upload_needs_the_token_when_one_is_set(fake_hub: FakeHub) -> None:
    fake_hub.token = FAKE_TOKEN
    with pytest.raises(Exception, match="401"):
        HfApi(endpoint=fake_hub.endpoint, token="hf_wrong").create_repo("tester/x")
    assert "tester/x" not in fake_hub.repos


def test_injected_status_fault_is_counted(fake_hub: FakeHub) -> None:
    fake_hub.add_file("alice/notes", "a.txt", b"one")
    fake_hub.fail("status", "*/a.txt", status=404, times=1)
    with pytest.raises(Exception):  # noqa: B017 - a bare 404 without error code
        hf_hub_download("alice/notes", "a.txt", endpoint=fake_hub.endpoint)
    assert fake_hub.count("HEAD", "*/a.txt") == 1
    path = hf_hub_download("alice/notes", "a.txt", endpoint=fake_hub.endpoint)
    assert Path(path).read_bytes() == b"one"


def test_model_card_metadata_is_validated(fake_hub: FakeHub, tmp_path: Path) -> None:
    api = HfApi(endpoint=fake_hub.endpoint, token=FAKE_TOKEN)
    api.create_repo("tester/card")
    folder = tmp_path / "card"
    folder.mkdir()
    (folder / "README.md").write_text("---\nlicense: [unclosed\n---\n# card\n")
    with pytest.raises(ValueError, match="Invalid metadata"):
        api.upload_folder(repo_id="tester/card", folder_path=folder)
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# card\n")
    api.upload_folder(repo_id="tester/card", folder_path=folder)
    assert fake_hub.files("tester/card")["README.md"].startswith(b"---\nlicense: mit")
