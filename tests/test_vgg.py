"""The loss network: names, cutting, weights resolution and its errors."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import fakehub
import pytest
import torch
from fakehub import FakeHub
from safetensors.torch import save_file

from nst.errors import NSTError
from nst.vgg import layer_names, load_loss_network

fake_hub = fakehub.fake_hub  # the fixture, made visible to this module


def test_layer_names_follow_torchvision_indices() -> None:
    vgg16, vgg19 = layer_names("vgg16"), layer_names("vgg19")
    assert vgg16[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert vgg16.index("conv5_3") == 28 and len(vgg16) == 31
    assert vgg19.index("conv5_4") == 34 and "relu5_4" not in vgg16


def test_network_is_cut_after_deepest_layer_and_frozen() -> None:
    net = load_loss_network(["relu2_2", "conv1_2"], weights="random", width_divisor=8)
    assert net.names[-1] == "relu2_2"
    assert all(not p.requires_grad for p in net.parameters())
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    out = net(x, ["relu2_2", "conv1_2"])
    assert out["relu2_2"].shape == (1, 16, 16, 16)
    assert (out["conv1_2"] < 0).any()  # a conv output is not clobbered by its in-place ReLU
    out["relu2_2"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unknown_layer_names_are_explained() -> None:
    with pytest.raises(NSTError, match="relu9_9"):
        load_loss_network(["relu9_9"], weights="random", width_divisor=8)


def _fake_vgg16_file(path: Path, divisor: int = 1) -> Path:
    torch.manual_seed(0)
    net = load_loss_network(["relu5_3"], arch="vgg16", weights="random", width_divisor=divisor)
    state = {
        f"features.{k.split('.', 1)[1]}": v
        for k, v in net.state_dict().items()
        if k.startswith("features.")
    }
    state["classifier.0.weight"] = torch.zeros(2, 2)  # like timm files: ignored
    save_file({k: v.half() for k, v in state.items()}, str(path))
    return path


def test_vgg16_file_is_recognised_from_its_keys(tmp_path: Path) -> None:
    path = _fake_vgg16_file(tmp_path / "vgg16.safetensors")
    net = load_loss_network(["relu4_2"], weights=path, arch="vgg19")  # prefers 19, file says 16
    assert net.spec.arch == "vgg16" and net.names[-1] == "relu4_2"
    with pytest.raises(NSTError, match="relu5_4"):
        load_loss_network(["relu5_4"], weights=path)


def test_env_variable_supplies_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _fake_vgg16_file(tmp_path / "vgg16.safetensors")
    monkeypatch.setenv("NST_VGG_WEIGHTS", str(path))
    assert load_loss_network(["relu1_1"]).spec.arch == "vgg16"


def test_no_weights_names_the_three_fixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NSTError) as info:
        load_loss_network(["relu1_1"])
    message = str(info.value)
    assert "--vgg-weights" in message and "NST_VGG_WEIGHTS" in message and "Hub" in message


def test_bad_weights_files_are_refused_clearly(tmp_path: Path) -> None:
    garbage = tmp_path / "vgg.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    with pytest.raises(NSTError, match="could not be read"):
        load_loss_network(["relu1_1"], weights=garbage)
    wrong = tmp_path / "wrong.safetensors"
    save_file({"features.3.weight": torch.zeros(1)}, str(wrong))
    with pytest.raises(NSTError, match="VGG16 or VGG19"):
        load_loss_network(["relu1_1"], weights=wrong)
    with pytest.raises(NSTError, match="does not exist"):
        load_loss_network(["relu1_1"], weights=tmp_path / "missing.safetensors")


def test_pth_is_read_with_weights_only(tmp_path: Path) -> None:
    import pickle

    class Evil:
        def __reduce__(self):  # would run code if unpickled without weights_only
            return (print, ("pwned",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"features.0.weight": Evil()}, f)
    with pytest.raises(NSTError, match="could not be read"):
        load_loss_network(["relu1_1"], weights=path)


@pytest.mark.real_vgg
def test_real_vgg16_loads_and_sees_structure(real_vgg16: Path) -> None:
    net = load_loss_network(["relu1_2", "relu4_3"], weights=real_vgg16)
    assert net.spec.arch == "vgg16"
    flat = torch.full((1, 3, 64, 64), 0.5)
    stripes = flat.clone()
    stripes[..., ::4, :] = 1.0
    a, b = net(flat, ["relu1_2"])["relu1_2"], net(stripes, ["relu1_2"])["relu1_2"]
    assert b.mean() > 2 * a.mean()  # edge detectors respond to edges, not to grey


@pytest.mark.parametrize("conv", ["direct", "winograd"])
def test_fused_conv_relu_gives_the_layer_by_layer_activations(conv: str) -> None:
    """The forward fuses each conv with its ReLU unless the conv's own output is asked for;
    every activation and the input gradient equal running the modules one by one."""
    net = load_loss_network(["relu3_1"], weights="random", width_divisor=8, conv=conv)
    x = torch.rand(1, 3, 36, 44, generator=torch.Generator().manual_seed(0))
    layers = ["conv1_2", "relu1_2", "relu2_1", "conv3_1", "relu3_1"]

    def by_hand(image: torch.Tensor) -> dict[str, torch.Tensor]:
        h, out = (image - net.mean) / net.std, {}
        for name, module in zip(net.names, net.features, strict=True):
            h = module(h)
            out[name] = h
        return {n: out[n] for n in layers}

    image = x.clone().requires_grad_(True)
    fused = net(image, layers)
    sum(f.square().sum() for f in fused.values()).backward()
    reference_image = x.clone().requires_grad_(True)
    reference = by_hand(reference_image)
    sum(f.square().sum() for f in reference.values()).backward()
    for name in layers:
        torch.testing.assert_close(fused[name], reference[name], rtol=1e-4, atol=1e-5)
    assert fused["conv3_1"].min() < 0 <= fused["relu3_1"].min()  # conv output kept pre-ReLU
    torch.testing.assert_close(image.grad, reference_image.grad, rtol=1e-3, atol=1e-5)


# ---- the Hub path (the zoo's own, nst.hub), against the fake Hub ------------------------


def _vgg16_file(tmp_path: Path, value: float = 0.0) -> bytes:
    """A small safetensors file in the Hub repo's layout (only its bytes matter here)."""
    weight = torch.full((4, 3, 3, 3), value)
    save_file({"features.0.weight": weight}, str(tmp_path / "v.safetensors"))
    return (tmp_path / "v.safetensors").read_bytes()


def _pin(monkeypatch: pytest.MonkeyPatch, revision: str, sha256: str | None) -> None:
    """Point the built-in VGG16 pin at the fake Hub's commit (the real one is not there)."""
    import nst.vgg

    source = nst.vgg.HubSource("timm/vgg16.tv_in1k", "model.safetensors", revision, sha256)
    monkeypatch.setitem(nst.vgg.HUB_SOURCES, "vgg16", source)


def test_vgg16_download_is_pinned_to_a_commit_and_a_sha256() -> None:
    from nst.vgg import HUB_SOURCES

    source = HUB_SOURCES["vgg16"]
    assert re.fullmatch(r"[0-9a-f]{40}", source.revision)
    assert source.sha256 is not None and re.fullmatch(r"[0-9a-f]{64}", source.sha256)


def test_vgg_weights_come_through_the_hub_path_at_call_time(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    from nst.vgg import resolve_weights

    data = _vgg16_file(tmp_path)
    pinned = fake_hub.add_file("timm/vgg16.tv_in1k", "model.safetensors", data)
    _pin(monkeypatch, pinned, _sha256(data))
    # Only the environment names the server: HF_ENDPOINT is read at call time.
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    path = Path(resolve_weights(None))  # VGG16 by default: the pinned one
    assert path.read_bytes() == data
    assert fake_hub.count("GET", f"*/resolve/{pinned}/model.safetensors") == 1
    # A later commit on main changes nothing: the download stays at the pinned commit.
    fake_hub.add_file("timm/vgg16.tv_in1k", "model.safetensors", _vgg16_file(tmp_path, 2))
    assert Path(resolve_weights(None, "vgg16")).read_bytes() == data
    # NST_VGG_REVISION pins another commit by hand (without the built-in sha256).
    monkeypatch.setenv("NST_VGG_REVISION", "main")
    assert Path(resolve_weights(None, "vgg16")).read_bytes() == _vgg16_file(tmp_path, 2)


def test_a_vgg_file_that_does_not_match_its_pin_is_refused_and_deleted(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nst.vgg import resolve_weights

    pinned = fake_hub.add_file("timm/vgg16.tv_in1k", "model.safetensors", _vgg16_file(tmp_path))
    _pin(monkeypatch, pinned, "ab" * 32)
    with pytest.raises(NSTError) as wrong:
        resolve_weights(None, "vgg16")
    message = str(wrong.value)
    assert "abababababab" in message and "NST_VGG_SHA256" in message and "deleted" in message
    assert not [p for p in (tmp_path / "hf").rglob("*.safetensors") if p.exists()]
    # The person who trusts the new file says so; then it downloads.
    monkeypatch.setenv("NST_VGG_SHA256", _sha256(_vgg16_file(tmp_path)))
    assert Path(resolve_weights(None, "vgg16")).read_bytes() == _vgg16_file(tmp_path)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_vgg_download_failures_say_how_to_fix_them(
    fake_hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nst.vgg import resolve_weights

    with pytest.raises(NSTError) as missing:  # no such repo on this Hub
        resolve_weights(None, "vgg16")
    assert "timm/vgg16.tv_in1k" in str(missing.value) and "NST_VGG_WEIGHTS" in str(missing.value)
    pinned = fake_hub.add_file("timm/vgg16.tv_in1k", "model.safetensors", _vgg16_file(tmp_path))
    _pin(monkeypatch, pinned, None)  # no pin: the Hub's own sha256 still catches it
    fake_hub.fail("corrupt", "*/resolve/*/model.safetensors", methods=("GET",))
    with pytest.raises(NSTError) as corrupted:  # bytes flipped in transit: refused, deleted
        resolve_weights(None, "vgg16")
    assert "corrupted" in str(corrupted.value)


def test_the_space_preloads_the_pinned_vgg() -> None:
    """The README's front matter names the same repo, file and commit as the code's pin."""
    from nst.vgg import HUB_SOURCES

    source = HUB_SOURCES["vgg16"]
    front = (Path(__file__).resolve().parents[1] / "README.md").read_text().split("---")[1]
    assert f"  - {source.repo_id} {source.filename} {source.revision}\n" in front
