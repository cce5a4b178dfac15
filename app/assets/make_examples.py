"""Recreate the example images in this folder (see LICENSES.md for each one's source and license)."""

from pathlib import Path

import matplotlib.cbook
import numpy as np
from PIL import Image, ImageDraw

from pipelines.training.data import load_fashion_mnist

HERE = Path(__file__).parent


def main() -> None:
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = Image.open(f).convert("RGB")
    side = min(hopper.size)
    hopper.crop((0, 0, side, side)).resize((256, 256), Image.LANCZOS).save(HERE / "grace_hopper.png")

    images, labels = load_fashion_mnist(split="test")
    for cls, name in ((0, "tshirt"), (7, "sneaker"), (8, "bag")):
        idx = int((labels == cls).nonzero()[0, 0])
        Image.fromarray(images[idx].numpy()).resize((64, 64), Image.NEAREST).save(HERE / f"fashion_{name}.png")

    shapes = Image.new("RGB", (256, 256), (240, 236, 228))
    d = ImageDraw.Draw(shapes)
    d.ellipse((30, 30, 140, 140), fill=(220, 60, 50))
    d.rectangle((120, 110, 230, 220), fill=(40, 90, 200))
    d.polygon([(40, 230), (110, 150), (180, 230)], fill=(250, 190, 30))
    for i in range(0, 256, 16):
        d.line((i, 0, i, 12), fill=(0, 0, 0), width=2)
    shapes.save(HERE / "shapes.png")
    checker = (np.indices((256, 256)) // 32).sum(0) % 2 * 255
    Image.fromarray(checker.astype(np.uint8)).save(HERE / "checkerboard.png")


if __name__ == "__main__":
    main()
