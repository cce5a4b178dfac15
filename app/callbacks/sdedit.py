"""SDEdit handler (reverse tab): noise an uploaded image to t in closed form, then let the model denoise it.

It runs as a generator that yields between denoising steps: when the client cancels or goes away, gradio stops
asking for the next step, so the work stops within a step and its concurrency slot serves someone else.
"""

from __future__ import annotations

import time

import gradio as gr
import torch

from app import rendering, settings
from app.images import to_model_tensor, upload_note
from app.plans import check_work
from app.rendering import grid_image
from app.serving.compute_slots import gpu, in_compute_slots
from app.validation import check_int, check_model, numerical_faults_as_errors, open_image
from pipelines.schedules import paper_t_to_index


@gpu
def sdedit(model_name, image, t_start, steps, seed, progress=gr.Progress(track_tqdm=True)):
    """Noise an image to t in closed form, then let the model denoise from t (SDEdit); for t = 10 %, 30 %, … 90 % of
    T too, to show what survives as t grows. ``t_start`` is the paper's t, 1 … T."""
    pipe = check_model(model_name)
    T = pipe.scheduler.config.num_train_timesteps
    t_start = check_int("t", t_start, 1, T)
    steps = check_int("Steps", steps, 1, settings.MAX_STEPS)
    seed = check_int("Seed", seed, 0, settings.MAX_SEED)
    sweep = sorted({t_start, *(max(1, round(f * T)) for f in (0.1, 0.3, 0.5, 0.7, 0.9))})
    check_work(pipe, sum(min(steps, t) for t in sweep), 1)
    c, h, _ = pipe.sample_shape
    pil = open_image(image)
    x0 = to_model_tensor(pil, h, c).unsqueeze(0).to(pipe.device)
    # its label says what became of the upload (a non-square one is centre-cropped)
    x0_view = gr.update(
        value=rendering.png_output(rendering.image_to_uint8(x0[0].cpu())),
        label=f"x₀: {upload_note(pil, h)}",
    )
    gallery, last_yield = [], time.perf_counter()
    for t in sweep:
        generator = torch.Generator(device=pipe.device).manual_seed(seed)
        noised, result = None, None
        with numerical_faults_as_errors():
            # the pipeline starts at diffusers' index of t, i.e. from x_t
            run = pipe.iter_trajectory(
                image=x0, start_timestep=paper_t_to_index(t), num_inference_steps=min(steps, t), generator=generator
            )
            for step in in_compute_slots(run):
                noised = step.sample if noised is None else noised
                result = step.prev_sample
                if time.perf_counter() - last_yield > settings.STREAM_EVERY_S:
                    last_yield = time.perf_counter()
                    yield gr.skip(), gr.skip()  # a point where a cancelled request stops
        mark = " (chosen)" if t == t_start else ""
        gallery.append((grid_image(noised), f"x_t at t = {t}{mark}"))
        gallery.append((grid_image(result), f"denoised from t = {t}{mark}"))
        yield x0_view, list(gallery)
