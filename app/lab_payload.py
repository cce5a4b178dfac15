"""What the 2D lab's scrubber (app/static/lab_scrubber.js) receives, once per setup or run, so that a slider move is
drawn in the page without a request.

- The forward view: x₀ and the fixed ε of the shown points (float16), and the schedule's tables: the page computes
  x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε at every t itself. The density q(x_t) on a grid at LAB_FIELD_FRAMES t values (uint8).
- The score arrows at the same t values (float16): for the mixture the exact field from the start, and after training
  the learned one, with its mean error at each t.
- After sampling: each sampler's recorded frames of the shown points (float16), by t.

With 1,000 shown points, 80 frames per sampler and 51 field frames, a payload is about 1.5 MB of JSON (the forward
view and the mixture's exact score alone: 260 KB).
"""

from __future__ import annotations

import json

import numpy as np
import torch

from app.scrub_payload import b64, schedule_arrays, version
from pipelines.lab2d.density import density_on_grid, kernel_density
from pipelines.lab2d.experiment import Experiment
from pipelines.lab2d.sampling import RecordedRun
from pipelines.lab2d.score_field import ScoreFields, grid
from pipelines.trajectory import evenly_spread

VIEW_EXTENT = 3.5  # every panel shows [−3.5, 3.5]², in the data's standardised units
DENSITY_GRID = 48  # density pixels a side
ARROW_GRID = 17  # score arrows a side
HIGHLIGHTED = 16  # points whose paths are drawn (the first shown ones: the data's order is random)
SCHEDULE_ARRAYS = ("sqrt_alpha_bar", "sqrt_one_minus_alpha_bar", "alpha_bar")  # float32 (T + 1), by the paper's t


def field_timesteps(num_timesteps: int, frames: int) -> list[int]:
    """The t values of the density and score frames: ``frames`` evenly spread over 0 … T (fewer when T is small)."""
    return evenly_spread(num_timesteps, frames)


def arrow_points() -> torch.Tensor:
    """Where the score arrows start: the ARROW_GRID² grid over the view, (G², 2), row by row from the bottom."""
    return grid(VIEW_EXTENT, ARROW_GRID)[2]


def float16(x: torch.Tensor) -> str:
    return b64(x.detach().float().numpy().astype(np.float16))


def density_frames(experiment: Experiment, t_values: list[int]) -> tuple[str, str]:
    """q(x_t) at each t on the DENSITY_GRID² grid, (K, G, G) uint8, row 0 at the bottom (y = −VIEW_EXTENT):
    byte = 255·√(q/max q) per frame, so thin tails still show. Exact for the mixture, else the data's kernel density
    estimate (pipelines/lab2d/density.py). Returns the frames and what they are."""
    mixture = experiment.distribution.mixture
    what = "exact" if mixture is not None else "kde"
    source = mixture if mixture is not None else kernel_density(experiment.data)
    xs, ys, _ = grid(VIEW_EXTENT, DENSITY_GRID)
    frames = []
    for t in t_values:
        ab = float(experiment.scheduler.tables.by_paper_t.alphas_cumprod[t])
        q = density_on_grid(source.noised(ab), xs, ys)
        frames.append(np.round(255 * np.sqrt(q.numpy() / q.max().item())).astype(np.uint8))
    return b64(np.stack(frames)), what


def fields_payload(fields: ScoreFields) -> dict:
    errors = fields.errors or []
    return {
        "learned": float16(fields.learned) if fields.learned is not None else None,
        "exact": float16(fields.exact) if fields.exact is not None else None,
        "error": [None if e is None else round(e.mean_error, 4) for e in errors] or None,
        "norm": [None if e is None else round(e.mean_norm, 4) for e in errors] or None,
    }


def runs_payload(runs: list[RecordedRun], shown: int) -> list[dict]:
    return [
        {
            "key": r.key,
            "name": r.name,
            "t": r.t_values,
            "frames": float16(r.frames[:, :shown]),  # (K, shown, 2)
            "nfe": r.num_evaluations,
            "wall_s": round(r.wall_s, 2),
        }
        for r in runs
    ]


def lab_payload(
    experiment: Experiment,
    shown: int,
    field_frames: int,
    fields: ScoreFields | None = None,
    runs: list[RecordedRun] = (),
) -> str:
    """The scrubber's payload for an experiment: the forward view, the score fields when given (at their t values,
    else at ``field_frames`` t values), and the runs."""
    shown = min(shown, experiment.num_points)
    t_values = fields.t_values if fields is not None else field_timesteps(experiment.num_timesteps, field_frames)
    density, what = density_frames(experiment, t_values)
    tables = experiment.scheduler.tables
    return json.dumps(
        {
            "version": version(),
            "T": experiment.num_timesteps,
            "extent": VIEW_EXTENT,
            "points": shown,
            "highlighted": min(HIGHLIGHTED, shown),
            "dataset": experiment.distribution.name,
            "x0": float16(experiment.data[:shown]),
            "eps": float16(experiment.noise[:shown]),
            **{k: v for k, v in schedule_arrays(tables).items() if k in SCHEDULE_ARRAYS},
            "field_t": t_values,
            "density": {"grid": DENSITY_GRID, "frames": density, "what": what},
            "arrows": ARROW_GRID,
            "fields": fields_payload(fields) if fields is not None else None,
            "runs": runs_payload(list(runs), shown),
        }
    )
