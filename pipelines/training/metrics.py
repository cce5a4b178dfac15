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


def nearest_neighbours(queries: torch.Tensor, references: torch.Tensor, chunk: int = 256):
    """Each query's nearest reference in L2: (distances (Nq,), indices (Nq,)). Rows are flattened, so this serves
    pixels (N, C, H, W) and features (N, D) alike; the search runs in chunks of ``chunk`` queries, and the distance
    to the neighbour found is recomputed directly, so an exact copy is at distance 0."""
    q, r = queries.flatten(1).float(), references.flatten(1).float()
    r_sq = r.square().sum(1)
    indices = torch.cat(
        [(r_sq - 2 * q[i : i + chunk] @ r.T).argmin(1) for i in range(0, len(q), chunk)]  # ‖q‖² is the same per row
    )
    return (q - r[indices]).norm(dim=1), indices


def knn_radii(features: torch.Tensor, k: int = 3) -> torch.Tensor:
    """(N,) distance of each feature vector to its k-th nearest neighbour in the same set, itself not counted: the
    radius of its ball in the k-NN estimate of the manifold (Kynkäänniemi et al. 2019)."""
    if len(features) <= k:
        raise ValueError(f"k-NN radii with k = {k} need more than {k} points, got {len(features)}.")
    f = features.double()
    return torch.cdist(f, f).topk(k + 1, dim=1, largest=False).values[:, k]  # column 0 is the point itself


def precision_recall(real: torch.Tensor, generated: torch.Tensor, k: int = 3) -> dict:
    """Improved precision and recall (Kynkäänniemi et al. 2019): precision, the share of generated points inside the
    real manifold (within the k-NN radius of some real point); recall, the share of real points inside the generated
    manifold. Precision sees fidelity, recall diversity (missing modes)."""
    real, generated = real.double(), generated.double()
    distances = torch.cdist(generated, real)  # (N_gen, N_real)
    precision = (distances <= knn_radii(real, k)[None, :]).any(1).double().mean().item()
    recall = (distances <= knn_radii(generated, k)[:, None]).any(0).double().mean().item()
    return {"precision": precision, "recall": recall}


def grey_histogram(images: torch.Tensor, bins: int = 64) -> torch.Tensor:
    """(bins,) share of the pixels of images in [−1, 1] in each of ``bins`` equal grey-level bins; sums to 1."""
    counts = torch.histc(images.double().clamp(-1, 1), bins=bins, min=-1.0, max=1.0)
    return counts / counts.sum()


def histogram_intersection(p: torch.Tensor, q: torch.Tensor) -> float:
    """Σ min(pᵢ, qᵢ) of two normalized histograms (Swain & Ballard 1991): 1 when they are equal, 0 when disjoint."""
    return torch.minimum(p, q).sum().item()
