"""Every kind of image a person may upload: a clear NSTError or a correct RGB result."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nst.errors import NSTError
from nst.images import (
    load_image,
    open_image,
    png_bytes,
    resize_long_side,
    save_image,
    to_pil,
    to_tensor,
)


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _jpeg_bytes(img: Image.Image, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, **kwargs)
    return buf.getvalue()


def _gradient(width: int = 64, height: int = 48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=-1), mode="RGB")


def _bomb_png(side: int) -> bytes:
    """A valid PNG header declaring side x side pixels, with a tiny compressed body."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit grayscale
    row = b"\x00" + b"\x00" * side
    body = zlib.compress(row * 16, 9)  # far fewer rows than declared: never decoded anyway
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_truncated_jpeg_is_refused_clearly(tmp_path: Path) -> None:
    data = _jpeg_bytes(_gradient(256, 256))
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NSTError, match="damaged or incomplete"):
        load_image(path)


def test_zero_byte_file_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(NSTError, match="empty file"):
        load_image(path)
    with pytest.raises(NSTError, match="empty"):
        load_image(b"")


def test_text_renamed_png_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("these are my shopping notes, not a picture\n" * 20)
    with pytest.raises(NSTError, match="not an image"):
        load_image(path)


def test_missing_file_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(NSTError, match="does not exist"):
        load_image(tmp_path / "nope.jpg")


def test_decompression_bomb_is_refused_before_decoding() -> None:
    data = _bomb_png(60_000)  # 3.6 gigapixels declared, a few hundred bytes on disk
    assert len(data) < 10_000
    with pytest.raises(NSTError, match="pixels"):
        load_image(data)


def test_pixel_budget_is_configurable() -> None:
    data = _png_bytes(_gradient(400, 300))
    with pytest.raises(NSTError, match="over the limit"):
        load_image(data, max_pixels=100_000)
    assert load_image(data, max_pixels=200_000).size == (400, 300)


def test_16_bit_png_keeps_its_tones(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16)[None, :].repeat(16, 0)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    img = load_image(path)
    arr = np.asarray(img)
    assert img.mode == "RGB" and img.size == (64, 16)
    assert arr[0, 0, 0] == 0 and arr[0, -1, 0] == 255  # full range, not clipped to white
    assert 120 <= arr[0, 32, 0] <= 135  # the middle stays mid-grey


def test_cmyk_jpeg_becomes_the_right_rgb() -> None:
    red = Image.new("RGB", (32, 32), (220, 30, 30)).convert("CMYK")
    img = load_image(_jpeg_bytes(red))
    r, g, b = np.asarray(img).reshape(-1, 3).mean(0)
    assert img.mode == "RGB"
    assert r > 180 and g < 80 and b < 80


def test_rgba_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (20, 20), (0, 0, 255, 0))  # fully transparent blue
    rgba.paste((255, 0, 0, 255), (0, 0, 10, 20))  # opaque red left half
    arr = np.asarray(load_image(_png_bytes(rgba)))
    assert tuple(arr[10, 2]) == (255, 0, 0)
    assert tuple(arr[10, 15]) == (255, 255, 255)


def test_palette_and_grayscale_and_la_become_rgb() -> None:
    palette = _gradient().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    gray = _gradient().convert("L")
    la = _gradient().convert("LA")
    bilevel = _gradient().convert("1")
    for img in (palette, gray, la, bilevel):
        out = load_image(_png_bytes(img))
        assert out.mode == "RGB" and out.size == (64, 48), img.mode
    gray_rgb = np.asarray(load_image(_png_bytes(gray)))
    assert np.array_equal(gray_rgb[..., 0], gray_rgb[..., 1])


def test_palette_with_transparency_is_composited_on_white() -> None:
    img = Image.new("P", (32, 32), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (0, 0, 16, 32))
    img.info["transparency"] = 0
    arr = np.asarray(load_image(_png_bytes(img)))
    assert tuple(arr[0, 0]) == (255, 0, 0) and tuple(arr[0, 31]) == (255, 255, 255)


def test_exif_rotated_photo_is_turned_upright() -> None:
    img = _gradient(60, 30)  # landscape pixels...
    exif = Image.Exif()
    exif[0x0112] = 6  # ...that the camera says must be rotated 90 degrees clockwise
    out = load_image(_jpeg_bytes(img, exif=exif.tobytes()))
    assert out.size == (30, 60)


def test_animated_gif_gives_the_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    img = open_image(buf.getvalue())
    r, g, b = np.asarray(img)[8, 8]
    assert r > 200 and g < 50 and b < 50


def test_one_pixel_image_is_upscaled_not_crashing() -> None:
    img = load_image(_png_bytes(Image.new("RGB", (1, 1), (10, 200, 30))))
    assert min(img.size) >= 16
    assert tuple(np.asarray(img)[0, 0]) == (10, 200, 30)
    assert load_image(_png_bytes(Image.new("RGB", (1, 1))), long_side=64).size == (64, 64)


def test_20000_px_side_resizes_or_refuses_clearly() -> None:
    wide = Image.new("RGB", (20_000, 200), (1, 2, 3))
    img = load_image(_png_bytes(wide), long_side=4000)
    assert img.size == (4000, 40)
    with pytest.raises(NSTError, match="short side"):
        load_image(_png_bytes(wide), long_side=512)  # 512 x 5: too thin to stylise


def test_resize_long_side_up_and_down() -> None:
    assert resize_long_side(_gradient(64, 48), 128).size == (128, 96)
    assert resize_long_side(_gradient(64, 48), 32).size == (32, 24)


def test_tensor_round_trip_is_exact() -> None:
    img = _gradient()
    tensor = to_tensor(img)
    assert tensor.shape == (1, 3, 48, 64) and tensor.dtype == torch.float32
    assert 0.0 <= tensor.min() and tensor.max() <= 1.0
    assert np.array_equal(np.asarray(to_pil(tensor)), np.asarray(img))


def test_save_image_writes_png_and_refuses_unknown_formats(tmp_path: Path) -> None:
    out = save_image(_gradient(), tmp_path / "sub" / "result")
    assert out.suffix == ".png" and Image.open(out).size == (64, 48)
    with pytest.raises(NSTError, match="Could not write"):
        save_image(_gradient(), tmp_path / "result.notaformat")


@pytest.mark.parametrize("size", [(1, 1), (333, 517), (64, 3)])
def test_png_bytes_is_lossless_and_compresses(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    w, h = size
    # noise plus a gradient: every byte value, and rows that differ (the Up filter's case)
    ramp = np.linspace(0, 200, w * h * 3).reshape(h, w, 3)
    pixels = (ramp + rng.integers(0, 56, (h, w, 3))).astype(np.uint8)
    image = Image.fromarray(pixels)
    data = png_bytes(image)
    decoded = Image.open(io.BytesIO(data))
    decoded.load()  # Pillow checks the chunks' CRCs and the zlib stream here
    assert decoded.mode == "RGB" and decoded.size == (w, h)
    assert np.array_equal(np.asarray(decoded), pixels)
    smooth = Image.fromarray(ramp.astype(np.uint8))
    if w * h > 1000:  # a smooth picture packs well below its raw size
        assert len(png_bytes(smooth)) < 0.5 * w * h * 3


def test_png_bytes_converts_other_modes() -> None:
    grey = Image.new("L", (20, 10), 128)
    decoded = Image.open(io.BytesIO(png_bytes(grey)))
    assert decoded.mode == "RGB" and decoded.getpixel((3, 3)) == (128, 128, 128)


def test_messages_use_the_given_name_instead_of_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "deep" / "server" / "cache" / "upload.png"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a png at all")
    with pytest.raises(NSTError) as excinfo:
        load_image(bad, name="holiday.png")
    assert "'holiday.png'" in str(excinfo.value) and str(tmp_path) not in str(excinfo.value)
