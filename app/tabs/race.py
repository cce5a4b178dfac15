"""The reverse tab's side-by-side views (app/callbacks/race.py's handlers): the sampler race, and the guidance sweep
for a class-conditional model (shown only for one)."""

from __future__ import annotations

import gradio as gr

from app import plans, settings
from app.callbacks import race as cb
from app.tabs.scrubbers import race_scrubber, timestep_slider
from app.tabs.widgets import COMPUTE_QUEUE, by_name, follow_model_T

RACE_NOTE = (
    "The same x_T, denoised by each sampler side by side. Deterministic solvers (DDIM η = 0, DPM-Solver++, UniPC, "
    "DEIS, Euler, Heun) follow the probability-flow ODE and can take big steps; stochastic ones (DDPM, DDIM η > 0, "
    "the SDE solver, Euler ancestral) add fresh noise at every step, which washes out a young model's errors but "
    "needs more steps. After the run, the slider scrubs all of them at the same noise level."
)


def seed_batch_and_buttons(batch_label: str, start_label: str):
    """The seed and batch of a side-by-side run, and its start and stop buttons."""
    with gr.Row():
        seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=settings.MAX_SEED)
        batch = gr.Slider(1, 8, value=4, step=1, label=batch_label)
    with gr.Row():
        start = gr.Button(start_label, variant="primary")
        stop = gr.Button("Stop", variant="stop")
    return seed, batch, start, stop


def noise_level_scrubber(T: int, slider_id: str, *scrubber_args):
    """The slider of a side-by-side view (every run shown at the slider's noise level) and its in-page scrubber."""
    t = timestep_slider(slider_id, "t: the noise level every run is shown at (0 = results)", T, value=T)
    return t, race_scrubber(slider_id, *scrubber_args)


def side_by_side_events(model, inputs, buttons, outputs, handler, api_name: str) -> None:
    """Start streams the runs into the gallery and the scrubber, then moves the slider to the results (t = 0); Stop
    cancels; the slider's range follows the model's T. The API's twin (``api_name``) leaves the scrubber out."""
    start, stop = buttons
    live, status, t, scrubber = outputs
    follow_model_T(model, t)
    shown = {"gallery": live, "status": status}
    page = by_name(handler, {**shown, "scrubber": scrubber}, in_page=True)
    run = start.click(inputs=inputs, **page, api_visibility="private", **COMPUTE_QUEUE)
    run.then(lambda: gr.update(value=0), None, t, api_visibility="private")
    stop.click(None, None, None, cancels=[run], api_visibility="private")
    api_only = gr.Button(visible=False)
    api_only.click(inputs=inputs, **by_name(handler, shown, in_page=False), api_name=api_name, **COMPUTE_QUEUE)


def race_section(model: gr.Dropdown, T: int) -> None:
    with gr.Accordion("Race samplers: the same noise, side by side", open=False):
        gr.Markdown(RACE_NOTE)
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                samplers = gr.CheckboxGroup(
                    list(plans.SAMPLER_NAMES), value=cb.DEFAULT_RACERS, label="Samplers (2 to 4)"
                )
                steps = gr.Slider(1, settings.MAX_STEPS, value=20, step=1, label="Steps N (each)")
                seed, batch, start, stop = seed_batch_and_buttons("Batch", "Race")
            with gr.Column(scale=2):
                status = gr.Markdown()
                live = gr.Gallery(label="x̂₀ of each run (live), then its result", columns=4, height=240, format="png")
        t, scrubber = noise_level_scrubber(T, "race-t")
        plot = gr.Image(
            cb.quality_plot(model.value),
            label="Quality against model evaluations (this model's sampler sweep; lower is better)",
            format="png",
            height=340,
        )
    model.change(cb.quality_plot, model, plot, api_visibility="private")
    inputs = [model, samplers, steps, seed, batch]
    side_by_side_events(model, inputs, (start, stop), (live, status, t, scrubber), cb.race, "race")


GUIDANCE_NOTE = (
    "Classifier-free guidance: ε̂ = ε̂(x_t, ∅) + w·(ε̂(x_t, c) − ε̂(x_t, ∅)). The same x_T, denoised for one class at "
    "several w: w = 0 ignores the class, w = 1 is the plain conditional model, larger w pushes each image further "
    "towards what the class looks like on average: more recognisable, less varied (and, too far, oversaturated)."
)


def guidance_section(demo: gr.Blocks, model: gr.Dropdown, T: int) -> None:
    with gr.Accordion("Guidance sweep: one class at several w", open=False, visible=False) as section:
        gr.Markdown(GUIDANCE_NOTE)
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                class_choice = gr.Dropdown(
                    [plans.ONE_OF_EACH], value=plans.ONE_OF_EACH, label="Class", allow_custom_value=True
                )  # its choices are the model's classes; the handler checks them
                scales = gr.CheckboxGroup(
                    list(cb.GUIDANCE_SCALES), value=list(cb.DEFAULT_GUIDANCE_SCALES), label="w (2 to 6)"
                )
                sampler = gr.Dropdown(list(plans.SAMPLER_NAMES), value=plans.DEFAULT_SAMPLER, label="Sampler")
                steps = gr.Slider(1, settings.MAX_STEPS, value=plans.DEFAULT_STEPS, step=1, label="Steps N")
                seed, batch, start, stop = seed_batch_and_buttons("Batch (one class)", "Sweep w")
            with gr.Column(scale=2):
                status = gr.Markdown()
                live = gr.Gallery(label="x̂₀ at each w (live), then the result", columns=3, height=240, format="png")
        t, scrubber = noise_level_scrubber(T, "guidance-t", "guidance-scrubber", "Sweep w")

    model.change(cb.guidance_controls, model, [section, class_choice], api_visibility="private")
    demo.load(cb.guidance_controls, model, [section, class_choice], api_visibility="private")
    inputs = [model, class_choice, scales, sampler, steps, seed, batch]
    side_by_side_events(model, inputs, (start, stop), (live, status, t, scrubber), cb.guidance_sweep, "guidance_sweep")


def create_sections(demo: gr.Blocks, model: gr.Dropdown, T: int) -> None:
    """The race and the guidance sweep, below the reverse tab's run; both follow its model."""
    race_section(model, T)
    guidance_section(demo, model, T)
