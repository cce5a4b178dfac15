"""Distances between two point clouds in the plane: how far a model's samples are from the data.

- **MMD** (Gretton et al. 2012) with the kernel k(x, y) = (1/|S|)·Σ_{s ∈ S} exp(−‖x − y‖²/(2s²)), a mixture of RBF
  kernels at the bandwidths S = MMD_BANDWIDTHS (the data's standard deviation is 1): from the modes' scale (0.1)
  to the whole cloud's (1). The biased estimate, √(mean k(x, x') + mean k(y, y') − 2·mean k(x, y)), is 0 for a set
  against itself.
- **Sliced Wasserstein** (Rabin et al. 2011): the mean over directions θ of the 1D Wasserstein-2 distance between
  the projections ⟨x, θ⟩, each computed exactly from sorted quantiles, then its square root: SW₂ = √(mean_θ W₂²).
  SLICES directions, evenly spaced over half a turn (deterministic: no random projections).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

MMD_BANDWIDTHS = (0.1, 0.2, 0.5, 1.0)
SLICES = 128
MAX_LEVELS = 2**14  # quantile levels per projection


def mean_kernel(a: torch.Tensor, b: torch.Tensor, bandwidths=MMD_BANDWIDTHS) -> float:
    """The mean of k(a_i, b_j) over every pair of (N, 2) and (M, 2) points (kernels in float32, sums in float64)."""
    squared = torch.cdist(a.float(), b.float()).square_()
    total = sum(torch.exp(squared * (-0.5 / s**2)).sum(dtype=torch.float64) for s in bandwidths)
    return float(total) / (len(bandwidths) * squared.numel())


def mmd_to(reference: torch.Tensor, bandwidths=MMD_BANDWIDTHS) -> Callable[[torch.Tensor], float]:
    """x ↦ MMD(x, reference), with the reference's own term computed once (several sets measured against one)."""
    reference_term = mean_kernel(reference, reference, bandwidths)

    def distance(x: torch.Tensor) -> float:
        squared = mean_kernel(x, x, bandwidths) + reference_term - 2 * mean_kernel(x, reference, bandwidths)
        return math.sqrt(max(squared, 0.0))

    return distance


def mmd(x: torch.Tensor, y: torch.Tensor, bandwidths=MMD_BANDWIDTHS) -> float:
    """MMD between (N, 2) and (M, 2) clouds under the mixture of RBF kernels (the biased estimate)."""
    return mmd_to(y, bandwidths)(x)


def quantiles(values: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """The empirical quantile function of each column of (N, D) values at ``levels`` in (0, 1): (L, D), the sorted
    values read at position level·N (each point holds 1/N of the mass)."""
    ordered = values.sort(dim=0).values
    index = (levels * len(values)).floor().long().clamp(max=len(values) - 1)
    return ordered[index]


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, slices: int = SLICES) -> float:
    """SW₂ between (N, 2) and (M, 2) clouds: W₂ of each 1D projection from the two quantile functions, read at the
    midpoints of a common grid of levels (exact when both sizes divide it: lcm(N, M) levels, up to MAX_LEVELS)."""
    angles = math.pi * torch.arange(slices, dtype=torch.float64) / slices
    directions = torch.stack([angles.cos(), angles.sin()])  # (2, slices)
    px, py = x.double() @ directions, y.double() @ directions  # (N, slices), (M, slices)
    steps = min(math.lcm(len(x), len(y)), MAX_LEVELS)
    levels = (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
    w2_squared = (quantiles(px, levels) - quantiles(py, levels)).square().mean(0)  # (slices,)
    return math.sqrt(float(w2_squared.mean()))
