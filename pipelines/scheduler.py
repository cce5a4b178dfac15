"""A DDPM scheduler on diffusers' abstractions, with the paper's math spelled out.

It reads its per-timestep quantities from :class:`~pipelines.schedules.ScheduleTables` (float64, computed once), and
matches diffusers' ``DDPMScheduler`` numerically wherever the two mean the same thing (see ``tests/``).
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from pipelines.forward import q_chain, q_sample, q_step
from pipelines.schedules import (
    DIFFUSERS_SCHEDULE_NAMES,
    MAX_BETA,
    SCHEDULE_NAMES,
    SCHEDULES_IN_DIFFUSERS,
    ScheduleTables,
    extract,
    make_betas,
    posterior_coefficients,
)

VARIANCE_TYPES = ("fixed_small", "fixed_large", "learned", "learned_range")
LEARNED_VARIANCE_TYPES = ("learned", "learned_range")  # the UNet outputs 2·C channels: its ε (x₀, v), then Σ_θ's
# The diffusers solvers of the sampler registry: each samples from this scheduler's config (``from_config``), with the
# variance channels of a learned-variance model dropped (see ``pipelines.samplers``).
COMPATIBLE_SOLVERS = (
    "DDIMScheduler",
    "DDPMScheduler",
    "DEISMultistepScheduler",
    "DPMSolverMultistepScheduler",
    "EulerAncestralDiscreteScheduler",
    "EulerDiscreteScheduler",
    "HeunDiscreteScheduler",
    "UniPCMultistepScheduler",
)
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
TIMESTEP_SPACINGS = ("trailing", "leading", "linspace")


@dataclass
class DDPMExplorerSchedulerOutput(BaseOutput):
    """One reverse step's results.

    Args:
        prev_sample: x_{t−1} (or x_{t'} for the previous timestep t' of a respaced schedule), (B, C, H, W).
        pred_original_sample: x̂₀, the model's estimate of the clean sample (after clipping, if enabled).
        pred_epsilon: ε̂, the model's estimate of the noise in x_t.
        variance_fraction: for a learned Σ_θ, v per pixel: where log Σ_θ sits between log β̃ (v = 0) and log β
            (v = 1), log Σ_θ = v·log β + (1 − v)·log β̃ (Nichol & Dhariwal 2021 eq. 15); None for a fixed Σ.
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor
    pred_epsilon: torch.Tensor
    variance_fraction: torch.Tensor | None = None


@dataclass(frozen=True)
class StepCoefficients:
    """Scalars of one reverse step t → t', with β recomputed from ᾱ for respaced schedules.

    They are computed in float32 with the same operations as diffusers' ``DDPMScheduler.step`` (so that the two give
    bit-identical frames; see :func:`~pipelines.schedules.posterior_coefficients`), once per timestep instead of once
    per call.
    """

    timestep: int  # t
    prev_timestep: int  # t', −1 after the last step
    alpha_prod_t: float  # ᾱ_t
    alpha_prod_t_prev: float  # ᾱ_{t'} (1 when t' = −1)
    beta_t: float  # β = 1 − ᾱ_t / ᾱ_{t'}
    sqrt_alpha_prod_t: float  # √ᾱ_t
    sqrt_one_minus_alpha_prod_t: float  # √(1−ᾱ_t)
    sqrt_alpha_prod_t_prev: float  # √ᾱ_{t'}
    x0_coeff: float  # coefficient of x̂₀ in μ̃: √ᾱ_{t'}·β / (1−ᾱ_t)
    xt_coeff: float  # coefficient of x_t in μ̃: √(1−β)·(1−ᾱ_{t'}) / (1−ᾱ_t)
    posterior_variance: float  # β̃ = β (1−ᾱ_{t'}) / (1−ᾱ_t), clamped at 1e-20 like diffusers'
    std_fixed_small: float  # √β̃
    std_fixed_large: float  # √β
    log_posterior_variance: float  # log β̃ (of the clamped β̃), the lower end of a learned Σ_θ
    log_beta: float  # log β, the upper end

    @classmethod
    def compute(cls, alphas_cumprod: torch.Tensor, t: int, prev_t: int) -> StepCoefficients:
        ab_t = alphas_cumprod[t]
        ab_prev = alphas_cumprod[prev_t] if prev_t >= 0 else torch.tensor(1.0, dtype=alphas_cumprod.dtype)
        beta_t = 1 - ab_t / ab_prev
        x0_coeff, xt_coeff, variance = posterior_coefficients(ab_t, ab_prev)
        variance = torch.clamp(variance, min=1e-20)
        return cls(
            timestep=t,
            prev_timestep=prev_t,
            alpha_prod_t=ab_t.item(),
            alpha_prod_t_prev=ab_prev.item(),
            beta_t=beta_t.item(),
            sqrt_alpha_prod_t=(ab_t**0.5).item(),
            sqrt_one_minus_alpha_prod_t=((1 - ab_t) ** 0.5).item(),
            sqrt_alpha_prod_t_prev=(ab_prev**0.5).item(),
            x0_coeff=x0_coeff.item(),
            xt_coeff=xt_coeff.item(),
            posterior_variance=variance.item(),
            std_fixed_small=(variance**0.5).item(),
            std_fixed_large=(beta_t**0.5).item(),
            log_posterior_variance=torch.log(variance).item(),
            log_beta=torch.log(beta_t).item(),
        )

    def learned_log_variance(self, variance_type: str, predicted_variance: torch.Tensor) -> torch.Tensor:
        """log Σ_θ from the network's variance channels, as diffusers' ``DDPMScheduler`` reads them:
        ``learned_range`` interpolates, log Σ_θ = v·log β + (1 − v)·log β̃ with v = (output + 1)/2 (Nichol & Dhariwal
        2021 eq. 15); ``learned`` takes the output as Σ_θ itself (diffusers' reading; improved-diffusion's LEARNED
        reads it as log Σ_θ instead)."""
        if variance_type == "learned_range":
            frac = (predicted_variance + 1) / 2
            return frac * self.log_beta + (1 - frac) * self.log_posterior_variance
        return torch.log(predicted_variance)

    def variance_fraction(self, log_variance: torch.Tensor) -> torch.Tensor:
        """v = (log Σ − log β̃)/(log β − log β̃): 0 at β̃, 1 at β (the interpolation weight of ``learned_range``)."""
        span = self.log_beta - self.log_posterior_variance
        return (log_variance - self.log_posterior_variance) / span if span > 0 else torch.zeros_like(log_variance)


def ddim_sigma(eta: float, coefficients: StepCoefficients) -> float:
    """σ_t(η) of a DDIM step t → t' (Song et al. 2021 eq. 16): σ = η·√β̃, with β̃ the respaced posterior variance.

    η = 0 is the deterministic DDIM step; η = 1 gives DDPM's ``fixed_small`` σ.
    """
    return (eta**2 * coefficients.posterior_variance) ** 0.5


def config_for_diffusers(schedule_name: str, rescale_betas: bool, betas: torch.Tensor) -> dict:
    """How a saved config names the schedule so that diffusers' schedulers, built with ``from_config``, compute the
    same β: diffusers' own name where it has the schedule (``squaredcos_cap_v2`` for cosine, ``scaled_linear`` for
    quadratic), else the β themselves as ``trained_betas`` (sigmoid, custom, rescaled), which diffusers prefers to
    any name. The float32 values are written exactly (JSON keeps every digit of a float)."""
    if schedule_name in SCHEDULES_IN_DIFFUSERS and not rescale_betas:
        return {"beta_schedule": SCHEDULES_IN_DIFFUSERS[schedule_name], "trained_betas": None}
    return {"beta_schedule": schedule_name, "trained_betas": betas.tolist()}


def is_schedule(trained_betas, betas: torch.Tensor) -> bool:
    """Whether saved ``trained_betas`` are the named schedule's β (to float32 precision)."""
    saved = torch.as_tensor(np.asarray(trained_betas, dtype=np.float64).reshape(-1), dtype=torch.float32)
    return saved.shape == betas.shape and torch.allclose(saved, betas, rtol=1e-6, atol=0.0)


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """β with zero terminal SNR (Lin et al. 2024, Algorithm 1), diffusers' ``rescale_betas_zero_snr``: √ᾱ is shifted
    so that √ᾱ_T = 0 and scaled so that √ᾱ_1 keeps its value; then β = 1 − ᾱ_t/ᾱ_{t−1}, so β_T = 1 exactly and x_T
    holds no trace of x₀. Same operations as diffusers', so the same float32 β."""
    alphas_bar_sqrt = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = alphas_bar_sqrt[0].clone(), alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt -= last
    alphas_bar_sqrt *= first / (first - last)
    alphas_bar = alphas_bar_sqrt**2
    alphas = torch.cat([alphas_bar[0:1], alphas_bar[1:] / alphas_bar[:-1]])
    return 1 - alphas


def analysis_betas(betas: torch.Tensor) -> torch.Tensor:
    """float64 β for :class:`ScheduleTables`, which need a finite log SNR: a last β of 1 (zero terminal SNR) is capped
    at :data:`~pipelines.schedules.MAX_BETA` (0.999, the cosine schedule's cap), so ᾱ_T = ᾱ_{T−1}/1000 there.
    Sampling keeps β_T = 1 and ᾱ_T = 0 exactly, as diffusers does."""
    return betas.double().clamp(max=MAX_BETA)


def dynamic_threshold(pred_x0: torch.Tensor, ratio: float, max_value: float) -> torch.Tensor:
    """Dynamic thresholding (Saharia et al. 2022, Imagen §2.3), as diffusers' schedulers apply it: per sample,
    s = the ``ratio`` quantile of |x̂₀|, clamped to [1, ``max_value``]; x̂₀ is clipped to [−s, s] and divided by s.

    With ``max_value`` = 1 this is plain clipping to [−1, 1].
    """
    dtype = pred_x0.dtype
    flat = pred_x0.float().reshape(pred_x0.shape[0], -1)  # (B, C·H·W)
    s = torch.quantile(flat.abs(), ratio, dim=1).clamp(min=1.0, max=max_value).unsqueeze(1)
    return (flat.clamp(-s, s) / s).reshape(pred_x0.shape).to(dtype)


def respaced_timesteps(num_inference_steps: int, start_timestep: int) -> list[int]:
    """N evenly spaced timesteps from ``start_timestep`` down to the last one before 0, always starting at
    ``start_timestep`` (diffusers' "trailing" spacing: T−1 = 999, 979, …, 19 for N = 50, T = 1000)."""
    span = start_timestep + 1
    if not 1 <= num_inference_steps <= span:
        raise ValueError(f"num_inference_steps must be between 1 and {span}, got {num_inference_steps}.")
    steps = np.round(span - np.arange(num_inference_steps) * span / num_inference_steps).astype(np.int64) - 1
    return steps.tolist()


def x0_and_eps_from_model_output(
    prediction_type: str, model_output: torch.Tensor, sample: torch.Tensor, sqrt_alpha_prod, sqrt_one_minus_alpha_prod
) -> tuple[torch.Tensor, torch.Tensor]:
    """x̂₀ and ε̂ of x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε from the network's output, for every ``prediction_type``:
    ε (Ho et al. eq. 15: x̂₀ = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t), x₀ itself, or v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀ (Salimans & Ho).

    ``sqrt_alpha_prod`` (√ᾱ_t) and ``sqrt_one_minus_alpha_prod`` (√(1−ᾱ_t)) are scalars or broadcastable tensors.
    Neither output is clipped.
    """
    if prediction_type == "epsilon":
        pred_epsilon = model_output
        pred_x0 = (sample - sqrt_one_minus_alpha_prod * model_output) / sqrt_alpha_prod
    elif prediction_type == "sample":
        pred_x0 = model_output
        pred_epsilon = (sample - sqrt_alpha_prod * model_output) / sqrt_one_minus_alpha_prod
    elif prediction_type == "v_prediction":
        pred_x0 = sqrt_alpha_prod * sample - sqrt_one_minus_alpha_prod * model_output
        pred_epsilon = sqrt_alpha_prod * model_output + sqrt_one_minus_alpha_prod * sample
    else:
        raise ValueError(f"prediction_type must be epsilon, sample or v_prediction, got {prediction_type!r}.")
    return pred_x0, pred_epsilon


class DDPMExplorerScheduler(SchedulerMixin, ConfigMixin):
    """Denoising Diffusion Probabilistic Models (Ho et al. 2020), with respacing (Nichol & Dhariwal 2021) and an
    optional deterministic DDIM step (Song et al. 2021).

    Args:
        num_train_timesteps: T, the number of diffusion steps the model was trained with.
        beta_start, beta_end: the β range of the ``linear``, ``quadratic`` and ``sigmoid`` schedules.
        beta_schedule: ``linear``, ``quadratic``, ``cosine``, ``sigmoid`` or ``custom`` (with ``trained_betas``).
            diffusers' ``scaled_linear`` and ``squaredcos_cap_v2`` are accepted as ``quadratic`` and ``cosine``.
        trained_betas: the β array of a ``custom`` schedule. As in diffusers, given ``trained_betas`` are used
            whatever ``beta_schedule`` says, and T is their length; :attr:`schedule_name` is that schedule's name if
            they are its β, else ``custom``.
        rescale_betas: a constructor option, not saved: multiply the β range by 1000/T (lucidrains'
            ``linear_beta_schedule``) so that x_T is noise at any T. The saved config carries the resulting β as
            ``trained_betas``. Not the same as ``rescale_betas_zero_snr``.
        rescale_betas_zero_snr: diffusers' option (Lin et al. 2024): shift and scale √ᾱ so that ᾱ_T = 0 exactly,
            zero terminal SNR (see :func:`rescale_zero_terminal_snr`); meant for ``v_prediction`` models.
        variance_type: Σ_t of p_θ(x_{t−1} | x_t): ``fixed_small`` is the posterior variance β̃_t,
            ``fixed_large`` is β_t; ``learned_range`` is learned between them by the network (its output has twice
            the image's channels: log Σ_θ = v·log β + (1 − v)·log β̃, v = (output + 1)/2; Nichol & Dhariwal 2021),
            ``learned`` takes the extra channels as Σ_θ itself (diffusers' reading).
        prediction_type: what the network predicts: ``epsilon`` (ε), ``sample`` (x₀) or ``v_prediction``
            (v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀, Salimans & Ho 2022).
        clip_sample: clip x̂₀ to [−clip_sample_range, clip_sample_range] before the posterior mean.
        clip_sample_range: see ``clip_sample``.
        thresholding, dynamic_thresholding_ratio, sample_max_value: dynamic thresholding of x̂₀ instead of clipping
            (see :func:`dynamic_threshold`); diffusers' multistep solvers read the same settings.
        timestep_spacing: always ``trailing`` (N respaced steps start at T−1), written so that diffusers' solvers
            built from this config visit the same timesteps; a diffusers config's ``leading`` or ``linspace`` is
            read as ``trailing``.
        lambda_min_clipped: not used here; DPM-Solver reads it from this config (it stops the solver from starting
            where log SNR = 2λ is below 2·``lambda_min_clipped``, which the cosine schedule's last steps are).

    The saved config names the schedule as diffusers does (``squaredcos_cap_v2``, ``scaled_linear``) or carries its
    β as ``trained_betas``, so ``DPMSolverMultistepScheduler.from_config(scheduler.config)`` (or any of diffusers'
    schedulers) runs on the same ᾱ. :attr:`schedule_name` keeps our name (``cosine``, ``sigmoid``, ...).
    """

    order = 1
    _compatibles: ClassVar[list[str]] = list(COMPATIBLE_SOLVERS)
    ignore_for_config: ClassVar[list[str]] = ["rescale_betas"]  # a constructor option; its β are saved

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 1e-4,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: list[float] | np.ndarray | None = None,
        rescale_betas: bool = False,
        variance_type: str = "fixed_small",
        prediction_type: str = "epsilon",
        clip_sample: bool = True,
        clip_sample_range: float = 1.0,
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        sample_max_value: float = 1.0,
        timestep_spacing: str = "trailing",
        lambda_min_clipped: float = -float("inf"),
        rescale_betas_zero_snr: bool = False,
    ):
        if variance_type not in VARIANCE_TYPES:
            raise ValueError(f"Unknown variance_type {variance_type!r}; choose one of {', '.join(VARIANCE_TYPES)}.")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"Unknown prediction_type {prediction_type!r}; choose one of {', '.join(PREDICTION_TYPES)}."
            )
        if not (isinstance(clip_sample_range, (int, float)) and clip_sample_range > 0):
            raise ValueError(f"clip_sample_range must be a positive number, got {clip_sample_range!r}.")
        if not (isinstance(sample_max_value, (int, float)) and sample_max_value >= 1.0):
            raise ValueError(f"sample_max_value must be a number ≥ 1, got {sample_max_value!r}.")
        if not (isinstance(dynamic_thresholding_ratio, (int, float)) and 0.0 < dynamic_thresholding_ratio <= 1.0):
            raise ValueError(f"dynamic_thresholding_ratio must be in (0, 1], got {dynamic_thresholding_ratio!r}.")
        if timestep_spacing not in TIMESTEP_SPACINGS:
            raise ValueError(
                f"Unknown timestep_spacing {timestep_spacing!r}; this scheduler always respaces 'trailing' (the first "
                f"step at T−1) and accepts diffusers' {', '.join(TIMESTEP_SPACINGS)} only when loading their configs."
            )
        self.schedule_name = DIFFUSERS_SCHEDULE_NAMES.get(beta_schedule, beta_schedule)
        schedule = dict(num_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end)
        if trained_betas is not None:  # diffusers' rule: given β win over any name, and so over T
            num_train_timesteps = int(np.asarray(trained_betas).size)
            schedule["num_timesteps"] = num_train_timesteps
            base_betas = make_betas("custom", **schedule, trained_betas=trained_betas, dtype=torch.float32)
            if self.schedule_name != "custom" and not (
                self.schedule_name in SCHEDULE_NAMES
                and is_schedule(trained_betas, make_betas(self.schedule_name, **schedule, dtype=torch.float32))
            ):
                self.schedule_name = "custom"
        elif self.schedule_name == "custom":
            raise ValueError("beta_schedule='custom' needs trained_betas: an array of T values in (0, 1).")
        else:
            base_betas = make_betas(self.schedule_name, **schedule, rescale=rescale_betas, dtype=torch.float32)
        # Sampling and add_noise read β and ᾱ in float32, computed with the same operations as diffusers'
        # DDPMScheduler, so the same seed gives the same frames. The float64 tables (ELBO, plots) differ by < 1e-6.
        self.betas = rescale_zero_terminal_snr(base_betas) if rescale_betas_zero_snr else base_betas
        if self.schedule_name == "custom":
            analysis = make_betas("custom", **schedule, trained_betas=trained_betas)
        else:
            analysis = make_betas(self.schedule_name, **schedule, rescale=rescale_betas)
        if rescale_betas_zero_snr:
            analysis = analysis_betas(rescale_zero_terminal_snr(analysis))
        self.tables = ScheduleTables.from_betas(analysis)
        self._register_for_diffusers(
            {
                **config_for_diffusers(self.schedule_name, rescale_betas, base_betas),
                "timestep_spacing": "trailing",
                "num_train_timesteps": num_train_timesteps,
            }
        )
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self._sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()
        self._sqrt_one_minus_alphas_cumprod = (1.0 - self.alphas_cumprod).sqrt()
        self.init_noise_sigma = 1.0
        self.num_inference_steps = None
        self._set_step_table(list(range(num_train_timesteps - 1, -1, -1)))

    def _register_for_diffusers(self, values: dict) -> None:
        """Write ``values`` into the config, and mark every value as set: diffusers' ``from_config`` skips the keys
        it remembers as left at their defaults (``_use_default_values``), so another scheduler would take its own
        defaults for them (HeunDiscreteScheduler's β range is not ours) and drop ``trained_betas``."""
        self.register_to_config(**values, _use_default_values=[])

    @classmethod
    def extract_init_dict(cls, config_dict, **kwargs):
        """diffusers' reading of a saved config, where configs saved before ``rescale_betas`` became a
        constructor-only option still carry it: their β are in ``trained_betas``, which is what they load from."""
        config_dict = {k: v for k, v in config_dict.items() if k != "rescale_betas"}
        return super().extract_init_dict(config_dict, **kwargs)

    # ------------------------------------------------------------------ timesteps

    def _set_step_table(self, timesteps: list[int]) -> None:
        """Set the run's timesteps; each step's coefficients are computed when the step is first taken (a scheduler
        of T = 4000 kept 4000 of them, 2.8 MB, though a run of N steps takes N)."""
        T = self.config.num_train_timesteps
        self.timesteps = torch.tensor(timesteps, dtype=torch.long)
        every_step = len(timesteps) == T and timesteps[0] == T - 1 and timesteps[-1] == 0
        self._previous = None if every_step else dict(zip(timesteps, [*timesteps[1:], -1]))  # None: t' = t − 1
        self._coefficients = {}

    def set_timesteps(
        self,
        num_inference_steps: int | None = None,
        device: str | torch.device | None = None,
        timesteps: list[int] | None = None,
    ) -> None:
        """Choose the timesteps to sample with: N respaced steps from T−1, or a custom strictly decreasing list.

        The previous timestep of each step is the next one in the list, and β is recomputed from ᾱ of the two,
        β = 1 − ᾱ_t/ᾱ_{t'} (Nichol & Dhariwal 2021, §4).
        """
        T = self.config.num_train_timesteps
        if (num_inference_steps is None) == (timesteps is None):
            raise ValueError("Pass exactly one of num_inference_steps or timesteps.")
        if timesteps is not None:
            timesteps = [int(t) for t in timesteps]
            if not timesteps or any(not 0 <= t < T for t in timesteps):
                raise ValueError(f"Custom timesteps must be a non-empty list of integers in [0, {T - 1}].")
            if any(a <= b for a, b in itertools.pairwise(timesteps)):
                raise ValueError("Custom timesteps must be strictly decreasing.")
            self.num_inference_steps = len(timesteps)
        else:
            if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, (int, np.integer)):
                raise ValueError(f"num_inference_steps must be an integer, got {num_inference_steps!r}.")
            timesteps = respaced_timesteps(int(num_inference_steps), T - 1)
            self.num_inference_steps = int(num_inference_steps)
        self._set_step_table(timesteps)
        if device is not None:
            self.timesteps = self.timesteps.to(device)

    def with_timesteps(self, num_inference_steps: int | None = None, timesteps: list[int] | None = None):
        """A shallow copy with its own timesteps, leaving this (possibly shared) scheduler untouched."""
        scheduler = copy.copy(self)
        scheduler.set_timesteps(num_inference_steps=num_inference_steps, timesteps=timesteps)
        return scheduler

    def step_coefficients(self, timestep) -> StepCoefficients:
        t = int(timestep)
        if t not in self._coefficients:
            if self._previous is None:
                prev_t = t - 1 if 0 <= t < self.config.num_train_timesteps else None
            else:
                prev_t = self._previous.get(t)
            if prev_t is None:
                raise ValueError(
                    f"Timestep {t} is not one of this scheduler's {len(self.timesteps)} timesteps "
                    f"({int(self.timesteps[0])} … {int(self.timesteps[-1])})."
                )
            self._coefficients[t] = StepCoefficients.compute(self.alphas_cumprod, t, prev_t)
        return self._coefficients[t]

    @property
    def nbytes(self) -> int:
        """What this scheduler holds: its float64 tables, float32 β and ᾱ, and the step coefficients computed so far
        (about 700 bytes each as Python objects, measured with tracemalloc)."""
        tables = sum(getattr(self.tables, f).nbytes for f in self.tables.__dataclass_fields__)
        float32 = sum(x.nbytes for x in (self.betas, self.alphas, self.alphas_cumprod, self.timesteps)) * 2
        previous = 0 if self._previous is None else 100 * len(self._previous)
        return tables + float32 + previous + 700 * len(self._coefficients)

    def previous_timestep(self, timestep):
        """t' of the step from t (−1 after the last one): a tensor for a tensor t, an int for an int, as diffusers."""
        prev_t = self.step_coefficients(timestep).prev_timestep
        return torch.tensor(prev_t) if torch.is_tensor(timestep) else prev_t

    def _get_variance(self, t, predicted_variance: torch.Tensor | None = None, variance_type: str | None = None):
        """Σ of the step from t, as diffusers' ``DDPMScheduler._get_variance`` returns it: β̃ (``fixed_small``,
        clamped at 1e-20), β (``fixed_large``), the network's output itself (``learned``), or log Σ_θ
        (``learned_range``: diffusers returns the log there, and so does this)."""
        c = self.step_coefficients(t)
        variance_type = variance_type or self.config.variance_type
        if variance_type in LEARNED_VARIANCE_TYPES:
            if predicted_variance is None:
                raise ValueError(f"variance_type={variance_type!r} needs the network's predicted_variance.")
            if variance_type == "learned":
                return predicted_variance
            return c.learned_log_variance(variance_type, predicted_variance)
        return torch.tensor(c.posterior_variance if variance_type == "fixed_small" else c.beta_t)

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        return sample

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    # ------------------------------------------------------------------ forward process q

    def _check_train_timesteps(self, timesteps) -> torch.Tensor:
        timesteps = torch.as_tensor(timesteps).long().reshape(-1)
        T = self.config.num_train_timesteps
        if timesteps.numel() and (timesteps.min() < 0 or timesteps.max() >= T):
            raise ValueError(f"Timesteps must lie in [0, {T - 1}], got {timesteps.tolist()}.")
        return timesteps

    def q_sample(self, x0: torch.Tensor, t, noise: torch.Tensor) -> torch.Tensor:
        """The closed form of q(x_t | x₀): x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε (Ho et al. eq. 4). ``t`` is (B,) or a scalar."""
        t = self._check_train_timesteps(t)
        sqrt_alpha_bar = extract(self._sqrt_alphas_cumprod, t, x0.shape, x0.dtype, x0.device)
        sqrt_one_minus_alpha_bar = extract(self._sqrt_one_minus_alphas_cumprod, t, x0.shape, x0.dtype, x0.device)
        return q_sample(x0, noise, sqrt_alpha_bar, sqrt_one_minus_alpha_bar)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps) -> torch.Tensor:
        """diffusers' name for :meth:`q_sample`."""
        return self.q_sample(original_samples, timesteps, noise)

    def get_velocity(self, sample: torch.Tensor, noise: torch.Tensor, timesteps) -> torch.Tensor:
        """The v-prediction target v = √ᾱ_t·ε − √(1−ᾱ_t)·x₀ (Salimans & Ho 2022)."""
        t = self._check_train_timesteps(timesteps)
        return (
            extract(self._sqrt_alphas_cumprod, t, sample.shape, sample.dtype, sample.device) * noise
            - extract(self._sqrt_one_minus_alphas_cumprod, t, sample.shape, sample.dtype, sample.device) * sample
        )

    def q_step(self, x_prev: torch.Tensor, t: int, noise: torch.Tensor) -> torch.Tensor:
        """One Markov step of q(x_t | x_{t−1}) = N(√(1−β_t)·x_{t−1}, β_t·I) (Ho et al. eq. 2)."""
        return q_step(self.tables, x_prev, int(t), noise)

    def q_chain(
        self, x0: torch.Tensor, num_steps: int, generator: torch.Generator | None = None, return_all: bool = False
    ) -> torch.Tensor:
        """x after ``num_steps`` Markov steps from x₀ (or every one, with ``return_all``); see :func:`q_chain`."""
        return q_chain(self.tables, x0, num_steps, generator, return_all)

    def q_posterior_mean_variance(self, x0: torch.Tensor, x_t: torch.Tensor, t):
        """q(x_{t−1} | x_t, x₀) = N(μ̃_t, β̃_t·I) with μ̃_t = coef1·x₀ + coef2·x_t (Ho et al. eq. 6–7).

        Returns (mean, variance, log_variance_clipped) for the training-time (unrespaced) chain.
        """
        t = self._check_train_timesteps(t)
        tables = self.tables
        mean = (
            extract(tables.posterior_mean_coef1, t, x_t.shape, x_t.dtype, x_t.device) * x0
            + extract(tables.posterior_mean_coef2, t, x_t.shape, x_t.dtype, x_t.device) * x_t
        )
        variance = extract(tables.posterior_variance, t, x_t.shape, x_t.dtype, x_t.device)
        log_variance = extract(tables.posterior_log_variance_clipped, t, x_t.shape, x_t.dtype, x_t.device)
        return mean, variance, log_variance

    # ------------------------------------------------------------------ reverse process p_θ

    def predict_x0_and_eps(self, model_output: torch.Tensor, sample: torch.Tensor, c: StepCoefficients):
        """x̂₀ and ε̂ from the network's output at one reverse step; see :func:`x0_and_eps_from_model_output`."""
        return x0_and_eps_from_model_output(
            self.config.prediction_type, model_output, sample, c.sqrt_alpha_prod_t, c.sqrt_one_minus_alpha_prod_t
        )

    def step(
        self,
        model_output: torch.Tensor,
        timestep,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
        return_dict: bool = True,
        eta: float | None = None,
        variance_noise: torch.Tensor | None = None,
    ) -> DDPMExplorerSchedulerOutput | tuple:
        """One reverse step x_t → x_{t'} of p_θ(x_{t'} | x_t) = N(μ_θ(x_t, t), Σ_t).

        Args:
            model_output: the network's output at (x_t, t): ε, x₀ or v per ``prediction_type``.
            timestep: t, one of ``self.timesteps``.
            sample: x_t.
            generator: the only source of the step's noise.
            eta: ``None`` for DDPM's ancestral step; a number in [0, 1] for a DDIM step with that η
                (0 is deterministic; 1 has DDPM's ``fixed_small`` variance).
            variance_noise: the step's z ~ N(0, I), to pass instead of drawing it from ``generator``.
        """
        model_output, predicted_variance = self.split_model_output(model_output, sample)
        if eta is not None and not (isinstance(eta, (int, float)) and 0.0 <= eta <= 1.0):
            raise ValueError(f"eta must be a number in [0, 1], got {eta!r}.")

        # 1. coefficients of t → t': ᾱ_t, ᾱ_{t'}, β = 1 − ᾱ_t/ᾱ_{t'} (recomputed from ᾱ for respaced steps), the
        #    posterior's x0_coeff, xt_coeff and β̃
        c = self.step_coefficients(timestep)

        # 2. x̂₀ and ε̂ from the network's output (Ho et al. eq. 15)
        pred_x0, pred_epsilon = self.predict_x0_and_eps(model_output, sample, c)

        # 3. threshold or clip x̂₀
        if self.config.thresholding:
            pred_x0 = dynamic_threshold(pred_x0, self.config.dynamic_thresholding_ratio, self.config.sample_max_value)
        elif self.config.clip_sample:
            r = self.config.clip_sample_range
            pred_x0 = pred_x0.clamp(-r, r)

        variance_fraction = None
        if eta is None:
            # 4. posterior mean μ̃(x_t, x̂₀) = x0_coeff·x̂₀ + xt_coeff·x_t (Ho et al. eq. 7)
            prev_sample = c.x0_coeff * pred_x0 + c.xt_coeff * sample
            # 5. σ_t = √Σ_t: √β̃ (fixed_small), √β (fixed_large), or the network's, per pixel (learned)
            if predicted_variance is not None:
                log_variance = c.learned_log_variance(self.config.variance_type, predicted_variance)
                # √Σ_θ as diffusers takes it: exp(½·log Σ_θ) for learned_range, Σ_θ^½ for learned
                learned_range = self.config.variance_type == "learned_range"
                sigma = torch.exp(0.5 * log_variance) if learned_range else predicted_variance**0.5
                variance_fraction = c.variance_fraction(log_variance)
            elif self.config.variance_type == "fixed_small":
                sigma = c.std_fixed_small
            else:
                sigma = c.std_fixed_large
        else:
            # 4–5, DDIM instead (Song et al. eq. 12): x_{t'} = √ᾱ_{t'}·x̂₀ + √(1−ᾱ_{t'}−σ²)·ε̂, with σ from η (eq. 16)
            # and ε̂ made consistent with the clipped x̂₀
            if self.config.clip_sample or self.config.thresholding:
                pred_epsilon = (sample - c.sqrt_alpha_prod_t * pred_x0) / c.sqrt_one_minus_alpha_prod_t
            sigma = ddim_sigma(eta, c)
            direction = max(1.0 - c.alpha_prod_t_prev - sigma**2, 0.0) ** 0.5
            prev_sample = c.sqrt_alpha_prod_t_prev * pred_x0 + direction * pred_epsilon

        # 6. add σ_t·z, except at the last step (t' = −1), where p_θ outputs its mean
        if c.prev_timestep >= 0 and (torch.is_tensor(sigma) or sigma > 0):
            if variance_noise is None:
                variance_noise = randn_tensor(
                    model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype
                )
            prev_sample = prev_sample + sigma * variance_noise

        if not return_dict:
            return prev_sample, pred_x0, pred_epsilon
        return DDPMExplorerSchedulerOutput(
            prev_sample=prev_sample,
            pred_original_sample=pred_x0,
            pred_epsilon=pred_epsilon,
            variance_fraction=variance_fraction,
        )

    def split_model_output(self, model_output: torch.Tensor, sample: torch.Tensor):
        """(ε (or x₀, v), the variance channels or None) of the network's output at x_t.

        A learned-variance model outputs 2·C channels, the prediction first (diffusers' and improved-diffusion's
        order); every other model exactly x_t's shape. A learned model stepped with a fixed Σ_t (to compare the
        two) has its Σ_θ channels set aside.
        """
        channels = sample.shape[1]
        learned = self.config.variance_type in LEARNED_VARIANCE_TYPES
        if not learned and model_output.shape[1] == 2 * channels:  # a learned model sampled with a fixed Σ_t
            model_output = model_output[:, :channels]
        expected = (sample.shape[0], 2 * channels, *sample.shape[2:]) if learned else tuple(sample.shape)
        if tuple(model_output.shape) != expected:
            what = (
                f"2 × {channels} channels (variance_type={self.config.variance_type!r})" if learned else "x_t's shape"
            )
            raise ValueError(
                f"model_output {tuple(model_output.shape)} must have {what}: expected {expected} for a sample of "
                f"shape {tuple(sample.shape)}."
            )
        if not learned:
            return model_output, None
        prediction, variance = torch.split(model_output, channels, dim=1)
        return prediction, variance
