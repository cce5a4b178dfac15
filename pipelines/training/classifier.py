"""Small Fashion-MNIST classifiers whose penultimate features serve as feature spaces of the Fréchet distance
(Inception weights can't be downloaded here, and a domain-specific network is the better judge of garments anyway).

Two architectures, so that a distance is reported in two independent spaces: a distance measured only in the space
one also tuned against flatters the model. ``convnet`` (VGG-like, batch norm, a flattened 128-d feature layer) is the
app's classifier; ``resnet`` (residual, group norm, global average pooling, a different seed) is for evaluation only.

    python -m pipelines.classifier --epochs 4 --output-dir checkpoints/fashion-mnist-classifier
    python -m pipelines.classifier --architecture resnet --seed 1 --epochs 4 \
        --output-dir checkpoints/fashion-mnist-classifier-resnet

Both see random horizontal flips in training, so a shoe pointing the wrong way is still a shoe to them. The third
judge is trained without them (``--no-hflip``), so that it can tell (docs/QUALITY.md):

    python -m pipelines.classifier --seed 2 --no-hflip --epochs 4 \
        --output-dir checkpoints/fashion-mnist-classifier-noflip
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from pipelines.training.data import (
    DEFAULT_FASHION_MNIST_DIR,
    load_fashion_mnist,
    load_labelled_image_folder,
    uint8_to_model_range,
)

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"
DEFAULT_CLASSIFIER_DIR = CHECKPOINTS / "fashion-mnist-classifier"
SECOND_CLASSIFIER_DIR = CHECKPOINTS / "fashion-mnist-classifier-resnet"  # the independent feature space
THIRD_CLASSIFIER_DIR = CHECKPOINTS / "fashion-mnist-classifier-noflip"  # trained without flips: sees orientation
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"  # {"architecture": ..., "hflip": ...}; absent: the first classifier's "convnet"


class FashionClassifier(nn.Module):
    """Three conv blocks and a 128-d feature layer: (B, C, 32, 32) in [−1, 1] -> logits (B, classes)."""

    feature_dim = 128

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()

        def block(c_in, c_out):
            return nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.body = nn.Sequential(block(in_channels, 32), block(32, 64), block(64, 128))  # 32 -> 16 -> 8 -> 4
        self.features_head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(128 * 16, self.feature_dim), nn.ReLU(inplace=True)
        )
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate activations, (B, 128)."""
        return self.features_head(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(8, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(8, channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualClassifier(nn.Module):
    """A residual network with group norm, strided downsampling and global average pooling: (B, C, 32, 32) in
    [−1, 1] -> logits (B, classes); its features are the pooled 128 channels. Built to differ from FashionClassifier
    in every choice that shapes a feature space (normalization, pooling, depth, activation)."""

    feature_dim = 128

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        layers = [nn.Conv2d(in_channels, 32, 3, padding=1)]
        for c_in, c_out in ((32, 32), (32, 64), (64, 128)):  # 32 -> 16 -> 8 -> 4
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), ResidualBlock(c_out)]
        layers += [nn.GroupNorm(8, 128), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.feature_dim, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled activations, (B, 128)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


ARCHITECTURES = {"convnet": FashionClassifier, "resnet": ResidualClassifier}


def load_classifier(directory=DEFAULT_CLASSIFIER_DIR) -> nn.Module:
    directory = Path(directory)
    path = directory / WEIGHTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"No classifier weights at {path}; train them with `python -m pipelines.classifier`.")
    config = json.loads((directory / CONFIG_FILE).read_text()) if (directory / CONFIG_FILE).exists() else {}
    architecture = config.get("architecture", "convnet")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"{directory}: unknown classifier architecture {architecture!r}.")
    model = ARCHITECTURES[architecture](config.get("num_classes", 10), config.get("in_channels", 1))
    model.load_state_dict(load_file(str(path)))
    return model.eval()


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 500):
    """(N, C, 32, 32) in [−1, 1] -> (features (N, feature_dim), probabilities (N, classes))."""
    feats, probs = [], []
    for i in range(0, len(images), batch_size):
        f = model.features(images[i : i + batch_size])
        feats.append(f)
        probs.append(F.softmax(model.head(f), dim=-1))
    return torch.cat(feats), torch.cat(probs)


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    _, probs = predict(model, images)
    return (probs.argmax(-1) == labels).float().mean().item()


def training_data(args):
    """(x_train, y_train, x_test, y_test, class names): Fashion-MNIST, or a labelled image folder and its test
    folder (``--image-folder``, ``--test-folder``: one subfolder per class, e.g. ``python -m
    pipelines.training.emoji``'s train/ and test/)."""
    if args.image_folder:
        x_train, y_train, names = load_labelled_image_folder(args.image_folder, 32, args.channels)
        x_test, y_test, test_names = load_labelled_image_folder(args.test_folder, 32, args.channels)
        if test_names != names:
            raise SystemExit(f"{args.test_folder}'s classes {test_names} are not {args.image_folder}'s {names}.")
    else:
        train_images, y_train = load_fashion_mnist(args.data_dir, "train")
        test_images, y_test = load_fashion_mnist(args.data_dir, "test")
        x_train, x_test, names = uint8_to_model_range(train_images), uint8_to_model_range(test_images), None
    return x_train[: args.train_images], y_train[: args.train_images], x_test, y_test, names


def augmented(x: torch.Tensor, shift: int, hflip: bool = True) -> torch.Tensor:
    """Random horizontal flips (with ``hflip``) and, with ``shift`` > 0, random translations by up to ``shift``
    pixels (edges repeated): a small data set's classifier needs them to generalise. Without flips a classifier
    learns which way a shoe points, and can read a mirrored one as something else."""
    if hflip:
        flip = torch.rand(len(x)) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    if shift:
        padded = F.pad(x, (shift,) * 4, mode="replicate")
        dx, dy = torch.randint(0, 2 * shift + 1, (2,)).tolist()
        x = padded[..., dy : dy + x.shape[-2], dx : dx + x.shape[-1]]
    return x


def train(args) -> None:
    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    x_train, train_labels, x_test, test_labels, class_names = training_data(args)
    num_classes = len(class_names) if class_names else 10
    model = ARCHITECTURES[args.architecture](num_classes, x_train.shape[1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = len(x_train) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, args.lr, total_steps=args.epochs * steps_per_epoch)
    start, accuracy_by_epoch = time.time(), []
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_train))
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}")
        for i in bar:
            idx = perm[i * args.batch_size : (i + 1) * args.batch_size]
            x = augmented(x_train[idx], args.shift, args.hflip)
            loss = F.cross_entropy(model(x), train_labels[idx], label_smoothing=0.05)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        model.eval()
        acc = accuracy(model, x_test, test_labels)
        accuracy_by_epoch.append(round(acc, 4))
        print(f"epoch {epoch + 1}: test accuracy {acc:.4f}")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / WEIGHTS_FILE))
    config = {"architecture": args.architecture, "hflip": args.hflip}
    if class_names:
        config.update(in_channels=x_train.shape[1], num_classes=num_classes, class_names=class_names)
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    report = {
        "architecture": args.architecture,
        "data": args.image_folder or "Fashion-MNIST",
        "train_images": len(x_train),
        "test_images": len(x_test),
        "parameters": sum(p.numel() for p in model.parameters()),
        "test_accuracy": acc,
        "test_accuracy_by_epoch": accuracy_by_epoch,
        "hflip": args.hflip,
        "shift": args.shift,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "wall_s": round(time.time() - start, 1),
    }
    (out / "metrics.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description="Train a feature classifier (Fashion-MNIST, or a labelled image folder).")
    p.add_argument("--data-dir", default=DEFAULT_FASHION_MNIST_DIR)
    p.add_argument("--image-folder", default=None, help="a labelled image folder (one subfolder per class) instead")
    p.add_argument("--test-folder", default=None, help="its held-out images (default: the sibling test/ folder)")
    p.add_argument("--channels", type=int, choices=(1, 3), default=3, help="of --image-folder's images")
    p.add_argument("--shift", type=int, default=0, help="random translations of up to this many pixels")
    p.add_argument(
        "--no-hflip",
        dest="hflip",
        action="store_false",
        help="no random horizontal flips in training: the classifier learns which way a shoe points",
    )
    p.add_argument("--output-dir", default=str(DEFAULT_CLASSIFIER_DIR))
    p.add_argument("--architecture", choices=tuple(ARCHITECTURES), default="convnet")
    p.add_argument("--train-images", type=int, default=None, help="train on the first N images only (tests)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.image_folder and not args.test_folder:
        args.test_folder = str(Path(args.image_folder).parent / "test")
    train(args)


if __name__ == "__main__":
    main()
