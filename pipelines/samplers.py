"""The sampler registry: DDPM and DDIM (ours) and diffusers' solvers, each built from a model's scheduler config.

One place drives the UI, the API, the sweep and the tests. Every solver is built the diffusers way,
``Solver.from_config(pipe.scheduler.config, **options)``, so the model's schedule (and the sampling settings its
config carries, such as DPM-Solver's ``lambda_min_clipped`` or thresholding) carries over; ``options`` only choose the
algorithm (DPM-Solver++'s order, its SDE variant).
"""

from __future__ import annotations

import inspect
import itertools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from pipelines.imports import imported
from pipelines.schedules import DIFFUSERS_SCHEDULE_NAMES, make_betas

if TYPE_CHECKING:
    from diffusers import SchedulerMixin

OUR_SCHEDULER = "pipelines.scheduler:DDPMExplorerScheduler"  # DDPM and DDIM; the others are diffusers' solvers


def build_scheduler(scheduler_class: type[SchedulerMixin], config, **options) -> SchedulerMixin:
    """``scheduler_class.from_config(config, **options)``, quietly: the keys the class does not take are kept in its
    config (as ``from_config`` keeps them) without diffusers' warning about each."""
    accepted = scheduler_class._get_init_keys(scheduler_class)
    scheduler = scheduler_class.from_config({k: v for k, v in config.items() if k in accepted}, **options)
    scheduler.register_to_config(**{k: v for k, v in config.items() if k not in accepted and not k.startswith("_")})
    return scheduler


def schedule_betas(config) -> torch.Tensor:
    """A scheduler config's β in float32, as every scheduler computes them: its ``trained_betas`` when it has them
    (diffusers prefers them to any name), else its named schedule."""
    if config.get("trained_betas") is not None:
        return torch.tensor(config["trained_betas"], dtype=torch.float32)
    return make_betas(
        config["beta_schedule"],
        config["num_train_timesteps"],
        config.get("beta_start", 1e-4),
        config.get("beta_end", 0.02),
        rescale=config.get("rescale_betas", False),
        dtype=torch.float32,
    )


def half_log_snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """λ = ½·log SNR = ½·log(ᾱ/(1−ᾱ)) at each timestep, in float64: DPM-Solver's λ, and −log σ of the Euler-type
    solvers' σ = √((1−ᾱ)/ᾱ)."""
    alphas_cumprod = alphas_cumprod.double()
    return 0.5 * (alphas_cumprod.log() - (1.0 - alphas_cumprod).log())


def clip_schedule_tail(config) -> dict:
    """The config with the schedule cut where λ = ½·log SNR falls below its ``lambda_min_clipped``.

    The cosine schedule's last steps have β capped at 0.999, so ᾱ_{T} ≈ 2e−9 (log SNR ≈ −20): there x̂₀ = (x_t −
    √(1−ᾱ)·ε̂)/√ᾱ multiplies the network's error by 1/√ᾱ ≈ 2·10⁴, which throws a deterministic solver off at its first
    step. DPM-Solver's ``lambda_min_clipped`` (−5.1 for this schedule, as diffusers recommends) starts it where λ is
    still above the bound; cutting the schedule there (T' = the timesteps whose λ ≥ ``lambda_min_clipped``, the same
    ᾱ at each) gives every solver that start, with exactly N timesteps from T'−1 ("trailing"). x_T ~ N(0, I) is then
    read as x_{T'}, whose signal √ᾱ_{T'}·x₀ is below 1 % of the noise.

    The config is returned unchanged when it sets no bound or its schedule is above it everywhere.
    """
    lambda_min = config.get("lambda_min_clipped", -math.inf)
    if lambda_min is None or not math.isfinite(lambda_min):
        return dict(config)
    betas = schedule_betas(config)
    lambdas = half_log_snr(torch.cumprod(1.0 - betas, dim=0))  # decreasing in t
    kept = int((lambdas >= lambda_min).sum())
    if kept == len(betas):
        return dict(config)
    if kept < 2:
        raise ValueError(f"lambda_min_clipped={lambda_min} leaves fewer than 2 of the schedule's timesteps.")
    return {
        **config,
        "num_train_timesteps": kept,
        "beta_schedule": DIFFUSERS_SCHEDULE_NAMES.get(config["beta_schedule"], config["beta_schedule"]),
        "trained_betas": betas[:kept].tolist(),
    }


def is_respacing(timesteps, num_steps: int, start: int) -> bool:
    """Whether a run's timesteps are N distinct integers, strictly decreasing from ``start`` and never negative
    (a second-order solver repeats each but the first: Heun's 2N − 1 evaluations)."""
    distinct = list(dict.fromkeys(round(float(t)) for t in timesteps))
    decreasing = all(a > b for a, b in itertools.pairwise(distinct))
    return len(distinct) == num_steps and decreasing and distinct[0] == start and distinct[-1] >= 0


def karras_timesteps(alphas_cumprod: torch.Tensor, num_steps: int, rho: float = 7.0) -> list[int]:
    """N distinct integer timesteps from T−1 down to 0 whose σ = √((1−ᾱ_t)/ᾱ_t) follow Karras et al.'s spacing
    (EDM eq. 5): σ_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, each rounded to the timestep nearest in
    log σ.

    Evenly spaced timesteps jump on the cosine schedule from σ ≈ 160 to σ ≈ 6 in the first of 10 steps, and Heun's
    trapezoid over that jump overshoots; ρ = 7 makes the first jumps near-constant ratios instead (160 → 92 → 43 →
    21 …), the spacing Heun was paired with in that paper. Where rounding would merge two steps (N near T), each step
    is moved to the next free timestep, so there are always exactly N.
    """
    T = len(alphas_cumprod)
    if not 1 <= num_steps <= T:
        raise ValueError(f"num_inference_steps must be between 1 and {T}, got {num_steps}.")
    log_sigmas = -half_log_snr(alphas_cumprod)  # increasing in t
    if num_steps == 1:
        return [T - 1]
    ramp = torch.linspace(0.0, 1.0, num_steps, dtype=torch.float64)
    lo, hi = (log_sigmas[0] / rho).exp(), (log_sigmas[-1] / rho).exp()
    targets = rho * (hi + ramp * (lo - hi)).log()
    above = torch.searchsorted(log_sigmas, targets).clamp(1, T - 1)  # the nearer of the two neighbours in log σ
    nearest = torch.where(targets - log_sigmas[above - 1] < log_sigmas[above] - targets, above - 1, above).tolist()
    steps = []
    for i, t in enumerate(nearest):
        if steps:
            t = min(t, steps[-1] - 1)
        steps.append(max(t, num_steps - 1 - i))  # room left for the steps still to come
    return steps


def diffusers_run_scheduler(scheduler: SchedulerMixin, num_steps: int | None, device=None) -> SchedulerMixin:
    """A fresh copy of one of diffusers' schedulers with a run's N timesteps set, on the schedule cut at its
    ``lambda_min_clipped`` (:func:`clip_schedule_tail`); ``num_steps=None`` runs every timestep.

    Where the solver takes custom timesteps, they are ours: "trailing" (the same as DDPM's respacing), or Karras et
    al.'s σ spacing on integer timesteps (:func:`karras_timesteps`) where its config sets ``use_karras_sigmas``.
    Where it does not (UniPC, DEIS, Euler ancestral), its own "trailing" spacing is used, except for the N at which
    that spacing's float rounding (``np.arange(T, 0, -T/N)``) gives N + 1 timesteps, the last of them −1 (N = 61,
    103, … at T = 1000): those runs use its "linspace" spacing (N timesteps from T'−1 to 0) instead.
    """
    respaced_timesteps = imported("pipelines.scheduler").respaced_timesteps
    run = build_scheduler(type(scheduler), clip_schedule_tail(scheduler.config))
    T = run.config.num_train_timesteps
    n = T if num_steps is None else num_steps
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= T:
        raise ValueError(f"num_inference_steps must be an integer between 1 and {T}, got {num_steps!r}.")
    if "timesteps" in inspect.signature(run.set_timesteps).parameters:
        if run.config.get("use_karras_sigmas"):  # diffusers would make them fractional timesteps: ours are integers
            run = build_scheduler(type(run), {**run.config, "use_karras_sigmas": False})
            timesteps = karras_timesteps(run.alphas_cumprod, n)
        else:
            timesteps = respaced_timesteps(n, T - 1)
        run.set_timesteps(timesteps=timesteps, device=device)
    else:
        run.set_timesteps(n, device=device)
        if not is_respacing(run.timesteps, n, T - 1):
            run = build_scheduler(type(run), {**run.config, "timestep_spacing": "linspace"})
            run.set_timesteps(n, device=device)
    if not is_respacing(run.timesteps, n, T - 1):
        raise ValueError(
            f"{type(run).__name__} did not give {n} distinct timesteps from {T - 1} down; choose another N."
        )
    return run


@dataclass(frozen=True)
class Sampler:
    """One way to run the reverse process.

    Args:
        name: what users read.
        scheduler_path: ``"module:Class"`` of its scheduler, ours or one of diffusers'; imported by
            :attr:`scheduler_class` on first use, so the registry is read (names, NFE) without loading diffusers.
        options: set on top of the model's scheduler config; they choose the algorithm, not the schedule.
        stochastic: whether each step adds fresh noise (DDIM: when η > 0).
        takes_eta: DDIM's η applies.
        evaluations_per_step: model evaluations per step (Heun: 2, except its last step).
        ends_at_data: its last step lands on x₀. diffusers' DEIS stops at the first training timestep instead (it has
            no final σ = 0), which leaves noise of σ₁ = √((1−ᾱ₁)/ᾱ₁): 0.006 for the cosine schedule at T = 1000,
            under one grey level.
        reference: the paper.
    """

    name: str
    scheduler_path: str
    options: dict = field(default_factory=dict)
    stochastic: bool = False
    takes_eta: bool = False
    evaluations_per_step: int = 1
    ends_at_data: bool = True
    reference: str = ""

    @property
    def scheduler_class(self) -> type[SchedulerMixin]:
        module, name = self.scheduler_path.split(":")
        return getattr(imported(module), name)

    @property
    def uses_our_scheduler(self) -> bool:
        """DDPM or DDIM, stepped by :class:`~pipelines.scheduler.DDPMExplorerScheduler` itself."""
        return self.scheduler_path == OUR_SCHEDULER

    def scheduler(self, config) -> SchedulerMixin:
        """This sampler's scheduler for a model, from the model's scheduler config."""
        return build_scheduler(self.scheduler_class, config, **self.options)

    def nfe_of(self, num_steps: int) -> int:
        """Model evaluations of a run of ``num_steps`` steps (Heun's last step is a single Euler step)."""
        return self.evaluations_per_step * num_steps - (self.evaluations_per_step - 1)

    def steps_for(self, nfe: int) -> int:
        """The most steps whose run makes at most ``nfe`` model evaluations (at least 1)."""
        return max(1, (nfe + self.evaluations_per_step - 1) // self.evaluations_per_step)


SAMPLERS: dict[str, Sampler] = {
    "ddpm": Sampler(
        "DDPM (ancestral)",
        OUR_SCHEDULER,
        stochastic=True,
        reference="Ho et al. 2020; respaced: Nichol & Dhariwal 2021",
    ),
    "ddim": Sampler("DDIM (η)", OUR_SCHEDULER, takes_eta=True, reference="Song, Meng & Ermon 2021"),
    "dpmsolver++2m": Sampler(
        "DPM-Solver++ 2M",
        "diffusers:DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 2},
        reference="Lu et al. 2022",
    ),
    "dpmsolver++3m": Sampler(
        "DPM-Solver++ 3M",
        "diffusers:DPMSolverMultistepScheduler",
        {"algorithm_type": "dpmsolver++", "solver_order": 3},
        reference="Lu et al. 2022",
    ),
    "dpmsolver++2m-sde": Sampler(
        "DPM-Solver++ 2M SDE",
        "diffusers:DPMSolverMultistepScheduler",
        {"algorithm_type": "sde-dpmsolver++", "solver_order": 2},
        stochastic=True,
        reference="Lu et al. 2022",
    ),
    "unipc": Sampler("UniPC", "diffusers:UniPCMultistepScheduler", reference="Zhao et al. 2023"),
    "deis": Sampler("DEIS", "diffusers:DEISMultistepScheduler", ends_at_data=False, reference="Zhang & Chen 2023"),
    "euler": Sampler("Euler", "diffusers:EulerDiscreteScheduler", reference="Karras et al. 2022"),
    "euler-ancestral": Sampler(
        "Euler ancestral", "diffusers:EulerAncestralDiscreteScheduler", stochastic=True, reference="Karras et al. 2022"
    ),
    "heun": Sampler(
        "Heun",
        "diffusers:HeunDiscreteScheduler",
        {"use_karras_sigmas": True},  # trailing timesteps make its first trapezoid span σ ≈ 160 → 6 at 10 steps
        evaluations_per_step=2,
        reference="Karras et al. 2022",
    ),
}
"""Every sampler, by key."""


def get_sampler(key: str) -> Sampler:
    """The registered sampler ``key``; ValueError naming the choices otherwise."""
    if key not in SAMPLERS:
        raise ValueError(f"Unknown sampler {key!r}; choose one of {', '.join(SAMPLERS)}.")
    return SAMPLERS[key]
