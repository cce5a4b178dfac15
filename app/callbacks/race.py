"""Race view handlers: two to four samplers denoise the same x_T side by side, streaming; the recorded runs are then
scrubbed together, aligned by noise level (log SNR), with each one's model evaluations (NFE) so far. The guidance
sweep is the same race between guidance scales w of one sampler, for one class. On a class-conditional model the race
samples as Generate does: the tab's class, with classifier-free guidance at the tab's w, interval and rescale φ; the
guidance sweep varies w at that interval and φ."""

from __future__ import annotations

import base64
import html
import io
import json
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
    guidance_options,
    interval_text,
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


def status_table(racers: list[Racer], what: str = "") -> str:
    """The table of each run's model evaluations (NFE) so far and its own time, under a line saying what is sampled
    (``what``: the class and guidance w, for a class-conditional model)."""
    rows = [
        f"| {r.name} | {r.done} / {r.num_evaluations} | {r.wall_s:.1f} s"
        + (", done |" if r.done == r.num_evaluations else " |")
        for r in racers
    ]
    head = f"Sampling **{what}**\n\n" if what else ""
    return head + "| run | NFE | its time |\n|---|---|---|\n" + "\n".join(rows)


def gallery(racers: list[Racer], current: dict[int, torch.Tensor], what: str = "") -> list:
    """Each racer's latest x̂₀ (its result once done), captioned with its NFE so far (and ``what``, if any)."""
    items = []
    for i, r in enumerate(racers):
        image = r.final if r.final is not None else current.get(i)
        if image is not None:
            kind = "result" if r.final is not None else "x̂₀"
            caption = f"{r.name}: {kind}, NFE {r.done} of {r.num_evaluations}" + (f" · {what}" if what else "")
            items.append((grid_image(image), caption))
    return items


def live_html(items: list) -> str:
    """The page's view of :func:`gallery`: each image whole and pixel-sharp (nearest-neighbour upscaling, in
    app/tabs/race.py's CSS), its caption below it, wrapped rather than cut."""
    figures = []
    for image, caption in items:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        src = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        text = html.escape(caption)
        figures.append(f'<figure><img src="{src}" alt="{text}"><figcaption>{text}</figcaption></figure>')
    return f'<div class="live-runs">{"".join(figures)}</div>'


def shown(racers: list[Racer], current: dict[int, torch.Tensor], what: str, in_page: bool) -> dict:
    """What a race shows as it goes: its images (the page's HTML view, or the API's gallery) and its table."""
    items = gallery(racers, current, what)
    return {
        "live" if in_page else "gallery": live_html(items) if in_page else items,
        "status": status_table(racers, what),
    }


def with_caption(payload: str, what: str) -> str:
    """The race scrubber's payload with a line saying what was sampled (its caption shows it)."""
    data = json.loads(payload)
    data["what"] = what
    return json.dumps(data)


def run_race(
    pipe,
    contenders: list[Contender],
    n: int,
    seed: int,
    batch_size: int,
    class_labels,
    in_page: bool,
    what: str = "",
    guidance_rescale: float = 0.0,
    guidance_interval: tuple[float, float] | None = None,
):
    """Run each contender for N steps from the same x_T (the same seed), one model evaluation at a time to whichever
    run is furthest behind, so they advance together; stream their x̂₀ (the page's ``live`` view, the API's
    ``gallery``) and a table of NFE and time (``status``), each saying ``what`` is sampled. The last yield carries the
    race scrubber's payload (``scrubber``) when ``in_page``. Guided runs guide with φ = ``guidance_rescale`` inside
    ``guidance_interval`` (the paper's t; None: every step)."""
    from pipelines.guidance import Guidance

    guided = class_labels is not None and any(c.guidance_scale not in (0.0, 1.0) for c in contenders)
    nfe = sum(c.sampler.nfe_of(n) for c in contenders)
    # each contender's run, its timesteps set once: for the work cap and then for the run itself
    prepared = [pipe.prepare_run(c.sampler.scheduler(pipe.scheduler.config), n) for c in contenders]
    if guided and guidance_interval is not None:  # only the steps inside the interval run both passes
        flags = [
            pipe.guided_evaluations(run, class_labels, Guidance(c.guidance_scale, guidance_rescale, guidance_interval))
            for c, run in zip(contenders, prepared)
        ]
        check_work(pipe, nfe, batch_size, doubled_calls=sum(map(sum, flags)), interval=guidance_interval)
    else:
        check_work(pipe, nfe, batch_size * (2 if guided else 1))
    budget = max(2, frame_budget(pipe, batch_size) // len(contenders))
    racers = []
    for c, prepared_run in zip(contenders, prepared):
        run = pipe.record(
            budget,
            batch_size=batch_size,
            generator=torch.Generator(device=pipe.device).manual_seed(seed),
            scheduler=prepared_run,
            class_labels=class_labels,
            guidance_scale=c.guidance_scale,
            guidance_rescale=guidance_rescale,
            guidance_interval=guidance_interval,
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
                yield shown(racers, current, what, in_page)
    outputs = shown(racers, current, what, in_page)
    if in_page:
        runs = [(r.name, r.trajectory(), r.wall_s) for r in racers]
        outputs["scrubber"] = with_caption(race_payload(runs, pipe.scheduler.tables), what)
    yield outputs


def check_steps_seed_batch(pipe, steps, seed, batch_size) -> tuple[int, int, int]:
    T = pipe.scheduler.config.num_train_timesteps
    n = check_int("Steps", steps, 1, min(T, settings.MAX_STEPS))
    return n, check_int("Seed", seed, 0, settings.MAX_SEED), check_int("Batch size", batch_size, 1, settings.MAX_BATCH)


def conditioning_caption(
    class_choice: str, w: float | None, num_classes: int, rescale: float = 0.0, interval=None
) -> str:
    """What a run of a class-conditional model samples, in words: the class (or one of each), and the guidance w
    (``None``: the runs differ in w), with its interval (the paper's t) and rescale φ where they are set and w
    guides."""
    if class_choice == ANY_CLASS:
        return "any class (unconditional: w has no effect)"
    what = f"one of each class ({num_classes})" if class_choice == ONE_OF_EACH else f"class {class_choice}"
    if w is not None:
        what += f", w = {w:g}"
    if w in (0.0, 1.0):  # no step guides: the interval and φ do nothing
        return what
    extras = ([f"guided only at {interval_text(interval)}"] if interval is not None else []) + (
        [f"φ = {rescale:g}"] if rescale else []
    )
    return ", ".join([what, *extras])


@gpu
def race(
    model_name,
    sampler_names,
    steps,
    seed,
    batch_size,
    class_choice=ANY_CLASS,
    guidance=1.0,
    guidance_t_lo=None,
    guidance_t_hi=None,
    guidance_rescale=None,
    progress=gr.Progress(),
    in_page: bool = False,
):
    """Two to four samplers from the same x_T, for a class-conditional model with the class and the classifier-free
    guidance Generate takes (``class_choice``, ``guidance``: "one of each" makes the batch one image per class; its
    interval ``guidance_t_lo`` … ``guidance_t_hi`` in the paper's t, None: 0 and T; its rescale φ, None: 0): each
    one's result and the table of NFE and time; the page's (``in_page``) also the race scrubber's payload."""
    pipe = check_model(model_name)
    contenders = check_racers(sampler_names)
    n, seed, batch_size = check_steps_seed_batch(pipe, steps, seed, batch_size)
    labels, w, batch_size = conditioning(pipe, class_choice, guidance, batch_size)
    phi, interval, what = 0.0, None, ""
    if pipe.null_class_label is not None:
        phi, interval = guidance_options(pipe, guidance_rescale, guidance_t_lo, guidance_t_hi)
        what = conditioning_caption(class_choice or ANY_CLASS, w, pipe.null_class_label, phi, interval)
    contenders = [Contender(s.name, s, w) for s in contenders]
    yield from run_race(pipe, contenders, n, seed, batch_size, labels, in_page, what, phi, interval)


@gpu
def guidance_sweep(
    model_name,
    class_choice,
    scales,
    sampler,
    steps,
    seed,
    batch_size,
    guidance_t_lo=None,
    guidance_t_hi=None,
    guidance_rescale=None,
    progress=gr.Progress(),
    in_page: bool = False,
):
    """The same x_T denoised for one class (or one of each) at several guidance scales w, side by side, each guided
    inside the interval ``guidance_t_lo`` … ``guidance_t_hi`` (the paper's t; None: 0 and T) with rescale φ
    (None: 0), Generate's: as :func:`race`."""
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
    phi, interval = guidance_options(pipe, guidance_rescale, guidance_t_lo, guidance_t_hi)
    what = conditioning_caption(class_choice, None, pipe.null_class_label, phi, interval)
    contenders = [Contender(f"w = {w:g}", sampler, w) for w in ws]
    yield from run_race(pipe, contenders, n, seed, batch_size, labels, in_page, what, phi, interval)


def guidance_controls(name):
    """The guidance sweep for a model: shown, offering its classes (and "one of each"), for a class-conditional
    model; hidden for an unconditional one."""
    choices = class_choices(check_model(name))
    if choices is None:
        return gr.update(visible=False), gr.update()
    return gr.update(visible=True), gr.update(choices=choices[1:], value=ONE_OF_EACH)


def batch_control(model_name, class_choice):
    """A batch slider beside a class: with "one of each" on a class-conditional model the batch is one image per
    class, so the slider has no effect and is disabled, saying why."""
    enabled = gr.update(interactive=True, info="images per run, the same ones for every run")
    if class_choice != ONE_OF_EACH:
        return enabled
    try:
        n = check_model(model_name).null_class_label
    except UserError:  # a model that can't be used: the model's own events say why, once
        return gr.skip()
    if n is None:
        return enabled
    return gr.update(interactive=False, info=f"not used: “one of each” makes one image per class ({n}) per run")


def race_conditioning(
    model_name, class_choice, guidance, guidance_t_lo=None, guidance_t_hi=None, guidance_rescale=None
):
    """The race's line saying what it samples (the tab's class, w, interval and φ, as Generate), and its batch
    slider."""
    try:
        pipe = check_model(model_name)
    except UserError:  # said once, by the tab's own model events
        return gr.skip(), gr.skip()
    choices = class_choices(pipe)
    if choices is None:
        return gr.update(value="", visible=False), batch_control(model_name, ANY_CLASS)
    if class_choice not in choices:  # the class of the previous model, replaced by the next event
        return gr.skip(), gr.skip()
    w = check_float("Guidance w", guidance, 0.0, settings.MAX_GUIDANCE)
    try:
        phi, interval = guidance_options(pipe, guidance_rescale, guidance_t_lo, guidance_t_hi)
    except UserError:  # the interval of the previous model's T, replaced by the model's own events
        return gr.skip(), gr.skip()
    what = conditioning_caption(class_choice, w, pipe.null_class_label, phi, interval)
    note = f"Races with Generate's class and guidance (above): **{what}**."
    return gr.update(value=note, visible=True), batch_control(model_name, class_choice)


def quality_plot(model_name):
    """The model's quality-against-NFE plot from its sampler sweep (its card's samplers.png), when it has one."""
    path = models.sampler_sweep_plot(model_name)
    return rendering.png_output(Image.open(path).convert("RGB")) if path else None
