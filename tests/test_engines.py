"""The optional inference engines: what "auto" picks, the same output as PyTorch, the
export cache, and clear errors."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from nets import small_transformer
from PIL import Image
from psnr import psnr

from nst import hardware
from nst import precision as precision_policy
from nst.cli import main
from nst.errors import NSTError, UsageError
from nst.hardware import native_bf16_cpu
from nst.images import to_pil, to_tensor
from nst.johnson import TransformerNet, engines, plan, save_transformer, stylize_tensor

NAMED = ("openvino", "onnxruntime")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _installed(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Pretend exactly ``names`` are installed (plan only checks, it builds nothing)."""
    monkeypatch.setattr(
        engines, "missing", lambda name: None if name in (*names, "torch") else "not installed"
    )


def _require(name: str) -> None:
    reason = engines.missing(name)
    if reason is not None:
        pytest.skip(f"the {name} engine is not available: {reason}")


# ----------------------------------------------------------------------------- choosing


@pytest.mark.parametrize(
    ("installed", "expected"),
    [
        (("openvino", "onnxruntime"), "openvino"),
        (("onnxruntime",), "onnxruntime"),
        ((), "torch"),
    ],
)
def test_auto_prefers_openvino_then_onnxruntime(monkeypatch, installed, expected) -> None:
    _installed(monkeypatch, *installed)
    net = small_transformer()
    assert plan(net, 300, 200, device="cpu", precision="fp32", engine="auto").engine == expected
    monkeypatch.setenv("NST_ENGINE", "auto")
    assert plan(net, 300, 200, device="cpu", precision="fp32").engine == expected


def test_auto_keeps_pytorch_for_tiled_and_fp16_runs(monkeypatch) -> None:
    _installed(monkeypatch, *NAMED)
    net = TransformerNet()
    tiled = plan(net, 2160, 3840, device="cpu", precision="fp32", engine="auto")
    assert tiled.tile is not None and tiled.engine == "torch"
    forced = plan(net, 400, 600, device="cpu", tile=128, engine="openvino")
    assert forced.tile == 128 and forced.engine == "torch"  # exact tiling only on torch
    assert plan(net, 64, 64, device="cpu", precision="fp16", engine="auto").engine == "torch"
    assert plan(net, 64, 64, device="cpu", engine="torch").engine == "torch"
    _installed(monkeypatch, "onnxruntime")  # which runs fp32 only
    assert plan(net, 64, 64, device="cpu", precision="bf16", engine="auto").engine == "torch"


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_the_engines_fastest_on_this_cpu(monkeypatch, native: bool) -> None:
    """bf16 where the CPU has bf16 arithmetic and the engine runs it (OpenVINO, PyTorch);
    fp32 elsewhere, and always for onnxruntime."""
    monkeypatch.setattr(precision_policy, "native_bf16_cpu", lambda: native)
    net = small_transformer()
    want = "bf16" if native else "fp32"
    for installed, engine, precision in [
        (NAMED, "openvino", want),
        (("onnxruntime",), "onnxruntime", "fp32"),
        ((), "torch", want),
    ]:
        _installed(monkeypatch, *installed)
        p = plan(net, 64, 64, device="cpu", engine="auto")
        assert (p.engine, p.precision) == (engine, precision)
    _installed(monkeypatch, *NAMED)
    p = plan(net, 64, 64, device="cpu", precision="bf16", engine="auto")
    assert (p.engine, p.precision) == ("openvino", "bf16")  # asked for: native or not


def test_a_named_engine_runs_its_own_precisions_on_the_cpu(monkeypatch) -> None:
    _installed(monkeypatch, *NAMED)
    net = small_transformer()
    p = plan(net, 64, 64, engine="onnxruntime")  # precision auto -> fp32, device -> cpu
    assert (p.engine, p.precision, p.device.type) == ("onnxruntime", "fp32", "cpu")
    with pytest.raises(UsageError, match="fp32 only"):
        plan(net, 64, 64, precision="bf16", engine="onnxruntime")
    with pytest.raises(UsageError, match="fp32 and bf16"):
        plan(net, 64, 64, precision="fp16", engine="openvino")
    assert plan(net, 64, 64, precision="bf16", engine="openvino").precision == "bf16"
    with pytest.raises(UsageError, match="engine must be one of"):
        plan(net, 64, 64, engine="tensorrt")


def test_a_missing_engine_says_how_to_install_it(monkeypatch) -> None:
    _installed(monkeypatch)
    with pytest.raises(NSTError, match=r"openvino engine is not available.*--engine torch"):
        stylize_tensor(small_transformer(), torch.rand(1, 3, 32, 32), engine="openvino")
    monkeypatch.undo()

    def no_openvino(name: str) -> object:
        if name == "openvino":
            raise ImportError("No module named 'openvino'")
        return object()

    monkeypatch.setattr(engines.importlib, "import_module", no_openvino)
    reason = engines.missing.__wrapped__("openvino")  # the check itself, uncached
    assert "openvino is not installed" in reason and "pip install 'nst[openvino]'" in reason
    assert engines.missing.__wrapped__("onnxruntime") is None


# ----------------------------------------------------------------------------- running


@pytest.mark.parametrize("name", NAMED)
@pytest.mark.parametrize(
    ("size", "photo_skip"), [((48, 64), False), ((37, 53), False), ((37, 53), True)]
)  # 37 x 53: padded to the grid
def test_engine_output_matches_fp32_pytorch(
    name: str, size: tuple[int, int], photo_skip: bool
) -> None:
    _require(name)
    net, x = small_transformer(photo_skip=photo_skip), torch.rand(1, 3, *size)
    reference = stylize_tensor(net, x, device="cpu", precision="fp32", engine="torch")
    calls: list[tuple[int, int]] = []
    y = stylize_tensor(net, x, engine=name, progress=lambda d, t: calls.append((d, t)))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert psnr(y, reference) >= 40
    assert (reference - x).abs().mean() > 0.05  # the net did change the picture
    assert calls == [(0, 1), (1, 1)]


@pytest.mark.parametrize("style", ["starry_night", "the_scream"])
def test_openvino_bf16_keeps_a_zoo_style_over_40_db(style: str) -> None:
    """What "auto" runs on CPUs with bf16 arithmetic: a bundled net on a photo at 384 px,
    within 40 dB of fp32 PyTorch (the bar for every engine)."""
    _require("openvino")
    if not native_bf16_cpu():
        pytest.skip("this CPU has no bf16 arithmetic: 'auto' runs OpenVINO in fp32 here")
    import zoo

    net = zoo.load(style)
    photo = to_tensor(Image.open(EXAMPLES / "golden_gate.jpg").convert("RGB").resize((384, 256)))
    reference = stylize_tensor(net, photo, device="cpu", precision="fp32", engine="torch")
    y = stylize_tensor(net, photo, precision="bf16", engine="openvino")
    assert psnr(y, reference) >= 40
    assert (reference - photo).abs().mean() > 0.05


def test_the_export_is_cached_by_the_weights_digest(monkeypatch, tmp_path: Path) -> None:
    _require("onnxruntime")
    monkeypatch.setenv("NST_CACHE_DIR", str(tmp_path))
    engines.clear_cache()
    net = small_transformer()
    digest = engines.weights_digest(net)
    # The layout and dtype of the net in memory do not change the graph, or the key.
    placed = small_transformer().to(memory_format=torch.channels_last)
    assert engines.weights_digest(placed) == digest
    assert engines.weights_digest(small_transformer(seed=1)) != digest
    # The same weights with the photo added are another graph.
    assert engines.weights_digest(small_transformer(photo_skip=True)) != digest
    # Remembered per net, but a weight changed in place (training) gives a new key.
    changed = small_transformer()
    assert engines.weights_digest(changed) == digest
    with torch.no_grad():
        next(changed.parameters()).add_(1.0)
    assert engines.weights_digest(changed) != digest
    x = torch.rand(1, 3, 40, 40)
    first = stylize_tensor(net, x, engine="onnxruntime")
    cached = tmp_path / "onnx" / f"{digest}.onnx"
    assert [p.name for p in (tmp_path / "onnx").iterdir()] == [cached.name]
    # A damaged cache file is replaced by a fresh export, not trusted.
    engines.clear_cache()
    cached.write_bytes(b"not an onnx graph")
    assert torch.equal(stylize_tensor(net, x, engine="onnxruntime"), first)
    assert cached.stat().st_size > 10_000


def test_an_engine_serves_concurrent_callers(monkeypatch) -> None:
    """The app runs two Johnson requests at once on the one shared engine."""
    name = next((n for n in NAMED if engines.missing(n) is None), None)
    if name is None:
        pytest.skip("neither openvino nor onnxruntime is installed")
    net = small_transformer()
    torch.manual_seed(0)
    inputs = [torch.rand(1, 3, 36 + 4 * i, 52) for i in range(4)]
    serial = [stylize_tensor(net, x, engine=name) for x in inputs]
    results: dict[int, torch.Tensor] = {}

    def work(i: int) -> None:
        results[i] = stylize_tensor(net, inputs[i], engine=name)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(torch.equal(results[i], serial[i]) for i in range(4))


def test_cli_engine_option(tmp_path: Path, capsys) -> None:
    _require("onnxruntime")
    net = small_transformer()
    folder = save_transformer(net, tmp_path / "model")
    photo = to_pil(torch.rand(1, 3, 45, 61))
    photo.save(tmp_path / "photo.png")
    out = tmp_path / "out.png"
    args = ["stylize", str(tmp_path / "photo.png"), "--model", str(folder), "-o", str(out)]
    assert main([*args, "--engine", "onnxruntime"]) == 0
    reference = stylize_tensor(
        net, to_tensor(photo), device="cpu", precision="fp32", engine="torch"
    )
    result = to_tensor(Image.open(out))
    assert (result - to_tensor(to_pil(reference))).abs().max() <= 2 / 255  # 8-bit rounding
    capsys.readouterr()
    assert main([*args, "--engine", "onnxruntime", "--precision", "bf16"]) == 2
    assert "fp32 only" in capsys.readouterr().err


def test_the_benchmark_line_names_the_bf16_flags_the_cpu_has(monkeypatch) -> None:
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "amx_bf16", "avx512_bf16"})
    assert "amx_bf16, avx512_bf16)" in hardware.summary("cpu")
    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx2", "fma"})
    line = hardware.summary("cpu")
    assert "bf16" not in line and "avx2" not in line  # only the flags that pick a precision
