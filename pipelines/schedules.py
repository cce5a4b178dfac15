"""β schedules and the per-timestep tables that DDPM's math reads.

Index convention (diffusers'): tables are indexed by ``t = 0 … T-1``. Index ``t`` holds the quantities of the
paper's step ``t+1``, so ``alphas_cumprod[t] = ᾱ_t = ∏_{s≤t} α_s`` and ``x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε`` is the sample
after ``t+1`` noising steps. ``alphas_cumprod_prev[0] = ᾱ_{−1} = 1``.

Everything users read counts t as the paper does (t = 0 the data, t = T noise): :attr:`ScheduleTables.by_paper_t`
is the same numbers indexed by that t (T + 1 entries, ᾱ₀ = 1), and :func:`paper_t_to_index` /
:func:`index_to_paper_t` are the one place the two counts meet.

Every schedule is a pure function in float64 registered in :data:`BETA_SCHEDULES`; that registry drives the UI
dropdown, the CLI choices and the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np
import torch

MAX_BETA = 0.999
MAX_TIMESTEPS = 100_000


def linear_betas(num_timesteps: int, beta_start: float, beta_end: float, dtype=torch.float64) -> torch.Tensor:
    """Ho et al. 2020 (DDPM), §4: β_t linear from ``beta_start`` to ``beta_end`` (1e-4 → 0.02 at T=1000)."""
    return torch.linspace(beta_start, beta_end, num_timesteps, dtype=dtype)


def quadratic_betas(num_timesteps: int, beta_start: float, beta_end: float, dtype=torch.float64) -> torch.Tensor:
    """√β linear from √beta_start to √beta_end, then squared (diffusers' ``scaled_linear``)."""
    return torch.linspace(beta_start**0.5, beta_end**0.5, num_timesteps, dtype=dtype) ** 2


def cosine_betas(num_timesteps: int, beta_start=None, beta_end=None, dtype=torch.float64, s: float = 0.008):
    """Nichol & Dhariwal 2021 (Improved DDPM), eq. 17: ᾱ(t) = f(t)/f(0), f(t) = cos²(((t/T + s)/(1 + s))·π/2),
    β_t = 1 − ᾱ(t+1)/ᾱ(t), clipped to 0.999 to avoid the singularity at t = T.

    ``beta_start``/``beta_end`` do not apply. Computed in float64 whatever ``dtype``.
    """
    steps = torch.arange(num_timesteps + 1, dtype=torch.float64)
    alpha_bar = torch.cos((steps / num_timesteps + s) / (1 + s) * math.pi / 2) ** 2
    betas = 1.0 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(max=MAX_BETA).to(dtype)


def sigmoid_betas(num_timesteps: int, beta_start: float, beta_end: float, dtype=torch.float64) -> torch.Tensor:
    """The sigmoid β schedule of GeoDiff (Xu et al. 2022), as in diffusers' ``sigmoid``:
    β_t = beta_start + (beta_end − beta_start)·σ(x_t), x_t linear from −6 to 6.

    This is a schedule on β, not the sigmoid schedule on ᾱ of Jabri et al. / Chen 2023 ("On the importance of
    noise scheduling"), which lucidrains implements; we chose GeoDiff's so that it compares 1:1 with diffusers.
    """
    x = torch.linspace(-6.0, 6.0, num_timesteps, dtype=dtype)
    return torch.sigmoid(x) * (beta_end - beta_start) + beta_start


BETA_SCHEDULES = {
    "linear": linear_betas,
    "quadratic": quadratic_betas,
    "cosine": cosine_betas,
    "sigmoid": sigmoid_betas,
}
"""The named schedules. ``custom`` (a user-given β array) is handled by :func:`make_betas` itself."""

SCHEDULE_NAMES = (*BETA_SCHEDULES, "custom")

# diffusers' names for the same schedules (same β in float32, tested), accepted when loading a diffusers config and
# written into ours, so that diffusers' solvers built with ``from_config`` compute the same schedule.
DIFFUSERS_SCHEDULE_NAMES = {"scaled_linear": "quadratic", "squaredcos_cap_v2": "cosine"}
SCHEDULES_IN_DIFFUSERS = {"linear": "linear", "quadratic": "scaled_linear", "cosine": "squaredcos_cap_v2"}

# Schedules that take a β range.
RANGED_SCHEDULES = ("linear", "quadratic", "sigmoid")


def _check_num_timesteps(num_timesteps) -> int:
    if isinstance(num_timesteps, bool) or not isinstance(num_timesteps, (int, np.integer)):
        raise ValueError(f"num_train_timesteps (T) must be an integer, got {num_timesteps!r}.")
    if not 1 <= num_timesteps <= MAX_TIMESTEPS:
        raise ValueError(f"num_train_timesteps (T) must be between 1 and {MAX_TIMESTEPS}, got {num_timesteps}.")
    return int(num_timesteps)


def make_betas(
    schedule: str,
    num_timesteps: int,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    rescale: bool = False,
    trained_betas=None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Build β_0 … β_{T−1} for a named schedule, or take ``trained_betas`` for ``custom``.

    The schedule is validated in float64. ``dtype=torch.float32`` gives the values diffusers' ``DDPMScheduler``
    computes (same operations in float32), which the sampler uses for bit-identical frames.

    Args:
        schedule: one of :data:`SCHEDULE_NAMES` (diffusers' ``scaled_linear``/``squaredcos_cap_v2`` also accepted).
        num_timesteps: T.
        beta_start, beta_end: the β range of ``linear``, ``quadratic`` and ``sigmoid`` (0 < start < end < 1).
        rescale: multiply the β range by 1000/T (as lucidrains' ``linear_beta_schedule``), so that x_T is
            pure noise at any T; β is then clipped to 0.999.
        trained_betas: the array for ``custom``.

    Raises:
        ValueError: an unknown schedule, a bad T, a bad β range, or a custom array that is not a valid schedule.
    """
    schedule = DIFFUSERS_SCHEDULE_NAMES.get(schedule, schedule)
    if trained_betas is not None and schedule != "custom":
        raise ValueError(f"trained_betas was given with beta_schedule={schedule!r}; use beta_schedule='custom'.")
    if schedule == "custom":
        if trained_betas is None:
            raise ValueError("beta_schedule='custom' needs trained_betas: an array of T values in (0, 1).")
        betas = np.asarray(trained_betas, dtype=np.float64).reshape(-1)
        if num_timesteps is not None and len(betas) != num_timesteps:
            raise ValueError(f"trained_betas has {len(betas)} values but num_train_timesteps is {num_timesteps}.")
        _check_num_timesteps(len(betas))
        validate_betas(betas)
        return torch.from_numpy(betas).to(dtype)
    if schedule not in BETA_SCHEDULES:
        raise ValueError(f"Unknown beta schedule {schedule!r}; choose one of {', '.join(SCHEDULE_NAMES)}.")
    num_timesteps = _check_num_timesteps(num_timesteps)
    if schedule in RANGED_SCHEDULES:
        beta_start, beta_end = float(beta_start), float(beta_end)
        if not (math.isfinite(beta_start) and math.isfinite(beta_end)):
            raise ValueError(f"beta_start and beta_end must be finite, got {beta_start}, {beta_end}.")
        if not 0.0 < beta_start < beta_end < 1.0:
            raise ValueError(f"Need 0 < beta_start < beta_end < 1, got beta_start={beta_start}, beta_end={beta_end}.")
        if rescale:
            scale = 1000.0 / num_timesteps
            beta_start, beta_end = beta_start * scale, beta_end * scale
    elif rescale:
        raise ValueError(f"rescale applies to the ranged schedules ({', '.join(RANGED_SCHEDULES)}), not {schedule!r}.")
    betas = BETA_SCHEDULES[schedule](num_timesteps, beta_start, beta_end, dtype=torch.float64)
    if rescale:
        betas = betas.clamp(max=MAX_BETA)
    validate_betas(betas.numpy())
    if dtype == torch.float64:
        return betas
    betas = BETA_SCHEDULES[schedule](num_timesteps, beta_start, beta_end, dtype=dtype)
    return betas.clamp(max=MAX_BETA) if rescale else betas


def validate_betas(betas: np.ndarray) -> None:
    """Raise ValueError unless every β is finite and in (0, 1), which makes ᾱ strictly decreasing and positive."""
    if betas.ndim != 1 or len(betas) == 0:
        raise ValueError("betas must be a non-empty 1-D array.")
    if not np.all(np.isfinite(betas)):
        raise ValueError("betas must be finite (no NaN or Inf).")
    if not (np.all(betas > 0.0) and np.all(betas < 1.0)):
        raise ValueError(f"Every beta must be in (0, 1); got min {betas.min():.3g}, max {betas.max():.3g}.")


def posterior_coefficients(alpha_bar_t, alpha_bar_prev):
    """The posterior q(x_{t'} | x_t, x₀) = N(x0_coeff·x₀ + xt_coeff·x_t, β̃·I) of a step t → t' (Ho et al. eq. 6–7),
    with β = 1 − ᾱ_t/ᾱ_{t'} recomputed from ᾱ so that it holds for respaced steps too (Nichol & Dhariwal 2021, §4):

        x0_coeff = √ᾱ_{t'}·β / (1−ᾱ_t),   xt_coeff = √(1−β)·(1−ᾱ_{t'}) / (1−ᾱ_t),   β̃ = (1−ᾱ_{t'}) / (1−ᾱ_t)·β

    ``alpha_bar_t`` (ᾱ_t) and ``alpha_bar_prev`` (ᾱ_{t'}, 1 after the last step, where β̃ = 0 exactly) are numpy
    arrays or torch tensors of the same shape. The operations and their order are diffusers' ``DDPMScheduler.step``,
    so 0-d float32 tensors give its coefficients bit for bit. Returns (x0_coeff, xt_coeff, variance β̃), unclamped.
    """
    beta_prod_t = 1 - alpha_bar_t  # 1 − ᾱ_t
    beta_prod_t_prev = 1 - alpha_bar_prev  # 1 − ᾱ_{t'}
    current_alpha_t = alpha_bar_t / alpha_bar_prev  # 1 − β
    current_beta_t = 1 - current_alpha_t  # β
    x0_coeff = alpha_bar_prev**0.5 * current_beta_t / beta_prod_t
    xt_coeff = current_alpha_t**0.5 * beta_prod_t_prev / beta_prod_t
    variance = beta_prod_t_prev / beta_prod_t * current_beta_t
    return x0_coeff, xt_coeff, variance


def paper_t_to_index(t):
    """diffusers' table index (and the UNet's timestep input) of the paper's t = 1 … T: t − 1. Ints, arrays,
    tensors."""
    return t - 1


def index_to_paper_t(index):
    """The paper's t of diffusers' table index 0 … T − 1: index + 1 (a step's ``prev_timestep`` −1, past the last
    one, is t = 0, the data). Ints, arrays, tensors."""
    return index + 1


@dataclass(frozen=True)
class PaperTables:
    """The schedule's numbers by the paper's t = 0 … T (T + 1 entries, float64): entry t is ᾱ_t etc. of x_t, and
    t = 0 is the data, where ᾱ₀ = 1, √(1−ᾱ₀) = 0, SNR = log SNR = ∞ and no β or β̃ exists (NaN)."""

    betas: torch.Tensor
    posterior_variance: torch.Tensor  # β̃_t, the lower end of a learned Σ_θ (β_t the upper)
    alphas_cumprod: torch.Tensor
    sqrt_alphas_cumprod: torch.Tensor
    sqrt_one_minus_alphas_cumprod: torch.Tensor
    snr: torch.Tensor
    log_snr: torch.Tensor


@dataclass(frozen=True)
class ScheduleTables:
    """Everything DDPM reads per timestep, precomputed once in float64 and indexed by t = 0 … T−1."""

    betas: torch.Tensor  # β_t
    alphas: torch.Tensor  # α_t = 1 − β_t
    alphas_cumprod: torch.Tensor  # ᾱ_t = ∏_{s≤t} α_s
    alphas_cumprod_prev: torch.Tensor  # ᾱ_{t−1}, with ᾱ_{−1} = 1
    sqrt_alphas_cumprod: torch.Tensor  # √ᾱ_t
    sqrt_one_minus_alphas_cumprod: torch.Tensor  # √(1−ᾱ_t)
    # q(x_{t−1} | x_t, x₀) = N(μ̃_t, β̃_t·I) (Ho et al. eq. 6–7), from :func:`posterior_coefficients`
    posterior_variance: torch.Tensor  # β̃_t = β_t (1−ᾱ_{t−1}) / (1−ᾱ_t); β̃_0 = 0 exactly
    posterior_log_variance_clipped: torch.Tensor  # log β̃_t, with log β̃_0 := log β̃_1 (β̃_0 = 0 has no log)
    posterior_mean_coef1: torch.Tensor  # coefficient of x₀ in μ̃_t: √ᾱ_{t−1} β_t / (1−ᾱ_t)
    posterior_mean_coef2: torch.Tensor  # coefficient of x_t in μ̃_t: √α_t (1−ᾱ_{t−1}) / (1−ᾱ_t)
    snr: torch.Tensor  # SNR(t) = ᾱ_t / (1−ᾱ_t)
    log_snr: torch.Tensor  # log SNR(t)

    @property
    def num_timesteps(self) -> int:
        return len(self.betas)

    @cached_property
    def by_paper_t(self) -> PaperTables:
        """These tables indexed by the paper's t = 0 … T (t = 0, the data, prepended), made once."""
        at_data = lambda first, table: torch.cat([torch.tensor([first], dtype=table.dtype), table])
        return PaperTables(
            betas=at_data(math.nan, self.betas),
            posterior_variance=at_data(math.nan, self.posterior_variance),
            alphas_cumprod=at_data(1.0, self.alphas_cumprod),
            sqrt_alphas_cumprod=at_data(1.0, self.sqrt_alphas_cumprod),
            sqrt_one_minus_alphas_cumprod=at_data(0.0, self.sqrt_one_minus_alphas_cumprod),
            snr=at_data(math.inf, self.snr),
            log_snr=at_data(math.inf, self.log_snr),
        )

    @classmethod
    def from_betas(cls, betas) -> ScheduleTables:
        betas = torch.as_tensor(betas).double().numpy() if torch.is_tensor(betas) else np.asarray(betas, np.float64)
        validate_betas(betas)
        alphas = 1.0 - betas
        alphas_cumprod = np.cumprod(alphas)
        if alphas_cumprod[-1] < 1e-300:
            raise ValueError(
                "ᾱ underflows float64 (below 1e-300): this schedule destroys the signal long before T; "
                "use fewer steps or smaller β."
            )
        alphas_cumprod_prev = np.append(1.0, alphas_cumprod[:-1])
        posterior_mean_coef1, posterior_mean_coef2, posterior_variance = posterior_coefficients(
            alphas_cumprod, alphas_cumprod_prev
        )
        log_var_source = posterior_variance.copy()
        if len(betas) > 1:
            log_var_source[0] = posterior_variance[1]
        else:  # T = 1: no later step to borrow from; β is the only scale there is
            log_var_source[0] = betas[0]
        tables = dict(
            betas=betas,
            alphas=alphas,
            alphas_cumprod=alphas_cumprod,
            alphas_cumprod_prev=alphas_cumprod_prev,
            sqrt_alphas_cumprod=np.sqrt(alphas_cumprod),
            sqrt_one_minus_alphas_cumprod=np.sqrt(1.0 - alphas_cumprod),
            posterior_variance=posterior_variance,
            posterior_log_variance_clipped=np.log(log_var_source),
            posterior_mean_coef1=posterior_mean_coef1,
            posterior_mean_coef2=posterior_mean_coef2,
            snr=alphas_cumprod / (1.0 - alphas_cumprod),
            log_snr=np.log(alphas_cumprod) - np.log1p(-alphas_cumprod),
        )
        return cls(**{name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in tables.items()})

    def as_numpy(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name).numpy() for f in fields(self)}


def make_schedule(schedule: str, num_timesteps: int, **kwargs) -> ScheduleTables:
    """``make_betas`` followed by :meth:`ScheduleTables.from_betas`."""
    return ScheduleTables.from_betas(make_betas(schedule, num_timesteps, **kwargs))


def extract(table: torch.Tensor, t, shape: torch.Size, dtype=None, device=None) -> torch.Tensor:
    """Gather ``table[t]`` for a batch of timesteps and shape it to broadcast over ``shape``.

    (T,) table, (B,) or scalar t -> (B, 1, 1, …) in ``dtype`` on ``device`` (the table's own by default).
    """
    t = torch.as_tensor(t, device=table.device).long().reshape(-1)
    out = table[t].to(dtype=dtype or table.dtype, device=device or table.device)
    return out.reshape(t.shape[0], *((1,) * (len(shape) - 1)))
