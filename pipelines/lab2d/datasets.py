"""The 2D lab's data: distributions on the plane, each sampled from a seed and standardised the same way.

Every distribution is shifted and scaled (one scale for both axes, so shapes keep their aspect) to mean 0 and mean
per-axis variance 1, the scale of the noise ε ~ N(0, I) that the forward process mixes in. The standardisation is
a property of the distribution, not of a draw: it is computed once from a large reference draw (or exactly, for the
Gaussian mixture and for a sketch), so fresh data of another seed is standardised identically.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from pipelines.lab2d.exact_score import GaussianMixture

REFERENCE_POINTS = 2**17  # the draw that fixes a distribution's mean and scale
RING_MODES, RING_STD = 8, 0.1  # the mixture: 8 Gaussians of standard deviation 0.1 on a ring
RING = f"{RING_MODES} Gaussians (ring)"
MIN_SKETCH_PIXELS = 20


def two_moons(n: int, generator: torch.Generator, noise: float = 0.06) -> torch.Tensor:
    """Two interleaved half circles (as scikit-learn's ``make_moons``), each point jittered by N(0, noise²)."""
    upper = torch.rand(n, generator=generator) < 0.5
    angle = math.pi * torch.rand(n, generator=generator)
    x = torch.where(upper, torch.cos(angle), 1.0 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    return torch.stack([x, y], 1) + noise * torch.randn(n, 2, generator=generator)


def swiss_roll(n: int, generator: torch.Generator, noise: float = 0.3) -> torch.Tensor:
    """The spiral (s·cos s, s·sin s), s uniform in [1.5π, 4.5π] (scikit-learn's ``make_swiss_roll`` seen from
    above), jittered by N(0, noise²)."""
    s = 1.5 * math.pi * (1.0 + 2.0 * torch.rand(n, generator=generator))
    return torch.stack([s * torch.cos(s), s * torch.sin(s)], 1) + noise * torch.randn(n, 2, generator=generator)


def checkerboard(n: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform on the 8 dark squares of a 4 × 4 board over [−2, 2]² (as in FFJORD, Grathwohl et al. 2019)."""
    x = 4.0 * torch.rand(n, generator=generator) - 2.0
    row = torch.rand(n, generator=generator) - 2.0 * torch.randint(0, 2, (n,), generator=generator)
    return torch.stack([x, row + torch.floor(x) % 2], 1)


def ring_mixture(modes: int = RING_MODES, std: float = RING_STD) -> GaussianMixture:
    """Equal Gaussians of standard deviation ``std`` at ``modes`` evenly spaced angles on a circle of radius
    r = √(2(1 − std²)), so that each axis has variance r²/2 + std² = 1 exactly."""
    radius = math.sqrt(2.0 * (1.0 - std**2))
    angles = 2 * math.pi * torch.arange(modes, dtype=torch.float64) / modes
    return GaussianMixture.equal_weights(radius * torch.stack([angles.cos(), angles.sin()], 1), std**2)


@dataclass(frozen=True)
class Distribution2D:
    """A distribution on the plane: ``draw`` gives raw points, (n, 2), and x ↦ (x − mean)/scale standardises them.

    ``mixture`` is the standardised distribution in closed form, where it is a Gaussian mixture (its exact score).
    """

    name: str
    draw: Callable[[int, torch.Generator], torch.Tensor]
    mean: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    mixture: GaussianMixture | None = None
    nbytes: int = 0  # what ``draw`` holds (a drawing's cell centres); the built-in ones hold nothing to speak of

    def sample(self, n: int, seed: int) -> torch.Tensor:
        """n standardised points, (n, 2) float32, the same for the same seed."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}.")
        points = self.draw(n, torch.Generator().manual_seed(seed)).double()
        return ((points - torch.tensor(self.mean, dtype=torch.float64)) / self.scale).float()


def standardised(name: str, draw: Callable[[int, torch.Generator], torch.Tensor]) -> Distribution2D:
    """``draw`` with the mean and scale of a reference draw of REFERENCE_POINTS points (seed 0)."""
    reference = draw(REFERENCE_POINTS, torch.Generator().manual_seed(0)).double()
    mean = reference.mean(0)
    scale = (reference - mean).square().mean().sqrt()  # √(mean per-axis variance)
    return Distribution2D(name, draw, (float(mean[0]), float(mean[1])), float(scale))


def gaussian_ring() -> Distribution2D:
    mixture = ring_mixture()
    return Distribution2D(RING, lambda n, g: mixture.sample(n, g).double(), mixture=mixture)


DATASETS: dict[str, Callable[[], Distribution2D]] = {
    "two moons": lambda: standardised("two moons", two_moons),
    "swiss roll": lambda: standardised("swiss roll", swiss_roll),
    RING: gaussian_ring,
    "checkerboard": lambda: standardised("checkerboard", checkerboard),
}
"""The built-in distributions by the names users read; ``from_sketch`` makes one of a drawing."""


@lru_cache(maxsize=len(DATASETS))
def get_dataset(name: str) -> Distribution2D:
    """The built-in distribution ``name`` (its standardisation computed once); ValueError naming the choices."""
    if name not in DATASETS:
        raise ValueError(f"Unknown data set {name!r}; choose one of {', '.join(DATASETS)}.")
    return DATASETS[name]()


def rasterize_strokes(strokes: list, side: int, radius: float) -> np.ndarray:
    """The drawn cells of a ``side`` × ``side`` grid, (side, side) bool: every cell within ``radius`` cells of a
    stroke. ``strokes`` are polylines of (x, y) points in [0, 1] of the pad (x right, y down); a stroke of one point
    is a dot. Pure arithmetic on the points: no image is decoded."""
    offsets = np.array(
        [
            (dy, dx)
            for dy in range(-int(radius), int(radius) + 1)
            for dx in range(-int(radius), int(radius) + 1)
            if dx * dx + dy * dy <= radius * radius
        ]
    )
    mask = np.zeros((side, side), bool)
    for stroke in strokes:
        points = np.asarray(stroke, np.float64).reshape(-1, 2) * side  # (P, 2) in cells
        if len(points) > 1:  # samples every half cell along each segment
            lengths = np.hypot(*np.diff(points, axis=0).T)
            pieces = [
                a + np.linspace(0.0, 1.0, int(np.ceil(length * 2)) + 1)[:, None] * (b - a)
                for a, b, length in zip(points[:-1], points[1:], lengths)
            ]
            points = np.concatenate(pieces)
        cells = np.floor(points[:, ::-1]).astype(int).clip(0, side - 1)  # (row, col)
        hit = (cells[:, None, :] + offsets[None]).reshape(-1, 2)
        inside = ((hit >= 0) & (hit < side)).all(1)
        mask[hit[inside, 0], hit[inside, 1]] = True
    return mask


def from_sketch(mask: np.ndarray) -> Distribution2D:
    """Uniform on the drawn pixels of a (H, W) bool mask: a stroke pixel at random, then a uniform point inside it;
    y points up. Standardised exactly: each pixel's centre has the pixels' mean and variance, and the uniform offset
    inside a pixel adds 1/12 to each axis's variance."""
    rows, cols = np.nonzero(np.asarray(mask, bool))
    if len(rows) < MIN_SKETCH_PIXELS:
        raise ValueError(f"The sketch has {len(rows)} drawn pixels; draw something (at least {MIN_SKETCH_PIXELS}).")
    centres = torch.from_numpy(np.stack([cols + 0.5, -(rows + 0.5)], 1).astype(np.float64))  # (P, 2), y up

    def draw(n: int, generator: torch.Generator) -> torch.Tensor:
        pick = torch.randint(0, len(centres), (n,), generator=generator)
        return centres[pick] + torch.rand(n, 2, generator=generator, dtype=torch.float64) - 0.5

    mean = centres.mean(0)
    scale = math.sqrt(float((centres - mean).square().mean()) + 1.0 / 12.0)
    return Distribution2D("your drawing", draw, (float(mean[0]), float(mean[1])), scale, nbytes=centres.nbytes)
