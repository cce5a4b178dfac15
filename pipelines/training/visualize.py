"""Image grids and the loss curve, for training output and model cards (no gradio here)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def make_grid(images: np.ndarray, ncols: int | None = None, pad: int = 2, pad_value: int = 255) -> np.ndarray:
    """(N, H, W, C) uint8 -> one (rows·(H+pad)+pad, cols·(W+pad)+pad, C) uint8 image, tiles in row-major order."""
    n, h, w, c = images.shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, ncols)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = images[i]
    return grid


def tensor_to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) float in [0, 1] -> (N, H, W, C) uint8."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def save_image_grid(images: torch.Tensor, path, ncols: int | None = None, scale: int = 2) -> None:
    """Save (N, C, H, W) images in [0, 1] as one PNG grid, upscaled ``scale``× with nearest neighbour."""
    grid = make_grid(tensor_to_uint8_hwc(images), ncols)
    img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(path)


SIMPLE_LOSS = "L_simple (MSE)"
HYBRID_LOSS = "L_hybrid = L_simple + λ·L_vlb"


def save_loss_curve(log_csv, path, smooth: int = 50, loss_name: str = SIMPLE_LOSS) -> None:
    """Plot the training loss (raw and a running mean over ``smooth`` steps) from the CSV the trainer writes, its axis
    named ``loss_name`` (:data:`HYBRID_LOSS` for a learned-Σ_θ run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with Path(log_csv).open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    steps = np.array([int(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, loss, lw=0.5, alpha=0.35, label="loss")
    if len(loss) >= smooth:
        running = np.convolve(loss, np.ones(smooth) / smooth, mode="valid")
        ax.plot(steps[smooth - 1 :], running, lw=1.5, label=f"mean of {smooth} steps")
    ax.set_xlabel("step")
    ax.set_ylabel(loss_name)
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
