"""Tab "Forward process": noise any image step by step under a chosen β schedule."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from app import settings
from app.callbacks import forward as cb
from app.images import examples
from app.rendering import LATEX_DELIMITERS
from app.tabs.scrubbers import forward_scrubber, timestep_slider
from app.tabs.widgets import image_panel

STATIC = Path(__file__).resolve().parent.parent / "static"

INTRO = (
    "Pick an image and a schedule, then scrub **t**: every panel is computed in closed form, "
    "$x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\epsilon$, from the same fixed "
    "$x_0$ and $\\epsilon$, so nothing flickers and no model runs."
)
CHAIN_NOTE = (
    "The chain applies $q(x_t \\mid x_{t-1}) = \\mathcal N(\\sqrt{1-\\beta_t}\\,x_{t-1}, \\beta_t I)$ "
    "t times with fresh noise each step; the closed form jumps there at once. Same distribution, "
    "different pixels (unless the noise were shared)."
)


@dataclass
class Setup:
    """The inputs that define a forward view; changing any of them sets it up anew."""

    upload: gr.File
    schedule: gr.Dropdown
    T: gr.Number
    beta_start: gr.Number
    beta_end: gr.Number
    seed: gr.Number
    resolution: gr.Dropdown
    x0_view: gr.Image
    x0_note: gr.Markdown

    @property
    def inputs(self) -> list:
        return [self.upload, self.schedule, self.T, self.beta_start, self.beta_end, self.seed, self.resolution]


def setup_inputs() -> Setup:
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            upload = gr.File(label="Image (upload)", file_types=["image"], file_count="single", height=110)
            gr.Examples(examples(), inputs=[upload], label="Examples (see app/assets/LICENSES.md)")
            x0_view = image_panel("x₀ as the model sees it, in [−1, 1]", height=180)
            x0_note = gr.Markdown(elem_id="forward-x0-note")
        with gr.Column(scale=1, min_width=260):
            schedule = gr.Dropdown(list(cb.SCHEDULES), value="linear", label="β schedule")
            T = gr.Number(1000, label="T (steps)", precision=0, minimum=1, maximum=settings.MAX_T)
            with gr.Row() as beta_range:  # shown for the schedules that take a β range (not cosine)
                beta_start = gr.Number(1e-4, label="β start", minimum=0, maximum=0.999)
                beta_end = gr.Number(0.02, label="β end", minimum=0, maximum=0.999)
            show_range = lambda name: gr.Row(visible=name in cb.RANGED_SCHEDULES)
            # never deferred (trigger_mode "multiple"): the set-up is this trigger's one deferring listener
            # (tests/test_widgets.py)
            schedule.change(
                show_range, schedule, beta_range, queue=False, trigger_mode="multiple", api_visibility="private"
            )
            with gr.Row():
                seed = gr.Number(0, label="Seed (fixes ε)", precision=0, minimum=0, maximum=settings.MAX_SEED)
                resolution = gr.Dropdown(list(settings.RESOLUTIONS), value=64, label="Working resolution")
    return Setup(upload, schedule, T, beta_start, beta_end, seed, resolution, x0_view, x0_note)


def markov_chain_section(state: gr.State, t: gr.Slider, seed: gr.Number) -> None:
    with gr.Accordion("Markov chain vs. closed form", open=False):
        gr.Markdown(CHAIN_NOTE, latex_delimiters=LATEX_DELIMITERS)
        button = gr.Button("Run the chain to the slider's t")
        with gr.Row():
            chain = image_panel("x_t by the Markov chain")
            closed = image_panel("x_t in closed form")
        text = gr.Markdown()
    button.click(cb.forward_markov_chain, [state, t, seed], [chain, closed, text], api_name="forward_markov_chain")


def compare_section(state: gr.State, t: gr.Slider) -> None:
    with gr.Accordion("Compare schedules", open=False):
        button = gr.Button("Compare every schedule at the slider's t")
        # every thumbnail whole and pixel-sharp, its caption under it (app/static/galleries.css), no inner scroll box
        gallery = gr.Gallery(
            label="Same x₀, same ε, same t", columns=4, height="auto", object_fit="contain", format="png"
        )
        gr.Markdown("ᾱ_t of each schedule over t; red: the slider's t.")
        plot = gr.Image(show_label=False, format="png", interactive=False, elem_classes="plot")
    button.click(cb.forward_compare, [state, t], [gallery, plot], api_name="forward_compare")


def gif_export(state: gr.State, session_files: gr.State) -> None:
    """Export GIF, with its progress and result right under the button (not in a closed accordion further down)."""
    export = gr.Button("Export GIF (t = 0 … T)", size="sm", elem_id="forward-export")
    with gr.Row(visible=False, elem_id="forward-gif-row") as row:
        view = gr.Image(
            label="Forward process (GIF)", format="gif", interactive=False, height=220, elem_classes="pixelated"
        )
        file = gr.File(label="Download the GIF")
    export.click(lambda: gr.Row(visible=True), None, row, api_visibility="private", queue=False).then(
        cb.forward_gif, [state, session_files], [view, file, session_files], api_name="forward_gif"
    )


def galleries_css() -> gr.HTML:
    """The page's gallery style (every tab's galleries: whole, pixel-sharp thumbnails with their captions under
    them), put in the document's <head> once: the forward tab is the page's first, so it is mounted on arrival."""
    return gr.HTML(head=f"<style>{(STATIC / 'galleries.css').read_text()}</style>", elem_id="galleries-css")


def create_tab(demo: gr.Blocks, session_files: gr.State) -> None:
    state = gr.State(None, time_to_live=settings.SESSION_TTL_S)
    gr.Markdown(INTRO, latex_delimiters=LATEX_DELIMITERS)
    setup = setup_inputs()
    t = timestep_slider("forward-t", "t: noising steps applied (0 = clean image, T = noise)")
    scrubber = forward_scrubber("forward-t")
    gif_export(state, session_files)
    markov_chain_section(state, t, setup.seed)
    compare_section(state, t)
    galleries_css()  # an empty block: last, out of the way

    # The API's endpoints need events with their own inputs and outputs (hidden here: in the page the scrubber draws
    # every frame). gr.api would not do: it passes files and images through unprocessed, so /forward_frame would
    # no longer take an uploaded file and answer with a PNG.
    api_only = gr.Button(visible=False)
    api_frame, api_x_t, api_signal, api_noise, api_curves = (gr.Image(visible=False, format="png") for _ in range(5))
    api_values = gr.Markdown(visible=False)
    api_only.click(
        cb.forward_scrub,
        [state, t],
        [api_x_t, api_signal, api_noise, api_curves, api_values],
        api_name="forward_scrub",
    )
    api_only.click(cb.forward_frame, [*setup.inputs, t], api_frame, api_name="forward_frame")
    api_only.click(cb.forward_setup, setup.inputs, [state, setup.x0_view, scrubber, t], api_name="forward_setup")
    # the page's setup also takes the slider's t: a new T moves the slider's range and value together
    set_up = dict(
        fn=cb.forward_setup_in_page,
        inputs=[*setup.inputs, t],
        outputs=[state, setup.x0_view, setup.x0_note, scrubber, t],
        api_visibility="private",
    )
    for component in setup.inputs:
        if isinstance(component, gr.Number):  # typed: applied whole, on Enter or on leaving the box, not per key
            gr.on([component.submit, component.blur], **set_up, show_progress="hidden")
        else:
            component.change(**set_up, show_progress="hidden")
    demo.load(**set_up)
