"""The quality report's figures (pipelines/training/quality_report.py): small PNGs, no gradio here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipelines.training.data import FASHION_MNIST_CLASSES
from pipelines.training.metrics import grey_histogram
from pipelines.training.visualize import make_grid, tensor_to_uint8_hwc

SHORT_NAMES = ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot")
NEIGHBOUR_COLUMNS = 3  # samples per class in the nearest-neighbour grid


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(results: dict, path: Path) -> None:
    """One row-normalized confusion matrix per classifier, and one of the nearest training image's class (a 1-NN
    classifier in pixels): row = class asked for, column = class read."""
    plt = _pyplot()
    panels = {
        f"{key}: class accuracy {100 * s['class_accuracy']:.1f} %": s["confusion"]
        for key, s in results["spaces"].items()
    }
    pixels = results["nearest_training_image"]["pixels"]["confusion"]
    panels["class of the nearest training image (pixels)"] = pixels
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 4.4), dpi=80, squeeze=False)
    for ax, (title, counts) in zip(axes[0], panels.items()):
        m = np.array(counts, dtype=float)
        m = 100 * m / m.sum(1, keepdims=True)
        ax.imshow(m, cmap="Blues", vmin=0, vmax=100)
        for i, j in zip(*np.nonzero(m >= 0.5)):
            ax.text(j, i, f"{m[i, j]:.0f}", ha="center", va="center", fontsize=7, color="w" if m[i, j] > 50 else "k")
        ax.set_xticks(range(10), SHORT_NAMES, rotation=60, fontsize=7)
        ax.set_yticks(range(10), SHORT_NAMES, fontsize=7)
        ax.set_xlabel("class read")
        ax.set_ylabel("class asked for")
        ax.set_title(title, fontsize=9)
    fig.suptitle("Generated samples, % of each asked-for class", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_per_class(results: dict, path: Path) -> None:
    """Per-class FD / real floor, precision and recall, one bar per classifier, real-vs-real values as ticks; and the
    share of images whose mirror image is nearer to their class's training images (samples against test images)."""
    plt = _pyplot()
    spaces = results["spaces"]
    x = np.arange(10)
    width = 0.8 / len(spaces)
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6), dpi=80)
    for i, (key, s) in enumerate(spaces.items()):
        per_class = [s["per_class"][name] for name in FASHION_MNIST_CLASSES]
        offset = x - 0.4 + width * (i + 0.5)
        axes[0].bar(offset, [c["fd_ratio"] for c in per_class], width, label=key)
        for ax, metric in ((axes[1], "precision"), (axes[2], "recall")):
            ax.bar(offset, [c["precision_recall"][metric] for c in per_class], width, label=key)
            real = [c["precision_recall"][f"real_{metric}"] for c in per_class]
            ax.plot(offset, real, "k_", ms=8, label="real vs real" if i == 0 else None)
    mirrored = results["mirrored_share"]
    for offset, which in ((-0.2, "generated"), (0.2, "test")):
        axes[3].bar(x + offset, [mirrored[n][which] for n in FASHION_MNIST_CLASSES], 0.4, label=which)
    axes[3].set_ylabel("share nearer to its class mirrored")
    axes[0].axhline(1, color="grey", lw=0.8, ls=":")
    axes[0].set_ylabel("per-class FD / its real floor")
    axes[1].set_ylabel(f"precision (k = {results['k']})")
    axes[2].set_ylabel(f"recall (k = {results['k']})")
    for ax in axes:
        ax.set_xticks(x, SHORT_NAMES, rotation=60, fontsize=7)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_grey_levels(results: dict, samples: torch.Tensor, real: torch.Tensor, path: Path) -> None:
    """The grey-level histograms of samples and test images, and per class mean brightness, contrast and sharpness."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), dpi=80)
    centres = np.linspace(-1, 1, 65)[:-1] + 1 / 64
    g = results["grey_levels"]
    for x, label in ((samples, "generated"), (real, "test")):
        axes[0].step(centres, grey_histogram(x).numpy(), where="mid", label=label)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("grey level in [−1, 1] (64 bins)")
    axes[0].set_ylabel("share of pixels")
    axes[0].set_title(f"histogram ∩ {g['histogram_intersection']:.3f} (real: {g['histogram_intersection_real']:.3f})")
    per_class = results["grey_levels_per_class"]
    x = np.arange(10)
    stats = {
        "mean_brightness": "mean brightness (mean pixel)",
        "mean_contrast": "contrast (per-image std)",
        "mean_sharpness": "sharpness (mean |neighbour diff.|)",
    }
    for ax, (stat, label) in zip(axes[1:], stats.items()):
        for offset, which in ((-0.2, "generated"), (0.2, "real")):
            ax.bar(x + offset, [per_class[n][stat][which] for n in FASHION_MNIST_CLASSES], 0.4, label=which)
        ax.set_xticks(x, SHORT_NAMES, rotation=60, fontsize=7)
        ax.set_ylabel(label)
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_nearest_distances(results: dict, nearest: dict, path: Path) -> None:
    """Distance to the nearest training image: samples against test images, in pixels and in features."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(nearest), figsize=(5.5 * len(nearest), 3.4), dpi=80, squeeze=False)
    feature_space = results["nearest_training_image"]["feature_space"]
    for ax, (space, d) in zip(axes[0], nearest.items()):
        bins = np.linspace(0, float(max(d["generated"].max(), d["test"].max())), 50)
        ax.hist(d["test"].numpy(), bins, alpha=0.6, label="test image → nearest train")
        ax.hist(d["generated"].numpy(), bins, alpha=0.6, label="sample → nearest train")
        ax.set_xlabel("L2 distance in " + ("pixels ([−1, 1])" if space == "pixels" else f"{feature_space} features"))
        ax.set_ylabel("images")
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_nearest_grid(samples, labels, nearest: dict, train_x, path: Path, scale: int = 2) -> None:
    """One row per class: NEIGHBOUR_COLUMNS samples, each followed by its nearest training image in pixels and in
    features (a sample, its pixel neighbour, its feature neighbour, the next sample, ...)."""
    tiles = []
    for c in range(len(FASHION_MNIST_CLASSES)):
        for i in (labels == c).nonzero().squeeze(1)[:NEIGHBOUR_COLUMNS].tolist():
            tiles += [samples[i], train_x[nearest["pixels"]["generated_index"][i]]]
            tiles.append(train_x[nearest["features"]["generated_index"][i]])
    images = tensor_to_uint8_hwc((torch.stack(tiles) + 1) / 2)  # (N, 1, H, W) in [−1, 1] -> (N, H, W, 1) uint8
    grid = make_grid(images, ncols=3 * NEIGHBOUR_COLUMNS, pad=2, pad_value=128)[..., 0]
    img = Image.fromarray(grid)
    img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(path)


def save_quality_plots(results: dict, samples, labels, tensors: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    plot_confusion(results, out / "confusion.png")
    plot_per_class(results, out / "per_class.png")
    plot_grey_levels(results, samples, tensors["test_x"][tensors["test_sub"]], out / "grey_levels.png")
    plot_nearest_distances(results, tensors["nearest"], out / "nearest_distances.png")
    save_nearest_grid(samples, labels, tensors["nearest"], tensors["train_x"], out / "nearest_train.png")
