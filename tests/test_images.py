"""Every kind of upload through the one validated loader: a correct image or a clear error, never a crash or a hang."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from app.images import ImageLoadError, load_image, to_model_tensor


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def header_bomb_png(width=20000, height=20000) -> bytes:
    """A tiny PNG file whose header claims width×height pixels (a decompression bomb)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1) * 4)  # far fewer rows than claimed
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def exif_rotated_jpeg() -> bytes:
    """A 40×20 JPEG, left half black, whose EXIF says 'rotate 90° clockwise' (orientation 6)."""
    arr = np.full((20, 40, 3), 255, np.uint8)
    arr[:, :20] = 0
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", exif=exif.tobytes(), quality=95)
    return buf.getvalue()


def animated_gif() -> bytes:
    frames = [Image.new("L", (16, 16), v) for v in (10, 200, 100)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    return buf.getvalue()


def cmyk_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("CMYK", (12, 12), (0, 255, 255, 0)).save(buf, format="JPEG")  # red in CMYK
    return buf.getvalue()


def sixteen_bit_png() -> bytes:
    arr = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    return png_bytes(Image.fromarray(arr, mode="I;16"))


GOOD = {
    "1x1": (png_bytes(Image.new("RGB", (1, 1), (255, 0, 0))), "RGB", (1, 1)),
    "16-bit PNG": (sixteen_bit_png(), "L", (8, 8)),
    "RGBA": (png_bytes(Image.new("RGBA", (10, 6), (0, 0, 255, 0))), "RGB", (10, 6)),
    "palette": (png_bytes(Image.new("P", (9, 9), 3)), "RGB", (9, 9)),
    "CMYK JPEG": (cmyk_jpeg(), "RGB", (12, 12)),
    "animated GIF": (animated_gif(), "RGB", (16, 16)),
    "1-bit": (png_bytes(Image.new("1", (7, 7), 1)), "L", (7, 7)),
    "LA": (png_bytes(Image.new("LA", (5, 5), (0, 128))), "RGB", (5, 5)),
    "EXIF-rotated JPEG": (exif_rotated_jpeg(), "RGB", (20, 40)),
}


def float_tiff(width=4000, height=4000) -> bytes:
    """A compressed 32-bit float TIFF: a small file, 61 MB once decoded."""
    buf = io.BytesIO()
    Image.new("F", (width, height), 0.5).save(buf, format="TIFF", compression="tiff_deflate")
    return buf.getvalue()


def eps_named_png() -> bytes:
    """PostScript content: Pillow would hand it to Ghostscript if every format were allowed."""
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nnewpath 0 0 moveto 8 8 lineto stroke\nshowpage\n"


def spider_image() -> bytes:
    buf = io.BytesIO()
    Image.new("F", (8, 8), 1.0).save(buf, format="SPIDER")
    return buf.getvalue()


BAD = {
    "float TIFF, 61 MB decoded": (float_tiff(), "to decode, over the limit"),
    "EPS renamed .png": (eps_named_png(), "not a readable image"),
    "SPIDER (a format the UI does not offer)": (spider_image(), "not a readable image"),
    "zero bytes": (b"", "empty"),
    "truncated PNG": (png_bytes(Image.new("RGB", (64, 64), (1, 2, 3)))[:60], "truncated or corrupt|not a readable"),
    "text renamed .png": (b"hello, I am not an image\n" * 10, "not a readable image"),
    "20000x20000 header bomb": (header_bomb_png(), "too large|over the limit"),
}


@pytest.mark.parametrize("name", GOOD)
def test_good_uploads_give_a_correct_image(name, tmp_path):
    data, mode, size = GOOD[name]
    path = tmp_path / "upload.png"
    path.write_bytes(data)
    im = load_image(path)
    assert im.mode == mode and im.size == size
    x = to_model_tensor(im, 32, 3 if mode == "RGB" else 1)
    assert x.shape[-2:] == (32, 32) and x.min() >= -1 and x.max() <= 1


def test_mode_details(tmp_path):
    def load(data):
        (tmp_path / "f").write_bytes(data)
        return np.asarray(load_image(tmp_path / "f"))

    assert load(GOOD["RGBA"][0]).min() == 255, "transparent pixels composite onto white"
    sixteen = load(GOOD["16-bit PNG"][0])
    assert sixteen.max() == round(63000 / 257) and sixteen[0, 0] == 0, "16-bit scales to 8-bit"
    assert load(GOOD["animated GIF"][0]).mean() == pytest.approx(10, abs=2), "the first frame"
    rgb = load(GOOD["CMYK JPEG"][0])
    assert rgb[..., 0].mean() > 200 and rgb[..., 1].mean() < 60, "CMYK red stays red"
    rotated = load(GOOD["EXIF-rotated JPEG"][0])
    assert rotated.shape[:2] == (40, 20) and rotated[:20].mean() < 60 and rotated[20:].mean() > 200


@pytest.mark.parametrize("name", BAD)
def test_bad_uploads_give_a_clear_error(name, tmp_path):
    data, message = BAD[name]
    path = tmp_path / "upload.png"
    path.write_bytes(data)
    with pytest.raises(ImageLoadError, match=message):
        load_image(path)


def test_the_decoded_bytes_limit_refuses_before_decoding(tmp_path, monkeypatch):
    """Refused from the header: Image.load is never reached."""
    path = tmp_path / "big.tiff"
    path.write_bytes(float_tiff())
    from PIL import ImageFile, TiffImagePlugin

    for cls in (Image.Image, ImageFile.ImageFile, TiffImagePlugin.TiffImageFile):
        monkeypatch.setattr(cls, "load", lambda self: pytest.fail("decoded"))
    with pytest.raises(ImageLoadError, match="61 MB to decode"):
        load_image(path)
