"""Inpainting with a DDPM: RePaint (Lugmayr et al. 2022), on our scheduler's tables and any of our models.

At each reverse step t → t' (the paper's Algorithm 1):

    x_{t'}^known   = √ᾱ_{t'}·x₀ + √(1−ᾱ_{t'})·z                      (the forward process, at the step's noise level)
    x_{t'}^unknown = √ᾱ_{t'}·x̂₀ + √(1−ᾱ_{t'}−σ²)·ε̂ + σ·z             (the model's step; σ = η·√β̃, η = 1 is DDPM's)
    x_{t'}         = m ⊙ x_{t'}^known + (1 − m) ⊙ x_{t'}^unknown      (m = 1 where the image is kept)

Resampling: every ``jump_length`` steps the run goes back up by ``jump_length`` steps of q(x_{t+1} | x_t) =
N(√(1−β)·x_t, β·I) and down again, ``jump_n_sample`` − 1 times, so that the generated region harmonises with the
kept one. ``jump_n_sample`` = 1 is the naive method: replace the known region at each step, never go back.

Timesteps and noise draws are those of diffusers' ``RePaintScheduler``/``RePaintPipeline`` (tested equal for the same
seed): N steps at t_k = k·⌊T/N⌋ (its "leading" spacing, so the run starts at t = T − ⌊T/N⌋ + 1 in the paper's t),
one z per reverse step shared by both parts, fresh z for each forward step of a jump.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from pipelines.guidance import Guidance
from pipelines.imports import imported


def repaint_timesteps(num_train_timesteps: int, num_inference_steps: int, jump_length: int, jump_n_sample: int):
    """The run's table indices, in order, going down and (on jumps) back up: diffusers' RePaint schedule."""
    for name, value in (("num_inference_steps", num_inference_steps), ("jump_length", jump_length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    if isinstance(jump_n_sample, bool) or not isinstance(jump_n_sample, int) or jump_n_sample < 1:
        raise ValueError(f"jump_n_sample must be a positive integer (1: no resampling), got {jump_n_sample!r}.")
    n = min(num_train_timesteps, num_inference_steps)
    jumps = {j: jump_n_sample - 1 for j in range(0, n - jump_length, jump_length)}
    steps, t = [], n
    while t >= 1:
        t -= 1
        steps.append(t)
        if jumps.get(t, 0) > 0:
            jumps[t] -= 1
            for _ in range(jump_length):
                t += 1
                steps.append(t)
    stride = num_train_timesteps // n
    return [s * stride for s in steps], stride


@dataclass
class RePaintFrame:
    """One move of a RePaint run: a reverse step t → t − stride (``down``), or a forward jump t → t + stride."""

    index: int  # the move's position in the run, 0 …
    num_moves: int
    timestep: int  # table index of x before the move (the paper's t − 1)
    next_timestep: int  # after it; −1 (data) after the last reverse step
    down: bool  # a reverse step (True) or a forward jump (False)
    jump: int  # which climb back up the run is in or has last made, 0 before the first
    num_jumps: int  # climbs in the whole run
    sample: torch.Tensor  # x before the move, (B, C, H, W)
    pred_original_sample: torch.Tensor | None  # x̂₀ of a reverse step (the model's), None on a jump
    next_sample: torch.Tensor  # x after the move


MASK_PRESETS = ("left half", "right half", "centre square", "random 50 %")


def preset_mask(name: str, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """The keep-mask (1, 1, H, W) of a preset: 0 where it regenerates (the left or right half, the centre square of
    half the side, or a random half of the pixels), 1 where it keeps the image."""
    keep = torch.ones(1, 1, height, width)
    if name == "left half":
        keep[..., : width // 2] = 0
    elif name == "right half":
        keep[..., width // 2 :] = 0
    elif name == "centre square":
        keep[..., height // 4 : height - height // 4, width // 4 : width - width // 4] = 0
    elif name == "random 50 %":
        order = torch.randperm(height * width, generator=torch.Generator().manual_seed(seed))
        keep.view(-1)[order[: height * width // 2]] = 0
    else:
        raise ValueError(f"Unknown mask preset {name!r}; choose one of {', '.join(MASK_PRESETS)}.")
    return keep


def check_mask(mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """The keep-mask m (1 = keep the image's pixel, 0 = regenerate it), broadcastable to the image's (B, C, H, W)."""
    if not torch.is_tensor(mask) or mask.ndim != 4 or mask.shape[-2:] != image.shape[-2:]:
        raise ValueError(
            f"The mask must be (B or 1, 1 or C, {image.shape[-2]}, {image.shape[-1]}), the image's size; "
            f"got {tuple(mask.shape) if torch.is_tensor(mask) else type(mask).__name__}."
        )
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("The mask must be binary: 1 where the image is kept, 0 where it is regenerated.")
    return mask.to(dtype=image.dtype, device=image.device)


@torch.inference_mode()
def iter_repaint(
    pipe,
    image: torch.Tensor,
    keep_mask: torch.Tensor,
    num_inference_steps: int = 250,
    jump_length: int = 10,
    jump_n_sample: int = 10,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
    class_labels=None,
    guidance_scale: float | None = None,
) -> Iterator[RePaintFrame]:
    """Inpaint ``image`` (B, C, H, W) in [−1, 1] where ``keep_mask`` is 0, move by move.

    Args:
        pipe: a :class:`~pipelines.pipeline.DDPMExplorerPipeline` (its UNet and its scheduler's ᾱ and β; a learned
            Σ_θ's channels are not used: σ comes from η).
        eta: σ = η·√β̃ of the reverse step (1: DDPM's β̃; 0: the deterministic DDIM step, as diffusers' default).
        class_labels, guidance_scale: as the pipeline's (a conditional model is guided as it samples).
    """
    randn_tensor = imported("diffusers.utils.torch_utils").randn_tensor  # diffusers on first use

    if not (isinstance(eta, (int, float)) and 0.0 <= eta <= 1.0):
        raise ValueError(f"eta must be in [0, 1], got {eta!r}.")
    scheduler = pipe.scheduler
    pipe._check_batch("image", image)
    image = image.to(device=pipe.device, dtype=pipe.unet.dtype)
    keep = check_mask(keep_mask, image)
    T = scheduler.config.num_train_timesteps
    timesteps, stride = repaint_timesteps(T, num_inference_steps, jump_length, jump_n_sample)
    alphas_cumprod, betas = scheduler.alphas_cumprod, scheduler.betas
    labels = pipe.class_labels_for(class_labels, image.shape[0])
    guidance = Guidance(pipe.guidance_scale_for(guidance_scale))
    channels = image.shape[1]

    x = randn_tensor(image.shape, generator=generator, device=pipe.device, dtype=image.dtype)
    t_last, jump, went_down = timesteps[0] + 1, 0, True
    downs = moves_down(timesteps)
    num_jumps = sum(1 for before, now in itertools.pairwise(downs) if before and not now)
    for i, t in enumerate(timesteps):
        if t < t_last:  # a reverse step t → t − stride
            prev = t - stride
            ab_t = alphas_cumprod[t]
            ab_prev = alphas_cumprod[prev] if prev >= 0 else torch.tensor(1.0)
            eps = pipe.predict(x, t, labels, guidance)[:, :channels]
            pred_x0 = (x - (1 - ab_t) ** 0.5 * eps) / ab_t**0.5
            if scheduler.config.clip_sample:
                pred_x0 = pred_x0.clamp(-1, 1)
            z = randn_tensor(image.shape, generator=generator, device=pipe.device, dtype=image.dtype)
            variance = (1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)  # β̃ of the respaced step
            sigma = eta * variance**0.5
            noise_term = sigma * z if (t > 0 and eta > 0) else 0
            unknown = ab_prev**0.5 * pred_x0 + (1 - ab_prev - sigma**2) ** 0.5 * eps + noise_term
            known = ab_prev**0.5 * image + (1 - ab_prev) ** 0.5 * z
            nxt = keep * known + (1.0 - keep) * unknown
            frame = RePaintFrame(i, len(timesteps), int(t), max(int(prev), -1), True, jump, num_jumps, x, pred_x0, nxt)
        else:  # a forward jump t_last → t_last + stride, one q step at a time
            if went_down:
                jump += 1  # a new climb
            nxt = x
            for k in range(stride):
                beta = betas[t_last + k]
                z = randn_tensor(image.shape, generator=generator, device=pipe.device, dtype=image.dtype)
                nxt = (1 - beta) ** 0.5 * nxt + beta**0.5 * z
            # x climbs from where the last move left it (t_last − stride; −1, the data, below 0) to t − stride
            start = max(int(t_last) - stride, -1)
            frame = RePaintFrame(i, len(timesteps), start, int(t) - stride, False, jump, num_jumps, x, None, nxt)
        yield frame
        x, t_last, went_down = frame.next_sample, t, frame.down
    return x


def moves_down(timesteps: list[int]) -> list[bool]:
    """For each move of a run with these timesteps: a reverse step (True) or a forward jump (False)."""
    return [t < (timesteps[i - 1] if i else t + 1) for i, t in enumerate(timesteps)]


def repaint(pipe, image, keep_mask, **kwargs) -> torch.Tensor:
    """The inpainted images, (B, C, H, W) in [−1, 1]."""
    x = None
    for frame in iter_repaint(pipe, image, keep_mask, **kwargs):
        x = frame.next_sample
    return x
