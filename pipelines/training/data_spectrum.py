"""The training data's mean power spectrum, saved beside a checkpoint for the reverse tab's spectral view (the app
has no dataset at run time).

    python -m pipelines.training.data_spectrum --checkpoint checkpoints/fashion-mnist-32
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pipelines.spectral import radial_power_spectrum
from pipelines.training.data import DEFAULT_FASHION_MNIST_DIR, load_fashion_mnist, uint8_to_model_range

FILE = "data_spectrum.json"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="the checkpoint folder to write data_spectrum.json into")
    p.add_argument("--data-dir", default=DEFAULT_FASHION_MNIST_DIR)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--num-images", type=int, default=10000)
    args = p.parse_args(argv)
    images = uint8_to_model_range(load_fashion_mnist(args.data_dir, "train")[0][: args.num_images], args.resolution)
    with torch.no_grad():
        spectrum = radial_power_spectrum(images)
    out = {
        "source": f"Fashion-MNIST train, first {len(images)} images at {args.resolution} px, in [-1, 1]",
        "command": f"python -m pipelines.training.data_spectrum --checkpoint {args.checkpoint}",
        "freqs": [round(float(f), 6) for f in spectrum.freqs],
        "power": [float(f"{v:.5g}") for v in spectrum.power.tolist()],
    }
    path = Path(args.checkpoint) / FILE
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
