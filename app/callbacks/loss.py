"""Loss tab handlers: the image the bound is measured on, and the bound's terms over t with its total in bits/dim."""

from __future__ import annotations

from functools import lru_cache

import gradio as gr
import torch

from app import rendering, settings
from app.images import to_model_tensor, upload_note
from app.plans import check_work
from app.serving.compute_slots import compute_slot, gpu, stoppable
from app.validation import UserError, check_int, check_model, open_image
from pipelines.imports import imported
from pipelines.trajectory import evenly_spread

TEST_IMAGE = 0  # Fashion-MNIST's first test image (an ankle boot): never seen in training
WHY_A_PHOTO_COSTS_MORE = (
    "Bits/dim is −log₂ p_θ(x) per pixel: an image like the training data (a test image, for a Fashion-MNIST model) "
    "is likely under the model and cheap; a photo, with textures and backgrounds it never saw, is unlikely and costs "
    "more bits."
)


@lru_cache(maxsize=4)
def _fashion_test_image(resolution: int) -> tuple[torch.Tensor, str] | None:
    """Fashion-MNIST's test image TEST_IMAGE as the models were trained on it ((1, 1, R, R) in [−1, 1]; 28 → 32 is
    a black border) and its class, or None where Debian's dataset-fashion-mnist is not installed."""
    data = imported("pipelines.training.data")
    try:
        images, labels = data.load_fashion_mnist(split="test")
    except (data.DatasetNotFoundError, OSError):
        return None
    x0 = data.uint8_to_model_range(images[TEST_IMAGE : TEST_IMAGE + 1], resolution)
    return x0, data.FASHION_MNIST_CLASSES[int(labels[TEST_IMAGE])].lower()


def measured_image(image, sample_shape: tuple[int, int, int]) -> tuple[torch.Tensor, str]:
    """x₀ (1, C, H, W) in [−1, 1] that the bound is measured on, and what it is in words: the upload (its crop said),
    or, with none, a Fashion-MNIST test image for a grayscale model (like its training data) and the default
    example otherwise."""
    c, h, _ = sample_shape
    test_image = _fashion_test_image(h) if image is None and c == 1 else None
    if test_image is not None:
        x0, name = test_image
        return x0.clone(), f"Fashion-MNIST test image #{TEST_IMAGE} ({name}), at {h}×{h} as in training"
    pil = open_image(image)
    what = "your image" if image is not None else "the example photo"
    return to_model_tensor(pil, h, c).unsqueeze(0), f"{what}: {upload_note(pil, h)}"


def elbo_input(model_name, image):
    """The image the bound will be measured on, as the model takes it, with a caption; shown before any click. A
    model that can't be loaded or an unreadable image is said in the caption (the button's event gives the error)."""
    try:
        pipe = check_model(model_name)
        with compute_slot():
            x0, what = measured_image(image, pipe.sample_shape)
    except UserError as e:
        return None, f"No image to measure yet: {e}"
    view = rendering.png_output(rendering.image_to_uint8(x0[0]))
    return view, f"**Measured:** {what}. {WHY_A_PHOTO_COSTS_MORE}"


NO_COMPARISON = "none"
# the same network with Σ fixed instead: what its Σ (learned, or the other fixed one) changes in the bound, with the
# mean μ_θ held the same (the dropdown's choices, and the variance type each measures)
SAME_MODEL_FIXED = {
    "this model, Σ fixed at β̃_t": "fixed_small",
    "this model, Σ fixed at β_t": "fixed_large",
}
SIGMA_IN_WORDS = {
    "fixed_small": "Σ fixed at $\\tilde\\beta_t$",
    "fixed_large": "Σ fixed at $\\beta_t$",
    "learned": "$\\Sigma_\\theta$ learned",
    "learned_range": "$\\Sigma_\\theta$ learned between $\\tilde\\beta_t$ and $\\beta_t$",
}


def comparison_model(pipe, model_name, compare):
    """(its name, the pipeline to compare with), or None for "none", checked to take the same images at the same T:
    the two are measured on the same x₀, timesteps and noise. One of :data:`SAME_MODEL_FIXED` is the same UNet with
    that fixed Σ (its variance outputs, if any, unused)."""
    if compare in (None, "", NO_COMPARISON) or compare == model_name:
        return None
    if compare in SAME_MODEL_FIXED:
        variance = SAME_MODEL_FIXED[compare]
        if pipe.scheduler.config.variance_type == variance:
            raise UserError(f"{model_name} fixes Σ there already: compare it with the other Σ, or with another model.")
        scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, variance_type=variance)
        name = f"{model_name}, Σ fixed at {'β̃_t' if variance == 'fixed_small' else 'β_t'}"
        return name, type(pipe)(unet=pipe.unet, scheduler=scheduler)
    other = check_model(compare)
    T, other_T = (p.scheduler.config.num_train_timesteps for p in (pipe, other))
    if pipe.sample_shape != other.sample_shape or T != other_T:
        raise UserError(
            f"{compare} can't be compared with {model_name}: the bound is compared on the same image, timesteps and "
            f"noise, so both need the same image size and T ({_shape(other)}, T = {other_T} against "
            f"{_shape(pipe)}, T = {T}). Choose a model of the same size, or none."
        )
    return compare, other


def _shape(pipe) -> str:
    c, h, w = pipe.sample_shape
    return f"{h}×{w}×{c}"


def _bound_of(objective, pipe, x0, indices, num_points, seed):
    """One model's per-t terms and its total, from the noise of ``seed``: the same ε for every model measured."""
    generator = torch.Generator().manual_seed(seed)
    unet, scheduler = pipe.unet, pipe.scheduler
    terms = yield from objective.iter_per_timestep_terms(unet, scheduler, x0, indices, generator)
    estimate = yield from objective.iter_elbo_bpd(unet, scheduler, x0, num_points, generator)
    return terms, estimate


def _summary_line(name, pipe, estimate) -> str:
    sigma = SIGMA_IN_WORDS.get(pipe.scheduler.config.variance_type, pipe.scheduler.config.variance_type)
    return (
        f"- **{name}** ({sigma}): **{estimate.mean:.3f} bits/dim**; $\\sum L_{{t-1}}$ ≈ "
        f"{estimate.diffusion.mean().item():.3f}, $L_0$ = {estimate.decoder.mean().item():.3f}, "
        f"$L_T$ = {estimate.prior.mean().item():.2e}"
    )


@gpu
def elbo_terms(model_name, image, num_points, seed, compare=NO_COMPARISON, progress=gr.Progress(track_tqdm=True)):
    """The bound's per-timestep terms and L_simple for one image (none: the model's default, see
    :func:`measured_image`), plotted over the paper's t (t = 1 is L_0, the decoder; the tables' index is t − 1),
    and the image's total in bits/dim. With ``compare`` (a second model of the same size and T), both models on the
    same x₀, timesteps and noise, side by side: a paired comparison (a fixed Σ against a learned Σ_θ, say). A UNet
    call at a time: a cancelled request stops."""
    objective = imported("pipelines.objective")  # the model side, after start-up
    pipe = check_model(model_name)
    comparison = comparison_model(pipe, model_name, compare)
    num_points = check_int("Number of timesteps", num_points, 2, 200)
    seed = check_int("Seed", seed, 0, settings.MAX_SEED)
    measured = [(model_name, pipe)] + ([comparison] if comparison is not None else [])
    check_work(pipe, len(measured) * (2 * num_points + 1), 1)
    with compute_slot():
        x0, what = measured_image(image, pipe.sample_shape)
        x0 = objective.quantize(x0)  # the decoder's 256 bins
    T = pipe.scheduler.config.num_train_timesteps
    indices = evenly_spread(T - 1, num_points)
    bounds = []
    for name, model in measured:
        terms, estimate = yield from stoppable(
            _bound_of(objective, model, x0.to(model.device), indices, num_points, seed), 2
        )
        bounds.append((name, model, terms, estimate))
    how = f"stratified Monte-Carlo over {num_points} timesteps, unbiased"
    if len(bounds) == 1:
        _, _, terms, estimate = bounds[0]
        summary = (
            f"**Variational bound for the image shown ({what}): {estimate.mean:.3f} bits/dim** ({how}): "
            f"$L_T$ = {estimate.prior.mean().item():.2e}, $L_0$ = {estimate.decoder.mean().item():.3f}, "
            f"$\\sum L_{{t-1}}$ ≈ {estimate.diffusion.mean().item():.3f}."
        )
        yield rendering.png_output(rendering.figure_elbo_terms(terms)), summary
        return
    (_, _, _, first), (other_name, _, _, second) = bounds
    difference = second.mean - first.mean
    summary = "\n".join(
        [
            f"**Variational bound for the image shown ({what}), both models on the same timesteps and noise** "
            f"({how}):",
            "",
            *(_summary_line(name, model, estimate) for name, model, _, estimate in bounds),
            "",
            f"{other_name} − {model_name}: **{difference:+.3f} bits/dim** on this image (below zero: {other_name} "
            "finds the image more likely). One image and one draw of noise; docs/LEARNED_VARIANCE.md compares the "
            "bound of a fixed and a learned Σ on 256 test images.",
        ]
    )
    series = [(name, terms) for name, _, terms, _ in bounds]
    yield rendering.png_output(rendering.figure_elbo_comparison(series)), summary
