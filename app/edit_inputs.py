"""What the editing tab takes in: the image to inpaint (a Fashion-MNIST test image or an upload, in the model's size
and channels) and the keep-mask, which arrives as JSON rows of 0/1 (never an image) and is checked here."""

from __future__ import annotations

import json
from functools import lru_cache

import torch
from PIL import Image

from app.images import to_model_tensor
from app.validation import UserError, check_choice, open_image
from pipelines.repaint import MASK_PRESETS, preset_mask

UPLOAD = "your upload"
TEST_IMAGES_PER_CLASS = 2  # the first few test images of each class are offered
MAX_MASK_CHARS = 200_000  # a 256×256 mask of "0,"/"1," is 131 k characters
BRUSH = "brush (paint on the mask)"
MASK_CHOICES = (*MASK_PRESETS, BRUSH)


@lru_cache(maxsize=1)
def _test_split() -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]] | None:
    """Fashion-MNIST's test images and labels (Debian's dataset-fashion-mnist), or None where it is not installed."""
    from pipelines.training.data import FASHION_MNIST_CLASSES, DatasetNotFoundError, load_fashion_mnist

    try:
        images, labels = load_fashion_mnist(split="test")
    except (DatasetNotFoundError, OSError):
        return None
    return images, labels, tuple(FASHION_MNIST_CLASSES)


@lru_cache(maxsize=1)
def test_images() -> dict[str, int]:
    """The offered test images, "<class> (test #i)" → index i: the first few of each class."""
    split = _test_split()
    if split is None:
        return {}
    _, labels, names = split
    offered = {}
    for label, name in enumerate(names):
        for i in torch.nonzero(labels == label).flatten()[:TEST_IMAGES_PER_CLASS].tolist():
            offered[f"{name} (test #{i})"] = i
    return dict(sorted(offered.items(), key=lambda item: item[1]))


def source_choices() -> list[str]:
    return [*test_images(), UPLOAD]


def source_image(source, upload, channels: int, height: int) -> torch.Tensor:
    """x₀ (1, C, H, W) in [−1, 1]: the chosen test image, or the upload through the validated loader, resized to the
    model's size and converted to its channels."""
    source = check_choice("Image", source, tuple(source_choices()))
    if source == UPLOAD:
        if upload is None:
            raise UserError("Upload an image first (or pick a test image).")
        return to_model_tensor(open_image(upload), height, channels).unsqueeze(0)
    images, _, _ = _test_split()
    picked = images[test_images()[source]]  # (28, 28) uint8
    if height == 32:  # the models' own 28 → 32: a black border, as they were trained
        picked = torch.nn.functional.pad(picked, (2, 2, 2, 2))
    return to_model_tensor(Image.fromarray(picked.numpy()), height, channels).unsqueeze(0)


def parse_mask(mask, height: int, width: int) -> torch.Tensor:
    """The keep-mask (1, 1, H, W) from JSON rows of 0/1 (``[[1, 0, …], …]``, or ``{"mask": rows}``): 1 keeps the
    image's pixel, 0 regenerates it. Refuses anything else with what was wrong."""
    if not isinstance(mask, str) or not mask.strip():
        raise UserError("The mask is empty: pick a preset or paint where the image should be regenerated.")
    if len(mask) > MAX_MASK_CHARS:
        raise UserError(f"The mask is too long ({len(mask):,} characters; at most {MAX_MASK_CHARS:,}).")
    try:
        rows = json.loads(mask)
    except json.JSONDecodeError:
        raise UserError('The mask must be JSON: rows of 0 and 1, e.g. [[1, 0], [1, 1]] or {"mask": [...]}.') from None
    rows = rows.get("mask") if isinstance(rows, dict) else rows
    shape_ok = isinstance(rows, list) and len(rows) == height
    shape_ok = shape_ok and all(isinstance(r, list) and len(r) == width for r in rows)
    if not shape_ok:
        raise UserError(f"The mask must be {height} rows of {width} values (the model's size), 1 keep, 0 regenerate.")
    if not all(v in (0, 1) and not isinstance(v, float | bool) for r in rows for v in r):
        raise UserError("The mask must be binary: 1 where the image is kept, 0 where it is regenerated.")
    keep = torch.tensor(rows, dtype=torch.float32).view(1, 1, height, width)
    if bool((keep == 1).all()):
        raise UserError(
            "The mask keeps every pixel, so there is nothing to regenerate: paint a region or pick a preset."
        )
    return keep


def mask_json(keep: torch.Tensor) -> str:
    """A keep-mask (…, H, W) as the JSON rows :func:`parse_mask` reads."""
    return json.dumps(keep.reshape(keep.shape[-2:]).int().tolist(), separators=(",", ":"))


def preset_json(name, height: int, width: int, seed: int = 0) -> str:
    return mask_json(preset_mask(check_choice("Mask", name, MASK_PRESETS), height, width, seed))
