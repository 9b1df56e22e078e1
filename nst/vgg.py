"""The loss network: VGG16 / VGG19 ``features`` (Simonyan & Zisserman 2014), frozen.

Layers are addressed by the papers' names (``relu1_1``, ``conv4_2``, ``pool3`` ...).
The network is cut after the deepest layer asked for, so Gatys up to relu5_1 never
runs the last convolutions. ImageNet normalisation happens inside: callers pass RGB
in [0, 1].

Weights, in this order:
1. an explicit path (argument, or env ``NST_VGG_WEIGHTS``): ``.safetensors`` in
   torchvision layout (``features.N.weight``), or ``.pth`` read with ``weights_only=True``;
2. the Hub repo ``timm/vgg16.tv_in1k`` at a pinned commit and sha256 (``timm/vgg19.tv_in1k``
   when VGG19 is asked for), through :mod:`nst.hub`;
3. random weights, only when asked for with ``weights="random"`` (tests).
VGG16 or VGG19 is read from the file's keys, so the offline VGG16 serves Gatys too.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nst.errors import NSTError
from nst.files import is_pickle
from nst.kernels.winograd import Conv3x3

#: Convolutions per block; "M" marks a 2x2 max-pool.
_BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_CHANNELS = (64, 128, 256, 512, 512)


@dataclass(frozen=True)
class HubSource:
    """Where the loss network is downloaded from when no local file is given."""

    repo_id: str
    filename: str
    revision: str  # a commit id: the file cannot change under a released version
    sha256: str | None  # the file's, checked after download (nst.hub)


#: The pins were read from two public projects that pin the same file (this project is
#: built offline); a wrong pin fails loudly with the file's actual sha256, and
#: NST_VGG_REVISION / NST_VGG_SHA256 override it. VGG19 has no pin yet, so VGG16 is what a
#: download gives unless VGG19 is asked for by name (every measurement here used VGG16).
HUB_SOURCES = {
    "vgg16": HubSource(
        "timm/vgg16.tv_in1k",
        "model.safetensors",
        "b8d8aa2dd860af9233c8c67385a8097fd6c35d3f",
        "57b026918159a6bf9faf8405c3a551903768e7138989d9c6224a14227203fad8",
    ),
    "vgg19": HubSource("timm/vgg19.tv_in1k", "model.safetensors", "main", None),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM = "random"

_lock = threading.Lock()

# How the 3x3 convolutions run on CPU (CUDA always uses cuDNN).
CONV_MODES = ("auto", "direct", "winograd")
ENV_CONV = "NST_CONV"
#: "auto" runs Winograd from this many input channels on: below it the transforms of
#: wide, shallow maps are memory-bound and oneDNN's direct convolution is faster
#: (per-layer numbers: docs/winograd/README.md, from `benchmarks/bench_gatys.py --layers`).
AUTO_MIN_IN_CHANNELS = 128


def resolve_conv_mode(conv: str | None) -> str:
    """The argument, else env ``NST_CONV``, else "auto"; refuses unknown modes."""
    mode = conv if conv is not None else os.environ.get(ENV_CONV, "auto")
    mode = mode.strip().lower()
    if mode not in CONV_MODES:
        raise NSTError(
            f"conv must be one of {', '.join(CONV_MODES)}, not '{mode}' "
            f"(from {'the argument' if conv is not None else ENV_CONV})."
        )
    return mode


def layer_uses_winograd(mode: str, in_channels: int) -> bool:
    """Whether a conv layer with ``in_channels`` inputs runs by Winograd under ``mode``
    (the tile is then chosen per call by the map's size)."""
    if mode == "winograd":
        return True
    return mode == "auto" and in_channels >= AUTO_MIN_IN_CHANNELS


def layer_names(arch: str) -> list[str]:
    """Names of the modules of torchvision's ``vgg*.features``, index by index."""
    names: list[str] = []
    for block, convs in enumerate(_BLOCKS[arch], start=1):
        for i in range(1, convs + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


def _conv_indices(arch: str) -> list[int]:
    return [i for i, n in enumerate(layer_names(arch)) if n.startswith("conv")]


def _arch_from_keys(keys: Iterable[str]) -> str:
    indices = {int(k.split(".")[1]) for k in keys if k.startswith("features.")}
    for arch in ("vgg19", "vgg16"):
        if set(_conv_indices(arch)) == indices:
            return arch
    raise NSTError(
        "The VGG weights file does not hold the convolutions of VGG16 or VGG19 in "
        f"torchvision layout (found feature indices {sorted(indices)[:20]}). "
        "Expected keys like 'features.0.weight' ... 'features.28.weight' (VGG16)."
    )


def _missing_weights_message(arch: str, detail: str) -> str:
    return (
        f"No VGG weights could be loaded ({detail}). Fix it in one of three ways:\n"
        "  1. pass a local file: --vgg-weights PATH (or weights=PATH in Python), a local "
        "copy of the VGG16 safetensors (torchvision layout, e.g. the Hub file below);\n"
        "  2. set the environment variable NST_VGG_WEIGHTS to that local copy;\n"
        f"  3. allow a download from the Hugging Face Hub ({HUB_SOURCES[arch].repo_id}): unset "
        "HF_HUB_OFFLINE and check the network, or pre-fill the Hub cache (HF_HOME)."
    )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise NSTError(f"The VGG weights file '{path}' does not exist.")
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                # Only the conv tensors: timm files also hold ~480 MB of classifier.
                return {k: f.get_tensor(k) for k in f.keys() if k.startswith("features.")}
        if is_pickle(path):  # a local file the user chose; tensors only, no code
            state = torch.load(path, map_location="cpu", weights_only=True)
            return {k: v for k, v in state.items() if k.startswith("features.")}
    except NSTError:
        raise
    except Exception as exc:  # a damaged file can fail in many ways; say which file
        raise NSTError(f"The VGG weights file '{path}' could not be read: {exc}") from exc
    raise NSTError(f"'{path}': VGG weights must be a .safetensors (or .pth) file.")


def _download_from_hub(arch: str) -> Path:
    """The VGG file through the project's one Hub path (call-time HF settings, progress
    bar, the pinned revision and sha256 checked, clear errors)."""
    from nst.hub import download_file

    source = hub_source(arch)
    try:
        return download_file(
            f"The {arch.upper()} loss network",
            source.repo_id,
            source.filename,
            source.revision,
            offline_hint="download it once while online, or pass a local file",
            sha256=source.sha256,
            pin_hint="set NST_VGG_REVISION and NST_VGG_SHA256 to the revision and sha256 you "
            "trust (or pass a local file with --vgg-weights)",
        )
    except NSTError as exc:  # offline, not found, network: all mean "not available"
        raise NSTError(_missing_weights_message(arch, str(exc))) from exc


def hub_source(arch: str) -> HubSource:
    """The pinned source, or the one NST_VGG_REVISION / NST_VGG_SHA256 pin by hand.

    A hand-pinned revision drops the built-in sha256 (it belongs to another revision)
    unless NST_VGG_SHA256 gives one; the Hub's own sha256 is still checked.
    """
    source = HUB_SOURCES[arch]
    revision = os.environ.get("NST_VGG_REVISION")
    sha256 = os.environ.get("NST_VGG_SHA256")
    if revision:
        source = HubSource(source.repo_id, source.filename, revision, sha256 or None)
    elif sha256:
        source = HubSource(source.repo_id, source.filename, source.revision, sha256)
    return source


@functools.lru_cache(maxsize=4)
def _cached_state_dict(path: str) -> dict[str, torch.Tensor]:
    state = _read_state_dict(Path(path))
    return {k: v.float() for k, v in state.items()}


def resolve_weights(weights: str | os.PathLike | None, arch: str = "vgg16") -> str:
    """Where the weights come from: a path, ``"random"``, or a Hub download."""
    if weights is not None:
        return os.fspath(weights)
    env = os.environ.get("NST_VGG_WEIGHTS")
    if env:
        return env
    return os.fspath(_download_from_hub(arch))


@dataclass(frozen=True)
class VGGSpec:
    """What a loss network is built from."""

    arch: str
    depth: int  # number of modules of ``features`` kept
    width_divisor: int = 1  # >1 only for random test networks
    pooling: str = "max"
    conv: str = "direct"  # "direct", "winograd" or "auto": see CONV_MODES


class LossNetwork(nn.Module):
    """Frozen VGG features that return the activations of named layers."""

    def __init__(self, spec: VGGSpec, state: dict[str, torch.Tensor] | None, seed: int = 0):
        super().__init__()
        self.spec = spec
        self.names = layer_names(spec.arch)[: spec.depth]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        generator = torch.Generator().manual_seed(seed)
        layers: list[nn.Module] = []
        in_ch, block_channels = 3, [c // spec.width_divisor for c in _CHANNELS]
        for index, name in enumerate(self.names):
            if name.startswith("conv"):
                out_ch = block_channels[int(name[4]) - 1]
                # An nn.Conv2d (same parameters); Winograd on CPU where spec.conv asks for it.
                conv = Conv3x3(in_ch, out_ch, layer_uses_winograd(spec.conv, in_ch))
                if state is None:
                    # He init keeps random activations at a sensible scale at every depth.
                    nn.init.kaiming_normal_(conv.weight, nonlinearity="relu", generator=generator)
                    nn.init.zeros_(conv.bias)
                else:
                    conv.weight.data.copy_(state[f"features.{index}.weight"])
                    conv.bias.data.copy_(state[f"features.{index}.bias"])
                layers.append(conv)
                in_ch = out_ch
            elif name.startswith("relu"):
                # Not in place: a requested conv output must survive its ReLU.
                layers.append(nn.ReLU(inplace=False))
            else:
                pool = nn.AvgPool2d if spec.pooling == "avg" else nn.MaxPool2d
                layers.append(pool(2, 2))
        self.features = nn.Sequential(*layers)
        self.requires_grad_(False)  # no weight gradients: backward computes d/dx only
        self.eval()

    def forward(self, image: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """image (B, 3, H, W) in [0, 1] -> {layer name: activation (B, C, h, w)}."""
        wanted = set(layers)
        unknown = wanted - set(self.names)
        if unknown:
            raise NSTError(
                f"Layer(s) {sorted(unknown)} are not in this {self.spec.arch} cut at "
                f"'{self.names[-1]}'. Available: {', '.join(self.names)}."
            )
        x = (image - self.mean) / self.std
        out: dict[str, torch.Tensor] = {}
        i = 0
        while len(out) < len(wanted):
            if self._fuses_relu(i, wanted):
                # conv + ReLU in one pass (the conv's own output is not asked for)
                x = self.features[i](x, relu=True)
                i += 1
            else:
                x = self.features[i](x)
            if self.names[i] in wanted:
                out[self.names[i]] = x
            i += 1
        return out

    def _fuses_relu(self, index: int, wanted: set[str]) -> bool:
        module = self.features[index]
        return (
            isinstance(module, Conv3x3)
            and index + 1 < len(self.names)
            and isinstance(self.features[index + 1], nn.ReLU)
            and self.names[index] not in wanted
        )


def _depth_for(arch: str, layers: Iterable[str]) -> int:
    names = layer_names(arch)
    layers = list(layers)
    unknown = [n for n in layers if n not in names]
    if unknown:
        raise NSTError(
            f"Layer(s) {unknown} do not exist in {arch}. Valid names: {', '.join(names)}."
        )
    return max(names.index(n) for n in layers) + 1


def load_loss_network(
    layers: Iterable[str],
    weights: str | os.PathLike | None = None,
    arch: str = "vgg19",
    device: torch.device | str = "cpu",
    pooling: str = "max",
    width_divisor: int = 1,
    seed: int = 0,
    conv: str | None = None,
) -> LossNetwork:
    """Build a frozen VGG cut after the deepest of ``layers``.

    ``arch`` is the preferred network when downloading; a weights file decides for
    itself. ``weights="random"`` builds a He-initialised network (``width_divisor``
    shrinks it for fast tests). ``conv`` picks how the 3x3 convolutions run on CPU:
    "auto" (Winograd for the wide layers where it measured faster, F(4,3) or F(6,3) by
    map size), "winograd" (every layer) or "direct" (oneDNN, the previous behaviour); None
    reads the environment variable ``NST_CONV``, else "auto". CUDA always uses cuDNN.
    """
    layers = list(layers)
    conv = resolve_conv_mode(conv)
    source = resolve_weights(weights, arch)
    if source == RANDOM:
        state = None
    else:
        with _lock:  # load once per process, even when two requests ask together
            state = _cached_state_dict(os.path.abspath(source))
        arch = _arch_from_keys(state)
        if width_divisor != 1:
            raise NSTError("width_divisor applies only to random test networks.")
    if pooling not in ("max", "avg"):
        raise NSTError(f"pooling must be 'max' or 'avg', not '{pooling}'.")
    spec = VGGSpec(arch, _depth_for(arch, layers), width_divisor, pooling, conv)
    return LossNetwork(spec, state, seed=seed).to(device)
