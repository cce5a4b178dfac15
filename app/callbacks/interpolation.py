"""Editing tab, interpolation: a strip of samples between two seeds. x_T is interpolated along the great circle
(slerp, which keeps its norm ≈ √d) and sampled deterministically (DDIM, η = 0), beside linear interpolation of x_T
(whose norm dips towards √(d/2) halfway) and a pixel cross-fade of the two end samples (no sample at all between).
For a class-conditional model the strip holds one class, or goes from one class to another by mixing their
embeddings row by row (pipelines.interpolation.mixed_class_embeddings)."""

from __future__ import annotations

import contextlib

import gradio as gr
import torch

from app import rendering, settings
from app.callbacks.editing import one_class
from app.editing_payload import interpolation_payload
from app.plans import check_work
from app.serving.compute_slots import gpu, stoppable
from app.validation import UserError, check_int, check_model, numerical_faults_as_errors
from pipelines.interpolation import crossfade, interpolated_latents, interpolation_weights, mixed_class_embeddings
from pipelines.trajectory import frames_to_keep, to_uint8

INTERPOLATION_OUTPUTS = 4  # the slerp strip, the lerp strip, the cross-fade, the notes
STRIPS = ("slerp", "lerp")


def class_pair(pipe, class_a, class_b, guidance) -> tuple[int | None, int | None, float | None]:
    """(label a, label b, w): both None for an unconditional strip; the same label for one class."""
    label_a, w = one_class(pipe, class_a, guidance)
    label_b, _ = one_class(pipe, class_b, guidance)
    if (label_a is None) != (label_b is None):
        raise UserError("Choose a class at both ends (the same one, or two), or 'any' at both.")
    return label_a, label_b, w


def _sampled(pipe, latents, n, label_a, label_b, w, kept: list[int]):
    """DDIM (η = 0) from each row of ``latents``: the frames at the kept steps (0: x_T; n: the samples), as uint8."""
    points = latents.shape[0]
    labels = None if label_a is None else [label_a] * points
    mixing = label_a is not None and label_a != label_b and w != 0.0  # w = 0 never asks for the class
    mixed = lambda: (
        mixed_class_embeddings(pipe.unet, label_a, label_b, interpolation_weights(points), pipe.null_class_label)
        if mixing
        else contextlib.nullcontext()
    )
    run = iter(
        pipe.iter_trajectory(
            latents=latents, eta=0.0, num_inference_steps=n, class_labels=labels, guidance_scale=w, show_progress=False
        )
    )
    frames, x, t = [], latents, []
    for position in range(n + 1):
        if position == n:
            t.append(0)
        else:
            with mixed():  # entered around each step, on the thread that computes it
                step = next(run)
            t.append(step.timestep + 1)  # the paper's t of x before the step
        if position in kept:
            frames.append(to_uint8(x.detach().cpu()))
        if position < n:
            x = step.prev_sample
            yield
    return frames, x, [t[p] for p in kept]


def _interpolate(model_name, seed_a, seed_b, steps, class_a, class_b, guidance):
    pipe = check_model(model_name)
    T = pipe.scheduler.config.num_train_timesteps
    seed_a = check_int("Seed A", seed_a, 0, settings.MAX_SEED)
    seed_b = check_int("Seed B", seed_b, 0, settings.MAX_SEED)
    n = check_int("Steps", steps, 1, min(T, settings.MAX_STEPS))
    label_a, label_b, w = class_pair(pipe, class_a, class_b, guidance)
    points = settings.INTERPOLATION_POINTS
    guided = label_a is not None and w not in (0.0, 1.0)
    check_work(pipe, n, len(STRIPS) * points * (2 if guided else 1))
    shape = (1, *pipe.sample_shape)
    x_a, x_b = (
        torch.randn(shape, generator=torch.Generator().manual_seed(s)).to(pipe.device) for s in (seed_a, seed_b)
    )
    per_frame = len(STRIPS) * points * int(torch.tensor(pipe.sample_shape).prod())
    kept = frames_to_keep(n + 1, max(2, settings.INTERPOLATION_BUDGET // per_frame))
    strips, results, norms = {}, {}, {}
    with numerical_faults_as_errors():
        for method in STRIPS:
            latents = interpolated_latents(x_a, x_b, points, method)
            norms[method] = latents.flatten(1).norm(dim=1).tolist()
            latents = latents.to(dtype=pipe.unet.dtype)
            strips[method], results[method], t = yield from _sampled(pipe, latents, n, label_a, label_b, w, kept)
    ends = results["slerp"]
    fade = crossfade(ends[:1], ends[-1:], points)
    images = [rendering.png_output(strip_image(x)) for x in (results["slerp"], results["lerp"], fade)]
    notes = norm_notes(norms, int(torch.tensor(pipe.sample_shape).prod()))
    payload = lambda: interpolation_payload(t, strips, pipe.sample_shape, T, points)
    return (*images, notes), payload


def strip_image(x: torch.Tensor):
    """(P, C, H, W) in [−1, 1] → one row of P images."""
    return rendering.uint8_grid(to_uint8(x.detach().cpu()), ncols=x.shape[0])


def norm_notes(norms: dict[str, list[float]], d: int) -> str:
    """Why slerp: the norm of x_T along each strip, against √d."""
    row = lambda values: " · ".join(f"{v:.1f}" for v in values)
    return (
        f"**Why slerp.** x_T ~ N(0, I) in d = {d} dimensions has norm ≈ √d = {d**0.5:.1f}: the model only ever saw "
        f"x_T of that norm. Norm of x_T along the strip, slerp: {row(norms['slerp'])}; lerp: {row(norms['lerp'])} "
        f"(≈ √(d/2) = {(d / 2) ** 0.5:.1f} halfway, so its middle samples come out washed out). The cross-fade mixes "
        "the two end samples' pixels: a double exposure, not a sample of the model."
    )


@gpu
def interpolate(model_name, seed_a, seed_b, steps, class_a, class_b, guidance, progress=gr.Progress()):
    """A strip of 9 samples from seed A's x_T to seed B's: slerp of x_T, lerp of x_T (both sampled with DDIM η = 0),
    a pixel cross-fade of the end samples, and notes on the norms."""
    args = (model_name, seed_a, seed_b, steps, class_a, class_b, guidance)
    outputs, _ = yield from stoppable(_interpolate(*args), INTERPOLATION_OUTPUTS)
    yield outputs


@gpu
def interpolate_in_page(model_name, seed_a, seed_b, steps, class_a, class_b, guidance, progress=gr.Progress()):
    """:func:`interpolate`, then the scrubber's payload and its slider at the samples (t = 0)."""
    args = (model_name, seed_a, seed_b, steps, class_a, class_b, guidance)
    outputs, payload = yield from stoppable(_interpolate(*args), INTERPOLATION_OUTPUTS + 2)
    *strips, notes = outputs
    shown = tuple(gr.update(value=strip, visible=True) for strip in strips)  # hidden in the page until a run
    yield (*shown, notes, payload(), gr.update(value=0))
    yield (gr.skip(),) * (len(outputs) + 2)  # gradio's completion repeats the last yield: not the payload again
