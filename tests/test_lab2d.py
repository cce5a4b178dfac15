"""The 2D lab's math: data sets, the closed-form forward process on points, the Gaussian mixture's exact score,
the density heat map, the distances, and a model trained for a few seconds that samples and scores as it should."""

import math

import numpy as np
import pytest
import torch

from pipelines.lab2d.datasets import (
    DATASETS,
    RING,
    RING_STD,
    from_sketch,
    get_dataset,
    rasterize_strokes,
    ring_mixture,
)
from pipelines.lab2d.density import density_on_grid, kernel_density
from pipelines.lab2d.exact_score import GaussianMixture, model_score
from pipelines.lab2d.experiment import Experiment
from pipelines.lab2d.metrics import mmd, sliced_wasserstein
from pipelines.lab2d.quality import measure_against
from pipelines.lab2d.sampling import LAB_SAMPLERS, iter_reverse, max_steps, record_run
from pipelines.lab2d.score_field import alpha_bar, grid, learned_score
from pipelines.lab2d.training import X0_RANGE, TrainingConfig, fit, lab_scheduler, new_model, train_steps
from pipelines.schedules import BETA_SCHEDULES

# the trained model's checks: how close the learned score must be to the exact one (mean ‖s_θ − ∇log q_t‖ over
# x_t ~ q_t, relative to the exact score's mean norm) at t = T/2 and at t = T/4 (the modes still apart there)
SCORE_TOLERANCE = {0.5: 0.05, 0.25: 0.20}
CLOSER_THAN_NOISE = 0.75  # a trained model's samples: at most this fraction of the noise's distance to the data


@pytest.mark.parametrize("name", list(DATASETS))
def test_datasets_are_seeded_and_standardised(name):
    distribution = get_dataset(name)
    x = distribution.sample(20_000, seed=3)
    assert x.shape == (20_000, 2) and x.dtype == torch.float32
    torch.testing.assert_close(distribution.sample(500, seed=3), distribution.sample(500, seed=3))
    assert not torch.equal(distribution.sample(500, seed=3), distribution.sample(500, seed=4))
    assert x.mean(0).abs().max() < 0.05, "mean 0"
    assert x.square().mean().item() == pytest.approx(1.0, abs=0.03), "mean per-axis variance 1"
    with pytest.raises(ValueError, match="positive integer"):
        distribution.sample(0, seed=0)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(ValueError, match="two moons"):
        get_dataset("three moons")


def test_the_ring_is_its_mixture():
    mixture = get_dataset(RING).mixture
    assert len(mixture.means) == 8 and mixture.variance == pytest.approx(RING_STD**2)
    radii = mixture.means.norm(dim=1)
    torch.testing.assert_close(radii, torch.full((8,), math.sqrt(2 * (1 - RING_STD**2)), dtype=torch.float64))
    x = get_dataset(RING).sample(40_000, seed=0).double()
    nearest = torch.cdist(x, mixture.means).min(1).values
    assert nearest.square().mean().item() == pytest.approx(2 * RING_STD**2, rel=0.05), "σ² per axis around a mode"


def test_a_sketch_becomes_points_on_its_strokes():
    # a T: a horizontal bar over a vertical one, as strokes of the pad (x right, y down, in [0, 1])
    strokes = [[(0.1, 0.2), (0.9, 0.2)], [(0.5, 0.2), (0.5, 0.9)]]
    mask = rasterize_strokes(strokes, side=64, radius=1.0)
    rows, cols = np.nonzero(mask)
    assert set(np.unique(rows[cols < 28])) <= {11, 12, 13, 14}, "the bar's left part is a few rows high at y = 0.2"
    assert mask[12, 6:58].all() and mask[12:58, 32].all() and not mask[40, 10] and not mask[5, 32]
    distribution = from_sketch(mask)
    x = distribution.sample(5000, seed=0)
    assert x.mean(0).abs().max() < 0.05 and x.square().mean().item() == pytest.approx(1.0, abs=0.05)
    raw = x.double() * distribution.scale + torch.tensor(distribution.mean, dtype=torch.float64)
    cols, rows = raw[:, 0].floor().long(), (-raw[:, 1]).floor().long()
    assert bool(torch.from_numpy(mask)[rows, cols].all()), "every point lies on a drawn cell"
    assert (raw[:, 1] > -15).float().mean().item() > 0.4, "y points up: the bar on top"
    dot = rasterize_strokes([[(0.5, 0.5)]], side=64, radius=1.5)
    assert dot.sum() == 9 and dot[32, 32]  # one point is a dot of the pen's radius
    assert rasterize_strokes([[(0.0, 0.0), (1.0, 1.0)]], side=16, radius=0.0).diagonal().all()  # edges stay inside
    with pytest.raises(ValueError, match="draw something"):
        from_sketch(np.zeros((64, 64), bool))


@pytest.mark.parametrize("schedule", list(BETA_SCHEDULES))
def test_the_forward_process_on_points_is_the_closed_form(schedule):
    """The scheduler's q_sample on (N, 2) points is x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, and x_T is (nearly) pure noise at any T
    (the β range is scaled by 1000/T)."""
    for T in (50, 1000):
        scheduler = lab_scheduler(schedule, T)
        experiment = Experiment(get_dataset("two moons"), 1000, 0, schedule, T)
        for t in (1, T // 2, T):
            ab = alpha_bar(scheduler, t)
            expected = math.sqrt(ab) * experiment.data + math.sqrt(1 - ab) * experiment.noise
            torch.testing.assert_close(scheduler.q_sample(experiment.data, t - 1, experiment.noise), expected)
        assert alpha_bar(scheduler, T) < 2e-3, (schedule, T)


def test_the_exact_score_is_the_gradient_of_the_exact_log_density():
    mixture = ring_mixture()
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 1.5
    for ab in (1.0, 0.7, 0.2, 0.01):
        noised = mixture.noised(ab)
        assert noised.variance == pytest.approx(ab * RING_STD**2 + 1 - ab)
        torch.testing.assert_close(noised.means, math.sqrt(ab) * mixture.means)
        x_ = x.clone().requires_grad_(True)
        (autograd,) = torch.autograd.grad(noised.log_prob(x_).sum(), x_)
        torch.testing.assert_close(noised.score(x), autograd)
    # far from every mode, the score points back towards the data
    far = torch.tensor([[6.0, 0.0]], dtype=torch.float64)
    assert mixture.noised(0.5).score(far)[0, 0] < 0
    with pytest.raises(ValueError, match="noise"):
        model_score(torch.zeros(1, 2), 1.0)


def test_the_density_grid_is_the_mixture_density():
    mixture = GaussianMixture.equal_weights(torch.tensor([[0.0, 0.0], [1.5, -0.5]]), 0.3)
    xs, ys, points = grid(4.0, 81)
    density = density_on_grid(mixture, xs, ys)
    torch.testing.assert_close(density.reshape(-1), mixture.log_prob(points).exp())
    assert density.sum().item() * (8 / 80) ** 2 == pytest.approx(1.0, abs=1e-3), "integrates to 1"
    # a kernel density estimate noised to ᾱ ≈ 0 is the standard normal
    data = get_dataset("checkerboard").sample(500, seed=0)
    nearly_noise = density_on_grid(kernel_density(data).noised(1e-6), xs, ys)
    normal = torch.exp(-0.5 * points.double().square().sum(1)) / (2 * math.pi)
    torch.testing.assert_close(nearly_noise.reshape(-1), normal, atol=1e-5, rtol=1e-3)


def test_distances_are_zero_for_a_set_and_grow_with_a_shift():
    x = get_dataset("two moons").sample(1000, seed=0)
    assert mmd(x, x) == pytest.approx(0.0, abs=1e-6)
    assert sliced_wasserstein(x, x) == 0.0
    shifts = (0.1, 0.3, 1.0)
    mmds = [mmd(x, x + torch.tensor([s, 0.0])) for s in shifts]
    swds = [sliced_wasserstein(x, x + torch.tensor([s, 0.0])) for s in shifts]
    assert mmds == sorted(mmds) and mmds[0] > 0.01
    # a shift by s moves every projection on θ by s·cos θ: SW₂ = s·√(mean cos²θ) = s/√2, exactly
    assert swds == pytest.approx([s / math.sqrt(2) for s in shifts], rel=1e-6)
    # unequal sizes: two draws of one distribution are close, closer than either is to noise
    fresh = get_dataset("two moons").sample(1500, seed=1)
    noise = torch.randn(1500, 2, generator=torch.Generator().manual_seed(0))
    assert sliced_wasserstein(x, fresh) < sliced_wasserstein(x, noise) / 4
    assert mmd(x, fresh) < mmd(x, noise) / 4


def test_training_is_seeded_and_yields_every_step():
    scheduler = lab_scheduler("linear", 100)
    data = get_dataset(RING).sample(256, seed=0)
    config = TrainingConfig(steps=20, batch_size=64, seed=1)
    losses = []
    for model in (new_model(1), new_model(1)):
        losses.append([s.loss for s in train_steps(model, scheduler, data, config)])
        assert not model.training
    assert len(losses[0]) == 20 and losses[0] == losses[1]


def test_every_sampler_records_x_T_then_every_step_down_to_the_sample():
    experiment = Experiment(get_dataset(RING), 300, 0, "linear", 100)
    model = new_model(0)
    for key in LAB_SAMPLERS:
        points = list(iter_reverse(model, experiment.scheduler, key, 10, experiment.x_T, torch.Generator(), 0.5))
        assert [p.t for p in points] == [100, 90, 80, 70, 60, 50, 40, 30, 20, 10, 0], key
        assert torch.equal(points[0].x, experiment.x_T)
        assert all(p.x.shape == (300, 2) and torch.isfinite(p.x).all() for p in points)
        *_, run = record_run(model, experiment.scheduler, key, 10, experiment.x_T, seed=0, eta=0.5, max_frames=4)
        assert run.t_values == [100, 70, 30, 0] and run.frames.shape == (4, 300, 2)
        assert run.num_evaluations == (19 if key == "ode" else 10)


def test_on_the_cosine_schedule_the_ode_starts_where_log_snr_is_above_its_bound():
    """ᾱ_T ≈ 2·10⁻⁹ at the cosine schedule's end: the ODE starts where λ = ½·log SNR ≥ −5.1 (x_T read as x_T'), and
    x̂₀ is clipped, so that a young model's error is not multiplied by 1/√ᾱ_T into samples far off the view."""
    experiment = Experiment(get_dataset(RING), 300, 0, "cosine", 100)
    scheduler = experiment.scheduler
    start = max_steps(scheduler)
    half_log_snr = 0.5 * scheduler.tables.log_snr
    assert start < 100 and half_log_snr[start - 1] >= -5.1 > half_log_snr[start]
    model = new_model(0)
    ode = list(iter_reverse(model, scheduler, "ode", 10, experiment.x_T))
    assert ode[0].t == start and torch.equal(ode[0].x, experiment.x_T) and ode[-1].t == 0
    for key in ("ddpm", "ddim"):
        assert next(iter_reverse(model, scheduler, key, 10, experiment.x_T, torch.Generator())).t == 100
    for key in LAB_SAMPLERS:
        *_, run = record_run(model, scheduler, key, 10, experiment.x_T, seed=0, max_frames=2)
        assert run.sample.abs().max() < 2 * X0_RANGE, key


@pytest.fixture(scope="module")
def trained():
    """The ring of 8 Gaussians under the linear schedule (T = 1000), trained for a few seconds, seeded."""
    experiment = Experiment(get_dataset(RING), 2000, 0, "linear", 1000)
    model, losses = fit(
        experiment.scheduler, experiment.data, TrainingConfig(steps=800, seed=experiment.training_seed)
    )
    return experiment, model, losses


@pytest.fixture(scope="module")
def to_fresh_data(trained):
    """x ↦ (MMD, sliced W₂) against the experiment's fresh data, and the start x_T's."""
    experiment, _, _ = trained
    measure = measure_against(experiment.fresh_data)
    return measure, measure(experiment.x_T)


def test_training_lowers_the_loss(trained):
    _, _, losses = trained
    assert np.mean(losses[-80:]) < 0.75 * np.mean(losses[:20])


@pytest.mark.parametrize("key", list(LAB_SAMPLERS))
def test_a_trained_models_samples_are_closer_to_the_data_than_the_noise_is(trained, to_fresh_data, key):
    experiment, model, _ = trained
    measure, (noise_mmd, noise_swd) = to_fresh_data
    *_, run = record_run(model, experiment.scheduler, key, 50, experiment.x_T, experiment.sampling_seed, 0.0, 2)
    sample_mmd, sample_swd = measure(run.sample)
    assert sample_mmd < CLOSER_THAN_NOISE * noise_mmd and sample_swd < CLOSER_THAN_NOISE * noise_swd, key


@pytest.mark.parametrize("fraction", list(SCORE_TOLERANCE))
def test_the_learned_score_matches_the_exact_one_at_mid_range_t(trained, fraction):
    experiment, model, _ = trained
    t = round(fraction * experiment.num_timesteps)
    ab = alpha_bar(experiment.scheduler, t)
    x_t = math.sqrt(ab) * experiment.fresh_data + math.sqrt(1 - ab) * experiment.noise  # x_t ~ q(x_t)
    exact = experiment.distribution.mixture.noised(ab).score(x_t).float()
    error = (learned_score(model, experiment.scheduler, x_t, t) - exact).norm(dim=1).mean()
    assert error / exact.norm(dim=1).mean() < SCORE_TOLERANCE[fraction], t
