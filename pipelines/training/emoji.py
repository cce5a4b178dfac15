"""The Noto colour emoji as a labelled 32×32 RGB data set: ``python -m pipelines.training.emoji``.

Source: the npm package ``emoji-datasource-google`` (pinned version, checked by its SHA-1), which holds Google's Noto
Emoji as 64 px PNGs and, in ``emoji.json``, each emoji's Unicode category. Licences: the images are Noto Emoji's,
Apache License 2.0 (flags: public domain or exempt from copyright, per Noto's third_party/region-flags); the package's
data and code are MIT. Both allow redistribution with the notice, which the output folder carries (NOTICE.md).

What it writes (``--output``, default ``data/noto-emoji-32``)::

    classes.json               the class names, in label order (Unicode's category order)
    index.json                 every image: file, name, code points, category, split
    train/<category>/<code>.png, test/<category>/<code>.png
    NOTICE.md                  source, version, licences

``--ship-to MODEL_DIR`` then writes the images into a trained model's folder as ``training_set.npz``, for the app's
view of each sample beside its nearest training image (pipelines/nearest.py).

Each emoji is composited over white (how emoji are seen) and reduced to 32 px with Lanczos filtering. Only the base
emoji are kept: the skin-tone variants are near-copies of one image, which would let a model "generate" a training
image by changing its tone, and the nearest-neighbour figures would read them as memorised. The "Component" category
(five skin-tone swatches and four hair parts) is dropped. The split is fixed by a hash of each emoji's code points
(``--test-percent``, 15 % by default), so it does not change when the package adds emoji; a held-out emoji whose
image is a training image pixel for pixel (a flag two regions share) is left out.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

PACKAGE = "emoji-datasource-google"
VERSION = "16.0.0"
TARBALL_URL = f"https://registry.npmjs.org/{PACKAGE}/-/{PACKAGE}-{VERSION}.tgz"
TARBALL_SHA1 = "a80ac3e8106cbd4d8648ce758aa099e8827b6157"  # the registry's dist.shasum for this version
IMAGE_DIR = "package/img/google/64/"
DROPPED_CATEGORIES = ("Component",)
DEFAULT_OUTPUT = Path("data/noto-emoji-32")
RESOLUTION = 32
NOTICE = f"""# Noto Emoji, 32 px

Made by `python -m pipelines.training.emoji` from the npm package `{PACKAGE}` {VERSION}
({TARBALL_URL}, SHA-1 {TARBALL_SHA1}).

- Images: Google's Noto Emoji (https://github.com/googlefonts/noto-emoji), Apache License 2.0
  (https://www.apache.org/licenses/LICENSE-2.0). Flag images: public domain or otherwise exempt from copyright
  (noto-emoji's third_party/region-flags/LICENSE).
- Category data (emoji.json): emoji-data by Cal Henderson (https://github.com/iamcal/emoji-data), MIT licence.

Changes: composited over white, resized from 64 to 32 px (Lanczos), skin-tone variants and the Component category left
out.
"""


class DataError(ValueError):
    """A tarball that is not the expected package."""


def download(url: str = TARBALL_URL, sha1: str = TARBALL_SHA1) -> bytes:
    """The package's tarball from the npm registry, checked against its SHA-1."""
    with urllib.request.urlopen(url, timeout=60) as response:
        data = response.read()
    if hashlib.sha1(data).hexdigest() != sha1:
        raise DataError(f"{url}: SHA-1 {hashlib.sha1(data).hexdigest()} is not the pinned {sha1}.")
    return data


def in_test_split(code: str, test_percent: int) -> bool:
    """Whether an emoji (by its code points, e.g. ``1f431``) is held out: a stable hash, not a random draw."""
    return int(hashlib.sha1(code.lower().encode()).hexdigest(), 16) % 100 < test_percent


def to_rgb32(png: bytes, resolution: int = RESOLUTION) -> Image.Image:
    """A transparent emoji PNG over white, resized to ``resolution`` px."""
    with Image.open(io.BytesIO(png)) as im:
        rgba = im.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB")
    return rgb.resize((resolution, resolution), Image.LANCZOS)


def read_package(tarball: bytes) -> tuple[list[dict], dict[str, bytes]]:
    """(emoji.json's entries, {image file name: PNG bytes}) from the package's tarball."""
    entries, images = None, {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            if member.name == "package/emoji.json":
                entries = json.load(tar.extractfile(member))
            elif member.name.startswith(IMAGE_DIR) and member.name.endswith(".png"):
                images[member.name[len(IMAGE_DIR) :]] = tar.extractfile(member).read()
    if entries is None:
        raise DataError("The tarball has no package/emoji.json: not the emoji-datasource package.")
    return entries, images


def class_names(entries: list[dict]) -> list[str]:
    """The categories in Unicode's order (of each category's first emoji by ``sort_order``), less the dropped."""
    first: dict[str, int] = {}
    for e in entries:
        first[e["category"]] = min(first.get(e["category"], e["sort_order"]), e["sort_order"])
    return [c for c in sorted(first, key=first.get) if c not in DROPPED_CATEGORIES]


def build(tarball: bytes, output: Path, test_percent: int = 15, resolution: int = RESOLUTION) -> dict:
    """Write the data set to ``output`` (see the module's docstring); returns the counts per split and class, and
    the held-out emoji left out as copies of training ones (``"dropped"``)."""
    entries, images = read_package(tarball)
    classes = class_names(entries)
    kept = []
    for e in sorted(entries, key=lambda e: e["sort_order"]):
        if e["category"] not in classes or not e.get("has_img_google") or e["image"] not in images:
            continue
        code = Path(e["image"]).stem
        split = "test" if in_test_split(code, test_percent) else "train"
        kept.append((e, code, split, to_rgb32(images[e["image"]], resolution)))
    # a held-out image that is a training image pixel for pixel (flags shared by two regions: Australia and Heard &
    # McDonald Islands) is no held-out image: it is left out, so that "closer than any held-out image" can be met
    train_pixels = {im.tobytes() for _, _, split, im in kept if split == "train"}
    index, dropped = [], []
    counts = {"train": dict.fromkeys(classes, 0), "test": dict.fromkeys(classes, 0)}
    for e, code, split, im in kept:
        name = (e.get("name") or e["short_name"]).lower()
        if split == "test" and im.tobytes() in train_pixels:
            dropped.append(name)
            continue
        path = Path(split) / e["category"] / f"{code}.png"
        (output / path.parent).mkdir(parents=True, exist_ok=True)
        im.save(output / path, optimize=True)
        index.append(dict(file=str(path), name=name, code=code, category=e["category"]))
        counts[split][e["category"]] += 1
    (output / "classes.json").write_text(json.dumps(classes, indent=1) + "\n")
    (output / "index.json").write_text(json.dumps(index, indent=0, ensure_ascii=False) + "\n")
    (output / "NOTICE.md").write_text(NOTICE)
    return {**counts, "dropped": dropped}


def ship_training_set(data_dir: Path, model_dir: Path) -> int:
    """Write the data set's training images (with their names and labels) and held-out images as the model's
    ``training_set.npz`` (pipelines/nearest.py), for the app's nearest-training-image view; returns its size in
    bytes."""
    from pipelines.nearest import TRAINING_SET_FILE, save_training_set

    classes = json.loads((data_dir / "classes.json").read_text())
    index = json.loads((data_dir / "index.json").read_text())

    def arrays(split):
        rows = [e for e in index if e["file"].startswith(f"{split}/")]
        images = [np.asarray(Image.open(data_dir / e["file"]).convert("RGB")).transpose(2, 0, 1) for e in rows]
        return np.stack(images), [classes.index(e["category"]) for e in rows], [e["name"] for e in rows]

    train, labels, names = arrays("train")
    held_out, _, _ = arrays("test")
    save_training_set(model_dir / TRAINING_SET_FILE, train, labels, names, held_out)
    return (model_dir / TRAINING_SET_FILE).stat().st_size


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    p.add_argument("--tarball", type=Path, default=None, help="a local copy of the package's .tgz (else downloaded)")
    p.add_argument("--test-percent", type=int, default=15)
    p.add_argument(
        "--ship-to",
        type=Path,
        default=None,
        help="write --output's training and held-out images into this model folder as training_set.npz, and stop",
    )
    args = p.parse_args(argv)
    if args.ship_to:
        size = ship_training_set(args.output, args.ship_to)
        print(f"Wrote {args.ship_to}/training_set.npz ({size / 2**20:.1f} MB).")
        return
    tarball = args.tarball.read_bytes() if args.tarball else download()
    if args.output.exists() and any(args.output.iterdir()):
        raise SystemExit(f"{args.output} is not empty; choose another --output or remove it.")
    counts = build(tarball, args.output, args.test_percent)
    for split in ("train", "test"):
        per_class = counts[split]
        print(f"{split}: {sum(per_class.values())} images, " + ", ".join(f"{c} {n}" for c, n in per_class.items()))
    if counts["dropped"]:
        print(f"Left out of test/, as copies of training images: {', '.join(counts['dropped'])}.")


if __name__ == "__main__":
    main()
