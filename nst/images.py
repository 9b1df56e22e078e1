"""Images in and out: any file a person may upload becomes an RGB image or a clear error.

Loading follows one path for paths, bytes and PIL images: check the pixel count from the
header before decoding (so a decompression bomb never allocates), decode the first frame,
apply the EXIF orientation, convert every mode to RGB, then resize.
"""

from __future__ import annotations

import io
import math
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from nst.errors import NSTError

ImageSource = Union[str, os.PathLike, bytes, Image.Image]

#: Default pixel budget: a 48 MP phone photo passes, a 20000 x 20000 bomb does not.
DEFAULT_MAX_PIXELS = int(os.environ.get("NST_MAX_PIXELS", 64_000_000))
#: Below this the loss network's five poolings leave nothing to compare.
MIN_SIDE = 16


def _describe(source: ImageSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"'{os.fspath(source)}'"
    if isinstance(source, bytes):
        return f"the uploaded data ({len(source)} bytes)"
    return "the image"


def _open(source: ImageSource, max_pixels: int, name: str) -> Image.Image:
    """Open without decoding pixels; refuse what is not an image or too large."""
    if isinstance(source, Image.Image):
        img = source
    else:
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            if not path.is_file():
                raise NSTError(f"{name} does not exist or is not a file.")
            if path.stat().st_size == 0:
                raise NSTError(f"{name} is an empty file (0 bytes). Choose a JPEG or PNG image.")
            fp: object = path
        else:
            if len(source) == 0:
                raise NSTError("The uploaded image is empty (0 bytes). Choose a JPEG or PNG image.")
            fp = io.BytesIO(source)
        try:
            # PIL raises DecompressionBombError itself only above 2x its own limit and
            # merely warns below that: turn the warning into an error too.
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(fp)  # type: ignore[arg-type]
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise NSTError(
                f"{name} declares too many pixels to be decoded safely ({exc}). "
                "Use a smaller image."
            ) from exc
        except UnidentifiedImageError as exc:
            raise NSTError(
                f"{name} is not an image that can be read (it may be another kind of file "
                "with an image extension). Choose a JPEG, PNG, WebP or GIF image."
            ) from exc
        except OSError as exc:
            raise NSTError(f"{name} could not be opened: {exc}.") from exc
    width, height = img.size
    if width * height > max_pixels:
        raise NSTError(
            f"{name} is {width} x {height} pixels ({width * height / 1e6:.0f} MP), over the "
            f"limit of {max_pixels / 1e6:.0f} MP. Downscale it first (or raise NST_MAX_PIXELS)."
        )
    return img


def _decode(img: Image.Image, name: str) -> Image.Image:
    """Decode the first frame and fail clearly on truncated or corrupt data."""
    try:
        img.seek(0)  # animated GIF / WebP / APNG: the first frame
        img.load()
        return ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise NSTError(
            f"{name} is damaged or incomplete and cannot be decoded ({exc}). "
            "Save it again or choose another image."
        ) from exc


def _high_bit_depth_to_rgb(img: Image.Image) -> Image.Image:
    """16-bit and float grayscale: scale to 8 bit by the range the data actually uses."""
    arr = np.asarray(img, dtype=np.float32)
    top = 65535.0 if img.mode.startswith("I") and arr.max() > 255 else 255.0
    if img.mode == "F" and arr.max() <= 1.0:
        top = 1.0
    arr8 = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(arr8, mode="L").convert("RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to RGB; transparency is composited on white, as a viewer shows it."""
    if img.mode == "RGB":
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _high_bit_depth_to_rgb(img)
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def open_image(
    source: ImageSource, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None
) -> Image.Image:
    """Read a path, bytes or PIL image into an upright RGB image at its own size.

    ``name``: how error messages call the image (e.g. the file name a person uploaded, so
    that a server's paths never reach them); default: its path.
    """
    shown = f"'{name}'" if name else _describe(source)
    return to_rgb(_decode(_open(source, max_pixels, shown), shown))


def resize_long_side(img: Image.Image, long_side: int) -> Image.Image:
    """Scale so that the longer side is ``long_side`` pixels (up or down), keeping aspect."""
    width, height = img.size
    scale = long_side / max(width, height)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if min(new_size) < MIN_SIDE:
        raise NSTError(
            f"The image is {width} x {height} pixels: at a long side of {long_side} px its "
            f"short side would be under {MIN_SIDE} px. Crop it to a less extreme shape."
        )
    if new_size == img.size:
        return img
    return img.resize(new_size, Image.Resampling.LANCZOS)


def load_image(
    source: ImageSource,
    long_side: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str | None = None,
) -> Image.Image:
    """Open any image as RGB and optionally resize it to a given long side (``name``: see
    :func:`open_image`)."""
    img = open_image(source, max_pixels=max_pixels, name=name)
    if long_side is not None:
        img = resize_long_side(img, long_side)
    elif min(img.size) < MIN_SIDE:
        # Tiny images are valid input: upscale them so the networks have something to see.
        img = resize_long_side(img, math.ceil(max(img.size) * MIN_SIDE / min(img.size)))
    return img


def to_tensor(img: Image.Image, device: torch.device | str = "cpu") -> torch.Tensor:
    """RGB PIL image -> float tensor (1, 3, H, W) in [0, 1]."""
    arr = np.asarray(to_rgb(img), dtype=np.uint8)
    tensor = torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0)
    return tensor.to(device=device, dtype=torch.float32).div_(255.0)


def to_pil(tensor: torch.Tensor) -> Image.Image:
    """Float tensor (1, 3, H, W) or (3, H, W) in [0, 1] -> RGB PIL image."""
    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"to_pil takes one image, got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    arr = tensor.detach().float().clamp(0, 1).mul(255).round().byte()
    return Image.fromarray(arr.permute(1, 2, 0).cpu().numpy(), mode="RGB")


def save_image(image: Image.Image | torch.Tensor, path: str | os.PathLike) -> Path:
    """Write an image; the format follows the extension (PNG when there is none)."""
    out = Path(path)
    if out.suffix == "":
        out = out.with_suffix(".png")
    pil = to_pil(image) if isinstance(image, torch.Tensor) else image
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        pil.save(out)
    except (OSError, ValueError, KeyError) as exc:
        raise NSTError(f"Could not write '{out}': {exc}. Use a .png or .jpg file name.") from exc
    return out


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bytes(image: Image.Image) -> bytes:
    """An 8-bit RGB PNG, encoded about twice as fast as Pillow's fastest setting.

    Why: a web app returns a megapixel result per request, and Pillow's PNG encoder tries
    every row filter (adaptive filtering) before zlib. Here every row uses the "Up" filter
    (a vectorised difference with the row above) and zlib level 1 with the run-length
    strategy: files a little larger than Pillow's (timings: benchmarks/bench_app.py and the
    README). Lossless; other modes than RGB are converted.
    """
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)
    height, width, _ = rgb.shape
    rows = rgb.reshape(height, width * 3)
    raw = np.empty((height, width * 3 + 1), dtype=np.uint8)
    raw[:, 0] = 2  # filter type Up; the first row's "row above" is zeros, so it is itself
    raw[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])  # uint8 wraps modulo 256, as PNG wants
    packer = zlib.compressobj(1, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    data = packer.compress(raw.tobytes()) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )
