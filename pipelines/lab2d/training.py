"""Training the 2D lab's ε-predictor on L_simple, one step at a time, so a caller can show progress and stop."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from pipelines.imports import imported
from pipelines.lab2d.cpu import one_thread
from pipelines.lab2d.model import EpsilonMLP
from pipelines.schedules import RANGED_SCHEDULES

if TYPE_CHECKING:  # the scheduler's module brings diffusers: imported where a scheduler is made, not to serve a page
    from pipelines.scheduler import DDPMExplorerScheduler

X0_RANGE = 4.0  # x̂₀ is clipped to [−4, 4] while sampling, in the data's standardised units


@dataclass(frozen=True)
class TrainingConfig:
    """What a training run does: ``steps`` Adam steps on batches of ``batch_size`` points, the learning rate warmed
    up linearly over the first 2 % of steps, then decayed to 0 along a cosine. ``seed`` draws the model's initial
    weights and every batch (points, t and ε)."""

    steps: int = 2000
    batch_size: int = 512
    lr: float = 5e-3
    seed: int = 0


@dataclass(frozen=True)
class TrainingStep:
    step: int  # 1 … steps
    loss: float  # this batch's L_simple


def lab_scheduler(schedule: str, num_timesteps: int) -> DDPMExplorerScheduler:
    """Our scheduler for 2D points: the image tabs' schedules at any T, their β range (1e-4 → 0.02 at T = 1000)
    scaled by 1000/T so that x_T is noise at any T (``rescale_betas``; cosine needs no range), and x̂₀ clipped to
    [−X0_RANGE, X0_RANGE], far outside every data set (standardised: a few units at most).

    The clip matters at the first steps of the cosine schedule, where ᾱ_T ≈ 2·10⁻⁹: x̂₀ = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t
    multiplies the network's error by 1/√ᾱ_t ≈ 2·10⁴, and unclipped DDIM and ODE samples land thousands of units
    away. The ODE's solver (diffusers' Heun) reads the same clip from this config and, for cosine, starts where
    λ = ½·log SNR ≥ −5.1 (``lambda_min_clipped``, as the image models' configs say; see
    :func:`pipelines.samplers.clip_schedule_tail`)."""
    return imported("pipelines.scheduler").DDPMExplorerScheduler(
        num_train_timesteps=num_timesteps,
        beta_schedule=schedule,
        rescale_betas=schedule in RANGED_SCHEDULES,
        clip_sample=True,
        clip_sample_range=X0_RANGE,
        lambda_min_clipped=-5.1 if schedule == "cosine" else -float("inf"),
    )


def new_model(seed: int) -> EpsilonMLP:
    """A freshly initialised :class:`EpsilonMLP`, the same for the same seed (torch's global generator is left as
    it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return EpsilonMLP()


def learning_rate(step: int, config: TrainingConfig) -> float:
    warmup = max(1, config.steps // 50)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, config.steps - warmup)))


def train_steps(
    model: EpsilonMLP, scheduler: DDPMExplorerScheduler, data: torch.Tensor, config: TrainingConfig
) -> Iterator[TrainingStep]:
    """Train ``model`` on ``data`` (N, 2) with L_simple = ‖ε − ε_θ(x_t, t)‖² (Ho et al. 2020, Algorithm 1): x₀ a
    batch of the data (drawn with replacement), t uniform over the T timesteps, x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε from the
    scheduler's closed form. Yields after every step; the model is left in eval mode when the loop ends or stops."""
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    T = scheduler.config.num_train_timesteps
    model.train()
    try:
        for step in range(config.steps):
            with one_thread():
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(step, config)
                x0 = data[torch.randint(0, len(data), (config.batch_size,), generator=generator)]
                timesteps = torch.randint(0, T, (config.batch_size,), generator=generator)
                noise = torch.randn(x0.shape, generator=generator)
                x_t = scheduler.add_noise(x0, noise, timesteps)
                loss = F.mse_loss(model(x_t, timesteps), noise)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            yield TrainingStep(step + 1, loss.item())
    finally:
        model.zero_grad(set_to_none=True)  # a trained model keeps no gradients (as many bytes as its weights)
        model.eval()


def fit(
    scheduler: DDPMExplorerScheduler, data: torch.Tensor, config: TrainingConfig
) -> tuple[EpsilonMLP, list[float]]:
    """A new model trained to the end of :func:`train_steps`, and its loss at every step."""
    model = new_model(config.seed)
    losses = [step.loss for step in train_steps(model, scheduler, data, config)]
    return model, losses
