"""Tab "Forward process": noise any image step by step under a chosen β schedule."""

from __future__ import annotations

import gradio as gr

from app import callbacks as cb
from app import settings
from app.rendering import LATEX_DELIMITERS

IMAGE = dict(format="png", elem_classes="pixelated", interactive=False, buttons=["download"], height=220)


def create_tab(demo: gr.Blocks, session_files: gr.State) -> None:
    state = gr.State(None, time_to_live=settings.SESSION_TTL_S)
    gr.Markdown(
        "Pick an image and a schedule, then scrub **t**: every panel is computed in closed form, "
        "$x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\epsilon$, from the same fixed "
        "$x_0$ and $\\epsilon$, so nothing flickers and no model runs.",
        latex_delimiters=LATEX_DELIMITERS,
    )
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            upload = gr.File(label="Image (upload)", file_types=["image"], file_count="single", height=110)
            gr.Examples(cb.examples(), inputs=[upload], label="Examples (see app/assets/LICENSES.md)")
            x0_view = gr.Image(label="x₀ as the model sees it, in [−1, 1]", **{**IMAGE, "height": 180})
        with gr.Column(scale=1, min_width=260):
            schedule = gr.Dropdown(list(cb.SCHEDULES), value="linear", label="β schedule")
            T = gr.Number(1000, label="T (steps)", precision=0, minimum=1, maximum=settings.MAX_T)
            with gr.Row():
                beta_start = gr.Number(1e-4, label="β start", minimum=0, maximum=0.999)
                beta_end = gr.Number(0.02, label="β end", minimum=0, maximum=0.999)
            with gr.Row():
                seed = gr.Number(0, label="Seed (fixes ε)", precision=0, minimum=0, maximum=settings.MAX_SEED)
                resolution = gr.Dropdown(list(settings.RESOLUTIONS), value=64, label="Working resolution")
    with gr.Row():
        t = gr.Slider(
            0, settings.MAX_T, value=0, step=1, label="t: noising steps applied (0 = clean image, T = noise)"
        )
    with gr.Row():
        play = gr.Button("▶ Play", size="sm")
        pause = gr.Button("❚❚ Pause", size="sm")
        gif_button = gr.Button("Export GIF", size="sm")
    timer = gr.Timer(0.1, active=False)
    with gr.Row():
        x_t = gr.Image(label="x_t", **IMAGE)
        eps = gr.Image(label="ε ~ N(0, I), fixed (±3σ shown)", **IMAGE)
        signal = gr.Image(label="signal √ᾱ_t·x₀", **IMAGE)
        noise = gr.Image(label="noise √(1−ᾱ_t)·ε (±3 shown)", **IMAGE)
    with gr.Row():
        curves = gr.Image(label="β_t, ᾱ_t and log SNR(t), cursor at t", format="png", interactive=False, scale=3)
        values = gr.Markdown()
    with gr.Accordion("Markov chain vs. closed form", open=False):
        gr.Markdown(
            "The chain applies $q(x_t \\mid x_{t-1}) = \\mathcal N(\\sqrt{1-\\beta_t}\\,x_{t-1}, \\beta_t I)$ "
            "t times with fresh noise each step; the closed form jumps there at once. Same distribution, "
            "different pixels (unless the noise were shared).",
            latex_delimiters=LATEX_DELIMITERS,
        )
        chain_button = gr.Button("Run the chain to the slider's t")
        with gr.Row():
            chain_img = gr.Image(label="x_t by the Markov chain", **IMAGE)
            closed_img = gr.Image(label="x_t in closed form", **IMAGE)
        chain_text = gr.Markdown()
    with gr.Accordion("Compare schedules", open=False):
        compare_button = gr.Button("Compare every schedule at the slider's t")
        compare_gallery = gr.Gallery(label="Same x₀, same ε, same t", columns=4, height=220, format="png")
        compare_plot = gr.Image(label="ᾱ_t of each schedule", format="png", interactive=False)
    with gr.Accordion("Export (GIF)", open=False) as export_box, gr.Row():
        gif_view = gr.Image(label="Forward process (GIF)", format="gif", interactive=False, height=220)
        gif_file = gr.File(label="Download the GIF")
    api_button = gr.Button(visible=False)
    api_frame = gr.Image(visible=False, format="png")

    setup_inputs = [upload, schedule, T, beta_start, beta_end, seed, resolution]
    scrub_outputs = [x_t, signal, noise, curves, values]
    scrub = dict(
        fn=cb.forward_scrub, inputs=[state, t], outputs=scrub_outputs, show_progress="hidden", concurrency_limit=None
    )
    # public events first: gradio suffixes the api_name of later events that reuse a function
    # a slider move skips the queue: it is a sub-millisecond lookup, and the queue's round trip would dominate it
    t.change(**scrub, api_name="forward_scrub", trigger_mode="always_last", queue=False)
    api_button.click(cb.forward_frame, [*setup_inputs, t], api_frame, api_name="forward_frame")
    api_button.click(cb.forward_setup, setup_inputs, [state, x0_view, eps, t], api_name="forward_setup")
    for component in setup_inputs:
        component.change(
            cb.forward_setup, setup_inputs, [state, x0_view, eps, t], api_visibility="private", show_progress="hidden"
        ).then(**scrub, api_visibility="private")
    play.click(lambda: gr.Timer(active=True), None, timer, api_visibility="private")
    pause.click(lambda: gr.Timer(active=False), None, timer, api_visibility="private")
    timer.tick(cb.play_tick, [t, T], t, show_progress="hidden", api_visibility="private", concurrency_limit=None)
    chain_button.click(
        cb.forward_markov_chain, [state, t, seed], [chain_img, closed_img, chain_text], api_name="forward_markov_chain"
    )
    compare_button.click(cb.forward_compare, [state, t], [compare_gallery, compare_plot], api_name="forward_compare")
    gif_button.click(lambda: gr.Accordion(open=True), None, export_box, api_visibility="private").then(
        cb.forward_gif, [state, session_files], [gif_view, gif_file, session_files], api_name="forward_gif"
    )
    demo.load(cb.forward_setup, setup_inputs, [state, x0_view, eps, t], api_visibility="private").then(
        **scrub, api_visibility="private"
    )
