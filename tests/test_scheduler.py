import itertools

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from pipelines import DDPMExplorerScheduler
from pipelines.scheduler import LEARNED_VARIANCE_TYPES, PREDICTION_TYPES, VARIANCE_TYPES, respaced_timesteps

# our schedule name -> diffusers' name for the same schedule
SAME_SCHEDULES = {
    "linear": "linear",
    "quadratic": "scaled_linear",
    "cosine": "squaredcos_cap_v2",
    "sigmoid": "sigmoid",
}
close = dict(atol=1e-6, rtol=1e-6)


def pair(schedule, **kwargs):
    ours = DDPMExplorerScheduler(beta_schedule=schedule, **kwargs)
    ref = DDPMScheduler(beta_schedule=SAME_SCHEDULES[schedule], **kwargs)
    return ours, ref


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("schedule", SAME_SCHEDULES)
def test_betas_and_alpha_bar_equal_diffusers(schedule):
    ours, ref = pair(schedule)
    torch.testing.assert_close(ours.betas, ref.betas, **close)
    torch.testing.assert_close(ours.alphas_cumprod, ref.alphas_cumprod, **close)
    # the float64 analysis tables agree with diffusers' float32 ones to float32 precision
    torch.testing.assert_close(ours.tables.alphas_cumprod.float(), ref.alphas_cumprod, atol=1e-6, rtol=0)


@pytest.mark.parametrize("schedule", SAME_SCHEDULES)
def test_add_noise_equals_diffusers(schedule):
    ours, ref = pair(schedule)
    x0, noise = randn(4, 3, 8, 8), randn(4, 3, 8, 8, seed=1)
    t = torch.tensor([0, 1, 500, 999])
    torch.testing.assert_close(ours.add_noise(x0, noise, t), ref.add_noise(x0, noise, t), **close)
    torch.testing.assert_close(ours.get_velocity(x0, noise, t), ref.get_velocity(x0, noise, t), **close)


def model_output_for(variance_type, batch, channels, height, width, seed=1):
    """A model's output: ε-like channels, then (for a learned Σ_θ) the variance channels: v-like values in [−1, 1]
    for ``learned_range``, a positive Σ_θ for ``learned``."""
    prediction = randn(batch, channels, height, width, seed=seed)
    if variance_type not in LEARNED_VARIANCE_TYPES:
        return prediction
    extra = torch.rand(batch, channels, height, width, generator=torch.Generator().manual_seed(seed + 1))
    variance = 2 * extra - 1 if variance_type == "learned_range" else 0.02 * extra + 1e-4
    return torch.cat([prediction, variance], dim=1)


@pytest.mark.parametrize("clip_sample", [False, True], ids=["noclip", "clip"])
@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("variance_type", VARIANCE_TYPES)
@pytest.mark.parametrize("schedule", SAME_SCHEDULES)
def test_step_equals_diffusers(schedule, variance_type, prediction_type, clip_sample):
    ours, ref = pair(schedule, variance_type=variance_type, prediction_type=prediction_type, clip_sample=clip_sample)
    x, model_output = randn(2, 1, 8, 8), model_output_for(variance_type, 2, 1, 8, 8)
    for t in (999, 700, 250, 10, 1, 0):
        a = ours.step(model_output, t, x, generator=torch.Generator().manual_seed(t))
        b = ref.step(model_output, t, x, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(a.prev_sample, b.prev_sample, **close)
        torch.testing.assert_close(a.pred_original_sample, b.pred_original_sample, **close)


@pytest.mark.parametrize("variance_type", VARIANCE_TYPES)
@pytest.mark.parametrize("schedule", SAME_SCHEDULES)
def test_respaced_timesteps_and_steps_equal_diffusers_trailing(schedule, variance_type):
    ours, _ = pair(schedule, variance_type=variance_type)
    ref = DDPMScheduler(
        beta_schedule=SAME_SCHEDULES[schedule], timestep_spacing="trailing", variance_type=variance_type
    )
    ours.set_timesteps(50)
    ref.set_timesteps(50)
    assert ours.timesteps.tolist() == ref.timesteps.tolist()
    assert ours.timesteps[0] == 999, "sampling must start at T-1"
    x, model_output = randn(2, 1, 8, 8), model_output_for(variance_type, 2, 1, 8, 8)
    for t in ours.timesteps[:-1].tolist():  # diffusers adds 1e-10·z at the last step; we output the mean there
        a = ours.step(model_output, t, x, generator=torch.Generator().manual_seed(t))
        b = ref.step(model_output, t, x, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(a.prev_sample, b.prev_sample, **close)


def test_full_loop_equals_diffusers():
    """1000 ancestral steps with a fixed dummy model: the same final sample."""
    ours, ref = pair("linear")
    dummy = lambda x, t: 0.1 * x * (t / 1000) - 0.05
    xs = []
    for sched in (ours, ref):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 1, 8, 8, generator=g)
        for t in sched.timesteps:
            x = sched.step(dummy(x, t), t, x, generator=g).prev_sample
        xs.append(x)
    torch.testing.assert_close(xs[0], xs[1], **close)


def test_ddim_eta0_equals_diffusers_ddim():
    ours = DDPMExplorerScheduler(clip_sample=False)
    ref = DDIMScheduler(clip_sample=False, timestep_spacing="trailing", set_alpha_to_one=True)
    ours.set_timesteps(50)
    ref.set_timesteps(50)
    x, model_output = randn(2, 1, 8, 8), randn(2, 1, 8, 8, seed=1)
    for t in ours.timesteps.tolist():
        a = ours.step(model_output, t, x, eta=0.0)
        b = ref.step(model_output, t, x, eta=0.0)
        torch.testing.assert_close(a.prev_sample, b.prev_sample, atol=1e-5, rtol=1e-5)


def test_ddim_eta0_is_deterministic_and_eta1_is_ddpm_fixed_small():
    s = DDPMExplorerScheduler(clip_sample=False)
    s.set_timesteps(20)
    x, eps, z = randn(1, 1, 4, 4), randn(1, 1, 4, 4, seed=1), randn(1, 1, 4, 4, seed=2)
    t = int(s.timesteps[3])
    a = s.step(eps, t, x, eta=0.0, generator=torch.Generator().manual_seed(1)).prev_sample
    b = s.step(eps, t, x, eta=0.0, generator=torch.Generator().manual_seed(2)).prev_sample
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    ddim1 = s.step(eps, t, x, eta=1.0, variance_noise=z).prev_sample
    ddpm = s.step(eps, t, x, variance_noise=z).prev_sample
    torch.testing.assert_close(ddim1, ddpm, atol=1e-5, rtol=1e-5)


def test_step_returns_epsilon_and_x0_consistent_with_x_t():
    s = DDPMExplorerScheduler(clip_sample=False, prediction_type="v_prediction")
    x, v = randn(2, 1, 4, 4), randn(2, 1, 4, 4, seed=1)
    out = s.step(v, 500, x, generator=torch.Generator().manual_seed(0))
    ab = s.alphas_cumprod[500]
    torch.testing.assert_close(
        ab.sqrt() * out.pred_original_sample + (1 - ab).sqrt() * out.pred_epsilon, x, atol=1e-5, rtol=1e-5
    )
    prev, _x0, _eps = s.step(v, 500, x, generator=torch.Generator().manual_seed(0), return_dict=False)
    torch.testing.assert_close(prev, out.prev_sample)


def test_respacing_recomputes_beta_from_alpha_bar():
    s = DDPMExplorerScheduler(beta_schedule="cosine")
    s.set_timesteps(10)
    ab = s.alphas_cumprod
    for i, t in enumerate(s.timesteps.tolist()):
        c = s.step_coefficients(t)
        prev = s.timesteps[i + 1].item() if i + 1 < len(s.timesteps) else -1
        assert c.prev_timestep == prev
        ab_prev = ab[prev].item() if prev >= 0 else 1.0
        assert c.beta_t == pytest.approx(1 - ab[t].item() / ab_prev, rel=1e-5)


@pytest.mark.parametrize("T, n", [(1000, 50), (1000, 7), (1000, 1000), (1000, 1), (50, 3), (10, 10)])
def test_respaced_timesteps_start_at_T_minus_1_and_have_n_steps(T, n):
    steps = respaced_timesteps(n, T - 1)
    assert len(steps) == n and steps[0] == T - 1 and steps[-1] >= 0
    assert all(a > b for a, b in itertools.pairwise(steps))


def test_custom_timesteps():
    s = DDPMExplorerScheduler()
    s.set_timesteps(timesteps=[999, 500, 100, 0])
    assert s.previous_timestep(500) == 100 and s.previous_timestep(0) == -1
    with pytest.raises(ValueError, match="strictly decreasing"):
        s.set_timesteps(timesteps=[10, 500])
    with pytest.raises(ValueError, match="integers in"):
        s.set_timesteps(timesteps=[1000, 5])


def test_with_timesteps_leaves_the_shared_scheduler_alone():
    s = DDPMExplorerScheduler()
    copy = s.with_timesteps(num_inference_steps=10)
    assert len(copy.timesteps) == 10 and len(s.timesteps) == 1000


def test_markov_chain_matches_closed_form_in_distribution():
    """x_t from t Markov steps has mean √ᾱ·x₀ and variance 1−ᾱ, like the closed form (not the same pixels)."""
    s = DDPMExplorerScheduler(num_train_timesteps=50, beta_schedule="linear", rescale_betas=True)
    n, t = 4000, 20
    x0 = torch.linspace(-1, 1, 16).reshape(1, 1, 4, 4).expand(n, 1, 4, 4).contiguous()
    chain = s.q_chain(x0, t, generator=torch.Generator().manual_seed(0))
    ab = s.tables.alphas_cumprod[t - 1].item()
    mean, var = chain.mean(0), chain.var(0)
    se_mean = ((1 - ab) / n) ** 0.5
    assert (mean - ab**0.5 * x0[0]).abs().max() < 5 * se_mean
    se_var = (1 - ab) * (2 / (n - 1)) ** 0.5
    assert (var - (1 - ab)).abs().max() < 5 * se_var
    all_frames = s.q_chain(x0[:2], 5, generator=torch.Generator().manual_seed(0), return_all=True)
    assert all_frames.shape == (6, 2, 1, 4, 4) and torch.equal(all_frames[0], x0[:2])


def test_q_step_is_one_markov_step():
    s = DDPMExplorerScheduler()
    x, z = randn(1, 1, 2, 2), randn(1, 1, 2, 2, seed=1)
    b = s.tables.betas[10].item()
    torch.testing.assert_close(s.q_step(x, 10, z), (1 - b) ** 0.5 * x + b**0.5 * z)


def test_q_posterior_matches_ho_et_al():
    s = DDPMExplorerScheduler(num_train_timesteps=100, beta_schedule="cosine")
    x0, xt = randn(1, 1, 2, 2).double(), randn(1, 1, 2, 2, seed=1).double()
    t = 40
    mean, var, _logvar = s.q_posterior_mean_variance(x0, xt, torch.tensor([t]))
    tb = s.tables
    ab, ab_prev, b = tb.alphas_cumprod[t], tb.alphas_cumprod_prev[t], tb.betas[t]
    expected = ab_prev.sqrt() * b / (1 - ab) * x0 + (1 - b).sqrt() * (1 - ab_prev) / (1 - ab) * xt
    torch.testing.assert_close(mean, expected)
    assert var.item() == pytest.approx((b * (1 - ab_prev) / (1 - ab)).item())


def test_config_round_trip(tmp_path):
    s = DDPMExplorerScheduler(
        num_train_timesteps=123,
        beta_schedule="sigmoid",
        beta_start=2e-4,
        beta_end=0.03,
        variance_type="fixed_large",
        prediction_type="v_prediction",
        clip_sample=False,
    )
    s.save_pretrained(tmp_path)
    loaded = DDPMExplorerScheduler.from_pretrained(tmp_path)
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}
    assert public(loaded.config) == public(s.config)
    torch.testing.assert_close(loaded.betas, s.betas, rtol=0, atol=0)


def test_custom_betas_round_trip(tmp_path):
    s = DDPMExplorerScheduler(num_train_timesteps=5, beta_schedule="custom", trained_betas=[0.1, 0.2, 0.3, 0.4, 0.5])
    s.save_pretrained(tmp_path)
    loaded = DDPMExplorerScheduler.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.tables.betas, s.tables.betas)


def test_loads_a_diffusers_ddpm_config(tmp_path):
    DDPMScheduler(beta_schedule="squaredcos_cap_v2", clip_sample=False).save_pretrained(tmp_path)
    s = DDPMExplorerScheduler.from_pretrained(tmp_path)
    assert not s.config.clip_sample
    torch.testing.assert_close(s.betas, DDPMScheduler(beta_schedule="squaredcos_cap_v2").betas)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(beta_schedule="bogus"), "Unknown beta schedule"),
        (dict(num_train_timesteps=0), "between 1 and"),
        (dict(beta_start=0.02, beta_end=0.01), "beta_start < beta_end"),
        (dict(variance_type="fixed_large_log"), "Unknown variance_type"),
        (dict(prediction_type="noise"), "Unknown prediction_type"),
        (dict(clip_sample_range=0), "clip_sample_range"),
    ],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DDPMExplorerScheduler(**kwargs)


def test_bad_call_arguments_raise():
    s = DDPMExplorerScheduler(num_train_timesteps=100)
    x = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match="not one of this scheduler's"):
        s.step(x, 100, x)
    with pytest.raises(ValueError, match="not one of this scheduler's"):
        s.step(x, -1, x)
    with pytest.raises(ValueError, match="must lie in"):
        s.add_noise(x, x, torch.tensor([100]))
    with pytest.raises(ValueError, match="must have x_t.s shape"):
        s.step(torch.zeros(1, 1, 3, 3), 5, x)
    with pytest.raises(ValueError, match="eta"):
        s.step(x, 5, x, eta=2.0)
    with pytest.raises(ValueError, match="exactly one"):
        s.set_timesteps()
    with pytest.raises(ValueError, match="between 1 and 100"):
        s.set_timesteps(101)
    s.set_timesteps(10)
    with pytest.raises(ValueError, match="not one of this scheduler's"):
        s.step(x, 50, x)  # not among the respaced timesteps
