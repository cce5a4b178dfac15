"""DDPM Explorer's diffusion core: β schedules, the scheduler, the step-by-step pipeline, training and evaluation.

The names below are imported on first use (PEP 562), so ``import pipelines.schedules`` does not pull in diffusers
(and torch._dynamo behind it): the app serves its page before the model side is loaded.
"""

from pipelines.imports import imported

_EXPORTS = {
    "ForwardTrajectory": "pipelines.forward",
    "q_chain": "pipelines.forward",
    "q_step": "pipelines.forward",
    "DDPMExplorerPipeline": "pipelines.pipeline",
    "NonFiniteSampleError": "pipelines.pipeline",
    "TrajectoryStep": "pipelines.pipeline",
    "DDPMExplorerScheduler": "pipelines.scheduler",
    "DDPMExplorerSchedulerOutput": "pipelines.scheduler",
    "respaced_timesteps": "pipelines.scheduler",
    "BETA_SCHEDULES": "pipelines.schedules",
    "SCHEDULE_NAMES": "pipelines.schedules",
    "ScheduleTables": "pipelines.schedules",
    "extract": "pipelines.schedules",
    "make_betas": "pipelines.schedules",
    "make_schedule": "pipelines.schedules",
    "Trajectory": "pipelines.trajectory",
    "TrajectoryRecorder": "pipelines.trajectory",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
    value = getattr(imported(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
