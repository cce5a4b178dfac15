"""The marginal density q(x_t) on a grid, for the forward view's heat map.

q(x_t) is the data's law pushed through x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε. For the Gaussian mixture that is its noised
mixture, exactly (:meth:`GaussianMixture.noised`). For a data set of points it is taken for the points smoothed by
a Gaussian kernel of bandwidth KDE_BANDWIDTH (a kernel density estimate, so that t = 0 shows a density, not spikes):
x₀ ~ (1/N)·Σ_i N(x⁽ⁱ⁾, h²·I) makes q(x_t) = (1/N)·Σ_i N(√ᾱ_t·x⁽ⁱ⁾, (ᾱ_t·h² + 1 − ᾱ_t)·I), a mixture too.
"""

from __future__ import annotations

import math

import torch

from pipelines.lab2d.exact_score import GaussianMixture

KDE_BANDWIDTH = 0.1  # in the data's standardised units


def kernel_density(points: torch.Tensor, bandwidth: float = KDE_BANDWIDTH) -> GaussianMixture:
    """The data (N, 2) smoothed by N(0, bandwidth²·I): an equal mixture of one Gaussian per point."""
    return GaussianMixture.equal_weights(points, bandwidth**2)


def density_on_grid(mixture: GaussianMixture, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """An isotropic 2D mixture's density at every (x, y) of a grid: (len(ys), len(xs)) float64, row j at ys[j].

    Each component factors over the two axes, N((x, y); μ, v·I) = N(x; μ₁, v)·N(y; μ₂, v), so the grid is one
    matrix product: density[j, i] = Σ_k w_k·N(ys[j]; μ_k2, v)·N(xs[i]; μ_k1, v).
    """
    v = mixture.variance
    along = lambda grid, centres: torch.exp(-0.5 * (grid.double()[:, None] - centres[None]).square() / v)
    ky = along(ys, mixture.means[:, 1]) * mixture.weights  # (len(ys), K)
    kx = along(xs, mixture.means[:, 0])  # (len(xs), K)
    return ky @ kx.T / (2 * math.pi * v)
