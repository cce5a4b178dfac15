import math

import pytest
import torch

from pipelines import DDPMExplorerScheduler
from pipelines.objective import ELBOEstimate, elbo_bpd, per_timestep_terms, prior_bpd, quantize, vb_terms_bpd
from pipelines.training.metrics import frechet_distance_between

LOG2 = math.log(2)


class OracleEps(torch.nn.Module):
    """Knows x₀, so predicts the exact ε of any x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε."""

    def __init__(self, x0, scheduler):
        super().__init__()
        self.x0, self.tb = x0, scheduler.tables

    def forward(self, x_t, t, class_labels=None):
        ab = self.tb.alphas_cumprod[t].to(x_t.dtype).reshape(-1, 1, 1, 1)
        return type("Out", (), {"sample": (x_t - ab.sqrt() * self.x0) / (1 - ab).sqrt()})()


def make_case(variance_type="fixed_small"):
    s = DDPMExplorerScheduler(num_train_timesteps=100, beta_schedule="cosine", variance_type=variance_type)
    g = torch.Generator().manual_seed(0)
    x0 = (torch.randint(1, 255, (3, 1, 4, 4), generator=g).float() / 127.5 - 1).double()  # interior bins
    return s, x0, OracleEps(x0, s)


def test_exact_model_gives_zero_kl_with_fixed_small():
    s, x0, oracle = make_case()
    for t in (1, 50, 99):
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(t), dtype=x0.dtype)
        vb, mse = vb_terms_bpd(oracle, s, x0, torch.full((3,), t), noise)
        assert vb.abs().max() < 1e-8 and mse.max() < 1e-10


def test_exact_model_kl_with_fixed_large_is_the_variance_mismatch():
    s, x0, oracle = make_case("fixed_large")
    tb = s.tables
    for t in (1, 50, 99):
        vb, _ = vb_terms_bpd(oracle, s, x0, torch.full((3,), t))
        b, bt = tb.betas[t].item(), tb.posterior_variance[t].item()
        expected = 0.5 * (-1 + math.log(b) - math.log(bt) + bt / b) / LOG2  # KL(N(μ, β̃) ‖ N(μ, β)) per dim
        torch.testing.assert_close(vb, torch.full((3,), expected, dtype=vb.dtype))


def test_decoder_term_matches_the_discretized_gaussian_closed_form():
    s, x0, oracle = make_case()
    vb, _ = vb_terms_bpd(oracle, s, x0, torch.zeros(3, dtype=torch.long))
    sigma = math.exp(0.5 * s.tables.posterior_log_variance_clipped[0].item())  # the mean is x₀ exactly at t = 0
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))
    expected = -math.log(phi(1 / 255 / sigma) - phi(-1 / 255 / sigma)) / LOG2
    torch.testing.assert_close(vb, torch.full((3,), expected, dtype=vb.dtype), rtol=1e-6, atol=1e-8)


def test_prior_term_matches_closed_form():
    s, x0, _ = make_case()
    ab = s.tables.alphas_cumprod[-1].item()
    expected = (0.5 * (-1 - math.log(1 - ab) + (1 - ab) + ab * x0**2)).flatten(1).mean(1) / LOG2
    torch.testing.assert_close(prior_bpd(s, x0), expected)


def test_elbo_total_is_sum_of_terms_and_mc_is_unbiased():
    s, x0, oracle = make_case("fixed_large")
    exact = elbo_bpd(oracle, s, x0)
    torch.testing.assert_close(exact.total, exact.prior + exact.decoder + exact.diffusion)
    estimates = [
        elbo_bpd(oracle, s, x0, num_timesteps=7, generator=torch.Generator().manual_seed(i)).total.mean()
        for i in range(30)
    ]
    mc = torch.stack(estimates)
    assert abs(mc.mean() - exact.total.mean()) < 4 * mc.std() / math.sqrt(len(mc)) + 1e-9


def test_terms_are_finite_and_non_negative_for_a_random_model(tiny_unet):
    s = DDPMExplorerScheduler(num_train_timesteps=20, beta_schedule="linear", rescale_betas=True)
    x0 = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    terms = per_timestep_terms(tiny_unet, s, x0, range(20), generator=torch.Generator().manual_seed(0))
    vb = torch.tensor(terms["vb"])
    assert torch.isfinite(vb).all() and (vb >= -1e-6).all() and terms["prior"] >= 0
    est = elbo_bpd(tiny_unet, s, x0, num_timesteps=5, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(est.total).all() and est.standard_error >= 0


def test_a_class_conditional_models_bound_is_its_unconditional_ones():
    """An image has no label: the bound of a class-conditional UNet is taken with the null label ∅, log p(x)."""
    from conftest import make_tiny_unet

    unet = make_tiny_unet(num_class_embeds=4)  # classes 0–2 and ∅ = 3

    class WithLabel(torch.nn.Module):
        def __init__(self, label):
            super().__init__()
            self.label = label

        def forward(self, x, t, class_labels=None):
            return unet(x, t, class_labels=torch.full((x.shape[0],), self.label))

    s = DDPMExplorerScheduler(num_train_timesteps=20, beta_schedule="cosine")
    x0 = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def bound(model):
        return elbo_bpd(model, s, x0, num_timesteps=None, generator=torch.Generator().manual_seed(0)).total

    assert torch.allclose(bound(unet), bound(WithLabel(3)))
    assert not torch.allclose(bound(unet), bound(WithLabel(0)))


def test_quantize_lands_on_the_256_bins():
    x = quantize(torch.linspace(-1.2, 1.2, 1001))
    levels = (x + 1) * 127.5
    assert x.min() == -1 and x.max() == 1
    torch.testing.assert_close(levels, levels.round(), atol=1e-4, rtol=0)
    assert len(levels.round().unique()) == 256


def test_elbo_estimates_concatenate():
    parts = [ELBOEstimate(*(torch.arange(n, dtype=torch.float64) + k for k in range(4))) for n in (2, 3)]
    whole = ELBOEstimate.cat(parts)
    assert torch.equal(whole.total, torch.tensor([0.0, 1, 0, 1, 2], dtype=torch.float64))
    assert torch.equal(whole.diffusion, whole.total + 3)
    assert whole.standard_error == pytest.approx(whole.total.std().item() / 5**0.5)


def test_frechet_distance():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4000, 3, generator=g), torch.randn(4000, 3, generator=g)
    assert frechet_distance_between(a, b) < 0.02
    assert frechet_distance_between(a, b + 2.0) == pytest.approx(12.0, rel=0.02)  # ‖μ₁ − μ₂‖² = 3·2²
    assert frechet_distance_between(a, 3 * b) == pytest.approx(3 * (1 - 3) ** 2, rel=0.05)  # Tr: 3(1 + 9 − 2·3)
