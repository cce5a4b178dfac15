"""Compact storage of a reverse trajectory: x_t, x̂₀ and ε̂ at every recorded step, as uint8.

Images in [−1, 1] map to 0 … 255; noise (ε, ε̂ ~ N(0, I)) maps ±3σ to 0 … 255.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from pipelines.schedules import index_to_paper_t

NOISE_RANGE = 3.0


def to_uint8(x: torch.Tensor, value_range: float = 1.0) -> torch.Tensor:
    """Map [−value_range, value_range] to uint8 0 … 255, rounding and clipping. Any shape."""
    return ((x / value_range + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def from_uint8(x: torch.Tensor, value_range: float = 1.0) -> torch.Tensor:
    """The inverse of :func:`to_uint8`, up to its rounding (half a level, 1/255 of the range)."""
    return (x.float() / 127.5 - 1.0) * value_range


def evenly_spread(last: int, count: int) -> list[int]:
    """At most ``count`` distinct integers evenly spread over 0 … ``last``, both ends included, in increasing order
    (every integer when there are no more than ``count``)."""
    return sorted(set(np.linspace(0, last, min(count, last + 1)).round().astype(int).tolist()))


def frames_to_keep(num_steps: int, max_frames: int | None) -> list[int]:
    """Indices of the steps to record: all of them, or ``max_frames`` evenly spread, always with the first and last."""
    if max_frames is None or num_steps <= max_frames:
        return list(range(num_steps))
    if max_frames < 2:
        raise ValueError(f"max_frames must be at least 2, got {max_frames}.")
    return evenly_spread(num_steps - 1, max_frames)


def frames_within(budget_bytes: int, frame_shape: tuple[int, ...]) -> int:
    """How many recorded steps fit in ``budget_bytes``: each keeps x_t, x̂₀ and ε̂ of ``frame_shape`` (B, C, H, W)
    as uint8. At least 2 (the first and the last step)."""
    return max(2, budget_bytes // (3 * int(np.prod(frame_shape))))


def log_snr(alpha_bar: float) -> float:
    """log SNR = log(ᾱ/(1−ᾱ)) of x_t = √ᾱ·x₀ + √(1−ᾱ)·ε; ±inf at ᾱ = 1 or 0."""
    if alpha_bar >= 1.0:
        return math.inf
    if alpha_bar <= 0.0:
        return -math.inf
    return math.log(alpha_bar) - math.log1p(-alpha_bar)


@dataclass(frozen=True)
class RunSchedule:
    """The model evaluations a run makes, known before it starts: at evaluation k the UNet sees x_t with diffusers'
    timestep ``timesteps[k]`` (the paper's t − 1) and noise level ᾱ = ``alphas_cumprod[k]``; the step goes to
    ``prev_timesteps[k]`` (the next evaluation's timestep, −1 after the last: the data).

    A second-order solver (Heun) evaluates twice per step, so its timesteps repeat.
    """

    timesteps: list[int]
    prev_timesteps: list[int]
    alphas_cumprod: list[float]

    def __len__(self) -> int:
        return len(self.timesteps)

    @classmethod
    def of(cls, scheduler) -> RunSchedule:
        """Read a scheduler whose timesteps are set. The noise level is the σ the solver itself uses where it has
        one (ᾱ = 1/(1+σ²): Euler-type solvers and DPM-Solver keep σ = √((1−ᾱ)/ᾱ) per evaluation), else ᾱ at the
        timestep (ours)."""
        timesteps = [round(float(t)) for t in scheduler.timesteps]
        sigmas = getattr(scheduler, "sigmas", None)
        if sigmas is not None and len(sigmas) == len(timesteps) + 1:
            alphas_cumprod = [1.0 / (1.0 + float(s) ** 2) for s in sigmas[:-1]]
        else:
            alphas_cumprod = [float(scheduler.alphas_cumprod[t]) for t in timesteps]
        return cls(timesteps, [*timesteps[1:], -1], alphas_cumprod)


@dataclass
class Trajectory:
    """A recorded reverse run. Frame k holds step ``step_indices[k]`` of ``num_steps``, x_t → x_{t'}.

    Timesteps are diffusers' table indices, what the UNet is given: a step at ``timesteps[k]`` = i denoises x_t with
    the paper's t = i + 1 (t = 0 is the data, t = T pure noise), towards t' = ``prev_timesteps[k]`` + 1 (0 after the
    last step). :attr:`t_values` gives the paper's t, which is what users read.

    Shapes: ``samples``, ``pred_original``, ``pred_epsilon``: (K, B, C, H, W) uint8; ``final``: (B, C, H, W) float.
    ``samples[k]`` is x_t at the *input* of that step, in the DDPM scale whatever the solver; ``alphas_cumprod[k]``
    is its noise level ᾱ, so that runs of different solvers and step counts align by log SNR.
    """

    timesteps: list[int]
    prev_timesteps: list[int]
    step_indices: list[int]
    num_steps: int
    alphas_cumprod: list[float]
    samples: torch.Tensor
    pred_original: torch.Tensor
    pred_epsilon: torch.Tensor
    final: torch.Tensor | None = None
    # a learned Σ_θ's v per pixel (0 at β̃, 1 at β; 0 … 255 for [0, 1]), (K, B, C, H, W) uint8; None for a fixed Σ
    variance_fraction: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.timesteps)

    @property
    def nbytes(self) -> int:
        buffers = (self.samples, self.pred_original, self.pred_epsilon, self.variance_fraction)
        return sum(t.numel() * t.element_size() for t in buffers if t is not None)

    @property
    def t_values(self) -> list[int]:
        """The paper's t of each recorded x_t (from diffusers' timestep)."""
        return [index_to_paper_t(i) for i in self.timesteps]

    @property
    def log_snrs(self) -> list[float]:
        """log SNR = log(ᾱ/(1−ᾱ)) of each recorded x_t."""
        return [log_snr(a) for a in self.alphas_cumprod]

    @property
    def nfe_so_far(self) -> list[int]:
        """Model evaluations made up to and including each recorded step."""
        return [k + 1 for k in self.step_indices]

    @property
    def t_prev_values(self) -> list[int]:
        """The paper's t' each recorded step goes to (0: the sample x₀)."""
        return [index_to_paper_t(i) for i in self.prev_timesteps]


class TrajectoryRecorder:
    """Preallocates the uint8 frame buffers of a run and fills them step by step, keeping at most ``max_frames``."""

    def __init__(self, schedule: RunSchedule, shape: tuple[int, ...], max_frames: int | None = None):
        self.keep = frames_to_keep(len(schedule), max_frames)
        self._slot = {step: slot for slot, step in enumerate(self.keep)}
        self._filled = 0  # slots 0 … _filled − 1 hold recorded steps
        n = len(self.keep)
        self.trajectory = Trajectory(
            timesteps=[schedule.timesteps[i] for i in self.keep],
            prev_timesteps=[schedule.prev_timesteps[i] for i in self.keep],
            step_indices=list(self.keep),
            num_steps=len(schedule),
            alphas_cumprod=[schedule.alphas_cumprod[i] for i in self.keep],
            samples=torch.empty((n, *shape), dtype=torch.uint8),
            pred_original=torch.empty((n, *shape), dtype=torch.uint8),
            pred_epsilon=torch.empty((n, *shape), dtype=torch.uint8),
        )

    def recorded(self) -> Trajectory:
        """The steps recorded so far, as a Trajectory of views into the buffers (no copy; ``final`` is None)."""
        traj, n = self.trajectory, self._filled
        return Trajectory(
            timesteps=traj.timesteps[:n],
            prev_timesteps=traj.prev_timesteps[:n],
            step_indices=traj.step_indices[:n],
            num_steps=traj.num_steps,
            alphas_cumprod=traj.alphas_cumprod[:n],
            samples=traj.samples[:n],
            pred_original=traj.pred_original[:n],
            pred_epsilon=traj.pred_epsilon[:n],
            variance_fraction=None if traj.variance_fraction is None else traj.variance_fraction[:n],
        )

    def record(self, step_index: int, sample, pred_original, pred_epsilon, variance_fraction=None) -> None:
        slot = self._slot.get(step_index)
        if slot is None:
            return
        self._filled = slot + 1
        traj = self.trajectory
        traj.samples[slot].copy_(to_uint8(sample.detach()))
        traj.pred_original[slot].copy_(to_uint8(pred_original.detach()))
        traj.pred_epsilon[slot].copy_(to_uint8(pred_epsilon.detach(), NOISE_RANGE))
        if variance_fraction is not None:  # [0, 1] → 0 … 255, the buffer made at the first step that has one
            if traj.variance_fraction is None:
                traj.variance_fraction = torch.zeros_like(traj.samples)
            traj.variance_fraction[slot].copy_(to_uint8(2 * variance_fraction.detach().clamp(0, 1) - 1))
