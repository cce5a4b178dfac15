"""Loss tab handler: the variational bound's terms over t for one image, and its total in bits/dim."""

from __future__ import annotations

import gradio as gr
import torch

from app import rendering, settings
from app.images import to_model_tensor
from app.plans import check_work
from app.serving.compute_slots import compute_slot, gpu, stoppable
from app.validation import check_int, check_model, open_image
from pipelines.imports import imported
from pipelines.trajectory import evenly_spread


@gpu
def elbo_terms(model_name, image, num_points, seed, progress=gr.Progress(track_tqdm=True)):
    """The bound's per-timestep terms and L_simple for one image, plotted over the paper's t (t = 1 is L_0, the
    decoder; the tables' index is t − 1), and the image's total in bits/dim. A UNet call at a time: a cancelled
    request stops."""
    objective = imported("pipelines.objective")  # the model side, after start-up
    pipe = check_model(model_name)
    num_points = check_int("Number of timesteps", num_points, 2, 200)
    seed = check_int("Seed", seed, 0, settings.MAX_SEED)
    check_work(pipe, 2 * num_points + 1, 1)
    c, h, _ = pipe.sample_shape
    with compute_slot():
        x0 = to_model_tensor(open_image(image), h, c).unsqueeze(0)
        x0 = objective.quantize(x0).to(pipe.device)  # the decoder's 256 bins
    T = pipe.scheduler.config.num_train_timesteps
    indices = evenly_spread(T - 1, num_points)
    generator = torch.Generator().manual_seed(seed)
    unet, scheduler = pipe.unet, pipe.scheduler
    terms = yield from stoppable(objective.iter_per_timestep_terms(unet, scheduler, x0, indices, generator), 2)
    estimate = yield from stoppable(objective.iter_elbo_bpd(unet, scheduler, x0, num_points, generator), 2)
    summary = (
        f"**Variational bound for this image: {estimate.mean:.3f} bits/dim** (stratified Monte-Carlo over "
        f"{num_points} timesteps, unbiased): L_T = {estimate.prior.mean().item():.2e}, "
        f"L_0 = {estimate.decoder.mean().item():.3f}, Σ L_(t−1) ≈ {estimate.diffusion.mean().item():.3f}."
    )
    yield rendering.png_output(rendering.figure_elbo_terms(terms)), summary
