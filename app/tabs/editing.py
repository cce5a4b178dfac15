"""Tab "Editing": inpainting with RePaint beside the naive method, and interpolation between two seeds (app/callbacks/
editing.py and interpolation.py). Each run is then scrubbed in the page (app/static/editing_scrubber.js)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from app import models, plans, settings
from app.callbacks import editing as cb
from app.callbacks import interpolation as interp
from app.edit_inputs import MASK_CHOICES, UPLOAD, source_choices
from app.tabs.drawing import mask_pad
from app.tabs.scrubbers import SPEEDS
from app.tabs.widgets import COMPUTE_QUEUE, follow_model_T, image_panel, listen, on_model

STATIC = Path(__file__).resolve().parent.parent / "static"
INPAINT_NOTE = (
    "**Inpainting.** Red pixels of the mask are regenerated, the rest of the image is kept. **RePaint** (Lugmayr et "
    "al. 2022) replaces the kept part by the image noised to the step's t at every step, and every *jump length* "
    "steps goes back up (adds noise again) and down, *resamplings* − 1 times, so the new part fits the kept one. "
    "The **naive** method (1 resampling) only replaces: it starts from the same x_T. Pick a Fashion-MNIST test image "
    "or upload one: it is resized to the model's size and converted to its channels."
)
INTERPOLATION_NOTE = (
    "**Interpolation.** 9 samples between seed A's x_T and seed B's, each sampled with DDIM η = 0 (deterministic: "
    "nearby x_T give nearby images). *slerp* moves x_T along the great circle, keeping its norm; *lerp* cuts "
    "straight across, where the norm dips; the *cross-fade* mixes the two end samples' pixels."
)


def _controls() -> str:
    """Play, Pause and the speed, which scrub.js's mount drives."""
    options = "".join(f'<option value="{v}"{" selected" if v == 1 else ""}>{k}</option>' for k, v in SPEEDS)
    return (
        '<div class="controls"><button class="play">▶ Play</button><button class="pause">❚❚ Pause</button>'
        f'<label>speed <select class="speed">{options}</select></label></div>'
    )


def _scrubber(slider_id: str, body: str, elem_id: str, direction: str) -> gr.HTML:
    """A scrubber of this tab (scrub.js is in the page's head); Play moves the slider up or down."""
    read = lambda name: (STATIC / name).read_text()
    return gr.HTML(
        value=None,
        html_template=(
            f'<div class="scrubber" data-slider="{slider_id}" data-direction="{direction}">{_controls()}{body}</div>'
        ),
        css_template=read("scrubber.css") + read("editing_scrubber.css"),
        js_on_load=read("editing_scrubber.js"),
        elem_id=elem_id,
    )


def _figure(name: str, caption: str) -> str:
    canvas = f'<canvas data-panel="{name}" width="8" height="8"></canvas>'
    return f"<figure>{canvas}<figcaption>{caption}</figcaption></figure>"


def inpaint_scrubber() -> gr.HTML:
    panels = "".join(
        _figure(name, caption)
        for name, caption in (
            ("repaint_xt", "RePaint: x_t"),
            ("repaint_x0", "RePaint: x̂₀, its latest guess"),
            ("naive_xt", "naive: x_t at the same t"),
            ("naive_x0", "naive: x̂₀"),
        )
    )
    plot = (
        '<figure class="plot"><canvas class="moves" width="460" height="200"></canvas>'
        "<figcaption>t against the move: the run goes down, and back up on each jump</figcaption></figure>"
    )
    hint = '<div class="caption">Run the inpainting; the slider then scrubs its moves here.</div>'
    body = f'{hint}<div class="edit-row">{panels}{plot}</div>'
    return _scrubber("inpaint-move", body, "inpaint-scrubber", "up")


def interpolation_scrubber() -> gr.HTML:
    strips = "".join(
        f'<figure class="strip"><canvas data-strip="{name}" width="8" height="8"></canvas><figcaption>{caption}'
        "</figcaption></figure>"
        for name, caption in (("slerp", "slerp of x_T, at t"), ("lerp", "lerp of x_T, at t"))
    )
    body = f'<div class="caption">Interpolate; the slider then scrubs the whole strip by t here.</div>{strips}'
    return _scrubber("interp-t", body, "interp-scrubber", "down")


def class_dropdown(label: str) -> gr.Dropdown:
    """A class of a class-conditional model (hidden for an unconditional one; its choices follow the model)."""
    return gr.Dropdown([plans.ANY_CLASS], value=plans.ANY_CLASS, label=label, visible=False, allow_custom_value=True)


def guidance_slider() -> gr.Slider:
    return gr.Slider(0.0, settings.MAX_GUIDANCE, value=1.0, step=0.25, label="Guidance w", visible=False)


def inpainting_section(demo: gr.Blocks, model: gr.Dropdown) -> tuple[gr.Dropdown, list[gr.Component]]:
    state = gr.State(None, time_to_live=settings.SESSION_TTL_S)
    gr.Markdown(INPAINT_NOTE)
    with gr.Row():
        with gr.Column(scale=1, min_width=300):
            sources = source_choices()
            source = gr.Dropdown(sources, value=sources[0], label="Image (Fashion-MNIST test set, or your upload)")
            upload = gr.File(label="Your image", file_types=["image"], height=100, visible=len(sources) == 1)
            mask_choice = gr.Radio(list(MASK_CHOICES), value=MASK_CHOICES[0], label="Mask: a preset, or paint")
            pad = mask_pad("inpaint-mask")
        with gr.Column(scale=1, min_width=280):
            steps = gr.Slider(1, settings.MAX_STEPS, value=50, step=1, label="Steps N")
            jump_length = gr.Slider(1, 50, value=10, step=1, label="Jump length (steps back up per jump)")
            jump_n_sample = gr.Slider(1, 20, value=5, step=1, label="Resamplings (1 = the naive method)")
            eta = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="η (1: DDPM's β̃, 0: deterministic)")
            seed = gr.Number(0, label="Seed (x_T: the same for both runs)", precision=0, minimum=0)
            class_choice, guidance = class_dropdown("Class (a test image's own, at first)"), guidance_slider()
            with gr.Row():
                run = gr.Button("Inpaint", variant="primary")
                stop = gr.Button("Stop", variant="stop")
    status = gr.Markdown()
    with gr.Row():
        views = [
            image_panel(label, height=150, min_width=140)  # four abreast, two on a phone
            for label in ("Original", "Mask (grey: new)", "RePaint", "Naive")
        ]
    move = gr.Slider(0, 100, value=0, step=1, label="Move of the RePaint run (0 = x_T; right end = the result)",
                     elem_id="inpaint-move", interactive=True)  # fmt: skip
    scrubber = inpaint_scrubber()

    listen(source.change, lambda s: gr.update(visible=s == UPLOAD), source, upload)
    pad_inputs = [model, source, upload, mask_choice]
    listen([c.change for c in pad_inputs], cb.mask_pad_value, pad_inputs, pad, show_progress="hidden")
    demo.load(cb.mask_pad_value, pad_inputs, pad, api_visibility="private")
    inputs = [model, source, upload, pad, steps, jump_length, jump_n_sample, eta, seed, class_choice, guidance]
    outputs = [*views, status, state]
    api_only = gr.Button(visible=False)
    api_only.click(cb.inpaint, inputs, outputs, api_name="inpaint", **COMPUTE_QUEUE)
    frame_views = [
        gr.Image(visible=False, format="png"),
        gr.Image(visible=False, format="png"),
        gr.Markdown(visible=False),
    ]
    any_move = gr.Number(visible=False, precision=0, minimum=0)  # the slider's maximum is the page's last run's
    api_only.click(cb.inpaint_frame, [state, any_move], frame_views, api_name="inpaint_frame")
    page = run.click(cb.inpaint_in_page, inputs, [*outputs, scrubber, move], api_visibility="private", **COMPUTE_QUEUE)
    stop.click(None, None, None, cancels=[page], api_visibility="private")
    return source, [class_choice, guidance]


def interpolation_section(model: gr.Dropdown, T: int) -> list[gr.Component]:
    gr.Markdown(INTERPOLATION_NOTE)
    with gr.Row():
        seed_a = gr.Number(0, label="Seed A", precision=0, minimum=0)
        seed_b = gr.Number(1, label="Seed B", precision=0, minimum=0)
        steps = gr.Slider(1, 200, value=20, step=1, label="DDIM steps")
    with gr.Row():
        class_a = class_dropdown("Class at A")
        class_b = class_dropdown("Class at B (the same as A: one class)")
        guidance = guidance_slider()
    with gr.Row():
        run = gr.Button("Interpolate", variant="primary")
        stop = gr.Button("Stop", variant="stop")
    strips = [  # shown once a run has made them (empty boxes before it said nothing)
        image_panel("slerp of x_T, sampled (DDIM η = 0)", height=110, visible=False),
        image_panel("lerp of x_T, sampled (DDIM η = 0)", height=110, visible=False),
        image_panel("cross-fade of the two end samples' pixels", height=110, visible=False),
    ]
    notes = gr.Markdown()
    t = gr.Slider(0, T, value=T, step=1, label="t (0 = the samples, T = noise)", elem_id="interp-t", interactive=True)
    scrubber = interpolation_scrubber()
    inputs = [model, seed_a, seed_b, steps, class_a, class_b, guidance]
    gr.Button(visible=False).click(
        interp.interpolate, inputs, [*strips, notes], api_name="interpolate", **COMPUTE_QUEUE
    )
    page = run.click(
        interp.interpolate_in_page, inputs, [*strips, notes, scrubber, t], api_visibility="private", **COMPUTE_QUEUE
    )
    stop.click(None, None, None, cancels=[page], api_visibility="private")
    follow_model_T(model, t)
    return [class_a, class_b, guidance]


def create_tab(demo: gr.Blocks) -> None:
    model = gr.Dropdown(models.model_choices(), value=models.default_model(), label="Model")
    with gr.Accordion("Inpainting (RePaint)", open=True):
        source, inpaint_controls = inpainting_section(demo, model)
    T = models.num_timesteps(model.value) or settings.MAX_T
    with gr.Accordion("Interpolation between two seeds", open=True):
        class_a, class_b, guidance = interpolation_section(model, T)
    controls = [*inpaint_controls, class_a, class_b, guidance]
    follow = dict(fn=cb.class_of_source, inputs=[model, source], outputs=inpaint_controls[0], api_visibility="private")
    on_model(demo, model, cb.class_controls, model, controls).then(**follow)
    listen(source.change, **follow)
