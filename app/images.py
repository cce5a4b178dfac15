"""The one validated loader every image input goes through, and its conversion to a model tensor."""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from app import settings

READABLE = "PNG, JPEG, GIF, WebP, BMP or TIFF"
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")  # what Pillow may decode: only what the UI advertises
# bytes per pixel Pillow holds once decoded, by mode (what a decoded-bytes limit counts; unknown modes: 4)
MODE_BYTES = {
    "1": 1,
    "L": 1,
    "P": 1,
    "LA": 2,
    "La": 2,
    "PA": 2,
    "I;16": 2,
    "I;16B": 2,
    "I;16L": 2,
    "I;16N": 2,
    "RGB": 3,
    "YCbCr": 3,
    "LAB": 3,
    "HSV": 3,
    "RGBA": 4,
    "RGBa": 4,
    "RGBX": 4,
    "CMYK": 4,
    "I": 4,
    "F": 4,
}


class ImageLoadError(ValueError):
    """The file is not an image we can read; the message says why, for the user."""


def _to_8bit(im: Image.Image) -> Image.Image:
    """16-bit and float grayscale (I;16, I, F) to 8-bit L, scaled by the format's range."""
    arr = np.asarray(im, dtype=np.float32)  # 4 bytes per pixel, as the decoded image (float64 would double it)
    if im.mode == "F":
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
    else:
        arr = arr / 257.0 if arr.max(initial=0) > 255 or im.mode.startswith("I;16") else arr
    return Image.fromarray(np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8), mode="L")


ON_WHITE = "ddpm_explorer_on_white"  # set in a normalized image's info where transparent pixels were laid on white


def normalize_mode(im: Image.Image) -> Image.Image:
    """Any PIL mode to L (grayscale sources) or RGB; transparency is composited on white."""
    if im.mode in ("1", "L"):
        return im.convert("L")
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _to_8bit(im)
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        flat = Image.alpha_composite(background, im).convert("RGB")
        flat.info[ON_WHITE] = im.getchannel("A").getextrema()[0] < 255  # any pixel less than opaque
        return flat
    return im.convert("RGB")  # RGB, CMYK, YCbCr, LAB, HSV, RGBX


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an uploaded file as an L or RGB image, safely.

    EXIF orientation is applied, an animation gives its first frame, and the pixel count is checked from the header
    before any decoding (a decompression bomb is refused without being decompressed).

    Raises:
        ImageLoadError: empty, unreadable, truncated, corrupt or too large.
    """
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise ImageLoadError("The uploaded file could not be read.") from e
    if size == 0:
        raise ImageLoadError("The uploaded file is empty (0 bytes).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path, formats=FORMATS)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        if isinstance(e, UnidentifiedImageError):
            raise ImageLoadError(f"This file is not a readable image; please upload a {READABLE} file.") from e
        raise ImageLoadError(
            f"This image is too large to process (limit {settings.MAX_IMAGE_PIXELS:,} pixels)."
        ) from e
    except OSError as e:
        raise ImageLoadError(f"This file is not a readable image ({e}); please upload a {READABLE} file.") from e
    with im:
        w, h = im.size
        if w * h > settings.MAX_IMAGE_PIXELS:
            raise ImageLoadError(
                f"This image is {w}×{h} = {w * h:,} pixels, over the limit of {settings.MAX_IMAGE_PIXELS:,}."
            )
        decoded = w * h * MODE_BYTES.get(im.mode, 4)
        if decoded > settings.MAX_DECODED_BYTES:
            raise ImageLoadError(
                f"This image ({w}×{h}, mode {im.mode}) would take {decoded / 2**20:,.0f} MB to decode, over the limit "
                f"of {settings.MAX_DECODED_BYTES / 2**20:,.0f} MB."
            )
        if w < 1 or h < 1:
            raise ImageLoadError("This image has no pixels.")
        try:
            im.seek(0)  # the first frame of an animated GIF/WebP/APNG
            im.load()
            im = ImageOps.exif_transpose(im) or im
            return normalize_mode(im)
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise ImageLoadError(f"The image file is truncated or corrupt ({e}).") from e


def to_model_tensor(im: Image.Image, resolution: int, channels: int) -> torch.Tensor:
    """Center-crop to a square, resize to ``resolution`` and convert to ``channels`` (1 or 3): (C, R, R) in [−1, 1]."""
    side = min(im.size)
    left, top = (im.width - side) // 2, (im.height - side) // 2
    im = im.crop((left, top, left + side, top + side))
    resample = Image.LANCZOS if side > resolution else Image.BICUBIC
    im = im.resize((resolution, resolution), resample).convert("L" if channels == 1 else "RGB")
    arr = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).float()
    arr = arr.unsqueeze(0) if channels == 1 else arr.permute(2, 0, 1)
    return arr / 127.5 - 1.0


def crop_note(size: tuple[int, int], resolution: int, on_white: bool = False) -> str:
    """What :func:`to_model_tensor` does to an image of ``size`` (width, height), in words for the page: a
    non-square image loses the edges of its longer side, and transparent pixels were laid on white (``on_white``,
    :func:`normalize_mode`'s mark in the image's info): never silently."""
    note = _crop_words(size, resolution)
    return f"{note}; its transparent parts laid on white" if on_white else note


def upload_note(im: Image.Image, resolution: int) -> str:
    """:func:`crop_note` for a loaded image: its size, and whether :func:`normalize_mode` laid its transparency on
    white."""
    return crop_note(im.size, resolution, im.info.get(ON_WHITE, False))


def _crop_words(size: tuple[int, int], resolution: int) -> str:
    w, h = size
    side = min(w, h)
    resized = f"resized to {resolution}×{resolution}"
    if w == h:
        return f"{w}×{h}, {resized}" if side != resolution else f"{w}×{h}, used as it is"
    first = (max(w, h) - side) // 2  # what to_model_tensor's crop leaves out on each side
    second = max(w, h) - side - first
    cut = (
        f"{first} px cut from the left and {second} px from the right"
        if w > h
        else (f"{first} px cut from the top and {second} px from the bottom")
    )
    return f"{w}×{h} is not square: its centre {side}×{side} is kept ({cut}), {resized}"


def examples() -> list[str]:
    """The shipped example images, the default first."""
    found = sorted(settings.ASSETS_DIR.glob("*.png"), key=lambda p: (p.name != settings.DEFAULT_EXAMPLE, p.name))
    return [str(p) for p in found]


def default_example() -> str | None:
    found = examples()
    return found[0] if found else None
