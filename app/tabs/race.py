"""The reverse tab's side-by-side views (app/callbacks/race.py's handlers): the sampler race, and the guidance sweep
for a class-conditional model (shown only for one)."""

from __future__ import annotations

import gradio as gr

from app import plans, settings
from app.callbacks import race as cb
from app.tabs.scrubbers import race_scrubber, timestep_slider
from app.tabs.widgets import COMPUTE_QUEUE, by_name, follow_model_T, listen, on_model

RACE_NOTE = (
    "The same x_T, denoised by each sampler side by side. Deterministic solvers (DDIM η = 0, DPM-Solver++, UniPC, "
    "DEIS, Euler, Heun) follow the probability-flow ODE and can take big steps; stochastic ones (DDPM, DDIM η > 0, "
    "the SDE solver, Euler ancestral) add fresh noise at every step, which washes out a young model's errors but "
    "needs more steps. NFE counts model evaluations (Heun makes two per step). After the run, the slider scrubs all "
    "of them at the same noise level: the same log SNR, the log of the signal-to-noise ratio ᾱ_t / (1 − ᾱ_t), "
    "whatever t each sampler's own steps visit."
)
QUALITY_NOTE = (
    "How to read the plot: each point is 1,000 samples of one sampler at one number of model evaluations. The "
    "Fréchet distance measures how far the samples' features are from real images' (the distance between two "
    "Gaussians fitted to the two sets of feature vectors); dividing by the *real floor*, the same distance between "
    "two sets of real images, makes 1 as close as real data gets. It is measured in two feature spaces: the "
    "committed classifier's and an independent network's. *EMA at step N*: the weights measured are an exponential "
    "moving average of the training run's, at step N."
)
LIVE_CSS = """
.live-runs { display: flex; flex-wrap: wrap; gap: 10px; }
.live-runs figure { flex: 1 1 120px; margin: 0; max-width: 200px; }
.live-runs img { width: 100%; height: auto; image-rendering: pixelated; display: block; background: #eee; }
.live-runs.muted { color: #777; }
.live-runs figcaption { font-size: 13px; line-height: 1.3; margin-top: 3px; overflow-wrap: anywhere; }
"""


def seed_batch_and_buttons(name: str, batch_label: str, start_label: str):
    """The seed and batch (``{name}-batch``) of a side-by-side run, and its start and stop buttons."""
    with gr.Row():
        seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=settings.MAX_SEED)
        batch = gr.Slider(1, 8, value=4, step=1, label=batch_label, info="images per run", elem_id=f"{name}-batch")
    with gr.Row():
        start = gr.Button(start_label, variant="primary")
        stop = gr.Button("Stop", variant="stop")
    return seed, batch, start, stop


def noise_level_scrubber(T: int, slider_id: str, *scrubber_args):
    """The slider of a side-by-side view (every run shown at the slider's noise level) and its in-page scrubber."""
    t = timestep_slider(slider_id, "t: the noise level every run is shown at (0 = results)", T, value=T)
    return t, race_scrubber(slider_id, *scrubber_args)


def live_view(elem_id: str, placeholder: str) -> gr.HTML:
    """Where a side-by-side run streams each run's x̂₀, then its result: whole, pixel-sharp, captions below."""
    value = f'<div class="live-runs muted">{placeholder}</div>'
    return gr.HTML(value, css_template=LIVE_CSS, js_on_load=None, elem_id=elem_id)


def side_by_side_events(model, inputs, buttons, outputs, handler, api_name: str) -> None:
    """Start streams the runs into the live view and the scrubber, then moves the slider to the results (t = 0);
    Stop cancels; the slider's range follows the model's T. The API's twin (``api_name``) returns a gallery instead
    of the page's view and leaves the scrubber out."""
    start, stop = buttons
    live, status, t, scrubber = outputs
    follow_model_T(model, t)
    page = by_name(handler, {"live": live, "status": status, "scrubber": scrubber}, in_page=True)
    run = start.click(inputs=inputs, **page, api_visibility="private", **COMPUTE_QUEUE)
    run.then(lambda: gr.update(value=0), None, t, api_visibility="private")
    stop.click(None, None, None, cancels=[run], api_visibility="private")
    api_only, api_gallery = gr.Button(visible=False), gr.Gallery(visible=False, format="png")
    shown = {"gallery": api_gallery, "status": status}
    api_only.click(inputs=inputs, **by_name(handler, shown, in_page=False), api_name=api_name, **COMPUTE_QUEUE)


def race_section(
    demo: gr.Blocks, model: gr.Dropdown, T: int, class_choice: gr.Dropdown, guidance: gr.Slider, extras: list
) -> None:
    """The race; on a class-conditional model it samples Generate's class at its guidance (``class_choice``,
    ``guidance`` and ``extras``: w's interval t_lo, t_hi and rescale φ)."""
    with gr.Accordion("Race samplers: the same noise, side by side", open=False):
        gr.Markdown(RACE_NOTE)
        conditioning = gr.Markdown(visible=False, elem_id="race-conditioning")
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                samplers = gr.CheckboxGroup(
                    list(plans.SAMPLER_NAMES), value=cb.DEFAULT_RACERS, label="Samplers (2 to 4)"
                )
                steps = gr.Slider(1, settings.MAX_STEPS, value=20, step=1, label="Steps N (each)")
                seed, batch, start, stop = seed_batch_and_buttons("race", "Batch", "Race")
            with gr.Column(scale=2):
                status = gr.Markdown()
                live = live_view("race-live", "Each run's x̂₀ streams here while it runs, then its result.")
        t, scrubber = noise_level_scrubber(T, "race-t")
        # the title as a line above, not gradio's label chip, which covered the plot's own title
        gr.Markdown("**Quality against model evaluations** (this model's sampler sweep; lower is better)")
        plot = gr.Image(
            cb.quality_plot(model.value),
            show_label=False,
            format="png",
            height=340,
            elem_classes="plot",
            elem_id="quality-plot",
        )
        gr.Markdown(QUALITY_NOTE)
    listen(model.change, cb.quality_plot, model, plot)
    listen(  # one event, run in the order of its triggers (a slow stale run never lands after a newer one)
        [demo.load, model.change, class_choice.change, guidance.change, *(c.change for c in extras)],
        cb.race_conditioning,
        [model, class_choice, guidance, *extras],
        [conditioning, batch],
        show_progress="hidden",
    )
    inputs = [model, samplers, steps, seed, batch, class_choice, guidance, *extras]
    side_by_side_events(model, inputs, (start, stop), (live, status, t, scrubber), cb.race, "race")


GUIDANCE_NOTE = (
    "Classifier-free guidance: ε̂ = ε̂(x_t, ∅) + w·(ε̂(x_t, c) − ε̂(x_t, ∅)). The same x_T, denoised for one class at "
    "several w: w = 0 ignores the class, w = 1 is the plain conditional model, larger w pushes each image further "
    "towards what the class looks like on average: more recognisable, less varied (and, too far, oversaturated). "
    "Each w guides inside Generate's guidance interval, rescaled by its φ (set under Generate's w)."
)


def guidance_section(demo: gr.Blocks, model: gr.Dropdown, T: int, extras: list) -> None:
    """The guidance sweep: w varies, at Generate's interval and rescale φ (``extras``)."""
    with gr.Accordion("Guidance sweep: one class at several w", open=False, visible=False) as section:
        gr.Markdown(GUIDANCE_NOTE)
        with gr.Row():
            with gr.Column(scale=1, min_width=260):
                class_choice = gr.Dropdown(
                    [plans.ONE_OF_EACH], value=plans.ONE_OF_EACH, label="Class", allow_custom_value=True
                )  # its choices are the model's classes; the handler checks them
                scales = gr.CheckboxGroup(
                    list(cb.GUIDANCE_SCALES),
                    value=list(cb.DEFAULT_GUIDANCE_SCALES),
                    label="Guidance scales w to sweep (pick 2 to 6)",
                )
                sampler = gr.Dropdown(list(plans.SAMPLER_NAMES), value=plans.DEFAULT_SAMPLER, label="Sampler")
                steps = gr.Slider(1, settings.MAX_STEPS, value=plans.DEFAULT_STEPS, step=1, label="Steps N")
                seed, batch, start, stop = seed_batch_and_buttons("guidance", "Batch (one class)", "Sweep w")
            with gr.Column(scale=2):
                status = gr.Markdown()
                live = live_view("guidance-live", "The x̂₀ at each w streams here while it runs, then its result.")
        t, scrubber = noise_level_scrubber(T, "guidance-t", "guidance-scrubber", "Sweep w")

    batch_follows = dict(fn=cb.batch_control, inputs=[model, class_choice], outputs=batch, show_progress="hidden")
    # the class may stay "one of each" from one model to the next, so the batch follows the answer
    on_model(demo, model, cb.guidance_controls, model, [section, class_choice]).then(
        **batch_follows, api_visibility="private"
    )
    listen(class_choice.change, **batch_follows)
    inputs = [model, class_choice, scales, sampler, steps, seed, batch, *extras]
    side_by_side_events(model, inputs, (start, stop), (live, status, t, scrubber), cb.guidance_sweep, "guidance_sweep")


def create_sections(
    demo: gr.Blocks, model: gr.Dropdown, T: int, class_choice: gr.Dropdown, guidance: gr.Slider, extras: list
) -> None:
    """The race and the guidance sweep, below the reverse tab's run; both follow its model and Generate's guidance
    interval and rescale (``extras``: t_lo, t_hi, φ), and the race its class and w (``class_choice``, ``guidance``)."""
    race_section(demo, model, T, class_choice, guidance, extras)
    guidance_section(demo, model, T, extras)
