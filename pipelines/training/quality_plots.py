"""The quality report's figures (pipelines/training/quality_report.py): small PNGs, no gradio here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipelines.training.data import FASHION_MNIST_CLASSES
from pipelines.training.metrics import grey_histogram
from pipelines.training.quality_report import CHANNEL_NAMES, levels_of
from pipelines.training.visualize import make_grid, tensor_to_uint8_hwc

SHORT_NAMES = ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot")
NEIGHBOUR_COLUMNS = 3  # samples per class in the nearest-neighbour grid
CLOSEST = 16  # samples in the grid of those closest to a training image (and a quarter as many test images)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def class_names(results: dict) -> list[str]:
    """The report's class names (reports written before they were recorded are Fashion-MNIST's)."""
    return list(results.get("class_names", FASHION_MNIST_CLASSES))


def short_names(results: dict) -> list[str]:
    """Tick labels: Fashion-MNIST's short names, else each name, or its first word where it is long."""
    names = class_names(results)
    if tuple(names) == FASHION_MNIST_CLASSES:
        return list(SHORT_NAMES)
    return [name if len(name) <= 10 else name.split()[0] for name in names]


def plot_confusion(results: dict, path: Path) -> None:
    """One row-normalized confusion matrix per classifier, and one of the nearest training image's class (a 1-NN
    classifier in pixels): row = class asked for, column = class read."""
    plt = _pyplot()
    panels = {}
    for key, s in results["spaces"].items():
        real = f" (real: {100 * s['real_class_accuracy']:.1f} %)" if "real_class_accuracy" in s else ""
        panels[f"{key}: class accuracy {100 * s['class_accuracy']:.1f} %{real}"] = s["confusion"]
    pixels = results["nearest_training_image"]["pixels"]["confusion"]
    panels["class of the nearest training image (pixels)"] = pixels
    ticks, k = short_names(results), len(pixels)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 4.4), dpi=80, squeeze=False)
    for ax, (title, counts) in zip(axes[0], panels.items()):
        m = np.array(counts, dtype=float)
        m = 100 * m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(m, cmap="Blues", vmin=0, vmax=100)
        for i, j in zip(*np.nonzero(m >= 0.5)):
            ax.text(j, i, f"{m[i, j]:.0f}", ha="center", va="center", fontsize=7, color="w" if m[i, j] > 50 else "k")
        ax.set_xticks(range(k), ticks, rotation=60, fontsize=7)
        ax.set_yticks(range(k), ticks, fontsize=7)
        ax.set_xlabel("class read")
        ax.set_ylabel("class asked for")
        ax.set_title(title, fontsize=9)
    fig.suptitle("Generated samples, % of each asked-for class", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_per_class(results: dict, path: Path) -> None:
    """Per-class FD / real floor, precision and recall, one bar per classifier, real-vs-real values as ticks; the
    share of images whose mirror image is nearer to their class's training images (samples against test images); and
    each classifier's accuracy on mirror-imaged real test images, its accuracy on the real ones as ticks (a judge
    trained without flips falls on mirrored footwear)."""
    plt = _pyplot()
    spaces, names = results["spaces"], class_names(results)
    x = np.arange(len(names))
    width = 0.8 / len(spaces)
    fig, axes = plt.subplots(1, 5, figsize=(21, 3.6), dpi=80)
    for i, (key, s) in enumerate(spaces.items()):
        per_class = [s["per_class"][name] for name in names]
        offset = x - 0.4 + width * (i + 0.5)
        axes[0].bar(offset, [c["fd_ratio"] for c in per_class], width, label=key)
        for ax, metric in ((axes[1], "precision"), (axes[2], "recall")):
            ax.bar(offset, [c["precision_recall"][metric] for c in per_class], width, label=key)
            real = [c["precision_recall"][f"real_{metric}"] for c in per_class]
            ax.plot(offset, real, "k_", ms=8, label="real vs real" if i == 0 else None)
        axes[4].bar(offset, [c["mirrored_real_class_accuracy"] for c in per_class], width, label=key)
        real = [c["real_class_accuracy"] for c in per_class]
        axes[4].plot(offset, real, "k_", ms=8, label="on real" if i == 0 else None)
    mirrored = results["mirrored_share"]
    for offset, which in ((-0.2, "generated"), (0.2, "test")):
        axes[3].bar(x + offset, [mirrored[n][which] for n in names], 0.4, label=which)
    axes[3].set_ylabel("share nearer to its class mirrored")
    axes[0].axhline(1, color="grey", lw=0.8, ls=":")
    axes[0].set_ylabel("per-class FD / its real floor")
    axes[1].set_ylabel(f"precision (k = {results['k']})")
    axes[2].set_ylabel(f"recall (k = {results['k']})")
    axes[4].set_ylabel("class accuracy, mirrored real")
    for ax in axes:
        ax.set_xticks(x, short_names(results), rotation=60, fontsize=7)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_levels(results: dict, samples: torch.Tensor, real: torch.Tensor, path: Path) -> None:
    """The pixel-level histograms of samples and test images (grey levels, or each of R, G, B), and per class mean
    brightness, contrast and sharpness (of the luma, for RGB)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), dpi=80)
    centres = np.linspace(-1, 1, 65)[:-1] + 1 / 64
    key, per_class = levels_of(results)
    g = results[key]
    if samples.shape[1] == 1:
        for x, label in ((samples, "generated"), (real, "test")):
            axes[0].step(centres, grey_histogram(x).numpy(), where="mid", label=label)
        title = f"histogram ∩ {g['histogram_intersection']:.3f} (real: {g['histogram_intersection_real']:.3f})"
        axes[0].set_xlabel("grey level in [−1, 1] (64 bins)")
    else:
        for i, (channel, colour) in enumerate(zip(CHANNEL_NAMES, ("tab:red", "tab:green", "tab:blue"))):
            for x, label, style in ((samples, "generated", "-"), (real, "test", ":")):
                hist = grey_histogram(x[:, i]).numpy()
                axes[0].step(centres, hist, where="mid", color=colour, ls=style, label=f"{channel} {label}")
        ours, theirs = g["histogram_intersection"], g["histogram_intersection_real"]
        title = "∩ " + ", ".join(f"{ch} {ours[ch]:.2f} ({theirs[ch]:.2f})" for ch in CHANNEL_NAMES)
        axes[0].set_xlabel("channel level in [−1, 1] (64 bins); test dotted")
    axes[0].set_yscale("log")
    axes[0].set_ylabel("share of pixels")
    axes[0].set_title(title, fontsize=9)
    x = np.arange(len(per_class))
    of = "" if samples.shape[1] == 1 else ", luma"
    stats = {
        "mean_brightness": f"mean brightness (mean pixel{of})",
        "mean_contrast": f"contrast (per-image std{of})",
        "mean_sharpness": f"sharpness (mean |neighbour diff.|{of})",
    }
    for ax, (stat, label) in zip(axes[1:], stats.items()):
        for offset, which in ((-0.2, "generated"), (0.2, "real")):
            ax.bar(x + offset, [c[stat][which] for c in per_class.values()], 0.4, label=which)
        ax.set_xticks(x, short_names(results), rotation=60, fontsize=7)
        ax.set_ylabel(label)
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6 if samples.shape[1] == 3 else 7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_nearest_distances(results: dict, nearest: dict, path: Path) -> None:
    """Distance to the nearest training image: samples against test images, in pixels and in features, with the test
    images' 1st percentile and minimum marked and the share of samples below each."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(nearest), figsize=(5.5 * len(nearest), 3.6), dpi=80, squeeze=False)
    summary = results["nearest_training_image"]
    feature_space = summary["feature_space"]
    for ax, (space, d) in zip(axes[0], nearest.items()):
        s = summary[space]
        bins = np.linspace(0, float(max(d["generated"].max(), d["test"].max())), 50)
        ax.hist(
            d["test"].numpy(), bins, alpha=0.6, density=True, label=f"test image → nearest train ({len(d['test'])})"
        )
        ax.hist(
            d["generated"].numpy(),
            bins,
            alpha=0.6,
            density=True,
            label=f"sample → nearest train ({len(d['generated'])})",
        )
        ax.axvline(s["test_1st_percentile"], color="k", ls="--", lw=0.8, label="test: 1st percentile")
        if "test_min" in s:
            ax.axvline(s["test_min"], color="k", ls=":", lw=0.8, label="test: closest")
            ax.set_title(
                f"medians {s['generated_median']:.2f} (samples), {s['test_median']:.2f} (test)\nsamples closer than "
                f"99 % of test: {100 * s['generated_closer_than_1pct_of_test']:.1f} %, than any: "
                f"{100 * s['generated_closer_than_any_test']:.1f} %",
                fontsize=8,
            )
        ax.set_xlabel("L2 distance in " + ("pixels ([−1, 1])" if space == "pixels" else f"{feature_space} features"))
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [−1, 1] -> (N, H, W, C) uint8."""
    return tensor_to_uint8_hwc((images + 1) / 2)


def save_nearest_grid(samples, labels, nearest: dict, train_x, path: Path, scale: int = 2) -> None:
    """One row per class: NEIGHBOUR_COLUMNS samples, each followed by its nearest training image in pixels and in
    features (a sample, its pixel neighbour, its feature neighbour, the next sample, ...)."""
    tiles = []
    for c in labels.unique().tolist():
        for i in (labels == c).nonzero().squeeze(1)[:NEIGHBOUR_COLUMNS].tolist():
            tiles += [samples[i], train_x[nearest["pixels"]["generated_index"][i]]]
            tiles.append(train_x[nearest["features"]["generated_index"][i]])
    grid = make_grid(to_uint8(torch.stack(tiles)), ncols=3 * NEIGHBOUR_COLUMNS, pad=2, pad_value=128)
    img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(path)


def save_closest_grid(results: dict, samples, nearest: dict, train_x, test_sub_x, path: Path) -> None:
    """The CLOSEST samples nearest (in pixels) to a training image, each beside that image and its nearest training
    image in features, with the distances; below, the test images closest to a training image, for scale (held-out
    images have near-twins in the training set too)."""
    plt = _pyplot()
    d = nearest["pixels"]
    rows = [("sample", samples, d["generated"], d["generated_index"], nearest["features"]["generated_index"])]
    rows.append(("test", test_sub_x, d["test"], d["test_index"], nearest["features"]["test_index"]))
    per_row, feature_space = 4, results["nearest_training_image"]["feature_space"]
    picks = [
        (what, x, dist, i, j, dist.argsort()[: CLOSEST if what == "sample" else per_row])
        for what, x, dist, i, j in rows
    ]
    n_rows = sum(-(-len(p[-1]) // per_row) for p in picks)
    fig, axes = plt.subplots(n_rows, 3 * per_row, figsize=(3 * per_row, 1.2 * n_rows), dpi=64, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    r = 0
    for what, x, dist, pixel_index, feature_index, order in picks:
        for n, q in enumerate(order.tolist()):
            row, col = r + n // per_row, 3 * (n % per_row)
            tiles = (x[q], train_x[pixel_index[q]], train_x[feature_index[q]])
            titles = (f"{what} d={dist[q]:.2f}", "nearest (px)", f"nearest ({feature_space})")
            for ax, tile, title in zip(axes[row, col : col + 3], to_uint8(torch.stack(tiles)), titles):
                ax.imshow(
                    tile[..., 0] if tile.shape[-1] == 1 else tile, "gray", vmin=0, vmax=255, interpolation="nearest"
                )
                ax.set_title(title, fontsize=6)
        r += -(-len(order) // per_row)
    fig.suptitle("The samples closest to a training image (pixel L2), then the closest test images", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_quality_plots(results: dict, samples, labels, tensors: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    test_sub_x = tensors["test_x"][tensors["test_sub"]]
    plot_confusion(results, out / "confusion.png")
    plot_per_class(results, out / "per_class.png")
    plot_levels(results, samples, test_sub_x, out / f"{levels_of(results)[0]}.png")
    plot_nearest_distances(results, tensors["nearest"], out / "nearest_distances.png")
    save_nearest_grid(samples, labels, tensors["nearest"], tensors["train_x"], out / "nearest_train.png")
    save_closest_grid(
        results, samples, tensors["nearest"], tensors["train_x"], test_sub_x, out / "nearest_train_closest.png"
    )
