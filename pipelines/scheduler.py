"""A DDPM scheduler on diffusers' abstractions, with the paper's math spelled out.

It reads its per-timestep quantities from :class:`~pipelines.schedules.ScheduleTables` (float64, computed once), and
matches diffusers' ``DDPMScheduler`` numerically wherever the two mean the same thing (see ``tests/``).
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from pipelines.forward import q_chain, q_sample, q_step
from pipelines.schedules import (
    DIFFUSERS_SCHEDULE_NAMES,
    SCHEDULES_IN_DIFFUSERS,
    ScheduleTables,
    extract,
    make_betas,
    posterior_coefficients,
)

VARIANCE_TYPES = ("fixed_small", "fixed_large")
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
TIMESTEP_SPACINGS = ("trailing", "leading", "linspace")


@dataclass
class DDPMExplorerSchedulerOutput(BaseOutput):
    """One reverse step's results.

    Args:
        prev_sample: x_{t−1} (or x_{t'} for the previous timestep t' of a respaced schedule), (B, C, H, W).
        pred_original_sample: x̂₀, the model's estimate of the clean sample (after clipping, if enabled).
        pred_epsilon: ε̂, the model's estimate of the noise in x_t.
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor
    pred_epsilon: torch.Tensor


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
        )


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


def check_saved_betas(trained_betas, betas: torch.Tensor, schedule_name: str) -> None:
    """A named schedule saved with its β (for diffusers' solvers) must still be that schedule."""
    saved = torch.as_tensor(np.asarray(trained_betas, dtype=np.float64).reshape(-1), dtype=torch.float32)
    if saved.shape != betas.shape or not torch.allclose(saved, betas, rtol=1e-6, atol=0.0):
        raise ValueError(
            f"trained_betas do not match beta_schedule={schedule_name!r} with this config's T and β range; "
            "for a schedule of your own, pass beta_schedule='custom'."
        )


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
        trained_betas: the β array of a ``custom`` schedule.
        rescale_betas: scale the β range by 1000/T so that x_T is noise at any T.
        variance_type: Σ_t of p_θ(x_{t−1} | x_t): ``fixed_small`` is the posterior variance β̃_t,
            ``fixed_large`` is β_t.
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
        named = self.schedule_name != "custom"
        schedule = dict(
            schedule=self.schedule_name,
            num_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            rescale=rescale_betas,
            trained_betas=None if named else trained_betas,
        )
        self.tables = ScheduleTables.from_betas(make_betas(**schedule))
        # Sampling and add_noise read β and ᾱ in float32, computed with the same operations as diffusers'
        # DDPMScheduler, so the same seed gives the same frames. The float64 tables (ELBO, plots) differ by < 1e-6.
        self.betas = make_betas(**schedule, dtype=torch.float32)
        if named and trained_betas is not None:
            check_saved_betas(trained_betas, self.betas, self.schedule_name)
        self._register_for_diffusers(
            {**config_for_diffusers(self.schedule_name, rescale_betas, self.betas), "timestep_spacing": "trailing"}
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

    # ------------------------------------------------------------------ timesteps

    def _set_step_table(self, timesteps: list[int]) -> None:
        prev_timesteps = [*timesteps[1:], -1]
        coefficients = [StepCoefficients.compute(self.alphas_cumprod, t, p) for t, p in zip(timesteps, prev_timesteps)]
        self.timesteps = torch.tensor(timesteps, dtype=torch.long)
        self._coefficients = {c.timestep: c for c in coefficients}

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
            raise ValueError(
                f"Timestep {t} is not one of this scheduler's {len(self.timesteps)} timesteps "
                f"({int(self.timesteps[0])} … {int(self.timesteps[-1])})."
            )
        return self._coefficients[t]

    def previous_timestep(self, timestep) -> int:
        return self.step_coefficients(timestep).prev_timestep

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
        if model_output.shape != sample.shape:
            raise ValueError(
                f"model_output {tuple(model_output.shape)} and sample {tuple(sample.shape)} must have the same shape."
            )
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

        if eta is None:
            # 4. posterior mean μ̃(x_t, x̂₀) = x0_coeff·x̂₀ + xt_coeff·x_t (Ho et al. eq. 7)
            prev_sample = c.x0_coeff * pred_x0 + c.xt_coeff * sample
            # 5. σ_t = √Σ_t: √β̃ (fixed_small) or √β (fixed_large)
            sigma = c.std_fixed_small if self.config.variance_type == "fixed_small" else c.std_fixed_large
        else:
            # 4–5, DDIM instead (Song et al. eq. 12): x_{t'} = √ᾱ_{t'}·x̂₀ + √(1−ᾱ_{t'}−σ²)·ε̂, with σ from η (eq. 16)
            # and ε̂ made consistent with the clipped x̂₀
            if self.config.clip_sample or self.config.thresholding:
                pred_epsilon = (sample - c.sqrt_alpha_prod_t * pred_x0) / c.sqrt_one_minus_alpha_prod_t
            sigma = ddim_sigma(eta, c)
            direction = max(1.0 - c.alpha_prod_t_prev - sigma**2, 0.0) ** 0.5
            prev_sample = c.sqrt_alpha_prod_t_prev * pred_x0 + direction * pred_epsilon

        # 6. add σ_t·z, except at the last step (t' = −1), where p_θ outputs its mean
        if c.prev_timestep >= 0 and sigma > 0:
            if variance_noise is None:
                variance_noise = randn_tensor(
                    model_output.shape, generator=generator, device=model_output.device, dtype=model_output.dtype
                )
            prev_sample = prev_sample + sigma * variance_noise

        if not return_dict:
            return prev_sample, pred_x0, pred_epsilon
        return DDPMExplorerSchedulerOutput(
            prev_sample=prev_sample, pred_original_sample=pred_x0, pred_epsilon=pred_epsilon
        )
