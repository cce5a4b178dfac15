"""Training data: Fashion-MNIST from its IDX files, or any folder of images, as tensors in [−1, 1]."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_IDX_DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DatasetNotFoundError(FileNotFoundError):
    pass


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzipped or not: magic 0x0000 <dtype> <ndim>, big-endian dims, data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number).")
    dtype, ndim = np.dtype(_IDX_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header.")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(f"{path}: IDX header says {shape} ({expected} bytes) but {len(data) - header} bytes follow.")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find_idx(data_dir: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (data_dir / name).exists():
            return data_dir / name
    raise DatasetNotFoundError(
        f"Fashion-MNIST file {stem}(.gz) not found in {data_dir}. Install it with "
        "`sudo apt-get install dataset-fashion-mnist` (Debian) or download the IDX files from "
        "https://github.com/zalandoresearch/fashion-mnist into that folder, or pass --data-dir."
    )


def load_fashion_mnist(data_dir: str | Path = DEFAULT_FASHION_MNIST_DIR, split: str = "train"):
    """(N, 28, 28) uint8 images and (N,) int64 labels of the ``train`` or ``test`` split."""
    prefix = {"train": "train", "test": "t10k"}[split]
    data_dir = Path(data_dir)
    images = read_idx(_find_idx(data_dir, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find_idx(data_dir, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"Unexpected Fashion-MNIST shapes: images {images.shape}, labels {labels.shape}.")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def uint8_to_model_range(images: torch.Tensor, resolution: int = 32) -> torch.Tensor:
    """(N, H, W) or (N, C, H, W) uint8 -> (N, C, resolution, resolution) float in [−1, 1].

    28×28 Fashion-MNIST is zero-padded (black border) to 32×32, which keeps its pixels exact; other sizes resize.
    """
    x = images.float().div(127.5).sub(1.0)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    h, w = x.shape[-2:]
    if (h, w) == (28, 28) and resolution == 32:
        return F.pad(x, (2, 2, 2, 2), value=-1.0)
    if (h, w) != (resolution, resolution):
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(-1.0, 1.0)


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetNotFoundError(f"Image folder {folder} does not exist.")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetNotFoundError(f"No images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {folder}.")
    return files


def folder_class_names(folder: str | Path) -> list[str]:
    """The classes of a labelled image folder (one subfolder of images per class), in label order: the order of a
    ``classes.json`` list in the folder or its parent (``python -m pipelines.training.emoji`` writes one), else the
    subfolders' names sorted."""
    folder = Path(folder)
    for listing in (folder / "classes.json", folder.parent / "classes.json"):
        if listing.is_file():
            names = json.loads(listing.read_text())
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise DatasetNotFoundError(f"{listing} must be a JSON list of class names.")
            return [n for n in names if (folder / n).is_dir()]
    names = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not names:
        raise DatasetNotFoundError(f"{folder} has no class subfolders: a labelled folder holds one folder per class.")
    return names


def load_labelled_image_folder(folder: str | Path, resolution: int, channels: int):
    """A labelled image folder (see :func:`folder_class_names`): ((N, C, R, R) images in [−1, 1], (N,) int64 labels,
    the class names)."""
    folder = Path(folder)
    names = folder_class_names(folder)
    parts, labels = [], []
    for label, name in enumerate(names):
        images = load_image_folder(folder / name, resolution, channels)
        parts.append(images)
        labels.append(torch.full((len(images),), label, dtype=torch.long))
    return torch.cat(parts), torch.cat(labels), names


def load_image_folder(folder: str | Path, resolution: int, channels: int) -> torch.Tensor:
    """Every image under ``folder`` (recursively), center-cropped to a square, resized to ``resolution`` and
    converted to ``channels`` (1 = grayscale, 3 = RGB): (N, C, R, R) float in [−1, 1]."""
    files = _image_files(Path(folder))
    mode = {1: "L", 3: "RGB"}[channels]
    out = torch.empty((len(files), channels, resolution, resolution))
    for i, path in enumerate(files):
        with Image.open(path) as im:
            im = im.convert(mode)
            side = min(im.size)
            left, top = (im.width - side) // 2, (im.height - side) // 2
            im = im.crop((left, top, left + side, top + side)).resize((resolution, resolution), Image.BICUBIC)
            arr = torch.from_numpy(np.asarray(im, dtype=np.uint8).copy())
        arr = arr.unsqueeze(0) if channels == 1 else arr.permute(2, 0, 1)
        out[i] = arr.float().div(127.5).sub(1.0)
    return out
