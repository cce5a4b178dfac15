"""Sample-quality metrics in a classifier's feature space."""

from __future__ import annotations

import torch


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and covariance (D, D) of (N, D) features, in float64."""
    f = features.double()
    return f.mean(0), torch.cov(f.T)


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^{1/2}) (Heusel et al. 2017), with Tr (Σ₁Σ₂)^{1/2} computed as the sum of
    √eigenvalues of the symmetric PSD matrix Σ₁^{1/2} Σ₂ Σ₁^{1/2}, which has the same spectrum."""
    eigval, eigvec = torch.linalg.eigh(sigma1)
    sqrt1 = eigvec @ torch.diag(eigval.clamp(min=0).sqrt()) @ eigvec.T
    middle = sqrt1 @ sigma2 @ sqrt1
    tr_covmean = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return ((mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * tr_covmean).item()


def frechet_distance_between(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    return frechet_distance(*gaussian_stats(features_a), *gaussian_stats(features_b))
