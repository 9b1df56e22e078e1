"""``python -m zoo export-onnx``: the ONNX graph runs in onnxruntime at any size and
batch, and gives what PyTorch gives."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from nets import small_transformer
from psnr import psnr

import zoo
from nst.johnson import save_transformer
from nst.johnson.onnx_export import INPUT_NAME, OUTPUT_NAME
from zoo.__main__ import main

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (nst[onnx])")
pytest.importorskip("onnxscript", reason="onnxscript (the ONNX exporter) is not installed")
onnx = pytest.importorskip("onnx", reason="onnx is not installed (nst[onnx])")


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _run(session: ort.InferenceSession, x: torch.Tensor) -> torch.Tensor:
    (y,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
    return torch.from_numpy(y)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """A small random net saved as a model folder and exported by the CLI (one export
    for the module: it takes seconds)."""
    folder = tmp_path_factory.mktemp("onnx")
    net = small_transformer()
    save_transformer(net, folder / "model")
    out = folder / "style.onnx"
    assert main(["export-onnx", str(folder / "model"), "-o", str(out), "--quiet"]) == 0
    return net, out


def test_the_graph_is_valid_and_names_its_dynamic_axes(exported) -> None:
    _net, path = exported
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    (image,) = model.graph.input
    assert image.name == INPUT_NAME
    dims = image.type.tensor_type.shape.dim
    assert [d.dim_value or d.dim_param for d in dims][1] == 3
    # batch, height and width are symbols, not the example's 1 x 64 x 64.
    assert all(d.dim_param and not d.dim_value for i, d in enumerate(dims) if i != 1)


@pytest.mark.parametrize("size", [(64, 48), (37, 53), (90, 121)])  # not multiples of 4 too
def test_onnxruntime_matches_pytorch(exported, size: tuple[int, int]) -> None:
    net, path = exported
    torch.manual_seed(1)
    x = torch.rand(1, 3, *size)
    with torch.inference_mode():
        reference = net(x)
    y = _run(_session(path), x)
    assert y.shape == x.shape
    assert psnr(y, reference) >= 40
    assert (reference - x).abs().mean() > 0.05  # the net did change the picture


def test_a_batch_is_stylised_image_by_image(exported) -> None:
    """Instance norm's statistics are per image: a batch gives each image's own result."""
    net, path = exported
    torch.manual_seed(2)
    x = torch.rand(3, 3, 41, 30)
    y = _run(_session(path), x)
    with torch.inference_mode():
        for i in range(3):
            assert psnr(y[i : i + 1], net(x[i : i + 1])) >= 40


def test_a_bundled_zoo_style_exports_by_name(tmp_path: Path, capsys) -> None:
    out = tmp_path / "starry.onnx"
    assert main(["export-onnx", "starry_night", "-o", str(out), "--quiet"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    net = zoo.load("starry_night")
    torch.manual_seed(3)
    x = torch.rand(1, 3, 70, 99)
    with torch.inference_mode():
        reference = net(x)
    assert psnr(_run(_session(out), x), reference) >= 40


def test_export_errors_are_clear(tmp_path: Path, capsys) -> None:
    assert main(["export-onnx", "starry_night", "-o", str(tmp_path / "x.png")]) == 2
    assert "-o must name an .onnx file" in capsys.readouterr().err
    assert main(["export-onnx", "no_such_style", "-o", str(tmp_path / "x.onnx")]) == 1
    assert "Unknown style 'no_such_style'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary
