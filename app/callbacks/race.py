"""Race view handlers: two to four samplers denoise the same x_T side by side, streaming; the recorded runs are then
scrubbed together, aligned by noise level (log SNR), with each one's model evaluations (NFE) so far. The guidance
sweep is the same race between guidance scales w of one sampler, for one class."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import gradio as gr
import torch
from PIL import Image

from app import models, rendering, settings
from app.plans import (
    ANY_CLASS,
    ONE_OF_EACH,
    SAMPLER_NAMES,
    check_sampler,
    check_work,
    class_choices,
    conditioning,
    frame_budget,
)
from app.rendering import grid_image
from app.scrub_payload import race_payload
from app.serving.compute_slots import gpu, in_compute_slots
from app.validation import UserError, check_float, check_int, check_model, numerical_faults_as_errors
from pipelines.samplers import SAMPLERS, Sampler
from pipelines.trajectory import Trajectory

if TYPE_CHECKING:  # diffusers is loaded by the first run, not to serve the page
    from pipelines.pipeline import Recording

MIN_RACERS, MAX_RACERS = 2, 4
DEFAULT_RACERS = [SAMPLERS[k].name for k in ("ddpm", "ddim", "dpmsolver++2m", "euler-ancestral")]
GUIDANCE_SCALES = (0.0, 1.0, 2.0, 3.0, 5.0, 8.0)  # the guidance sweep's choices
DEFAULT_GUIDANCE_SCALES = (0.0, 1.0, 3.0, 8.0)


@dataclass(frozen=True)
class Contender:
    """What one run of a race is: a sampler, and its guidance w for a class-conditional model."""

    name: str
    sampler: Sampler
    guidance_scale: float | None = None


@dataclass
class Racer:
    """One contender's run in a race."""

    name: str
    sampler: Sampler
    run: Recording  # its steps, each recorded as it is made
    done: int = 0  # evaluations made
    wall_s: float = 0.0  # its own time: the race interleaves the runs

    @property
    def num_evaluations(self) -> int:
        return len(self.run)

    @property
    def final(self) -> torch.Tensor | None:
        return self.run.final

    @property
    def progress(self) -> float:
        return self.done / self.num_evaluations

    def trajectory(self) -> Trajectory:
        trajectory = self.run.trajectory
        trajectory.final = None if self.final is None else self.final.cpu()
        return trajectory


def check_racers(names) -> list[Sampler]:
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise UserError(f"Pick {MIN_RACERS} to {MAX_RACERS} samplers.")
    unknown = [n for n in names if n not in SAMPLER_NAMES]
    if unknown:
        raise UserError(f"Unknown sampler {unknown[0]!r}; choose among {', '.join(SAMPLER_NAMES)}.")
    names = list(dict.fromkeys(names))
    if not MIN_RACERS <= len(names) <= MAX_RACERS:
        raise UserError(f"Pick {MIN_RACERS} to {MAX_RACERS} different samplers, got {len(names)}.")
    return [SAMPLERS[SAMPLER_NAMES[n]] for n in names]


def status_table(racers: list[Racer]) -> str:
    rows = [
        f"| {r.name} | {r.done} / {r.num_evaluations} | {r.wall_s:.1f} s |"
        + (" done |" if r.done == r.num_evaluations else " |")
        for r in racers
    ]
    return "| run | NFE | its time | |\n|---|---|---|---|\n" + "\n".join(rows)


def gallery(racers: list[Racer], current: dict[int, torch.Tensor]) -> list:
    """Each racer's latest x̂₀ (its result once done), captioned."""
    items = []
    for i, r in enumerate(racers):
        image = r.final if r.final is not None else current.get(i)
        if image is not None:
            items.append((grid_image(image), f"{r.name}: NFE {r.done} of {r.num_evaluations}"))
    return items


def run_race(pipe, contenders: list[Contender], n: int, seed: int, batch_size: int, class_labels, in_page: bool):
    """Run each contender for N steps from the same x_T (the same seed), one model evaluation at a time to whichever
    run is furthest behind, so they advance together; stream their x̂₀ (``gallery``) and a table of NFE and time
    (``status``). The last yield carries the race scrubber's payload (``scrubber``) when ``in_page``."""
    guided = class_labels is not None and any(c.guidance_scale not in (0.0, 1.0) for c in contenders)
    check_work(pipe, sum(c.sampler.nfe_of(n) for c in contenders), batch_size * (2 if guided else 1))
    budget = max(2, frame_budget(pipe, batch_size) // len(contenders))
    racers = []
    for c in contenders:
        run = pipe.record(
            budget,
            batch_size=batch_size,
            generator=torch.Generator(device=pipe.device).manual_seed(seed),
            num_inference_steps=n,
            scheduler=c.sampler.scheduler(pipe.scheduler.config),
            class_labels=class_labels,
            guidance_scale=c.guidance_scale,
            show_progress=False,
        )
        racers.append(Racer(c.name, c.sampler, run))
    steps = [in_compute_slots(r.run) for r in racers]

    current: dict[int, torch.Tensor] = {}
    last_yield = 0.0
    with numerical_faults_as_errors():
        while any(r.done < r.num_evaluations for r in racers):
            i, racer = min(
                ((i, r) for i, r in enumerate(racers) if r.done < r.num_evaluations), key=lambda ir: ir[1].progress
            )
            start = time.perf_counter()
            step = next(steps[i])
            racer.wall_s += time.perf_counter() - start
            racer.done += 1
            current[i] = step.pred_original_sample
            if time.perf_counter() - last_yield > settings.STREAM_EVERY_S:
                last_yield = time.perf_counter()
                yield {"gallery": gallery(racers, current), "status": status_table(racers)}
    outputs = {"gallery": gallery(racers, current), "status": status_table(racers)}
    if in_page:
        outputs["scrubber"] = race_payload([(r.name, r.trajectory(), r.wall_s) for r in racers], pipe.scheduler.tables)
    yield outputs


def check_steps_seed_batch(pipe, steps, seed, batch_size) -> tuple[int, int, int]:
    T = pipe.scheduler.config.num_train_timesteps
    n = check_int("Steps", steps, 1, min(T, settings.MAX_STEPS))
    return n, check_int("Seed", seed, 0, settings.MAX_SEED), check_int("Batch size", batch_size, 1, settings.MAX_BATCH)


@gpu
def race(model_name, sampler_names, steps, seed, batch_size, progress=gr.Progress(), in_page: bool = False):
    """Two to four samplers from the same x_T (unconditional, for a class-conditional model): each one's result and
    the table of NFE and time; the page's (``in_page``) also the race scrubber's payload."""
    pipe = check_model(model_name)
    contenders = [Contender(s.name, s) for s in check_racers(sampler_names)]
    n, seed, batch_size = check_steps_seed_batch(pipe, steps, seed, batch_size)
    yield from run_race(pipe, contenders, n, seed, batch_size, None, in_page)


@gpu
def guidance_sweep(
    model_name, class_choice, scales, sampler, steps, seed, batch_size, progress=gr.Progress(), in_page: bool = False
):
    """The same x_T denoised for one class (or one of each) at several guidance scales w, side by side: as
    :func:`race`."""
    pipe = check_model(model_name)
    if pipe.null_class_label is None:
        raise UserError("Guidance needs a class-conditional model; this one is unconditional.")
    if isinstance(scales, str) or not isinstance(scales, (list, tuple)) or not 2 <= len(set(scales)) <= 6:
        raise UserError("Pick 2 to 6 guidance scales w.")
    ws = sorted({check_float("Guidance w", w, 0.0, settings.MAX_GUIDANCE) for w in scales})
    sampler = check_sampler(sampler)
    n, seed, batch_size = check_steps_seed_batch(pipe, steps, seed, batch_size)
    if class_choice == ANY_CLASS:
        raise UserError("Guidance steers towards a class: choose one (or 'one of each').")
    labels, _, batch_size = conditioning(pipe, class_choice, 1.0, batch_size)
    contenders = [Contender(f"w = {w:g}", sampler, w) for w in ws]
    yield from run_race(pipe, contenders, n, seed, batch_size, labels, in_page)


def guidance_controls(name):
    """The guidance sweep for a model: shown, offering its classes (and "one of each"), for a class-conditional
    model; hidden for an unconditional one."""
    choices = class_choices(check_model(name))
    if choices is None:
        return gr.update(visible=False), gr.update()
    return gr.update(visible=True), gr.update(choices=choices[1:], value=ONE_OF_EACH)


def quality_plot(model_name):
    """The model's quality-against-NFE plot from its sampler sweep (its card's samplers.png), when it has one."""
    path = models.sampler_sweep_plot(model_name)
    return rendering.png_output(Image.open(path).convert("RGB")) if path else None
