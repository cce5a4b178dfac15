"""Score fields: the model's s_θ(x, t) = −ε̂(x, t)/√(1−ᾱ_t) and, for the Gaussian mixture, the exact ∇ log q_t(x), on
a grid (for arrows) and at points (for their mean error)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from pipelines.lab2d.cpu import one_thread
from pipelines.lab2d.exact_score import GaussianMixture, model_score
from pipelines.lab2d.model import EpsilonMLP
from pipelines.schedules import paper_t_to_index

if TYPE_CHECKING:  # the scheduler's module brings diffusers: imported where a scheduler is made, not to serve a page
    from pipelines.scheduler import DDPMExplorerScheduler


def grid(extent: float, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``size`` evenly spaced values over [−extent, extent] on each axis, and the (size², 2) points of the grid,
    row by row (y from low to high, x fastest)."""
    values = torch.linspace(-extent, extent, size)
    y, x = torch.meshgrid(values, values, indexing="ij")
    return values, values, torch.stack([x.reshape(-1), y.reshape(-1)], 1)


def alpha_bar(scheduler: DDPMExplorerScheduler, t: int) -> float:
    """ᾱ_t at the paper's t."""
    return float(scheduler.tables.by_paper_t.alphas_cumprod[t])


@torch.inference_mode()
def learned_score(model: EpsilonMLP, scheduler: DDPMExplorerScheduler, x: torch.Tensor, t: int) -> torch.Tensor:
    """s_θ(x, t) at the paper's t ≥ 1 for (N, 2) points, float32."""
    with one_thread():
        return model_score(model(x, paper_t_to_index(t)), alpha_bar(scheduler, t))


def exact_score(mixture: GaussianMixture, scheduler: DDPMExplorerScheduler, x: torch.Tensor, t: int) -> torch.Tensor:
    """∇ log q_t(x) of the mixture's law at the paper's t ≥ 1, float32."""
    return mixture.noised(alpha_bar(scheduler, t)).score(x).float()


@dataclass(frozen=True)
class ScoreError:
    """How far s_θ is from the exact score at one t, over points x_t: mean ‖s_θ − ∇ log q_t‖ and, for scale, the
    exact score's mean norm."""

    t: int
    mean_error: float
    mean_norm: float

    @property
    def relative(self) -> float:
        return self.mean_error / self.mean_norm


def score_error(
    model: EpsilonMLP, scheduler: DDPMExplorerScheduler, mixture: GaussianMixture, x_t: torch.Tensor, t: int
) -> ScoreError:
    """The learned score's mean error at (N, 2) points x_t, ideally drawn from q(x_t)."""
    exact = exact_score(mixture, scheduler, x_t, t)
    error = (learned_score(model, scheduler, x_t, t) - exact).norm(dim=1)
    return ScoreError(t, float(error.mean()), float(exact.norm(dim=1).mean()))


@dataclass
class ScoreFields:
    """Score arrows on a grid at several t, for the page: the learned field and, for the mixture, the exact one and
    the learned field's error at the forward view's points. At t = 0 there is no score to learn (x₀ is the data):
    both fields are zero there and no error is measured."""

    t_values: list[int]
    learned: torch.Tensor | None  # (K, G², 2) float32, once there is a model
    exact: torch.Tensor | None  # (K, G², 2) float32, for a Gaussian mixture
    errors: list[ScoreError | None] | None  # per t, for a model of a Gaussian mixture


def score_fields(
    model: EpsilonMLP | None,
    scheduler: DDPMExplorerScheduler,
    mixture: GaussianMixture | None,
    grid_points: torch.Tensor,
    t_values: list[int],
    x0: torch.Tensor,
    noise: torch.Tensor,
) -> ScoreFields:
    """s_θ (when there is a model) and ∇ log q_t (for a mixture) at ``grid_points`` (G², 2) for every t in
    ``t_values``, and with both, s_θ's mean error at the points x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε of (N, 2) ``x0`` and
    ``noise`` (a draw of q(x_t))."""
    zeros = torch.zeros_like(grid_points)
    learned, exact, errors = [], [], []
    for t in t_values:
        if model is not None:
            learned.append(zeros if t == 0 else learned_score(model, scheduler, grid_points, t))
        if mixture is not None:
            exact.append(zeros if t == 0 else exact_score(mixture, scheduler, grid_points, t))
        if model is not None and mixture is not None:
            ab = alpha_bar(scheduler, max(t, 1))
            x_t = ab**0.5 * x0 + (1 - ab) ** 0.5 * noise
            errors.append(None if t == 0 else score_error(model, scheduler, mixture, x_t, t))
    stacked = lambda fields: torch.stack(fields) if fields else None
    return ScoreFields(list(t_values), stacked(learned), stacked(exact), errors or None)
