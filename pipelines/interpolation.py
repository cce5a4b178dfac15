"""Interpolation between two samples of a DDPM: move x_T between two seeds and sample each point deterministically.

A Gaussian x_T ~ N(0, I) in d dimensions has norm ≈ √d. Spherical interpolation (slerp, Shoemake 1985) keeps that
norm at every point between two such samples; linear interpolation does not: halfway between two independent
samples its norm is ≈ √(d/2), a point the model never saw at t = T, which it denoises to a washed-out, low-contrast
image. Interpolating the samples' pixels instead (a cross-fade) passes through images that are no sample at all.
A deterministic sampler (DDIM with η = 0, or an ODE solver) makes x₀ a function of x_T, so nearby x_T give nearby x₀.
"""

from __future__ import annotations

import contextlib
import threading

import torch

METHODS = ("slerp", "lerp")


def slerp(x0: torch.Tensor, x1: torch.Tensor, weight: float) -> torch.Tensor:
    """Spherical interpolation of each pair of images (B, …) along the great circle between them: weight 0 is x0,
    1 is x1. Falls back to linear interpolation where the two are (nearly) parallel."""
    a, b = x0.flatten(1).double(), x1.flatten(1).double()
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    theta = torch.arccos(cos.clamp(-1.0, 1.0))[:, None]
    sin = torch.sin(theta)
    parallel = sin.abs() < 1e-6
    w0 = torch.where(parallel, 1.0 - weight, torch.sin((1.0 - weight) * theta) / torch.where(parallel, 1.0, sin))
    w1 = torch.where(
        parallel, torch.full_like(theta, weight), torch.sin(weight * theta) / torch.where(parallel, 1.0, sin)
    )
    return (w0 * a + w1 * b).reshape(x0.shape).to(x0.dtype)


def lerp(x0: torch.Tensor, x1: torch.Tensor, weight: float) -> torch.Tensor:
    """Linear interpolation (1 − weight)·x0 + weight·x1."""
    return torch.lerp(x0, x1, weight)


def interpolation_weights(num_points: int) -> list[float]:
    """``num_points`` evenly spaced weights from 0 to 1, both ends included."""
    if isinstance(num_points, bool) or not isinstance(num_points, int) or num_points < 2:
        raise ValueError(f"num_points must be an integer of at least 2, got {num_points!r}.")
    return [i / (num_points - 1) for i in range(num_points)]


def interpolated_latents(x_a: torch.Tensor, x_b: torch.Tensor, num_points: int, method: str = "slerp") -> torch.Tensor:
    """(num_points, C, H, W): x_T at each weight between one x_T (1, C, H, W) and another, by ``method``."""
    if method not in METHODS:
        raise ValueError(f"Unknown interpolation {method!r}; choose one of {', '.join(METHODS)}.")
    combine = slerp if method == "slerp" else lerp
    return torch.cat([combine(x_a, x_b, w) for w in interpolation_weights(num_points)])


def crossfade(image_a: torch.Tensor, image_b: torch.Tensor, num_points: int) -> torch.Tensor:
    """(num_points, C, H, W): the pixels of two images (1, C, H, W) mixed linearly, for comparison."""
    return torch.cat([lerp(image_a, image_b, w) for w in interpolation_weights(num_points)])


@contextlib.contextmanager
def mixed_class_embeddings(unet, label_a: int, label_b: int, weights: list[float], null_label: int):
    """While inside, a class-conditional UNet asked for ``label_a`` in row i (of a batch of len(weights), or of its
    conditional half in a guided call) sees the mix (1 − wᵢ)·e(a) + wᵢ·e(b) of the two classes' embeddings; the null
    label ∅ is left as it is. Interpolates between two classes as it interpolates x_T.

    Only calls made on the thread that entered are mixed: a UNet shared by a server's threads serves the others'
    calls as it is, while the hook is registered (enter around each step, on the thread that computes it)."""
    w = torch.tensor(weights, dtype=torch.float32)[:, None]
    owner = threading.get_ident()

    def mix(module, args, output):
        if threading.get_ident() != owner:
            return None  # another thread's call: its output as it is
        labels = args[0]
        rows = labels != null_label
        if int(rows.sum()) != len(weights):
            raise ValueError(f"Expected {len(weights)} conditional rows, got {int(rows.sum())}.")
        table = module.weight
        mixed = (1 - w.to(table.dtype)) * table[label_a] + w.to(table.dtype) * table[label_b]
        output = output.clone()
        output[rows] = mixed.to(output.dtype)
        return output

    handle = unet.class_embedding.register_forward_hook(mix)
    try:
        yield
    finally:
        handle.remove()
