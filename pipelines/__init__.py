"""DDPM Explorer's diffusion core: β schedules, the scheduler, the step-by-step pipeline, training and evaluation."""

from pipelines.forward import ForwardTrajectory, q_chain, q_step
from pipelines.pipeline import DDPMExplorerPipeline, NonFiniteSampleError, TrajectoryStep
from pipelines.scheduler import DDPMExplorerScheduler, DDPMExplorerSchedulerOutput, respaced_timesteps
from pipelines.schedules import BETA_SCHEDULES, SCHEDULE_NAMES, ScheduleTables, extract, make_betas, make_schedule
from pipelines.trajectory import Trajectory, TrajectoryRecorder

__all__ = [
    "BETA_SCHEDULES",
    "SCHEDULE_NAMES",
    "DDPMExplorerPipeline",
    "DDPMExplorerScheduler",
    "DDPMExplorerSchedulerOutput",
    "ForwardTrajectory",
    "NonFiniteSampleError",
    "ScheduleTables",
    "Trajectory",
    "TrajectoryRecorder",
    "TrajectoryStep",
    "extract",
    "make_betas",
    "make_schedule",
    "q_chain",
    "q_step",
    "respaced_timesteps",
]
