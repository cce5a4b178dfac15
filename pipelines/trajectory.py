"""Compact storage of a reverse trajectory: x_t, x̂₀ and ε̂ at every recorded step, as uint8.

Images in [−1, 1] map to 0 … 255; noise (ε, ε̂ ~ N(0, I)) maps ±3σ to 0 … 255.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

NOISE_RANGE = 3.0


def to_uint8(x: torch.Tensor, value_range: float = 1.0) -> torch.Tensor:
    """Map [−value_range, value_range] to uint8 0 … 255, rounding and clipping. Any shape."""
    return ((x / value_range + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def from_uint8(x: torch.Tensor, value_range: float = 1.0) -> torch.Tensor:
    """The inverse of :func:`to_uint8`, up to its rounding (half a level, 1/255 of the range)."""
    return (x.float() / 127.5 - 1.0) * value_range


def frames_to_keep(num_steps: int, max_frames: int | None) -> list[int]:
    """Indices of the steps to record: all of them, or ``max_frames`` evenly spread, always with the first and last."""
    if max_frames is None or num_steps <= max_frames:
        return list(range(num_steps))
    if max_frames < 2:
        raise ValueError(f"max_frames must be at least 2, got {max_frames}.")
    return sorted(set(np.round(np.linspace(0, num_steps - 1, max_frames)).astype(int).tolist()))


def frames_within(budget_bytes: int, frame_shape: tuple[int, ...]) -> int:
    """How many recorded steps fit in ``budget_bytes``: each keeps x_t, x̂₀ and ε̂ of ``frame_shape`` (B, C, H, W)
    as uint8. At least 2 (the first and the last step)."""
    return max(2, budget_bytes // (3 * int(np.prod(frame_shape))))


@dataclass
class Trajectory:
    """A recorded reverse run. Frame k holds step ``step_indices[k]`` of ``num_steps``, x_t → x_{t'}.

    Timesteps are diffusers' table indices, what the UNet is given: a step at ``timesteps[k]`` = i denoises x_t with
    the paper's t = i + 1 (t = 0 is the data, t = T pure noise), towards t' = ``prev_timesteps[k]`` + 1 (0 after the
    last step). :attr:`t_values` gives the paper's t, which is what users read.

    Shapes: ``samples``, ``pred_original``, ``pred_epsilon``: (K, B, C, H, W) uint8; ``final``: (B, C, H, W) float.
    ``samples[k]`` is x_t at the *input* of that step.
    """

    timesteps: list[int]
    prev_timesteps: list[int]
    step_indices: list[int]
    num_steps: int
    samples: torch.Tensor
    pred_original: torch.Tensor
    pred_epsilon: torch.Tensor
    final: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.timesteps)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.samples, self.pred_original, self.pred_epsilon))

    @property
    def t_values(self) -> list[int]:
        """The paper's t of each recorded x_t (diffusers' timestep + 1)."""
        return [i + 1 for i in self.timesteps]

    @property
    def t_prev_values(self) -> list[int]:
        """The paper's t' each recorded step goes to (0: the sample x₀)."""
        return [i + 1 for i in self.prev_timesteps]


class TrajectoryRecorder:
    """Preallocates the uint8 frame buffers of a run and fills them step by step, keeping at most ``max_frames``."""

    def __init__(self, timesteps: list[int], shape: tuple[int, ...], max_frames: int | None = None):
        self.keep = frames_to_keep(len(timesteps), max_frames)
        self._slot = {step: slot for slot, step in enumerate(self.keep)}
        self._filled = 0  # slots 0 … _filled − 1 hold recorded steps
        n = len(self.keep)
        prev_timesteps = [*timesteps[1:], -1]
        self.trajectory = Trajectory(
            timesteps=[int(timesteps[i]) for i in self.keep],
            prev_timesteps=[int(prev_timesteps[i]) for i in self.keep],
            step_indices=list(self.keep),
            num_steps=len(timesteps),
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
            samples=traj.samples[:n],
            pred_original=traj.pred_original[:n],
            pred_epsilon=traj.pred_epsilon[:n],
        )

    def record(self, step_index: int, sample, pred_original, pred_epsilon) -> None:
        slot = self._slot.get(step_index)
        if slot is None:
            return
        self._filled = slot + 1
        traj = self.trajectory
        traj.samples[slot].copy_(to_uint8(sample.detach()))
        traj.pred_original[slot].copy_(to_uint8(pred_original.detach()))
        traj.pred_epsilon[slot].copy_(to_uint8(pred_epsilon.detach(), NOISE_RANGE))
