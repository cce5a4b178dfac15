"""One lab experiment: a data set under a schedule, and what is drawn from which seed.

From one seed s: the data (s), the forward view's fixed ε per point (s + 1), the reverse runs' shared x_T (s + 2),
their per-step noise (s + 3), the model's initial weights and its batches (s + 4), and the fresh data the samples
are measured against (s + FRESH_DATA), so every number is reproducible from the seed alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import torch

from pipelines.lab2d.datasets import Distribution2D
from pipelines.lab2d.training import lab_scheduler

if TYPE_CHECKING:  # the scheduler's module brings diffusers: imported where a scheduler is made, not to serve a page
    from pipelines.scheduler import DDPMExplorerScheduler

FRESH_DATA = 1_000_003  # far from the other offsets: fresh data shares no stream with the training data


def standard_normal(n: int, seed: int) -> torch.Tensor:
    """n points of N(0, I) in the plane, (n, 2) float32."""
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


@dataclass(frozen=True)
class Experiment:
    """A data set of ``num_points`` from ``distribution`` and a forward process (``schedule``, T), from one seed."""

    distribution: Distribution2D
    num_points: int
    seed: int
    schedule: str
    num_timesteps: int

    @cached_property
    def scheduler(self) -> DDPMExplorerScheduler:
        return lab_scheduler(self.schedule, self.num_timesteps)

    @cached_property
    def data(self) -> torch.Tensor:
        """The training data x₀, (N, 2)."""
        return self.distribution.sample(self.num_points, self.seed)

    @cached_property
    def noise(self) -> torch.Tensor:
        """The forward view's ε, one per point and fixed, so that x_t moves smoothly with t."""
        return standard_normal(self.num_points, self.seed + 1)

    @cached_property
    def x_T(self) -> torch.Tensor:
        """Where every reverse run starts, (N, 2) ~ N(0, I)."""
        return standard_normal(self.num_points, self.seed + 2)

    @property
    def sampling_seed(self) -> int:
        return self.seed + 3

    @property
    def training_seed(self) -> int:
        return self.seed + 4

    @cached_property
    def fresh_data(self) -> torch.Tensor:
        """Another N points of the distribution, never trained on: what samples are measured against."""
        return self.distribution.sample(self.num_points, self.seed + FRESH_DATA)
