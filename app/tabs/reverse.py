"""Tab "Reverse process": a trained UNet denoises pure noise into images, step by step, and the slider scrubs it;
below, the race and the guidance sweep (app/tabs/race.py) and SDEdit."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from app import models, plans, settings
from app.callbacks import reverse as cb
from app.callbacks.sdedit import sdedit
from app.images import examples
from app.tabs import nearest, race
from app.tabs.scrubbers import reverse_scrubber, timestep_slider
from app.tabs.widgets import COMPUTE_QUEUE, GifExport, by_name, follow_model_T, image_panel, listen, on_model

SDEDIT_NOTE = (
    "Your image is noised in closed form to t, then the model denoises from t. Small t keeps the image; "
    "large t keeps only its coarse layout, then nothing: the model invents the rest."
)


@dataclass
class RunInputs:
    model: gr.Dropdown
    sampler: gr.Radio
    steps: gr.Slider
    eta: gr.Slider
    variance: gr.Radio
    clip: gr.Checkbox
    seed: gr.Number
    batch: gr.Slider
    class_choice: gr.Dropdown
    guidance: gr.Slider
    guidance_extras: gr.Accordion  # the guidance interval and rescale, under w
    guidance_t_lo: gr.Slider
    guidance_t_hi: gr.Slider
    guidance_rescale: gr.Slider
    guidance_per_class: gr.Checkbox  # each class at the model's own w (models that record them)

    @property
    def guidance_options(self) -> list:
        """The guidance interval and rescale, in the handlers' order."""
        return [self.guidance_t_lo, self.guidance_t_hi, self.guidance_rescale]

    @property
    def plan(self) -> list:
        """What the run-time estimate depends on."""
        return [
            self.model,
            self.sampler,
            self.steps,
            self.eta,
            self.batch,
            self.class_choice,
            self.guidance,
            *self.guidance_options,
            self.guidance_per_class,
        ]

    @property
    def all(self) -> list:
        return [
            self.model,
            self.sampler,
            self.steps,
            self.eta,
            self.variance,
            self.clip,
            self.seed,
            self.batch,
            self.class_choice,
            self.guidance,
            *self.guidance_options,  # trailing and optional in the API: older clients leave them out
            self.guidance_per_class,
        ]


def run_inputs(T: int) -> RunInputs:
    choices = models.model_choices()
    model = gr.Dropdown(
        choices, value=models.default_model(), label="Model", info=models.hub_note(), elem_id=cb.MODEL_ELEM_ID
    )
    class_choice = gr.Dropdown(  # its choices are the model's classes; the handler checks them
        [plans.ANY_CLASS],
        value=plans.ANY_CLASS,
        label="Class (class-conditional models)",
        visible=False,
        allow_custom_value=True,
    )
    guidance = gr.Slider(
        0.0,
        settings.MAX_GUIDANCE,
        value=1.0,
        step=0.25,
        label="Guidance w: ε̂ = ε̂(x_t, ∅) + w·(ε̂(x_t, c) − ε̂(x_t, ∅)); 0 unconditional, 1 plain conditional",
        visible=False,
    )
    # shown and ticked for a model that records a w per class (cb.per_class_control)
    per_class = gr.Checkbox(False, label=cb.PER_CLASS_LABEL, visible=False)
    # shown with w (a class-conditional model); the model's recommended values are set when it is picked
    with gr.Accordion("Guidance interval and rescale", open=False, visible=False) as guidance_extras:
        t_lo = gr.Slider(0, T, value=0, step=1, label="Guidance interval: from t_lo", info=cb.INTERVAL_LO_INFO)
        t_hi = gr.Slider(0, T, value=T, step=1, label="Guidance interval: to t_hi", info=cb.INTERVAL_HI_INFO)
        rescale = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="Guidance rescale φ", info=cb.RESCALE_INFO)
    sampler = gr.Dropdown(
        list(plans.SAMPLER_NAMES),
        value=plans.DEFAULT_SAMPLER,
        label="Sampler",
        info=plans.sampler_note(plans.DEFAULT_SAMPLER),
    )
    opening = plans.opening_defaults()  # the default model's steps and batch (a model change moves them)
    steps = gr.Slider(1, settings.MAX_STEPS, value=opening.steps, step=1, label="Steps N (T: every timestep)")
    eta = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="η (DDIM: 0 deterministic, 1 = DDPM's β̃)")
    variance = gr.Radio(list(plans.VARIANCE_CHOICES), value=next(iter(plans.VARIANCE_CHOICES)), label="Σ_t (DDPM)")
    clip = gr.Checkbox(True, label="Clip x̂₀ to [−1, 1] (DDPM, DDIM; the solvers threshold as the model's config says)")
    with gr.Row():
        seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=settings.MAX_SEED)
        batch = gr.Slider(1, settings.MAX_BATCH, value=opening.batch, step=1, label=cb.BATCH_LABEL)
    return RunInputs(
        model,
        sampler,
        steps,
        eta,
        variance,
        clip,
        seed,
        batch,
        class_choice,
        guidance,
        guidance_extras,
        t_lo,
        t_hi,
        rescale,
        per_class,
    )


def sdedit_section(model: gr.Dropdown, T: int) -> None:
    with gr.Accordion("Noise and denoise your image (SDEdit)", open=False):
        gr.Markdown(SDEDIT_NOTE)
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="Image", file_types=["image"], height=110)
                gr.Examples(examples(), inputs=[upload])
                t = gr.Slider(1, T, value=round(0.4 * T), step=1, label="t to noise to (1 … T)")
                steps = gr.Slider(1, 200, value=40, step=1, label="Denoising steps (respaced)")
                seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=settings.MAX_SEED)
                button = gr.Button("Noise and denoise")
            with gr.Column(scale=2):
                x0_view = image_panel("x₀ in the model's channels and size", height=260)
                gallery = gr.Gallery(label="What survives as t grows", columns=6, format="png")
    follow_model_T(model, t)
    button.click(
        sdedit,
        [model, upload, t, steps, seed],
        [x0_view, gallery],
        api_name="sdedit",
        **COMPUTE_QUEUE,
    )


def create_tab(demo: gr.Blocks, session_files: gr.State) -> None:
    state = gr.State(None, time_to_live=settings.SESSION_TTL_S)
    T = models.num_timesteps(models.default_model()) or settings.MAX_T  # read from its config, weights not loaded
    with gr.Row():
        with gr.Column(scale=1, min_width=300, elem_id="reverse-controls"):
            inputs = run_inputs(T)
        with gr.Column(scale=3, elem_id="reverse-run"):
            with gr.Row(equal_height=True):
                generate = gr.Button("Generate", variant="primary", min_width=110, scale=0)
                stop = gr.Button("Stop", variant="stop", min_width=80, scale=0)
                estimate = gr.Markdown(elem_id="reverse-estimate")  # what the run will ask, and how long it takes
            # the run on screen, large: the recorded default run on arrival, a run's frames while it goes, then it
            status = gr.Markdown(
                "A recorded run of the default model: scrub t, or press **Generate** for your own (it paints here "
                "as it goes).",
                elem_id="reverse-status",
            )
            meaning = "t (0 = the result, T = pure noise; after a run: the nearest step)"
            t = timestep_slider("reverse-t", meaning, T, value=0)
            scrubber = reverse_scrubber("reverse-t")
            export = gr.Button("Export GIF of this run", size="sm")
            gif = GifExport.create("x_t | x̂₀ over the run (GIF)", height=260)
    # the API's images (the page draws its frames in the scrubber)
    live_xt, live_x0, final = (gr.Image(visible=False, format="png") for _ in range(3))
    copies = nearest.create_section(demo, inputs.model)  # each sample beside its nearest training image
    race.create_sections(demo, inputs.model, T, inputs.class_choice, inputs.guidance, inputs.guidance_options)
    sdedit_section(inputs.model, T)

    # the estimate follows every control; where the model or the class sets others first (class and w; the batch),
    # it comes after them (run beside them, it read their old values and could land last: "on 4 images" under "one
    # of each" with guidance, on a fresh page)
    # every estimate in one queue of one at a time (milliseconds each): its answers land in the order they were
    # asked, so the one after a run (read as the run ended) never lands after one asked for since (w set to 1 right
    # after a run showed the run's guided estimate, seen under load)
    estimate_now = dict(
        fn=cb.estimate_runtime,
        inputs=inputs.plan,
        outputs=estimate,
        show_progress="hidden",
        api_visibility="private",
        concurrency_id="reverse-estimate",
        concurrency_limit=1,
    )
    plan_controls = (
        inputs.sampler,
        inputs.steps,
        inputs.eta,
        inputs.batch,
        inputs.guidance,
        *inputs.guidance_options,
        inputs.guidance_per_class,
    )
    listen([c.change for c in plan_controls], **estimate_now)
    # what follows the model, as the page loads and as the model changes: each one event for both triggers, run in
    # their order, so that a slow answer for the model the page opened on never lands after one for a model picked
    # since (two events ran side by side: the class of one model beside the other, seen under load). The class
    # controls and the model's own steps and batch (app/model_defaults.py) in one answer, so the estimate their
    # change triggers reads both; a listed model not loaded yet (a Hub model, minutes of download) shows its steps,
    # batch and estimate at once, from its measured figures
    conditioning = [
        inputs.class_choice,
        inputs.guidance,
        inputs.guidance_extras,
        *inputs.guidance_options,
        inputs.guidance_per_class,
    ]
    steps_and_batch = [inputs.steps, inputs.batch]
    own_defaults = [*steps_and_batch, inputs.sampler]  # a model's own steps, batch and sampler
    preview = [inputs.model, inputs.sampler], [*steps_and_batch, estimate]
    on_model(demo, inputs.model, cb.listed_model_preview, *preview, show_progress="hidden")
    follow = on_model(demo, inputs.model, cb.model_controls, inputs.model, [*conditioning, *own_defaults])
    follow.then(**estimate_now)
    listen(inputs.class_choice.change, cb.batch_control, [inputs.model, inputs.class_choice], inputs.batch).then(
        **estimate_now
    )
    # the interval and rescale act on guided steps only: disabled, saying why, under the class 'any' or at w = 0, 1
    listen(
        [c.change for c in (inputs.class_choice, inputs.guidance, inputs.guidance_per_class)],
        cb.guidance_extras_controls,
        [inputs.class_choice, inputs.guidance, inputs.guidance_per_class, inputs.model],
        inputs.guidance_options,
        show_progress="hidden",
    )
    # under the per-class box the slider shows the w the run takes (a class's own, or the model's for a grid); the
    # value set so is no hand's move (a .change, not an .input): the box stays ticked. One event for both triggers,
    # so its answers land in the order asked
    listen(
        [inputs.class_choice.change, inputs.guidance_per_class.change],
        cb.per_class_w,
        [inputs.model, inputs.class_choice, inputs.guidance_per_class],
        inputs.guidance,
        show_progress="hidden",
    )
    # w moved by hand means one w for every class
    inputs.guidance.input(
        cb.one_w_for_all, None, inputs.guidance_per_class, show_progress="hidden", api_visibility="private"
    )
    listen(inputs.sampler.change, cb.sampler_help, [inputs.sampler, inputs.model], inputs.sampler)
    # a model with a learned Σ_θ samples with it by default
    on_model(demo, inputs.model, cb.variance_controls, inputs.model, inputs.variance)
    follow_model_T(inputs.model, t)
    outputs = {"x_t": live_xt, "x0_hat": live_x0, "status": status, "state": state, "t": t, "result": final}
    # the page's run streams the scrubber's frames (and no images); the API's run leaves them out (hidden trigger)
    page_outputs = {"status": status, "state": state, "t": t, "scrubber": scrubber}
    page_run = by_name(cb.reverse_generate, page_outputs, in_page=True)
    run = generate.click(
        inputs=inputs.all, **page_run, api_visibility="private", show_progress_on=status, **COMPUTE_QUEUE
    )  # the progress bar on the status line only: the scrubber paints the run below it, undimmed
    run.then(**estimate_now)
    copies.follow(state, run)
    # an export that failed before this run ("Generate first") leaves Error badges on the GIF's boxes: a new run
    # clears them (the boxes keep what they show)
    run.then(
        lambda: (gr.skip(), gr.skip()), None, [gif.view, gif.file], show_progress="hidden", api_visibility="private"
    )
    # /reverse_frame, for the API: in the page the scrubber draws every frame (hidden outputs)
    api_only = gr.Button(visible=False)
    api_frames = [gr.Image(visible=False, format="png") for _ in range(4)]
    api_run = by_name(cb.reverse_generate, outputs, in_page=False)
    api_only.click(inputs=inputs.all, **api_run, api_name="reverse_generate", **COMPUTE_QUEUE)
    api_only.click(cb.reverse_frame, [state, t], [*api_frames, gr.Markdown(visible=False)], api_name="reverse_frame")
    demo.load(cb.open_with_default_run, None, scrubber, api_visibility="private", show_progress="hidden")
    # Stop asks the session's run to end after its step (it then says so, with its frames to scrub): unqueued, so it
    # is not waiting behind the run; Generate notes the run as waiting (unqueued too), so a Stop before it starts
    # ends it after its first step instead of letting it run for nobody
    generate.click(cb.note_waiting, None, None, queue=False, api_visibility="private")
    stop.click(cb.request_stop, None, None, queue=False, api_visibility="private")
    gif.wire(export, cb.reverse_gif, state, session_files, api_name="reverse_gif")
