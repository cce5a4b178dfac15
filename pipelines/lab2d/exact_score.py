"""An isotropic Gaussian mixture in closed form, noised to any t: its density and its score, exactly.

If x₀ ~ Σ_k w_k·N(μ_k, σ²·I) and x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, then x_t ~ Σ_k w_k·N(√ᾱ_t·μ_k, (ᾱ_t·σ² + 1−ᾱ_t)·I):
the same mixture with its means shrunk and its variance grown. Its score is

    ∇ log q_t(x) = Σ_k r_k(x)·(√ᾱ_t·μ_k − x) / s_t²,   s_t² = ᾱ_t·σ² + 1 − ᾱ_t,

with r_k(x) the posterior probability of component k given x (the softmax of the components' log densities).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GaussianMixture:
    """Σ_k w_k·N(μ_k, variance·I) in d dimensions: means (K, d), weights (K,) summing to 1, one shared variance."""

    means: torch.Tensor
    variance: float
    weights: torch.Tensor

    @classmethod
    def equal_weights(cls, means: torch.Tensor, variance: float) -> GaussianMixture:
        means = means.double()
        return cls(means, float(variance), torch.full((len(means),), 1.0 / len(means), dtype=torch.float64))

    def noised(self, alpha_bar: float) -> GaussianMixture:
        """The law of x_t = √ᾱ·x₀ + √(1−ᾱ)·ε for x₀ from this mixture: means √ᾱ·μ_k, variance ᾱ·σ² + 1 − ᾱ."""
        if not 0.0 < alpha_bar <= 1.0:
            raise ValueError(f"alpha_bar must be in (0, 1], got {alpha_bar!r}.")
        return GaussianMixture(alpha_bar**0.5 * self.means, alpha_bar * self.variance + 1.0 - alpha_bar, self.weights)

    def component_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """log w_k + log N(x; μ_k, variance·I) for every point and component: (N, d) -> (N, K), float64."""
        d = self.means.shape[1]
        squared = torch.cdist(x.double(), self.means).square()
        return self.weights.log() - 0.5 * squared / self.variance - 0.5 * d * math.log(2 * math.pi * self.variance)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log q(x), (N, d) -> (N,), float64."""
        return torch.logsumexp(self.component_log_probs(x), dim=1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """∇ log q(x) = Σ_k r_k(x)·(μ_k − x)/variance, (N, d) -> (N, d), float64."""
        responsibilities = torch.softmax(self.component_log_probs(x), dim=1)  # (N, K)
        return (responsibilities @ self.means - x.double()) / self.variance

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n draws, (n, d) float32: a component by its weight, then its Gaussian."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        return (self.means[k] + self.variance**0.5 * noise).float()


def model_score(eps_hat: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """The score an ε-predictor implies, s_θ(x, t) = −ε̂(x, t)/√(1−ᾱ_t) (Tweedie: E[ε | x_t] = −√(1−ᾱ_t)·∇ log q_t)."""
    if not 0.0 <= alpha_bar < 1.0:
        raise ValueError(f"The score needs noise: alpha_bar must be in [0, 1), got {alpha_bar!r}.")
    return -eps_hat / (1.0 - alpha_bar) ** 0.5
