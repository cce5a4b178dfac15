"""One user's recorded reverse run (gr.State), with everything a scrub needs so that a slider move is a pure lookup;
its bytes count in the sessions' memory bound (app/serving/session_memory.py)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from app import rendering
from app.plans import RunPlan
from app.validation import require_session
from pipelines.forward import StepValues, step_values
from pipelines.trajectory import Trajectory

if TYPE_CHECKING:  # diffusers is loaded by the first run, not to serve the page
    from pipelines import DDPMExplorerPipeline


@dataclass
class ReverseState:
    """One user's recorded run, with everything a scrub needs: a slider move is a pure lookup."""

    model: str
    trajectory: Trajectory | None  # None once released to keep the sessions' memory bound (serving/session_memory.py)
    num_train_timesteps: int  # T
    plot: rendering.CursorPlot  # the model's β/ᾱ/log-SNR curves (shared, read-only)
    values: dict[int, StepValues]  # the schedule's numbers at each recorded t, and at t = 0
    num_steps: int = 0  # N, the steps the user asked for (Heun evaluates 2N − 1 times: trajectory.num_steps)

    @property
    def nbytes(self) -> int:
        return 0 if self.trajectory is None else self.trajectory.nbytes

    def release(self) -> None:
        self.trajectory = None


def require_run(state: ReverseState | None, first: str) -> ReverseState:
    """The session's recorded run, or a message saying how to get one."""
    return require_session(state, first, "generate again")


def recorded_state(plan: RunPlan, trajectory: Trajectory) -> ReverseState:
    tables = plan.pipe.scheduler.tables
    values = {t: step_values(tables, t) for t in [*trajectory.t_values, 0]}
    return ReverseState(plan.model, trajectory, tables.num_timesteps, model_plot(plan.pipe), values, plan.num_steps)


@lru_cache(maxsize=16)
def model_plot(pipe: DDPMExplorerPipeline) -> rendering.CursorPlot:
    """The β/ᾱ/log-SNR curves of a model's schedule, drawn once per (loaded, shared) model."""
    return rendering.schedule_plot(pipe.scheduler.tables)


def shown_position(trajectory: Trajectory, t: int) -> int | None:
    """The recorded frame nearest the slider's t: its index, or None for the result x₀ at t = 0 (a stopped run has
    no result: its last frame is the nearest then)."""
    positions = [*trajectory.t_values, 0] if trajectory.final is not None else list(trajectory.t_values)
    k = min(range(len(positions)), key=lambda i: abs(positions[i] - t))
    return None if k == len(trajectory) else k


def step_of(evaluation: int, num_steps: int, num_evaluations: int) -> int:
    """The step (1 … N) that model evaluation ``evaluation`` (0-based) belongs to. One evaluation a step: itself;
    Heun's 2N − 1: its Euler predictor and its corrector (every step but the last) share their step."""
    return evaluation * num_steps // max(1, num_evaluations) + 1


def is_corrector(t: int, t_prev: int) -> bool:
    """Heun's second evaluation of a step: at the step's end t, on the Euler step's x_t (its t′ is its own t)."""
    return t_prev == t and t > 0


def step_label(evaluation: int, num_steps: int, num_evaluations: int, t: int, t_prev: int) -> str:
    """What a recorded evaluation is, in words: "Step 2 of 10: t = 993 → 975", or for Heun's second evaluation,
    "Step 1 of 10, Heun's corrector at t = 993". Mirrored in app/static/reverse_scrubber.js."""
    step = step_of(evaluation, num_steps, num_evaluations)
    if is_corrector(t, t_prev):
        return f"Step {step} of {num_steps}, Heun's corrector at t = {t}"
    return f"Step {step} of {num_steps}: t = {t} → {t_prev}"
