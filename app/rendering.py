"""Frames, grids, curve plots with a cheap cursor, and GIF export. No gradio and no math here."""

from __future__ import annotations

import functools
import io
import math
import os
import tempfile
import threading
import uuid
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from pipelines.imports import imported
from pipelines.schedules import index_to_paper_t
from pipelines.training.visualize import make_grid
from pipelines.trajectory import NOISE_RANGE, to_uint8

CURSOR_RGB = (220, 40, 40)
CURSOR_INDEX = 255  # the cursor's entry in a CursorPlot's palette
# matplotlib (and the pyparsing behind its tick labels) is not thread-safe, and callbacks run in many threads:
# every figure is drawn under this lock and handed to gradio as pixels, never as a Figure.
_MPL_LOCK = threading.Lock()


@functools.cache
def pyplot():
    """matplotlib.pyplot on the Agg backend, imported by the first plot rather than before the page is served."""
    imported("matplotlib").use("Agg")
    return imported("matplotlib.pyplot")


def drawn_under_lock(draw):
    """Run a function that draws with matplotlib under _MPL_LOCK."""

    @functools.wraps(draw)
    def locked(*args, **kwargs):
        with _MPL_LOCK:
            return draw(*args, **kwargs)

    return locked


def figure_to_array(fig) -> np.ndarray:
    """Draw a figure to (H, W, 3) uint8 and close it. Call with _MPL_LOCK held."""
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    pyplot().close(fig)
    return img


LATEX_DELIMITERS = [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]


def png_output(arr: np.ndarray | Image.Image) -> Image.Image:
    """A uint8 image for a ``gr.Image(format="png")`` output, tagged with a random nonce in a PNG text chunk.

    gradio caches outputs under the hash of their bytes and rewrites that file in place when two responses are
    identical (two users, one example image), so a concurrent reader can get a truncated file. The nonce gives every
    response its own file: no output file name is shared between sessions.
    """
    im = arr if isinstance(arr, Image.Image) else Image.fromarray(arr)
    im.info["response"] = uuid.uuid4().hex
    return im


def image_to_uint8(x: torch.Tensor, value_range: float = 1.0) -> np.ndarray:
    """(C, H, W) in [−value_range, value_range] -> (H, W) or (H, W, 3) uint8 for display."""
    return uint8_to_hwc(to_uint8(x, value_range))


def noise_to_uint8(x: torch.Tensor) -> np.ndarray:
    """ε-like tensors: ±3σ mapped to black … white."""
    return image_to_uint8(x, NOISE_RANGE)


def uint8_to_hwc(x: torch.Tensor) -> np.ndarray:
    """(C, H, W) uint8 -> (H, W) or (H, W, 3)."""
    arr = x.permute(1, 2, 0).numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def uint8_grid(frames: torch.Tensor, ncols: int | None = None) -> np.ndarray:
    """(B, C, H, W) uint8 -> one grid image, (H', W') or (H', W', 3); a single image comes back as itself."""
    if frames.shape[0] == 1:
        return uint8_to_hwc(frames[0])
    grid = make_grid(frames.permute(0, 2, 3, 1).numpy(), ncols, pad=1, pad_value=255)
    return grid[..., 0] if grid.shape[-1] == 1 else grid


def grid_image(x: torch.Tensor) -> Image.Image:
    """(B, C, H, W) in [−1, 1] -> one uint8 grid, as a PNG output."""
    return png_output(uint8_grid(to_uint8(x.detach().cpu())))


@dataclass
class CursorPlot:
    """A plot rendered once, whose vertical cursor is drawn per slider move in microseconds (no matplotlib).

    The plot is kept as a 255-colour palette image, with the cursor's colour as the 256th entry: a palette PNG encodes
    about 4× faster and is a third of the bytes of the RGB one, and it is encoded again on every slider move.
    """

    background: np.ndarray  # (H, W) uint8 indices into palette
    palette: list[int]  # 256 RGB triples, flattened; entry CURSOR_INDEX is the cursor
    x_to_col: tuple[float, float]  # col = a·x + b
    axes_rows: list[tuple[int, int]]  # (top, bottom) pixel rows of each panel

    @classmethod
    def from_rgb(cls, rgb: np.ndarray, x_to_col, axes_rows) -> CursorPlot:
        quantized = Image.fromarray(rgb).quantize(colors=CURSOR_INDEX, method=Image.Quantize.MEDIANCUT)
        palette = quantized.getpalette()[: 3 * CURSOR_INDEX]
        palette += [0] * (3 * CURSOR_INDEX - len(palette)) + list(CURSOR_RGB)
        return cls(np.asarray(quantized).copy(), palette, x_to_col, axes_rows)

    def at(self, x: float) -> Image.Image:
        """The plot with its cursor at x, as a palette image."""
        idx = self.background.copy()
        col = round(self.x_to_col[0] * x + self.x_to_col[1])
        col = min(max(col, 0), idx.shape[1] - 2)
        for top, bottom in self.axes_rows:
            idx[top:bottom, col : col + 2] = CURSOR_INDEX
        img = Image.fromarray(idx)
        img.putpalette(self.palette)  # an "L" image given a palette becomes "P"
        return img


@drawn_under_lock
def cursor_plot(x: np.ndarray, panels: list[tuple[str, np.ndarray, str]], width=5.2, height=4.2) -> CursorPlot:
    """Stacked panels sharing x. ``panels``: (y label, y values, y scale); a log-scaled panel's label says so."""
    fig = cursor_figure(x, panels, width, height)
    axes = fig.axes
    background = figure_to_array(fig)
    height_px = background.shape[0]
    (x0, _), (x1, _) = axes[-1].transData.transform([(x[0], 0), (x[-1], 0)])
    a = (x1 - x0) / (x[-1] - x[0]) if x[-1] != x[0] else 0.0
    rows = []
    for ax in axes:
        bbox = ax.get_window_extent()
        rows.append((int(height_px - bbox.y1), int(height_px - bbox.y0)))
    return CursorPlot.from_rgb(background, (a, x0 - a * x[0]), rows)


def cursor_figure(x: np.ndarray, panels: list[tuple[str, np.ndarray, str]], width=5.2, height=4.2):
    """The figure behind :func:`cursor_plot` (call with _MPL_LOCK held)."""
    fig, axes = pyplot().subplots(len(panels), 1, figsize=(width, height), dpi=100, sharex=True)
    axes = np.atleast_1d(axes)
    for ax, (label, y, scale) in zip(axes, panels):
        ax.plot(x, y, lw=1.6, color="#3b5bdb")
        ax.set_ylabel(f"{label}\n(log axis)" if scale == "log" else label)
        ax.set_yscale(scale)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("t")
    axes[-1].set_xlim(x[0], x[-1])
    fig.tight_layout(pad=0.4)
    return fig


# Axis names in matplotlib's mathtext: "ᾱ_t" would show its underscore.
BETA = r"$\beta_t$"
ALPHA_BAR = r"$\bar\alpha_t$"
LN_SNR = r"$\ln\,\mathrm{SNR}(t)$" + "\n(natural log)"


def schedule_plot(tables) -> CursorPlot:
    """β_t, ᾱ_t and ln SNR(t) of a :class:`~pipelines.schedules.ScheduleTables` over the paper's t = 0 … T
    (t = 0 is the data: ᾱ_0 = 1, and neither β_0 nor a finite log SNR exists there)."""
    paper = tables.by_paper_t
    log_snr = paper.log_snr.numpy().copy()
    log_snr[0] = np.nan  # not drawn: no finite log SNR at the data
    return cursor_plot(
        np.arange(tables.num_timesteps + 1),
        [
            (BETA, paper.betas.numpy(), "log"),
            (ALPHA_BAR, paper.alphas_cumprod.numpy(), "linear"),
            (LN_SNR, log_snr, "linear"),
        ],
    )


NOT_RED = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f")  # matplotlib's, less red


@drawn_under_lock
def figure_compare_alpha_bar(curves: dict[str, np.ndarray], t_marker: int | None = None) -> np.ndarray:
    """ᾱ_t of several schedules on one plot, as pixels."""
    return figure_to_array(compare_alpha_bar_figure(curves, t_marker))


def compare_alpha_bar_figure(curves: dict[str, np.ndarray], t_marker: int | None = None):
    """The figure behind :func:`figure_compare_alpha_bar`, its legend beside the axes (call with _MPL_LOCK held)."""
    fig, ax = pyplot().subplots(figsize=(7, 3.2), dpi=100)
    for k, (name, ab) in enumerate(curves.items()):
        color = NOT_RED[k % len(NOT_RED)]  # red is the slider's t alone (matplotlib's fourth colour was red too)
        ax.plot(index_to_paper_t(np.arange(len(ab))), ab, label=name, lw=1.6, color=color)
    if t_marker:
        ax.axvline(t_marker, color="#dc2828", lw=1, label=f"t = {t_marker}")
    ax.set_xlabel("t")
    ax.set_ylabel(ALPHA_BAR)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
    fig.tight_layout()
    return fig


@drawn_under_lock
def figure_elbo_terms(terms: dict) -> np.ndarray:
    """The bound's per-timestep terms L_{t−1} (bits/dim, log scale) and L_simple over t, as pixels."""
    return figure_to_array(elbo_terms_figure(terms))


def elbo_terms_figure(terms: dict):
    """The figure behind :func:`figure_elbo_terms`, its legend beside the axes (call with _MPL_LOCK held)."""
    t = index_to_paper_t(np.asarray(terms["timesteps"]))
    fig, (a1, a2) = pyplot().subplots(2, 1, figsize=(7.6, 5), dpi=100, sharex=True)
    vb = np.maximum(np.asarray(terms["vb"]), 1e-8)
    a1.plot(t[t > 1], vb[t > 1], "o-", ms=3, label=r"$L_{t-1}$ (KL terms)")
    if (t == 1).any():
        a1.plot(t[t == 1], vb[t == 1], "s", color="#dc2828", label=r"$L_0$ (decoder NLL)")
    a1.axhline(terms["prior"], color="gray", ls="--", lw=1, label=f"$L_T$ = {terms['prior']:.2e}")
    a1.set_yscale("log")
    a1.set_ylabel("bits/dim\n(log axis)")
    a1.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
    a1.grid(alpha=0.3)
    a2.plot(t, terms["mse"], "o-", ms=3, color="#2b8a3e", label=r"$L_\mathrm{simple}$ at t")
    a2.set_ylabel(r"$\|\epsilon - \hat\epsilon\|^2$" + "\n(log axis)")
    a2.set_yscale("log")
    a2.set_xlabel("t")
    a2.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False)
    a2.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0, 1, 0.95))  # room above the top tick for the page's image buttons
    return fig


COMPARISON_COLOURS = ("#1f77b4", "#e8590c")


@drawn_under_lock
def figure_elbo_comparison(series: list[tuple[str, dict]]) -> np.ndarray:
    """Two models' per-timestep terms on the same image, timesteps and noise, as pixels: L_{t−1} (and L_0) of each,
    their difference per t (the second's minus the first's), and L_simple of each."""
    return figure_to_array(elbo_comparison_figure(series))


def elbo_comparison_figure(series: list[tuple[str, dict]]):
    """The figure behind :func:`figure_elbo_comparison` (call with _MPL_LOCK held)."""
    fig, (a1, a2, a3) = pyplot().subplots(3, 1, figsize=(7.6, 6.6), dpi=100, sharex=True)
    for (name, terms), colour in zip(series, COMPARISON_COLOURS, strict=False):
        t = index_to_paper_t(np.asarray(terms["timesteps"]))
        vb = np.maximum(np.asarray(terms["vb"]), 1e-8)
        a1.plot(t[t > 1], vb[t > 1], "o-", ms=3, color=colour, label=f"{name}: $L_{{t-1}}$")
        if (t == 1).any():
            a1.plot(t[t == 1], vb[t == 1], "s", ms=6, color=colour, mfc="none", label=f"{name}: $L_0$")
        a3.plot(t, terms["mse"], "o-", ms=3, color=colour, label=name)
    (first_name, first), (second_name, second) = series[:2]
    t = index_to_paper_t(np.asarray(first["timesteps"]))
    difference = np.asarray(second["vb"]) - np.asarray(first["vb"])
    a2.axhline(0.0, color="gray", lw=1)
    a2.plot(t, difference, "o-", ms=3, color="#5f3dc4", label=f"{second_name} − {first_name}")
    a2.set_yscale("symlog", linthresh=1e-6)  # log-sized either side of 0: the terms span 10⁻⁶ to 1
    a1.set_yscale("log")
    a3.set_yscale("log")
    a1.set_ylabel("bits/dim\n(log axis)")
    a2.set_ylabel("difference, bits/dim\n(symmetric log axis)")
    a3.set_ylabel(r"$\|\epsilon - \hat\epsilon\|^2$" + "\n(log axis)")
    a3.set_xlabel("t (t = 1: the decoder term $L_0$)")
    for axes in (a1, a2, a3):
        axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, frameon=False, fontsize=8)
        axes.grid(alpha=0.3)
    fig.tight_layout(rect=(0, 0, 1, 0.96))  # room above the top tick for the page's image buttons
    return fig


def side_by_side(images: list[np.ndarray], pad: int = 4) -> np.ndarray:
    """Equal-height uint8 images (H, W) or (H, W, 3) joined left to right on white."""
    rgb = [np.repeat(im[..., None], 3, -1) if im.ndim == 2 else im for im in images]
    h = max(im.shape[0] for im in rgb)
    out = np.full((h, sum(im.shape[1] for im in rgb) + pad * (len(rgb) - 1), 3), 255, np.uint8)
    x = 0
    for im in rgb:
        out[: im.shape[0], x : x + im.shape[1]] = im
        x += im.shape[1] + pad
    return out


def upscale(img: np.ndarray, min_size: int = 128) -> np.ndarray:
    """Nearest-neighbour upscale of small images, for GIFs (browsers smooth them otherwise)."""
    k = max(1, math.ceil(min_size / max(img.shape[:2])))
    return img.repeat(k, 0).repeat(k, 1) if k > 1 else img


def write_gif(
    frames: list[np.ndarray], directory: str | None = None, duration_ms: int = 60, hold_ms: int = 1000
) -> str:
    """Write frames to a fresh, uniquely named GIF (never a fixed, shared path) and return its path. The last frame
    stays ``hold_ms``.

    The GIF is encoded in memory first and the file created with its content: PIL quantizes every frame before
    writing a byte, and a file left empty that long looks orphaned to the disk budget's janitor, which deleted it."""
    images = [Image.fromarray(upscale(f)) for f in frames]
    durations = [duration_ms] * (len(images) - 1) + [hold_ms]
    encoded = io.BytesIO()
    images[0].save(
        encoded, format="GIF", save_all=True, append_images=images[1:], duration=durations, loop=0, optimize=False
    )
    fd, path = tempfile.mkstemp(prefix="ddpm-", suffix=".gif", dir=directory)
    with os.fdopen(fd, "wb") as f:
        f.write(encoded.getbuffer())
    return path


@drawn_under_lock
def figure_nearest_distances(reference: dict, run: dict) -> np.ndarray:
    """Histograms of held-out real images' distances to their nearest training image, with this run's samples'
    distances marked on them, one panel per space ({"pixels": array, "features": array or None}), as pixels."""
    return figure_to_array(nearest_distances_figure(reference, run))


def nearest_distances_figure(reference: dict, run: dict):
    """The figure behind :func:`figure_nearest_distances` (call with _MPL_LOCK held): one panel per space, stacked,
    400 px wide with 11 pt text, so that a phone shows its text at 11 CSS px or more."""
    spaces = [s for s in ("pixels", "features") if reference.get(s) is not None]
    fig, axes = pyplot().subplots(len(spaces), 1, figsize=(4.0, 0.5 + 2.7 * len(spaces)), dpi=100, squeeze=False)
    for ax, space in zip(axes[:, 0], spaces):
        ref, mine = np.asarray(reference[space]), np.asarray(run[space])
        high = max(ref.max(), mine.max()) * 1.05
        ax.hist(ref, bins=30, range=(0, high), color="#9aa5b1", label="held-out real images")
        for k, d in enumerate(mine):
            ax.axvline(d, color="#d9480f", lw=1.5, alpha=0.8, label="this run's samples" if k == 0 else None)
        ax.set_xlabel(f"distance to the nearest training image\n(L2, in {space})", fontsize=11)
        ax.set_ylabel("held-out images", fontsize=11)
        ax.tick_params(labelsize=11)
        ax.set_xlim(0, high)
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="lower left", bbox_to_anchor=(0, 1.0), fontsize=11, frameon=False, borderaxespad=0.2)
    fig.tight_layout()
    return fig
