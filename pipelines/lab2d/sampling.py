"""Sampling the 2D lab's model with DDPM, DDIM(η) and the probability-flow ODE, every step recorded.

All three come from the sampler registry (:data:`pipelines.samplers.SAMPLERS`): DDPM and DDIM are our scheduler's
steps, the ODE is diffusers' Heun solver (Karras et al. 2022) built from the same scheduler config, so it runs on the
same ᾱ. Every run starts from the same x_T and reports x_t in the DDPM (variance-preserving) scale at the paper's t:
x_T first, then x_{t'} after each step, ending with the sample x₀ at t = 0.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from pipelines.lab2d.cpu import one_thread
from pipelines.lab2d.model import EpsilonMLP
from pipelines.samplers import SAMPLERS, Sampler, clip_schedule_tail, diffusers_run_scheduler
from pipelines.schedules import index_to_paper_t, paper_t_to_index
from pipelines.trajectory import frames_to_keep

if TYPE_CHECKING:  # the scheduler's module brings diffusers: imported where a scheduler is made, not to serve a page
    from pipelines.scheduler import DDPMExplorerScheduler

LAB_SAMPLERS: dict[str, Sampler] = {
    "ddpm": SAMPLERS["ddpm"],
    "ddim": SAMPLERS["ddim"],
    # on DDPM's evenly spaced timesteps, not the image tabs' Karras σ spacing: the three runs scrub side by side,
    # step for step, at the same t
    "ode": replace(SAMPLERS["heun"], options={}),
}
"""The lab's samplers by key: ancestral DDPM, DDIM with η, and the probability-flow ODE (Heun, deterministic)."""

ODE_NAME = "probability-flow ODE (Heun)"


def sampler_name(key: str, eta: float | None = None) -> str:
    """What users read for a lab sampler: the registry's name, DDIM's η, or the ODE's."""
    if key == "ode":
        return ODE_NAME
    if key == "ddim":
        return f"DDIM (η = {eta:g})"
    return LAB_SAMPLERS[key].name


@dataclass(frozen=True)
class ReversePoint:
    """Where a run is after a step: x_t at the paper's t (first x_T, at T or at the ODE's cut T'; 0: the sample)."""

    t: int
    x: torch.Tensor  # (N, 2), in the DDPM scale


def check_sampler(key: str) -> Sampler:
    if key not in LAB_SAMPLERS:
        raise ValueError(f"Unknown lab sampler {key!r}; choose one of {', '.join(LAB_SAMPLERS)}.")
    return LAB_SAMPLERS[key]


def max_steps(scheduler: DDPMExplorerScheduler) -> int:
    """The most steps N every lab sampler can take: T, or for the ODE on a schedule cut at its ``lambda_min_clipped``
    (cosine), the timesteps left (:func:`~pipelines.samplers.clip_schedule_tail`)."""
    return clip_schedule_tail(scheduler.config)["num_train_timesteps"]


@torch.inference_mode()
def iter_reverse(
    model: EpsilonMLP,
    scheduler: DDPMExplorerScheduler,
    key: str,
    num_steps: int,
    x_T: torch.Tensor,
    generator: torch.Generator | None = None,
    eta: float = 0.0,
) -> Iterator[ReversePoint]:
    """Denoise x_T (N, 2) in ``num_steps`` respaced steps with the lab sampler ``key``; yield x_T, then x after every
    step. ``generator`` draws DDPM's and DDIM's per-step noise; ``eta`` is DDIM's η (at η = 1 its σ is DDPM's √β̃;
    the ODE adds no noise). DDPM and DDIM start at t = T; the ODE at its schedule's first timestep (T, or where the
    cosine schedule is cut: x_T is read as x_{T'}, whose signal √ᾱ_{T'}·x₀ is under 1 % of the noise)."""
    sampler = check_sampler(key)
    alphas_cumprod = scheduler.alphas_cumprod  # float32, by table index
    if sampler.uses_our_scheduler:
        yield ReversePoint(scheduler.config.num_train_timesteps, x_T)
        run = scheduler.with_timesteps(num_inference_steps=num_steps)
        x = x_T
        for timestep in run.timesteps:
            # one step t → t' of our scheduler: DDPM's posterior mean and σ = √β̃, or DDIM's (eta)
            with one_thread():
                epsilon = model(x, timestep)
                x = run.step(epsilon, timestep, x, generator=generator, eta=eta if key == "ddim" else None).prev_sample
            yield ReversePoint(index_to_paper_t(int(run.previous_timestep(timestep))), x)
        return
    # the ODE: diffusers' Heun in its own scale x/√ᾱ (σ = √((1−ᾱ)/ᾱ)); two evaluations per step but the last
    run = diffusers_run_scheduler(sampler.scheduler(scheduler.config), num_steps)
    timesteps = run.timesteps
    yield ReversePoint(index_to_paper_t(round(float(timesteps[0]))), x_T)
    x = x_T * run.init_noise_sigma
    for i, timestep in enumerate(timesteps):
        with one_thread():
            epsilon = model(run.scale_model_input(x, timestep), timestep)  # the model sees the DDPM scale
            x = run.step(epsilon, timestep, x).prev_sample
        if run.state_in_first_order or i == len(timesteps) - 1:  # a whole step done (Heun's corrector, or the last)
            t_next = index_to_paper_t(round(float(timesteps[i + 1]))) if i < len(timesteps) - 1 else 0
            yield ReversePoint(t_next, x * (alphas_cumprod[paper_t_to_index(t_next)] ** 0.5 if t_next else 1.0))


@dataclass
class RecordedRun:
    """A run's frames at its recorded steps (evenly thinned, x_T and the sample always kept)."""

    key: str
    name: str
    t_values: list[int]  # the paper's t of each frame, from T down to 0
    frames: torch.Tensor  # (K, N, 2) float32
    num_evaluations: int
    wall_s: float

    @property
    def sample(self) -> torch.Tensor:
        return self.frames[-1]


def record_run(
    model: EpsilonMLP,
    scheduler: DDPMExplorerScheduler,
    key: str,
    num_steps: int,
    x_T: torch.Tensor,
    seed: int,
    eta: float = 0.0,
    max_frames: int | None = None,
) -> Iterator[RecordedRun | None]:
    """:func:`iter_reverse` with its frames kept (at most ``max_frames``); yields None after every step (a caller
    may stop there), then the :class:`RecordedRun`."""
    keep = set(frames_to_keep(num_steps + 1, max_frames))
    t_values, frames, wall_s = [], [], 0.0
    points = iter_reverse(model, scheduler, key, num_steps, x_T, torch.Generator().manual_seed(seed), eta)
    for i in range(num_steps + 1):
        start = time.perf_counter()
        point = next(points)
        wall_s += time.perf_counter() - start  # its own time, not the caller's between steps
        if i in keep:
            t_values.append(point.t)
            frames.append(point.x.float().clone())
        yield None
    sampler = LAB_SAMPLERS[key]
    yield RecordedRun(
        key,
        sampler_name(key, eta),
        t_values,
        torch.stack(frames),
        sampler.nfe_of(num_steps),
        wall_s,
    )
