"""Tab "Reverse process": a trained UNet denoises pure noise into images, step by step, and the slider scrubs it."""

from __future__ import annotations

import gradio as gr

from app import callbacks as cb
from app import models, settings

IMAGE = dict(format="png", elem_classes="pixelated", interactive=False, buttons=["download"], height=260)


def model_choices() -> list[tuple[str, str]]:
    choices = []
    for name, entry in models.registry().items():
        reason = models.availability(entry)
        choices.append((f"{name} (unavailable offline)" if reason else name, name))
    return choices


def create_tab(demo: gr.Blocks, session_files: gr.State) -> None:
    state = gr.State(None, time_to_live=settings.SESSION_TTL_S)
    choices = model_choices()
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            model = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="Model")
            sampler = gr.Radio(list(cb.SAMPLERS), value=cb.SAMPLERS[1], label="Sampler")
            steps = gr.Slider(1, settings.MAX_STEPS, value=100, step=1, label="Steps N (respaced / DDIM)")
            eta = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="η (DDIM: 0 deterministic, 1 = DDPM's β̃)")
            variance = gr.Radio(list(cb.VARIANCE_TYPES), value=next(iter(cb.VARIANCE_TYPES)), label="Σ_t")
            clip = gr.Checkbox(True, label="Clip x̂₀ to [−1, 1]")
            with gr.Row():
                seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=settings.MAX_SEED)
                batch = gr.Slider(1, settings.MAX_BATCH, value=4, step=1, label="Batch (grid)")
            estimate = gr.Markdown()
            with gr.Row():
                generate = gr.Button("Generate", variant="primary")
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=2):
            status = gr.Markdown("Press **Generate**: frames stream while the model denoises.")
            with gr.Row():
                live_xt = gr.Image(label="x_t (live)", **IMAGE)
                live_x0 = gr.Image(label="x̂₀, the model's guess of the clean image (live)", **IMAGE)
                final = gr.Image(label="Result x₀", **IMAGE)
    gr.Markdown("### Scrub the recorded run")
    t = gr.Slider(0, settings.MAX_T - 1, value=0, step=1, label="t (after a run: the nearest recorded step)")
    with gr.Row():
        play = gr.Button("▶ Play", size="sm")
        pause = gr.Button("❚❚ Pause", size="sm")
        gif_button = gr.Button("Export GIF", size="sm")
    timer = gr.Timer(0.1, active=False)
    caption = gr.Markdown()
    with gr.Row():
        xt_view = gr.Image(label="x_t", **IMAGE)
        x0_view = gr.Image(label="x̂₀ = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t", **IMAGE)
        eps_view = gr.Image(label="ε̂, the predicted noise (±3σ)", **IMAGE)
        curves = gr.Image(label="β_t, ᾱ_t, log SNR(t)", format="png", interactive=False)
    with gr.Accordion("Export (GIF)", open=False) as export_box, gr.Row():
        gif_view = gr.Image(label="x_t | x̂₀ over the run (GIF)", format="gif", interactive=False, height=260)
        gif_file = gr.File(label="Download the GIF")

    with gr.Accordion("Noise and denoise your image (SDEdit)", open=False):
        gr.Markdown(
            "Your image is noised in closed form to t, then the model denoises from t. Small t keeps the image; "
            "large t keeps only its coarse layout, then nothing: the model invents the rest."
        )
        with gr.Row():
            with gr.Column():
                sd_upload = gr.File(label="Image", file_types=["image"], height=110)
                gr.Examples(cb.examples(), inputs=[sd_upload])
                sd_t = gr.Slider(0, settings.MAX_T - 1, value=400, step=1, label="t to noise to")
                sd_steps = gr.Slider(1, 200, value=40, step=1, label="Denoising steps (respaced)")
                sd_seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=settings.MAX_SEED)
                sd_button = gr.Button("Noise and denoise")
            with gr.Column(scale=2):
                sd_input = gr.Image(label="x₀ in the model's channels and size", **IMAGE)
                sd_gallery = gr.Gallery(label="What survives as t grows", columns=6, format="png")

    plan = [model, sampler, steps, eta, batch]
    for component in plan:
        component.change(cb.estimate_runtime, plan, estimate, show_progress="hidden", api_visibility="private")
    demo.load(cb.estimate_runtime, plan, estimate, api_visibility="private")
    run = generate.click(
        cb.reverse_generate,
        [model, sampler, steps, eta, variance, clip, seed, batch],
        [live_xt, live_x0, status, state, t, final],
        api_name="reverse_generate",
        concurrency_limit=settings.SAMPLING_CONCURRENCY,
        concurrency_id="sampling",
    )
    scrub = dict(
        fn=cb.reverse_frame,
        inputs=[state, t],
        outputs=[xt_view, x0_view, eps_view, curves, caption],
        show_progress="hidden",
        concurrency_limit=None,
    )
    t.change(**scrub, api_name="reverse_frame", trigger_mode="always_last", queue=False)  # see tab_forward
    run.then(**scrub, api_visibility="private")
    stop.click(None, None, None, cancels=[run], api_visibility="private")
    play.click(lambda: gr.Timer(active=True), None, timer, api_visibility="private")
    pause.click(lambda: gr.Timer(active=False), None, timer, api_visibility="private")
    timer.tick(
        cb.reverse_play_tick, [state, t], t, show_progress="hidden", api_visibility="private", concurrency_limit=None
    )
    gif_button.click(lambda: gr.Accordion(open=True), None, export_box, api_visibility="private").then(
        cb.reverse_gif, [state, session_files], [gif_view, gif_file, session_files], api_name="reverse_gif"
    )
    model.change(
        lambda name: gr.update(maximum=cb.model_num_timesteps(name) - 1), model, sd_t, api_visibility="private"
    )
    sd_button.click(
        cb.sdedit,
        [model, sd_upload, sd_t, sd_steps, sd_seed],
        [sd_input, sd_gallery],
        api_name="sdedit",
        concurrency_limit=settings.SAMPLING_CONCURRENCY,
        concurrency_id="sampling",
    )
