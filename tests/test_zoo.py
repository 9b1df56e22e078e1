"""The zoo against a fake Hub on 127.0.0.1, through the real huggingface_hub code path.

Every fault test checks three things: the error is an NSTError naming the style, it says
what to do, and the Hub cache holds nothing half-written (no partial or bad blob).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import fakehub
import pytest
import torch
from fakehub import FAKE_TOKEN, FakeHub, fast_retries, set_offline
from huggingface_hub import HfApi, constants
from PIL import Image

import zoo
from nst.errors import NSTError
from nst.files import file_sha256
from nst.johnson import TransformerConfig, TransformerNet, save_transformer

fake_hub = fakehub.fake_hub  # the fixture, made visible to this module

MODEL_GLOB = "*/resolve/*/model.safetensors"


@pytest.fixture(autouse=True)
def _fresh_zoo() -> None:
    zoo.clear_cache()


def tiny_model(seed: int = 0, width: int = 8) -> TransformerNet:
    torch.manual_seed(seed)
    return TransformerNet(TransformerConfig(width=width, residual_blocks=1)).eval()


def export(model: TransformerNet, folder: Path) -> Path:
    return save_transformer(model, folder)


def same_output(a: TransformerNet, b: TransformerNet) -> bool:
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        # a channels-last net (as zoo.load places it) sums in another order: float rounding
        return torch.allclose(a(x), b(x), atol=1e-5)


def hub_entry(style: str, repo_id: str, revision: str, sha256: str, **extra: object) -> dict:
    entry = {
        "id": style,
        "title": style.replace("_", " ").title(),
        "painting": "A Painting",
        "artist": "An Artist",
        "year": 1889,
        "license": "public domain",
        "preview": f"previews/{style}.jpg",
        "weights": {"repo_id": repo_id, "filename": "model.safetensors", "revision": revision},
        "sha256": sha256,
        "training": {"steps": 10, "style_weight": 1e5},
    }
    entry.update(extra)
    return entry


def write_catalogue(folder: Path, *entries: dict) -> Path:
    """A catalogue next to its previews, written directly (as a hand-edit would)."""
    (folder / "previews").mkdir(parents=True, exist_ok=True)
    for entry in entries:
        Image.new("RGB", (64, 48), "navy").save(folder / entry["preview"])
    path = folder / "catalogue.json"
    path.write_text(json.dumps({"styles": list(entries)}))
    return path


def publish(hub: FakeHub, repo_id: str, model: TransformerNet, folder: Path) -> tuple[str, str]:
    """Put ``model`` on the fake Hub; return (commit, sha256 of model.safetensors)."""
    export(model, folder)
    commit = hub.add_folder(repo_id, folder)
    return commit, file_sha256(folder / "model.safetensors")


def cache_files(home: Path) -> list[Path]:
    """Model blobs, snapshot links and partial downloads in the Hub cache."""
    root = home / "hub"
    if not root.exists():
        return []
    found = [p for p in root.rglob("*") if p.name.endswith(".incomplete")]
    found += [p for p in root.rglob("snapshots/*/model.safetensors")]
    found += [p for p in root.rglob("blobs/*") if p.stat().st_size > 1000]
    return found


@pytest.fixture
def hub_style(fake_hub: FakeHub, tmp_path: Path) -> tuple[Path, TransformerNet]:
    """A catalogue with one Hub style 'starry' (repo alice/starry, pinned commit)."""
    model = tiny_model()
    commit, sha = publish(fake_hub, "alice/starry", model, tmp_path / "export")
    return write_catalogue(
        tmp_path / "cat", hub_entry("starry", "alice/starry", commit, sha)
    ), model


# ---- the catalogue ---------------------------------------------------------------------


def test_shipped_catalogue_is_valid_and_complete() -> None:
    """Whatever zoo/catalogue.json lists must parse, and bundled styles must verify."""
    styles = zoo.list_styles()
    assert [s.id for s in styles] == [s.id for s in zoo.verify()]
    for result in zoo.verify():
        assert result.ok, f"{result.id}: {result.status}"


@pytest.mark.parametrize(
    ("size", "fmt", "copied"),
    [((512, 340), "JPEG", True), ((900, 600), "JPEG", False), ((300, 200), "PNG", False)],
)
def test_write_preview_keeps_a_small_jpeg_byte_for_byte(
    tmp_path: Path, size: tuple[int, int], fmt: str, copied: bool
) -> None:
    """An export's 512 px painting is served as it is: a second JPEG encoding would move the
    style the zoo's own test judges against. Larger or non-JPEG paintings are re-encoded."""
    source = tmp_path / f"painting.{fmt.lower()}"
    noise = torch.rand(size[1], size[0], 3).mul(255).byte().numpy()
    Image.fromarray(noise).save(source, format=fmt, quality=92)
    target = zoo.catalogue.write_preview(source, tmp_path / "previews" / "p.jpg")
    assert (target.read_bytes() == source.read_bytes()) is copied
    with Image.open(target) as preview:
        assert preview.format == "JPEG" and max(preview.size) == min(512, max(size))


def test_add_style_bundled_writes_preview_and_loads(tmp_path: Path) -> None:
    catalogue = tmp_path / "zoo" / "catalogue.json"
    model = tiny_model(3)
    export(model, tmp_path / "zoo" / "models" / "waves")
    painting = tmp_path / "painting.png"
    Image.new("RGB", (1200, 800), "teal").save(painting)
    entry = hub_entry("waves", "x/y", "0" * 40, "0" * 64)
    entry.pop("sha256")  # computed for bundled weights
    entry["weights"] = {"bundled": "models/waves"}
    zoo.add_style(entry, catalogue, source_image=painting)

    (style,) = zoo.list_styles(catalogue)
    assert style.id == "waves" and style.is_bundled
    assert style.preview == "previews/waves.jpg" and style.preview_path.is_absolute()
    with Image.open(style.preview_path) as preview:
        assert preview.format == "JPEG" and max(preview.size) == 512
    assert style.sha256 == file_sha256(tmp_path / "zoo/models/waves/model.safetensors")
    assert zoo.get_style("waves", catalogue).training == {"steps": 10, "style_weight": 1e5}
    loaded = zoo.load("waves", catalogue=catalogue)
    assert not loaded.training and same_output(loaded, model)
    assert zoo.load("waves", catalogue=catalogue) is loaded  # cached in-process

    # Re-adding the same id replaces the entry in its place instead of listing it twice.
    other = {**entry, "id": "later", "title": "Later"}
    zoo.add_style(other, catalogue, source_image=painting)
    zoo.add_style({**entry, "title": "New title"}, catalogue)
    assert [s.title for s in zoo.list_styles(catalogue)] == ["New title", "Later"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "Bad Name"}, "not valid"),
        ({"sha256": "ab" * 32}, "does not match"),
        ({"weights": {"bundled": "models/none"}}, "no model.safetensors"),
        ({"weights": {"repo_id": "alice/x", "revision": "main"}}, "40-hex commit"),
        (
            {"weights": {"repo_id": "alice/x", "filename": "m.bin", "revision": "a" * 40}},
            "pickles",
        ),
        ({"preview": "previews/missing.jpg"}, "does not exist"),
    ],
)
def test_add_style_refuses_bad_entries_and_keeps_catalogue(
    tmp_path: Path, change: dict, message: str
) -> None:
    export(tiny_model(), tmp_path / "models" / "ok")
    good = hub_entry("ok", "x/y", "0" * 40, file_sha256(tmp_path / "models/ok/model.safetensors"))
    good["weights"] = {"bundled": "models/ok"}
    catalogue = write_catalogue(tmp_path, good)
    before = catalogue.read_text()
    with pytest.raises(NSTError, match=message):
        zoo.add_style({**good, **change, "id": change.get("id", "new")}, catalogue)
    assert catalogue.read_text() == before
    assert not list(tmp_path.glob(".catalogue.*"))


def test_unknown_style_names_the_known_ones(tmp_path: Path) -> None:
    catalogue = write_catalogue(tmp_path, hub_entry("starry", "a/b", "0" * 40, "0" * 64))
    with pytest.raises(NSTError, match=r"Unknown style 'nope'.*starry.*python -m zoo list"):
        zoo.load("nope", catalogue=catalogue)


def test_folder_without_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NSTError, match="holds no model.safetensors"):
        zoo.load(tmp_path)


# ---- download, cache, offline ----------------------------------------------------------


def test_download_then_cache_hit_without_server_then_offline(
    fake_hub: FakeHub, hub_style: tuple[Path, TransformerNet], monkeypatch: pytest.MonkeyPatch
) -> None:
    catalogue, model = hub_style
    # Only the environment names the server: proves HF_ENDPOINT is read at call time.
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    first = zoo.load("starry", catalogue=catalogue, progress=False)
    assert same_output(first, model)
    assert fake_hub.count("GET", MODEL_GLOB) == 1

    fake_hub.stop()
    zoo.clear_cache()
    second = zoo.load("starry", catalogue=catalogue)
    assert second is not first and same_output(second, model)

    set_offline(monkeypatch, True)
    zoo.clear_cache()
    assert same_output(zoo.load("starry", catalogue=catalogue), model)


def test_repo_id_at_main_falls_back_to_cache_when_server_is_gone(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tiny_model(5)
    publish(fake_hub, "bob/waves", model, tmp_path / "export")
    assert same_output(zoo.load("bob/waves", progress=False), model)
    fake_hub.stop()
    zoo.clear_cache()
    assert same_output(zoo.load("bob/waves"), model)  # refs/main from the cache
    set_offline(monkeypatch, True)
    zoo.clear_cache()
    assert same_output(zoo.load("bob/waves"), model)


def test_offline_with_empty_cache_says_how_to_fix(
    fake_hub: FakeHub, hub_style: tuple[Path, TransformerNet], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_offline(monkeypatch, True)
    with pytest.raises(NSTError, match=r"Style 'starry'.*HF_HUB_OFFLINE.*python -m zoo download"):
        zoo.load("starry", catalogue=hub_style[0])
    assert fake_hub.requests == []


def test_repo_id_with_revision_and_folder(fake_hub: FakeHub, tmp_path: Path) -> None:
    old, new = tiny_model(1), tiny_model(2)
    first, _ = publish(fake_hub, "bob/waves", old, tmp_path / "a")
    publish(fake_hub, "bob/waves", new, tmp_path / "b")
    assert same_output(zoo.load(f"bob/waves@{first}", progress=False), old)
    assert same_output(zoo.load("bob/waves", progress=False), new)
    assert same_output(zoo.load(str(tmp_path / "a")), old)


def test_private_repo_needs_hf_token(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tiny_model(4)
    publish(fake_hub, "bob/secret", model, tmp_path / "export")
    fake_hub.repos["bob/secret"].private = True
    fake_hub.token = FAKE_TOKEN
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(NSTError, match=r"'bob/secret' was not found.*HF_TOKEN"):
        zoo.load("bob/secret", progress=False)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    assert same_output(zoo.load("bob/secret", progress=False), model)


def test_two_threads_download_once(
    fake_hub: FakeHub, hub_style: tuple[Path, TransformerNet]
) -> None:
    catalogue, _ = hub_style
    results: list[object] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        barrier.wait()
        results.append(zoo.load("starry", catalogue=catalogue, progress=False))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 2 and results[0] is results[1]
    assert fake_hub.count("GET", MODEL_GLOB) == 1
    assert fake_hub.count("HEAD", MODEL_GLOB) == 1


def test_training_export_round_trips_through_the_hub(fake_hub: FakeHub, tmp_path: Path) -> None:
    """save_transformer -> HfApi.upload_folder (as train.publish does) -> zoo.load."""
    model = tiny_model(7)
    model.config.style = {"id": "mine", "title": "Mine"}
    model.config.training = {"steps": 3}
    folder = export(model, tmp_path / "export")
    api = HfApi(endpoint=fake_hub.endpoint, token=FAKE_TOKEN)
    api.create_repo("tester/mine", exist_ok=True)
    info = api.upload_folder(repo_id="tester/mine", folder_path=folder, commit_message="v1")
    loaded = zoo.load(f"tester/mine@{info.oid}", progress=False)
    assert same_output(loaded, model)
    assert loaded.config == model.config
    sha = file_sha256(folder / "model.safetensors")
    catalogue = write_catalogue(tmp_path / "cat", hub_entry("mine", "tester/mine", info.oid, sha))
    assert same_output(zoo.load("mine", catalogue=catalogue), model)


def test_push_to_hub_then_from_pretrained_by_repo_id(fake_hub: FakeHub, tmp_path: Path) -> None:
    """The mixin's API on the project's Hub path: push_to_hub -> from_pretrained("u/n")."""
    model = tiny_model(11)
    model.config.style = {"id": "pushed", "title": "Pushed"}
    fake_hub.token = FAKE_TOKEN
    info = model.push_to_hub("tester/pushed")
    files = fake_hub.files("tester/pushed", info.oid)
    assert sorted(files) == ["README.md", "config.json", "model.safetensors"]
    assert json.loads(files["config.json"]) == json.loads(
        (export(model, tmp_path / "same") / "config.json").read_text()
    )
    assert 'TransformerNet.from_pretrained("tester/pushed")' in files["README.md"].decode()
    loaded = TransformerNet.from_pretrained("tester/pushed", progress=False)
    assert same_output(loaded, model) and not loaded.training
    assert loaded.config == model.config
    pinned = TransformerNet.from_pretrained("tester/pushed", revision=info.oid, progress=False)
    assert same_output(pinned, model)


# ---- faults: each a clear error, nothing half-written kept -----------------------------


def test_repo_not_found(fake_hub: FakeHub, tmp_path: Path) -> None:
    catalogue = write_catalogue(tmp_path, hub_entry("ghost", "alice/ghost", "a" * 40, "b" * 64))
    with pytest.raises(NSTError, match=r"Style 'ghost'.*'alice/ghost' was not found.*HF_TOKEN"):
        zoo.load("ghost", catalogue=catalogue)
    assert cache_files(tmp_path / "hf") == []


def test_file_not_found(fake_hub: FakeHub, tmp_path: Path) -> None:
    commit = fake_hub.add_file("alice/empty", "README.md", b"# nothing here")
    entry = hub_entry("empty", "alice/empty", commit, "b" * 64)
    catalogue = write_catalogue(tmp_path, entry)
    with pytest.raises(NSTError, match=r"Style 'empty'.*no file 'model.safetensors'.*Check"):
        zoo.load("empty", catalogue=catalogue)
    assert cache_files(tmp_path / "hf") == []


def test_server_error_500(
    fake_hub: FakeHub, hub_style: tuple[Path, TransformerNet], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_retries(monkeypatch)
    fake_hub.fail("status", "*", status=500)
    with pytest.raises(NSTError, match=r"Style 'starry'.*HTTP 500.*try again later"):
        zoo.load("starry", catalogue=hub_style[0])
    assert cache_files(Path(constants.HF_HOME)) == []


def test_server_that_stalls_times_out(
    fake_hub: FakeHub, hub_style: tuple[Path, TransformerNet], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_retries(monkeypatch, timeout=0.3)
    fake_hub.fail("stall", MODEL_GLOB, methods=("GET",))
    with pytest.raises(NSTError, match=r"Style 'starry'.*timed out.*try again"):
        zoo.load("starry", catalogue=hub_style[0], progress=False)
    assert cache_files(Path(constants.HF_HOME)) == []


def test_truncated_body(
    fake_hub: FakeHub, hub_style: tuple[Path, TransformerNet], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_retries(monkeypatch)
    fake_hub.fail("truncate", MODEL_GLOB, methods=("GET",))
    with pytest.raises(NSTError, match=r"Style 'starry'.*failed.*discarded; try again"):
        zoo.load("starry", catalogue=hub_style[0], progress=False)
    assert cache_files(Path(constants.HF_HOME)) == []


def test_one_truncated_body_is_resumed(
    fake_hub: FakeHub, hub_style: tuple[Path, TransformerNet], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast_retries(monkeypatch)
    fake_hub.fail("truncate", MODEL_GLOB, methods=("GET",), times=1)
    assert same_output(zoo.load("starry", catalogue=hub_style[0], progress=False), hub_style[1])
    assert fake_hub.count("GET", MODEL_GLOB) == 2  # the second asked for the rest (Range)


def test_sha256_mismatch_is_refused_and_deleted(fake_hub: FakeHub, tmp_path: Path) -> None:
    commit, _ = publish(fake_hub, "alice/starry", tiny_model(), tmp_path / "export")
    catalogue = write_catalogue(tmp_path, hub_entry("starry", "alice/starry", commit, "c" * 64))
    with pytest.raises(NSTError, match=r"Style 'starry'.*sha256.*deleted.*update the catalogue"):
        zoo.load("starry", catalogue=catalogue)
    assert cache_files(tmp_path / "hf") == []
    with pytest.raises(NSTError, match="sha256"):  # not served from the cache next time
        zoo.load("starry", catalogue=catalogue)
    assert fake_hub.count("GET", MODEL_GLOB) == 2


def test_corrupted_in_transit_is_caught_by_the_etag(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(fake_hub, "bob/waves", tiny_model(), tmp_path / "export")
    fake_hub.fail("corrupt", MODEL_GLOB, methods=("GET",))
    with pytest.raises(NSTError, match=r"'bob/waves'.*corrupted.*deleted"):
        zoo.load("bob/waves", progress=False)
    assert cache_files(tmp_path / "hf") == []


def test_pickle_only_repo_is_refused(fake_hub: FakeHub, tmp_path: Path) -> None:
    commit = fake_hub.commit(
        "eve/pickled", {"pytorch_model.bin": b"\x80\x04pickle" * 200, "config.json": b"{}"}
    )
    catalogue = write_catalogue(tmp_path, hub_entry("pickled", "eve/pickled", commit, "d" * 64))
    with pytest.raises(NSTError, match=r"Style 'pickled'.*only pickle.*pytorch_model.bin"):
        zoo.load("pickled", catalogue=catalogue)
    with pytest.raises(NSTError, match=r"Hub repo 'eve/pickled'.*only pickle"):
        zoo.load("eve/pickled")
    with pytest.raises(NSTError, match=r"Hub repo 'eve/pickled'.*only pickle"):
        TransformerNet.from_pretrained("eve/pickled")  # never the mixin's torch.load path
    assert fake_hub.count("GET", "*/pytorch_model.bin") == 0  # never even downloaded
    assert cache_files(tmp_path / "hf") == []


def test_wrong_shapes_are_refused_before_use(fake_hub: FakeHub, tmp_path: Path) -> None:
    folder = export(tiny_model(width=8), tmp_path / "export")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "width": 16}))
    commit = fake_hub.add_folder("alice/shapes", folder)
    sha = file_sha256(folder / "model.safetensors")
    catalogue = write_catalogue(tmp_path / "cat", hub_entry("shapes", "alice/shapes", commit, sha))
    with pytest.raises(NSTError, match=r"(?s)Style 'shapes'.*expected shape.*config.json.*removed"):
        zoo.load("shapes", catalogue=catalogue)
    assert cache_files(tmp_path / "hf") == []


def test_train_export_folder_loads_through_the_zoo_unchanged(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    """train.export's real output (fp16, model card, samples) -> Hub -> zoo.load."""
    export_mod = pytest.importorskip("train.export")
    checkpoint = pytest.importorskip("train.checkpoint")
    model = tiny_model(9)
    optimizer = torch.optim.Adam(model.parameters())
    checkpoint.save_checkpoint(tmp_path / "run", 1, model, optimizer, {"config": {}}, keep=1)
    folder = export_mod.export_run(tmp_path / "run")
    loaded = zoo.load(folder)
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=2e-2)  # fp16 weights, fp32 net
    api = HfApi(endpoint=fake_hub.endpoint, token=FAKE_TOKEN)
    api.create_repo("tester/trained", exist_ok=True)
    info = api.upload_folder(repo_id="tester/trained", folder_path=folder, commit_message="v1")
    from_hub = zoo.load(f"tester/trained@{info.oid}", progress=False)
    with torch.no_grad():
        assert torch.equal(from_hub(x), loaded(x))


def test_the_catalogue_is_parsed_once_and_again_when_it_changes(
    tmp_path: Path, monkeypatch
) -> None:
    from zoo import catalogue as cat

    path = tmp_path / "catalogue.json"
    entry = hub_entry("waves", "x/y", "0" * 40, "0" * 64)
    path.write_text(json.dumps({"styles": [entry]}))
    parses = []
    real = cat._parse_catalogue
    monkeypatch.setattr(cat, "_parse_catalogue", lambda p: parses.append(p) or real(p))
    assert [s.id for s in zoo.list_styles(path)] == ["waves"]
    assert [s.id for s in zoo.list_styles(path)] == ["waves"]
    assert zoo.get_style("waves", path).id == "waves"
    assert len(parses) == 1
    # an edit in place (same size, new content) and an atomic replace are both seen
    before = path.stat().st_mtime_ns
    path.write_text(json.dumps({"styles": [{**entry, "id": "wavez"}]}))
    # as a person's edit a second later (the file clock may tick coarser than this test)
    os.utime(path, ns=(before + 10**9, before + 10**9))
    assert [s.id for s in zoo.list_styles(path)] == ["wavez"]
    other = tmp_path / "new.json"
    other.write_text(json.dumps({"styles": [{**entry, "id": "other"}]}))
    other.replace(path)
    assert [s.id for s in zoo.list_styles(path)] == ["other"]
    assert len(parses) == 3
