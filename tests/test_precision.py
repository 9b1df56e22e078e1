"""nst.precision: the one policy for which precision Gatys' loss network, training and
Johnson inference run in; bf16 only where the hardware does bf16 arithmetic."""

from __future__ import annotations

import pytest
import torch

from nst import precision
from nst.errors import UsageError
from nst.gatys import GatysConfig, uses_bf16
from train.config import TrainConfig

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(params=[True, False], ids=["native-bf16", "emulated-bf16"])
def native(request, monkeypatch) -> bool:
    monkeypatch.setattr(precision, "native_bf16_cpu", lambda: request.param)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: request.param)
    return request.param


def test_autocast_auto_is_bf16_where_bf16_is_native(native: bool) -> None:
    assert precision.bf16_autocast("auto", CPU) is native
    assert precision.bf16_autocast("auto", CUDA) is native  # training: GPUs with bf16 units
    assert precision.bf16_autocast("auto", CUDA, on_gpus=False) is False  # Gatys: not measured
    assert precision.bf16_autocast("fp32", CPU) is False
    assert precision.bf16_autocast("bf16", CPU) is True  # asked for: native or not


def test_training_and_gatys_ask_the_same_policy(native: bool) -> None:
    import train.loop as loop

    assert loop.use_bf16(TrainConfig(precision="auto"), CPU) is native
    assert loop.use_bf16(TrainConfig(precision="fp32"), CPU) is False
    assert uses_bf16(GatysConfig(), CPU) is native
    assert uses_bf16(GatysConfig(), CUDA) is False  # not measured on GPUs: fp32 there
    GatysConfig(precision="bf16").validate()
    with pytest.raises(UsageError, match="precision must be one of auto, fp32, bf16"):
        GatysConfig(precision="fp16").validate()


def test_inference_auto_is_fp16_on_gpus_and_the_engines_fastest_on_cpus(native: bool) -> None:
    assert precision.inference_precision("auto", CUDA) == "fp16"
    assert precision.inference_precision("auto", CPU) == ("bf16" if native else "fp32")
    assert precision.inference_precision("auto", CPU, ("fp32",)) == "fp32"  # onnxruntime
    assert precision.inference_precision("fp16", CPU) == "fp16"
    with pytest.raises(UsageError, match="precision must be one of auto, fp32, bf16, fp16"):
        precision.inference_precision("int8", CPU)
