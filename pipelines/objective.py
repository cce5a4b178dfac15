"""The DDPM objective: the simplified loss the network trains on, and the variational bound (ELBO) it stands for.

    L_simple = E_{t, x₀, ε} ‖ε − ε_θ(x_t, t)‖²                      (Ho et al. 2020 eq. 14; or on v, or min-SNR-γ)
    L_hybrid = L_simple + λ·L_vlb, λ = 0.001, μ frozen in L_vlb       (Nichol & Dhariwal 2021 §3.1; learned Σ_θ)

The bound in bits/dim, as in Ho et al. 2020 §3.3 and Nichol & Dhariwal 2021 §2:

    L_vlb = L_T + Σ_{t=1}^{T−1} L_{t−1} + L_0                      (indices as in our tables, t = 0 … T−1)
    L_T     = KL(q(x_T | x₀) ‖ N(0, I))                             (the prior term; no parameters)
    L_{t−1} = KL(q(x_{t−1} | x_t, x₀) ‖ p_θ(x_{t−1} | x_t))         (two Gaussians, closed form)
    L_0     = −log p_θ(x₀ | x₁), a discretized Gaussian decoder over the 256 pixel bins

Every term is per image, averaged over dimensions and divided by log 2 (bits/dim).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import torch
import torch.nn.functional as F

from pipelines.forward import q_sample
from pipelines.scheduler import LEARNED_VARIANCE_TYPES, DDPMExplorerScheduler, x0_and_eps_from_model_output
from pipelines.schedules import extract

LOG2 = math.log(2.0)
R = TypeVar("R")


def training_target(scheduler: DDPMExplorerScheduler, x0, noise, t) -> torch.Tensor:
    """What the network learns to output at x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε: ε, or v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀."""
    return noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(x0, noise, t)


def l_simple(
    unet,
    scheduler: DDPMExplorerScheduler,
    x0: torch.Tensor,
    noise: torch.Tensor,
    t: torch.Tensor,
    class_labels: torch.Tensor | None = None,
    snr_gamma: float | None = None,
) -> torch.Tensor:
    """L_simple = ‖target − model(x_t, t)‖², the mean over the batch (Ho et al. eq. 14).

    The target is ε, or v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀ for ``v_prediction`` models. With ``snr_gamma`` each image is
    weighted by min(SNR_t, γ)/SNR_t (ε) or min(SNR_t, γ)/(SNR_t + 1) (v): min-SNR-γ (Hang et al. 2023).

    Args:
        x0: (B, C, H, W) clean images in [−1, 1].
        noise: ε ~ N(0, I) of x0's shape; t: (B,) table indices.
        class_labels: (B,) labels for a class-conditional UNet, else None.
    """
    x_t = scheduler.q_sample(x0, t, noise)
    prediction_type = scheduler.config.prediction_type
    target = training_target(scheduler, x0, noise, t)
    pred = unet(x_t, t, class_labels=class_labels).sample[:, : x0.shape[1]]  # a learned Σ_θ's channels: not here
    if snr_gamma is None:
        return F.mse_loss(pred.float(), target.float())
    snr = extract(scheduler.tables.snr, t, (len(t),), torch.float32, x0.device)
    weight = torch.clamp(snr, max=snr_gamma) / (snr if prediction_type == "epsilon" else snr + 1)
    per_image = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    return (per_image * weight).mean()


def learned_log_variance(scheduler: DDPMExplorerScheduler, variance_output: torch.Tensor, t: torch.Tensor):
    """log Σ_θ of the training chain at table indices t, (B, C, H, W), from the network's variance channels:
    ``learned_range`` interpolates log Σ_θ = v·log β_t + (1 − v)·log β̃_t, v = (output + 1)/2 (Nichol & Dhariwal
    eq. 15; log β̃_0 is log β̃_1, as improved-diffusion clips it); ``learned`` reads the output as Σ_θ (diffusers)."""
    tb, shape, dtype = scheduler.tables, variance_output.shape, variance_output.dtype
    if scheduler.config.variance_type == "learned":
        return torch.log(variance_output)
    min_log = extract(tb.posterior_log_variance_clipped, t, shape, dtype, variance_output.device)
    max_log = extract(tb.betas.log(), t, shape, dtype, variance_output.device)
    frac = (variance_output + 1) / 2
    return frac * max_log + (1 - frac) * min_log


def vb_term_from(x0, x_t, t, scheduler: DDPMExplorerScheduler, mean, log_variance) -> torch.Tensor:
    """The bound's term at table index t of p_θ(x_{t−1} | x_t) = N(mean, e^log_variance), bits/dim, (B,):
    KL(q(x_{t−1} | x_t, x₀) ‖ p_θ) for t ≥ 1, the discretized decoder's −log p_θ(x₀ | x₁) for t = 0."""
    true_mean, _, true_logvar = scheduler.q_posterior_mean_variance(x0, x_t, t)
    kl = _mean_over_dims(normal_kl(true_mean, true_logvar, mean, log_variance)) / LOG2
    decoder_nll = -_mean_over_dims(discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_variance)) / LOG2
    return torch.where(t == 0, decoder_nll, kl)


def hybrid_loss_terms(scheduler: DDPMExplorerScheduler, model_output, x0, x_t, noise, t):
    """(L_simple, L_vlb's term at t) per image, (B,) each, from a learned-variance network's output (2·C channels).

    L_vlb sees the mean through a stop-gradient (μ from the detached prediction): the variance learns from the bound,
    the mean from L_simple alone (Nichol & Dhariwal 2021 §3.1). x̂₀ is not clipped (as in their training).
    """
    c = x0.shape[1]
    prediction, variance_output = model_output[:, :c], model_output[:, c:]
    target = training_target(scheduler, x0, noise, t)
    mse = _mean_over_dims((prediction.float() - target.float()) ** 2)
    tb, dtype = scheduler.tables, x_t.dtype
    sqrt_ab = extract(tb.sqrt_alphas_cumprod, t, x_t.shape, dtype, x_t.device)
    sqrt_1mab = extract(tb.sqrt_one_minus_alphas_cumprod, t, x_t.shape, dtype, x_t.device)
    pred_x0, _ = x0_and_eps_from_model_output(
        scheduler.config.prediction_type, prediction.detach(), x_t, sqrt_ab, sqrt_1mab
    )
    mean, _, _ = scheduler.q_posterior_mean_variance(pred_x0, x_t, t)
    log_variance = learned_log_variance(scheduler, variance_output, t)
    return mse, vb_term_from(x0, x_t, t, scheduler, mean, log_variance)


def l_hybrid(
    unet,
    scheduler: DDPMExplorerScheduler,
    x0: torch.Tensor,
    noise: torch.Tensor,
    t: torch.Tensor,
    class_labels: torch.Tensor | None = None,
    vlb_weight: float = 0.001,
) -> torch.Tensor:
    """L_hybrid = L_simple + λ·L_vlb for a learned Σ_θ, the mean over the batch (Nichol & Dhariwal 2021 §3.1).

    L_vlb = Σ_t L_t is estimated from one uniform t per image as T·L_t, so λ·L_vlb = λ·T·L_t (improved-diffusion
    scales its term by T/1000 with λ folded in: the same for λ = 0.001).
    """
    if scheduler.config.variance_type not in LEARNED_VARIANCE_TYPES:
        raise ValueError("L_hybrid trains a learned Σ_θ: use variance_type='learned_range' (or 'learned').")
    x_t = scheduler.q_sample(x0, t, noise)
    model_output = unet(x_t, t, class_labels=class_labels).sample
    mse, vb = hybrid_loss_terms(scheduler, model_output.float(), x0.float(), x_t.float(), noise.float(), t)
    return (mse + vlb_weight * scheduler.config.num_train_timesteps * vb).mean()


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)), elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Round images in [−1, 1] to the 256 levels of uint8 data (as a saved PNG would), still in [−1, 1].

    The decoder term L_0 is a likelihood over those 256 bins (:func:`discretized_gaussian_log_likelihood`), so an image
    it scores must lie on them.
    """
    return ((images + 1) * 127.5).round().clamp(0, 255) / 127.5 - 1


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x) of uint8 data rescaled to [−1, 1] under N(mean, e^{2·log_scale}) integrated over each pixel's bin
    of width 2/255; the edge bins extend to ±∞ (Ho et al. eq. 13). Elementwise, in nats."""
    centered = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = _std_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = _std_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_probs = torch.where(
        x < -0.999,
        log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log((cdf_plus - cdf_min).clamp(min=1e-12))),
    )
    return log_probs


def _mean_over_dims(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).mean(1)


def prior_bpd(scheduler: DDPMExplorerScheduler, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(q(x_T | x₀) ‖ N(0, I)) in bits/dim, (B,)."""
    tb = scheduler.tables
    t = torch.full((x0.shape[0],), tb.num_timesteps - 1)
    mean = extract(tb.sqrt_alphas_cumprod, t, x0.shape, x0.dtype) * x0
    logvar = torch.log1p(-extract(tb.alphas_cumprod, t, x0.shape, torch.float64)).to(x0.dtype)
    return _mean_over_dims(normal_kl(mean, logvar, torch.zeros_like(mean), torch.zeros_like(mean))) / LOG2


def null_labels(unet, batch_size: int, device=None) -> torch.Tensor | None:
    """(B,) null labels ∅ (the last class embedding) for a class-conditional UNet; None for an unconditional one."""
    n = getattr(getattr(unet, "config", None), "num_class_embeds", None)
    return None if not n else torch.full((batch_size,), n - 1, dtype=torch.long, device=device)


def p_mean_variance(unet, scheduler: DDPMExplorerScheduler, x_t: torch.Tensor, t: torch.Tensor, clip: bool = True):
    """p_θ(x_{t−1} | x_t) = N(μ_θ, Σ_t): μ_θ is the posterior mean at the model's x̂₀ (Ho et al. eq. 11);
    log Σ_t is log β̃_t (``fixed_small``), log β_t (``fixed_large``, with β̃_1 at t = 0 as improved-diffusion), or the
    network's learned log Σ_θ (:func:`learned_log_variance`).

    A class-conditional UNet is asked with the null label: the bound is then the unconditional model's, log p(x),
    the one an image without a label has.

    Returns (mean, log_variance, x̂₀ (clipped with ``clip``), ε̂ (from the raw output, never clipped))."""
    tb = scheduler.tables
    dtype = x_t.dtype
    model_output = unet(x_t, t, class_labels=null_labels(unet, x_t.shape[0], x_t.device)).sample
    c = x_t.shape[1]
    model_output, variance_output = model_output[:, :c], model_output[:, c:]
    sqrt_ab = extract(tb.sqrt_alphas_cumprod, t, x_t.shape, dtype)
    sqrt_1mab = extract(tb.sqrt_one_minus_alphas_cumprod, t, x_t.shape, dtype)
    pred_x0, pred_eps = x0_and_eps_from_model_output(
        scheduler.config.prediction_type, model_output, x_t, sqrt_ab, sqrt_1mab
    )
    if clip:
        pred_x0 = pred_x0.clamp(-1.0, 1.0)
    mean, _, log_var = scheduler.q_posterior_mean_variance(pred_x0, x_t, t)
    if scheduler.config.variance_type in LEARNED_VARIANCE_TYPES:
        log_var = learned_log_variance(scheduler, variance_output, t)
    elif scheduler.config.variance_type == "fixed_large":
        log_betas = torch.log(torch.cat([tb.posterior_variance[1:2], tb.betas[1:]])) if len(tb.betas) > 1 else None
        log_var = extract(log_betas if log_betas is not None else tb.betas.log(), t, x_t.shape, dtype)
    return mean, log_var, pred_x0, pred_eps


@torch.inference_mode()
def vb_terms_bpd(
    unet, scheduler: DDPMExplorerScheduler, x0: torch.Tensor, t: torch.Tensor, noise=None, generator=None
):
    """The bound's term at table index t for each image, in bits/dim, (B,): L_{t−1} for t ≥ 1 and the decoder NLL
    L_0 for t = 0. Also returns the L_simple term ‖ε − ε̂‖² (mean over dims), (B,), for plotting beside it.

    Args:
        x0: (B, C, H, W) images in [−1, 1] (uint8 data rescaled).
        t: (B,) table indices.
        noise: the ε of x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε; drawn from ``generator`` if None.
    """
    if noise is None:
        noise = _randn(x0, generator)
    t = t.long()
    tb = scheduler.tables
    # q(x_t | x₀) in closed form on the float64 tables (the scheduler's q_sample reads diffusers' float32 ᾱ)
    sqrt_alpha_bar = extract(tb.sqrt_alphas_cumprod, t, x0.shape, x0.dtype)
    sqrt_one_minus_alpha_bar = extract(tb.sqrt_one_minus_alphas_cumprod, t, x0.shape, x0.dtype)
    x_t = q_sample(x0, noise, sqrt_alpha_bar, sqrt_one_minus_alpha_bar)
    mean, logvar, _, pred_eps = p_mean_variance(unet, scheduler, x_t, t)
    vb = vb_term_from(x0, x_t, t, scheduler, mean, logvar)
    mse = _mean_over_dims((noise - pred_eps) ** 2)
    return vb, mse


@dataclass
class ELBOEstimate:
    """Per-image bits/dim of the whole bound (B,), and its parts."""

    total: torch.Tensor
    prior: torch.Tensor
    decoder: torch.Tensor
    diffusion: torch.Tensor  # Σ_{t=1}^{T−1} L_{t−1}, estimated

    @classmethod
    def cat(cls, estimates: list[ELBOEstimate]) -> ELBOEstimate:
        """One estimate of all the images of several (batches of images, say)."""
        return cls(*(torch.cat([getattr(e, f.name) for e in estimates]) for f in fields(cls)))

    @property
    def mean(self) -> float:
        return self.total.mean().item()

    @property
    def standard_error(self) -> float:
        return standard_error(self.total)


def standard_error(values: torch.Tensor) -> float:
    """The standard error of the mean of per-image values (NaN for fewer than two): of one bound, or of the paired
    difference of two bounds on the same images."""
    return (values.std(unbiased=True) / math.sqrt(len(values))).item() if len(values) > 1 else math.nan


def elbo_bpd(
    unet, scheduler: DDPMExplorerScheduler, x0: torch.Tensor, num_timesteps: int | None = None, generator=None
) -> ELBOEstimate:
    """The variational bound in bits/dim for each image.

    With ``num_timesteps=None`` every term t = 1 … T−1 is computed (exact, T−1 UNet calls per image). With K =
    ``num_timesteps`` it is a stratified Monte-Carlo estimate: {1, …, T−1} is split into K equal strata, one t is drawn
    uniformly in each, and each term is weighted by its stratum's size. Its expectation is the exact sum (unbiased);
    the standard error of the mean over images covers both the images' and the draws' variance.
    """
    return run_to_end(iter_elbo_bpd(unet, scheduler, x0, num_timesteps, generator))


@torch.inference_mode()
def iter_elbo_bpd(
    unet, scheduler: DDPMExplorerScheduler, x0: torch.Tensor, num_timesteps: int | None = None, generator=None
) -> Generator[int, None, ELBOEstimate]:
    """:func:`elbo_bpd` one UNet call at a time, for a caller that may stop between calls: yields the number of
    calls made so far and returns the estimate."""
    B, T = x0.shape[0], scheduler.config.num_train_timesteps
    prior = prior_bpd(scheduler, x0)
    decoder, _ = vb_terms_bpd(unet, scheduler, x0, torch.zeros(B, dtype=torch.long), _randn(x0, generator))
    yield 1
    diffusion = torch.zeros(B, dtype=x0.dtype)
    if T > 1:
        if num_timesteps is None or num_timesteps >= T - 1:
            ts = [(torch.full((B,), t), 1.0) for t in range(1, T)]
        else:
            edges = torch.linspace(1, T, num_timesteps + 1).round().long()
            ts = []
            for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
                t = torch.randint(lo, hi, (B,), generator=generator)
                ts.append((t, float(hi - lo)))
        for calls, (t, weight) in enumerate(ts, start=2):
            vb, _ = vb_terms_bpd(unet, scheduler, x0, t, _randn(x0, generator))
            diffusion += weight * vb
            yield calls
    return ELBOEstimate(total=prior + decoder + diffusion, prior=prior, decoder=decoder, diffusion=diffusion)


def run_to_end(steps: Generator[Any, None, R]) -> R:
    """Run a step-at-a-time computation (an ``iter_*`` function's generator) to its end and return its result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def _randn(x: torch.Tensor, generator) -> torch.Tensor:
    # drawn on the CPU, then moved: the same seed gives the same noise on any device
    return torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)


def per_timestep_terms(unet, scheduler: DDPMExplorerScheduler, x0: torch.Tensor, timesteps, generator=None):
    """For one or a few images: the bound's term (bits/dim) and L_simple at each table index in ``timesteps``,
    plus L_T. Returns dict(timesteps, vb (len,), mse (len,), prior) averaged over the images — what the app plots."""
    return run_to_end(iter_per_timestep_terms(unet, scheduler, x0, timesteps, generator))


@torch.inference_mode()
def iter_per_timestep_terms(
    unet, scheduler: DDPMExplorerScheduler, x0: torch.Tensor, timesteps, generator=None
) -> Generator[int, None, dict]:
    """:func:`per_timestep_terms` one UNet call at a time: yields the number of terms done, returns the dict."""
    vbs, mses = [], []
    for t in timesteps:
        vb, mse = vb_terms_bpd(unet, scheduler, x0, torch.full((x0.shape[0],), int(t)), _randn(x0, generator))
        vbs.append(vb.mean().item())
        mses.append(mse.mean().item())
        yield len(vbs)
    return {
        "timesteps": list(map(int, timesteps)),
        "vb": vbs,
        "mse": mses,
        "prior": prior_bpd(scheduler, x0).mean().item(),
    }
