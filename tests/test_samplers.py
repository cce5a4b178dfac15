"""The sampler registry: every diffusers solver on our models, built the diffusers way, recorded in the DDPM scale,
and the timestep bookkeeping bugs diffusers' DDPM/DDIM code has had, which ours must never reproduce."""

import itertools
import math

import numpy as np
import pytest
import torch
from conftest import make_tiny_unet
from diffusers import DPMSolverMultistepScheduler, UNet2DModel
from diffusers.models.unets.unet_2d import UNet2DOutput

from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler
from pipelines.samplers import SAMPLERS, clip_schedule_tail, diffusers_run_scheduler, get_sampler
from pipelines.schedules import SCHEDULE_NAMES
from pipelines.trajectory import log_snr

SOLVERS = [key for key, s in SAMPLERS.items() if s.scheduler_class is not DDPMExplorerScheduler]
COSINE = dict(beta_schedule="cosine", lambda_min_clipped=-5.1, thresholding=True, sample_max_value=1.0)


def scheduler_for(schedule: str, T: int = 100) -> DDPMExplorerScheduler:
    if schedule == "custom":
        return DDPMExplorerScheduler(
            num_train_timesteps=T, beta_schedule="custom", trained_betas=np.linspace(1e-3, 0.1, T)
        )
    if schedule == "cosine":
        return DDPMExplorerScheduler(num_train_timesteps=T, **COSINE)
    return DDPMExplorerScheduler(num_train_timesteps=T, beta_schedule=schedule, rescale_betas=True)


def pipeline(scheduler, unet=None) -> DDPMExplorerPipeline:
    pipe = DDPMExplorerPipeline(unet=unet or make_tiny_unet(), scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("schedule", SCHEDULE_NAMES)
@pytest.mark.parametrize("key", SOLVERS)
def test_solvers_built_from_our_config_have_our_schedule(schedule, key):
    ours = scheduler_for(schedule)
    solver = SAMPLERS[key].scheduler(ours.config)
    assert torch.equal(solver.alphas_cumprod, ours.alphas_cumprod)


@pytest.mark.slow
@pytest.mark.parametrize("key", SOLVERS)
def test_the_diffusers_way_samples_and_records_every_step(key):
    """``pipe.scheduler = Solver.from_config(pipe.scheduler.config)``, then ``pipe(num_inference_steps=...)``: on a
    cosine model (which raised ``NotImplementedError: cosine`` before) the solver samples, and every step is
    recorded."""
    pipe = pipeline(scheduler_for("cosine"))
    sampler = SAMPLERS[key]
    pipe.scheduler = sampler.scheduler_class.from_config(pipe.scheduler.config, **sampler.options)
    images = pipe(batch_size=2, num_inference_steps=6, generator=torch.Generator().manual_seed(0), output_type="np")
    assert images.images.shape == (2, 8, 8, 1) and np.isfinite(images.images).all()
    traj = pipe.sample_trajectory(batch_size=2, num_inference_steps=6, generator=torch.Generator().manual_seed(0))
    assert traj.num_steps == len(traj) == sampler.nfe_of(6)
    same = (traj.final / 2 + 0.5).clamp(0, 1).numpy().transpose(0, 2, 3, 1)
    assert np.allclose(same, images.images, atol=1e-6)  # the same seed, the same frames


@pytest.mark.parametrize("key", list(SAMPLERS))
def test_every_sampler_starts_from_the_same_x_T(key):
    pipe = pipeline(scheduler_for("cosine"))
    sampler = SAMPLERS[key]
    steps = pipe.iter_trajectory(
        batch_size=3,
        generator=torch.Generator().manual_seed(7),
        num_inference_steps=5,
        scheduler=sampler.scheduler(pipe.scheduler.config),
    )
    x_T = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    # Euler-type solvers start at σ_max·ε (diffusers' convention), which is √(1−ᾱ_T)·ε in the DDPM scale
    assert torch.allclose(next(steps).sample, x_T, rtol=1e-3, atol=1e-6)


def exact_score_unet(x0: torch.Tensor, alphas_cumprod: torch.Tensor) -> UNet2DModel:
    """A UNet that knows the answer: at (x_t, t) it returns ε = (x_t − √ᾱ_t·x₀)/√(1−ᾱ_t), the perfect denoiser."""

    class Oracle(UNet2DModel):
        def forward(self, sample, timestep, class_labels=None, return_dict=True):
            ab = alphas_cumprod[round(float(timestep))]
            return UNet2DOutput(sample=(sample - ab.sqrt() * x0) / (1 - ab).sqrt())

    unet = make_tiny_unet()
    unet.__class__ = Oracle
    return unet


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
@pytest.mark.parametrize("key", list(SAMPLERS))
def test_an_exact_denoiser_lands_on_the_data(key, schedule):
    """The last step lands on the data: with a perfect denoiser every sampler returns x₀ (all of them are exact for
    a constant x̂₀; the tolerance is float32 rounding), except DEIS, which stops at the first training timestep: its
    result is within the noise left there, 5·σ₁."""
    scheduler = scheduler_for(schedule)
    x0 = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 1.8 - 0.9
    pipe = pipeline(scheduler, exact_score_unet(x0, scheduler.alphas_cumprod))
    sampler = SAMPLERS[key]
    ab = float(scheduler.alphas_cumprod[0])
    tolerance = 2e-3 if sampler.ends_at_data else 5 * ((1 - ab) / ab) ** 0.5
    for n in (1, 4, 10):
        final = pipe.sample_trajectory(
            batch_size=2,
            num_inference_steps=n,
            generator=torch.Generator().manual_seed(0),
            scheduler=sampler.scheduler(scheduler.config),
        ).final
        assert torch.allclose(final, x0, atol=tolerance), (n, (final - x0).abs().max())


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["cosine", "linear"])
@pytest.mark.parametrize("key", list(SAMPLERS))
def test_n_steps_are_n_distinct_decreasing_timesteps_for_every_n(key, schedule):
    """diffusers once gave 56 timesteps for 53, and its "trailing" spacing still gives N + 1, the last −1, at some N
    (float rounding); ours gives exactly N distinct, strictly decreasing timesteps from T'−1, never negative, for
    every N in 1 … T', and each step's previous timestep is the next one of the schedule, not t − 1."""
    scheduler = scheduler_for(schedule, T=200)
    pipe = pipeline(scheduler)
    sampler = SAMPLERS[key]
    solver = sampler.scheduler(scheduler.config)
    T = clip_schedule_tail(scheduler.config)["num_train_timesteps"] if solver is not None and key in SOLVERS else 200
    for n in range(1, T + 1):
        run = pipe.run_schedule(solver, n)
        distinct = list(dict.fromkeys(run.timesteps))
        assert len(distinct) == n and distinct[0] == T - 1 and distinct[-1] >= 0, (n, distinct[:3], distinct[-3:])
        assert all(a > b for a, b in itertools.pairwise(distinct))
        assert run.prev_timesteps == [*run.timesteps[1:], -1]
        assert len(run) == sampler.nfe_of(n)


def test_previous_timestep_is_the_schedules_next_not_t_minus_1():
    scheduler = scheduler_for("linear").with_timesteps(num_inference_steps=10)
    ts = scheduler.timesteps.tolist()
    assert [scheduler.previous_timestep(t) for t in ts] == [*ts[1:], -1]
    assert all(scheduler.previous_timestep(t) != t - 1 for t in ts[:-1])


def test_the_cosine_tail_is_cut_at_lambda_min_clipped():
    scheduler = scheduler_for("cosine", T=1000)
    assert log_snr(float(scheduler.alphas_cumprod[-1])) < -19  # β capped at 0.999: ᾱ_T ≈ 2e−9
    cut = clip_schedule_tail(scheduler.config)
    kept = cut["num_train_timesteps"]
    assert 990 < kept < 1000
    assert (
        log_snr(float(scheduler.alphas_cumprod[kept - 1])) >= 2 * -5.1 > log_snr(float(scheduler.alphas_cumprod[kept]))
    )
    run = diffusers_run_scheduler(SAMPLERS["euler"].scheduler(scheduler.config), 20)
    assert torch.equal(run.alphas_cumprod, scheduler.alphas_cumprod[:kept])
    no_bound = DDPMExplorerScheduler(num_train_timesteps=1000, beta_schedule="cosine")
    assert clip_schedule_tail(no_bound.config)["num_train_timesteps"] == 1000


@pytest.mark.slow
def test_euler_frames_are_in_the_ddpm_scale():
    """Euler works on x·√(1+σ²); the recorded x_t is the DDPM-scale one, with the noise level the solver used."""
    pipe = pipeline(scheduler_for("linear"))
    solver = SAMPLERS["euler"].scheduler(pipe.scheduler.config)
    run = pipe.run_scheduler(solver, 5)
    assert run.init_noise_sigma > 5
    steps = list(
        pipe.iter_trajectory(
            batch_size=64, generator=torch.Generator().manual_seed(0), num_inference_steps=5, scheduler=solver
        )
    )
    for step, sigma in zip(steps, run.sigmas[:-1]):
        assert step.alpha_prod_t == pytest.approx(1 / (1 + float(sigma) ** 2), rel=1e-6)
        assert step.alpha_prod_t == pytest.approx(float(pipe.scheduler.alphas_cumprod[step.timestep]), rel=1e-4)
    assert 0.8 < float(steps[0].sample.std()) < 1.2  # x_T ~ N(0, I), not σ_max·N(0, I)
    snrs = [log_snr(s.alpha_prod_t) for s in steps]
    assert snrs == sorted(snrs)  # noise levels fall step by step


@pytest.mark.slow
def test_heun_evaluates_twice_per_step_but_the_last():
    pipe = pipeline(scheduler_for("linear"))
    traj = pipe.sample_trajectory(
        num_inference_steps=4,
        generator=torch.Generator().manual_seed(0),
        scheduler=SAMPLERS["heun"].scheduler(pipe.scheduler.config),
    )
    assert len(traj) == 7 and traj.nfe_so_far[-1] == 7 and get_sampler("heun").steps_for(7) == 4


@pytest.mark.slow
def test_trajectories_of_different_samplers_align_by_noise_level():
    pipe = pipeline(scheduler_for("cosine"))
    a = pipe.sample_trajectory(num_inference_steps=5, generator=torch.Generator().manual_seed(0))
    b = pipe.sample_trajectory(
        num_inference_steps=10,
        generator=torch.Generator().manual_seed(0),
        scheduler=SAMPLERS["unipc"].scheduler(pipe.scheduler.config),
    )
    assert len(a.log_snrs) == 5 and len(b.log_snrs) == 10
    assert all(x < y for x, y in zip(b.log_snrs, b.log_snrs[1:]))
    assert all(math.isfinite(v) for v in a.log_snrs + b.log_snrs)


def test_combinations_that_cannot_work_are_refused():
    pipe = pipeline(scheduler_for("linear"))
    dpm = SAMPLERS["dpmsolver++2m"].scheduler(pipe.scheduler.config)
    with pytest.raises(ValueError, match="η"):
        next(pipe.iter_trajectory(num_inference_steps=4, eta=0.5, scheduler=dpm))
    with pytest.raises(ValueError, match="SDEdit"):
        next(pipe.iter_trajectory(image=torch.zeros(1, 1, 8, 8), start_timestep=20, scheduler=dpm))
    with pytest.raises(ValueError, match="between 1 and"):
        pipe.run_schedule(dpm, 0)
    with pytest.raises(ValueError, match="Unknown sampler"):
        get_sampler("plms")
    with pytest.raises(ValueError, match="fewer than 2"):
        clip_schedule_tail({**scheduler_for("cosine").config, "lambda_min_clipped": 50.0})


def test_our_config_carries_diffusers_names_and_still_loads_old_ones(tmp_path):
    old = {"beta_schedule": "cosine", "num_train_timesteps": 100, "timestep_spacing": "leading"}
    scheduler = DDPMExplorerScheduler.from_config(old)
    assert scheduler.config.beta_schedule == "squaredcos_cap_v2" and scheduler.schedule_name == "cosine"
    assert scheduler.config.timestep_spacing == "trailing"
    sigmoid = DDPMExplorerScheduler(num_train_timesteps=100, beta_schedule="sigmoid")
    sigmoid.save_config(tmp_path)
    again = DDPMExplorerScheduler.from_pretrained(tmp_path)
    assert again.schedule_name == "sigmoid" and torch.equal(again.tables.betas, sigmoid.tables.betas)
    assert torch.equal(DPMSolverMultistepScheduler.from_pretrained(tmp_path).alphas_cumprod, sigmoid.alphas_cumprod)
    # diffusers' rule: given trained_betas win over the schedule's name (configs in the wild are written that way)
    theirs = DDPMExplorerScheduler(num_train_timesteps=100, beta_schedule="linear", trained_betas=[0.01] * 100)
    assert theirs.schedule_name == "custom" and torch.allclose(theirs.betas, torch.full((100,), 0.01))


def test_thresholding_with_max_1_is_clipping_and_matches_diffusers():
    from diffusers import DDPMScheduler

    ours = DDPMExplorerScheduler(num_train_timesteps=50, thresholding=True, sample_max_value=1.5)
    theirs = DDPMScheduler.from_config(ours.config)
    assert theirs.config.thresholding and theirs.config.sample_max_value == 1.5
    g = torch.Generator().manual_seed(0)
    x, eps = torch.randn(2, 1, 8, 8, generator=g) * 3, torch.randn(2, 1, 8, 8, generator=g)
    a = ours.step(eps, 30, x, generator=torch.Generator().manual_seed(1)).prev_sample
    b = theirs.step(eps, 30, x, generator=torch.Generator().manual_seed(1)).prev_sample
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_heun_steps_are_karras_sigmas_on_integer_timesteps(schedule):
    """Heun runs on Karras et al.'s σ spacing (its config's ``use_karras_sigmas``, as diffusers spells it), on integer
    timesteps: diffusers' own fractional Karras timesteps, rounded, wherever rounding keeps them distinct. On the
    cosine schedule evenly spaced timesteps made its first trapezoid span σ ≈ 160 → 6 at 10 steps (37× the real floor
    at 19 evaluations); Karras' spacing keeps each of the first jumps under 3× (evenly spaced: 25× at the first)."""
    from diffusers import HeunDiscreteScheduler

    from pipelines.samplers import build_scheduler, karras_timesteps

    scheduler = scheduler_for(schedule, T=1000)
    cut = clip_schedule_tail(scheduler.config)
    theirs = build_scheduler(HeunDiscreteScheduler, {**cut, "use_karras_sigmas": True, "timestep_spacing": "linspace"})
    for n in (5, 10, 20):
        theirs.set_timesteps(n)
        distinct = [theirs.timesteps[0].item(), *theirs.timesteps[1::2].tolist()]
        assert karras_timesteps(theirs.alphas_cumprod, n) == [round(t) for t in distinct]
    run = diffusers_run_scheduler(SAMPLERS["heun"].scheduler(scheduler.config), 10)
    sigmas = run.sigmas[::2][:10]  # each step's σ (Heun repeats every σ but the first for its second stage)
    assert run.timesteps[0] == cut["num_train_timesteps"] - 1 and run.timesteps[-1] == 0
    assert (sigmas[:5] / sigmas[1:6]).max() < 3.0, sigmas
