"""The forward process q: its closed form (:func:`q_sample`), its Markov step, and, for one fixed image and one fixed
noise draw, any frame in O(1), for a slider (:class:`ForwardTrajectory`).

In :class:`StepValues` and :class:`ForwardTrajectory`, t counts noising steps: frame 0 is x₀ itself and frame t
(1 … T) is √ᾱ·x₀ + √(1−ᾱ)·ε with ᾱ at table index t − 1. :func:`q_step` takes a table index (see
:mod:`pipelines.schedules` for the index convention).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from dataclasses import dataclass

import torch

from pipelines.imports import imported
from pipelines.schedules import ScheduleTables


@dataclass(frozen=True)
class StepValues:
    """The schedule's numbers after t noising steps (t = 0 is the clean image: ᾱ = 1, SNR = ∞, log SNR = ∞)."""

    t: int
    beta: float
    alpha_bar: float
    sqrt_alpha_bar: float
    sqrt_one_minus_alpha_bar: float
    snr: float
    log_snr: float


def step_values(tables: ScheduleTables, t: int) -> StepValues:
    """The schedule's numbers at the paper's t ∈ [0, T] (t = 0 is the data)."""
    if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= tables.num_timesteps:
        raise ValueError(f"t must be an integer in [0, {tables.num_timesteps}], got {t!r}.")
    if t == 0:
        return StepValues(0, 0.0, 1.0, 1.0, 0.0, float("inf"), float("inf"))
    paper = tables.by_paper_t
    return StepValues(
        t=t,
        beta=float(paper.betas[t]),
        alpha_bar=float(paper.alphas_cumprod[t]),
        sqrt_alpha_bar=float(paper.sqrt_alphas_cumprod[t]),
        sqrt_one_minus_alpha_bar=float(paper.sqrt_one_minus_alphas_cumprod[t]),
        snr=float(paper.snr[t]),
        log_snr=float(paper.log_snr[t]),
    )


def q_sample(x0: torch.Tensor, noise: torch.Tensor, sqrt_alpha_bar, sqrt_one_minus_alpha_bar) -> torch.Tensor:
    """The closed form of q(x_t | x₀): x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε (Ho et al. eq. 4).

    ``sqrt_alpha_bar`` (√ᾱ_t) and ``sqrt_one_minus_alpha_bar`` (√(1−ᾱ_t)) are python floats or tensors that
    broadcast over x0, e.g. ``extract(table, t, x0.shape)`` for a batch of timesteps. The result has x0's dtype when
    the coefficients are floats or tensors of that dtype (float32 or float64 alike).
    """
    return sqrt_alpha_bar * x0 + sqrt_one_minus_alpha_bar * noise


def standardized_residual(x_t: torch.Tensor, x0: torch.Tensor, values: StepValues) -> torch.Tensor:
    """(x_t − √ᾱ_t·x₀)/√(1−ᾱ_t): the noise that x_t holds beside x₀, in units of its standard deviation.

    For a draw of q(x_t | x₀) it is N(0, I); for :meth:`ForwardTrajectory.frame` it is that trajectory's ε.

    Raises:
        ValueError: at t = 0, where x_t = x₀ holds no noise to standardize.
    """
    if values.t == 0:
        raise ValueError("The standardized residual needs t ≥ 1: at t = 0, x_t is x₀ and holds no noise.")
    return (x_t - values.sqrt_alpha_bar * x0) / values.sqrt_one_minus_alpha_bar


def q_step(tables: ScheduleTables, x_prev: torch.Tensor, t: int, noise: torch.Tensor) -> torch.Tensor:
    """One Markov step of q(x_t | x_{t−1}) = N(√(1−β_t)·x_{t−1}, β_t·I) (Ho et al. eq. 2), t a table index."""
    if not 0 <= t < tables.num_timesteps:
        raise ValueError(f"t must lie in [0, {tables.num_timesteps - 1}], got {t}.")
    beta_t = float(tables.betas[t])
    return (1.0 - beta_t) ** 0.5 * x_prev + beta_t**0.5 * noise


def iter_q_chain(
    tables: ScheduleTables, x0: torch.Tensor, num_steps: int, generator: torch.Generator | None = None
) -> Generator[torch.Tensor, None, torch.Tensor]:
    """x after each of ``num_steps`` Markov steps :func:`q_step` from x₀, with fresh noise from ``generator`` at each
    step: a caller may stop between steps."""
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or not 0 <= num_steps <= tables.num_timesteps:
        raise ValueError(f"num_steps must be an integer in [0, {tables.num_timesteps}], got {num_steps!r}.")
    randn_tensor = imported("diffusers.utils.torch_utils").randn_tensor  # diffusers on first use

    x = x0
    for t in range(num_steps):
        x = q_step(tables, x, t, randn_tensor(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype))
        yield x
    return x


def q_chain(
    tables: ScheduleTables,
    x0: torch.Tensor,
    num_steps: int,
    generator: torch.Generator | None = None,
    return_all: bool = False,
) -> torch.Tensor:
    """Iterate :func:`q_step` ``num_steps`` times from x₀, with fresh noise from ``generator`` at each step.

    Returns x after ``num_steps`` steps (x₀ for 0), or with ``return_all`` all of them, (num_steps + 1, *x0.shape).
    Same distribution as the closed form, different pixels.
    """
    steps = iter_q_chain(tables, x0, num_steps, generator)
    if return_all:
        return torch.stack([x0, *steps])
    last = deque(steps, maxlen=1)  # keeps only the latest x
    return last[0] if last else x0


class ForwardTrajectory:
    """x₀ and ε fixed once, so that scrubbing t shows one coherent noising with no flicker of new noise.

    Args:
        x0: the clean image in [−1, 1], (C, H, W) or (B, C, H, W).
        tables: the schedule.
        generator: draws ε once, with x0's shape.
        noise: a given ε instead (the same x₀ and ε under another schedule, say).
    """

    def __init__(
        self,
        x0: torch.Tensor,
        tables: ScheduleTables,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ):
        randn_tensor = imported("diffusers.utils.torch_utils").randn_tensor  # diffusers on first use

        self.x0 = x0.float()
        self.tables = tables
        self.noise = randn_tensor(self.x0.shape, generator=generator, dtype=self.x0.dtype) if noise is None else noise
        # python floats: one frame costs two scalar-tensor multiplies, no table indexing
        self._sqrt_ab = tables.by_paper_t.sqrt_alphas_cumprod.tolist()  # by the paper's t: x_0 = x₀
        self._sqrt_1mab = tables.by_paper_t.sqrt_one_minus_alphas_cumprod.tolist()

    @property
    def num_timesteps(self) -> int:
        return self.tables.num_timesteps

    def _check_t(self, t) -> int:
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= self.num_timesteps:
            raise ValueError(f"t must be an integer in [0, {self.num_timesteps}], got {t!r}.")
        return t

    def values(self, t: int) -> StepValues:
        return step_values(self.tables, self._check_t(t))

    def signal_and_noise(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The two parts of x_t: √ᾱ_t·x₀ and √(1−ᾱ_t)·ε."""
        t = self._check_t(t)
        return self._sqrt_ab[t] * self.x0, self._sqrt_1mab[t] * self.noise

    def frame(self, t: int) -> torch.Tensor:
        """x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, in closed form (Ho et al. eq. 4; see :func:`q_sample`)."""
        t = self._check_t(t)
        return q_sample(self.x0, self.noise, self._sqrt_ab[t], self._sqrt_1mab[t])

    def markov_chain(self, t: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """x_t by iterating q(x_s | x_{s−1}) = N(√(1−β_s)·x_{s−1}, β_s·I) t times, with fresh noise at each step.

        Same distribution as :meth:`frame`, different pixels: its noise is not ε.
        """
        return q_chain(self.tables, self.x0, self._check_t(t), generator)

    def iter_markov_chain(
        self, t: int, generator: torch.Generator | None = None
    ) -> Generator[torch.Tensor, None, torch.Tensor]:
        """:meth:`markov_chain` a step at a time: yields x_1, x_2, … x_t (a caller may stop between steps), returns
        x_t."""
        return iter_q_chain(self.tables, self.x0, self._check_t(t), generator)
