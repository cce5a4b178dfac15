"""The seed's learned variance Σ_θ (improved DDPM, Nichol & Dhariwal 2021): sampling equal to diffusers, every solver
on such a model, the recorded v, and L_hybrid."""

import math

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler
from pipelines.objective import hybrid_loss_terms, l_hybrid, p_mean_variance, vb_term_from, vb_terms_bpd
from pipelines.samplers import SAMPLERS
from pipelines.training.train import widened_state_dict
from tests.conftest import make_tiny_unet
from tests.test_training import fake_fashion_mnist  # noqa: F401 (a fixture)


def learned_unet(seed=0, num_class_embeds=None) -> UNet2DModel:
    """A tiny random UNet with 2 output channels per image channel: ε, then Σ_θ's."""
    return make_tiny_unet(seed=seed, num_class_embeds=num_class_embeds, learned_variance=True)


def pipeline(unet, **scheduler_kwargs) -> DDPMExplorerPipeline:
    scheduler = DDPMExplorerScheduler(variance_type="learned_range", **scheduler_kwargs)
    pipe = DDPMExplorerPipeline(unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_learned_range_sampling_equals_diffusers_ddpm_pipeline():
    """Same UNet (learned Σ_θ), same seed, all T steps: the same images as diffusers' DDPMPipeline."""
    unet = learned_unet()
    ref = DDPMPipeline(unet=unet, scheduler=DDPMScheduler(variance_type="learned_range"))
    ref.set_progress_bar_config(disable=True)
    a = pipeline(unet)(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="np")
    b = ref(batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=1000, output_type="np")
    np.testing.assert_allclose(a.images, b.images, atol=1e-5, rtol=0)


@pytest.mark.parametrize("variance_type", ["learned", "learned_range"])
def test_respaced_learned_steps_equal_diffusers_but_the_last(variance_type):
    """25 respaced steps ("trailing"), β and β̃ of the respaced steps: frame for frame diffusers' DDPMScheduler,
    but for the last step t = 39 → data, where diffusers still adds exp(½·log Σ_θ)·z (its noise test is t > 0) and
    ours outputs the mean, as p_θ(x₀ | x_t) does in the paper and improved-diffusion (docs/DIFFUSERS.md)."""
    unet = learned_unet()
    ours = DDPMExplorerScheduler(variance_type=variance_type)
    ref = DDPMScheduler(variance_type=variance_type, timestep_spacing="trailing")
    ours.set_timesteps(25)
    ref.set_timesteps(25)
    x = y = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ga, gb = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for t in ours.timesteps.tolist():
        with torch.no_grad():
            out = unet(x, t).sample
        if variance_type == "learned":  # Σ_θ itself: a positive variance, between β̃ and β's scale
            out = torch.cat([out[:, :1], 0.01 * torch.sigmoid(out[:, 1:])], 1)
        a, b = ours.step(out, t, x, generator=ga), ref.step(out, t, y, generator=gb)
        torch.testing.assert_close(a.pred_original_sample, b.pred_original_sample, atol=1e-6, rtol=1e-6)
        if t != ours.timesteps[-1]:
            torch.testing.assert_close(a.prev_sample, b.prev_sample, atol=1e-6, rtol=1e-6)
        x, y = a.prev_sample, b.prev_sample


@pytest.mark.parametrize("key", list(SAMPLERS))
def test_every_sampler_samples_a_learned_variance_model(key):
    """diffusers' solvers read ε alone: the pipeline drops Σ_θ's channels for them (their own cut keeps 3)."""
    pipe = pipeline(learned_unet(num_class_embeds=4), num_train_timesteps=100, beta_schedule="cosine")
    sampler = SAMPLERS[key]
    scheduler = sampler.scheduler(pipe.scheduler.config)
    steps = list(
        pipe.iter_trajectory(
            num_inference_steps=5,
            class_labels=[0, 1, 2],
            guidance_scale=2.0,
            generator=torch.Generator().manual_seed(0),
            scheduler=scheduler,
            eta=0.5 if sampler.takes_eta else None,
            show_progress=False,
        )
    )
    assert steps[-1].prev_sample.shape == (3, 1, 8, 8) and torch.isfinite(steps[-1].prev_sample).all()
    assert all(s.pred_epsilon.shape == (3, 1, 8, 8) for s in steps)
    if key == "ddpm":  # the ancestral step records where Σ_θ sits, per pixel
        fractions = torch.stack([s.variance_fraction for s in steps[:-1]])
        assert fractions.shape == (4, 3, 1, 8, 8) and torch.isfinite(fractions).all()
    else:
        assert all(s.variance_fraction is None for s in steps)


def test_recorded_v_is_the_networks_interpolation_weight():
    """v = (output + 1)/2 exactly, for learned_range: 0 at β̃, 1 at β."""
    scheduler = DDPMExplorerScheduler(num_train_timesteps=100, variance_type="learned_range")
    x = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    v_out = torch.linspace(-1, 1, 16).reshape(1, 1, 4, 4)
    out = scheduler.step(torch.cat([torch.zeros_like(x), v_out], 1), 50, x, generator=torch.Generator())
    torch.testing.assert_close(out.variance_fraction, (v_out + 1) / 2, atol=1e-5, rtol=0)


def test_a_fixed_variance_step_sets_sigma_channels_aside_and_a_learned_one_needs_them():
    x = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    eps, sigma = torch.randn(1, 1, 4, 4), torch.rand(1, 1, 4, 4)
    fixed = DDPMExplorerScheduler()
    both = fixed.step(torch.cat([eps, sigma], 1), 10, x, generator=torch.Generator().manual_seed(1)).prev_sample
    alone = fixed.step(eps, 10, x, generator=torch.Generator().manual_seed(1)).prev_sample
    torch.testing.assert_close(both, alone)  # a learned model sampled with a fixed Σ_t, to compare the two
    with pytest.raises(ValueError, match="x_t's shape"):
        fixed.step(torch.zeros(1, 3, 4, 4), 10, x)
    with pytest.raises(ValueError, match="2 × 1 channels"):
        DDPMExplorerScheduler(variance_type="learned_range").step(torch.zeros(1, 1, 4, 4), 10, x)


def scheduler_and_batch(T=20, prediction_type="epsilon"):
    scheduler = DDPMExplorerScheduler(
        num_train_timesteps=T,
        beta_schedule="linear",
        rescale_betas=True,
        variance_type="learned_range",
        prediction_type=prediction_type,
    )
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 1, 8, 8, generator=g) * 2 - 1
    noise = torch.randn(4, 1, 8, 8, generator=g)
    t = torch.tensor([0, 1, 7, T - 1])
    return scheduler, x0, noise, t


def test_the_bounds_gradient_reaches_only_the_variance_channels():
    scheduler, x0, noise, t = scheduler_and_batch()
    x_t = scheduler.q_sample(x0, t, noise)
    output = torch.randn(4, 2, 8, 8, generator=torch.Generator().manual_seed(1)).clamp(-1, 1).requires_grad_()
    mse, vb = hybrid_loss_terms(scheduler, output, x0, x_t, noise, t)
    (grad,) = torch.autograd.grad(vb.sum(), output)
    assert grad[:, :1].abs().max() == 0  # μ through a stop-gradient
    assert grad[:, 1:].abs().max() > 0
    (grad,) = torch.autograd.grad(mse.sum(), output)
    assert grad[:, 1:].abs().max() == 0 and grad[:, :1].abs().max() > 0


def independent_vb_bits(scheduler, x0, x_t, t, eps_hat, v_out):
    """The bound's term at t written out in float64 from β alone (Ho et al. eq. 5–7, 13; Nichol & Dhariwal eq. 15)."""
    betas = scheduler.tables.betas.numpy()
    ab = np.cumprod(1 - betas)
    out = []
    for i, ti in enumerate(t.tolist()):
        a_t, ab_t = 1 - betas[ti], ab[ti]
        ab_prev = ab[ti - 1] if ti > 0 else 1.0
        x0i, xti = x0[i].double().numpy(), x_t[i].double().numpy()
        x0_hat = (xti - math.sqrt(1 - ab_t) * eps_hat[i].double().numpy()) / math.sqrt(ab_t)
        c1, c2 = math.sqrt(ab_prev) * betas[ti] / (1 - ab_t), math.sqrt(a_t) * (1 - ab_prev) / (1 - ab_t)
        mean_q, mean_p = c1 * x0i + c2 * xti, c1 * x0_hat + c2 * xti
        tilde = lambda s: betas[s] * (1 - (ab[s - 1] if s > 0 else 1.0)) / (1 - ab[s])
        log_tilde = math.log(tilde(ti) if ti > 0 else tilde(1))
        frac = (v_out[i].double().numpy() + 1) / 2
        log_p = frac * math.log(betas[ti]) + (1 - frac) * log_tilde
        if ti == 0:
            cdf = np.vectorize(lambda z: 0.5 * math.erfc(-z / math.sqrt(2)))
            std = np.exp(0.5 * log_p)
            upper = np.where(x0i > 0.999, np.inf, x0i + 1 / 255)
            lower = np.where(x0i < -0.999, -np.inf, x0i - 1 / 255)
            p = cdf((upper - mean_p) / std) - cdf((lower - mean_p) / std)
            out.append(-np.log(np.maximum(p, 1e-12)).mean() / math.log(2))
        else:
            kl = 0.5 * (-1 + log_p - log_tilde + np.exp(log_tilde - log_p) + (mean_q - mean_p) ** 2 * np.exp(-log_p))
            out.append(kl.mean() / math.log(2))
    return np.array(out)


def test_hybrid_bound_terms_equal_the_bound_written_out_and_the_elbos():
    scheduler, x0, noise, t = scheduler_and_batch()
    x0 = ((x0 + 1) * 127.5).round() / 127.5 - 1  # on the 256 levels, as data
    x_t = scheduler.q_sample(x0, t, noise)
    unet = learned_unet()
    with torch.no_grad():
        output = unet(x_t, t).sample
    _, vb = hybrid_loss_terms(scheduler, output, x0, x_t, noise, t)
    expected = independent_vb_bits(scheduler, x0, x_t, t, output[:, :1], output[:, 1:])
    np.testing.assert_allclose(vb.numpy(), expected, rtol=2e-4, atol=1e-5)
    # the ELBO's own path (the ELBO tab, evaluate.py) reads the same learned Σ_θ; it clips x̂₀, L_hybrid does not
    mean, log_variance, _, _ = p_mean_variance(unet, scheduler, x_t, t, clip=False)
    torch.testing.assert_close(vb_term_from(x0, x_t, t, scheduler, mean, log_variance), vb, atol=1e-5, rtol=1e-5)
    fixed = DDPMExplorerScheduler.from_config({**scheduler.config, "variance_type": "fixed_small"})
    elbo_learned, _ = vb_terms_bpd(unet, scheduler, x0, t, noise)
    elbo_fixed, _ = vb_terms_bpd(make_tiny_unet(), fixed, x0, t, noise)
    assert torch.isfinite(elbo_learned).all() and not torch.allclose(elbo_learned, elbo_fixed)


def test_l_hybrid_is_l_simple_plus_the_weighted_bound_and_needs_a_learned_variance():
    scheduler, x0, noise, t = scheduler_and_batch()
    unet = learned_unet()
    x_t = scheduler.q_sample(x0, t, noise)
    mse, vb = hybrid_loss_terms(scheduler, unet(x_t, t).sample, x0, x_t, noise, t)
    loss = l_hybrid(unet, scheduler, x0, noise, t, vlb_weight=0.001)
    torch.testing.assert_close(loss, (mse + 0.001 * 20 * vb).mean())
    with pytest.raises(ValueError, match="learned"):
        l_hybrid(unet, DDPMExplorerScheduler(num_train_timesteps=20), x0, noise, t)


def test_a_fixed_variance_milestone_widens_into_a_learned_variance_unet():
    source = make_tiny_unet()
    config = {k: v for k, v in source.config.items() if not k.startswith("_")}
    widened = UNet2DModel(**{**config, "out_channels": 2}).eval()
    widened.load_state_dict(widened_state_dict(source, widened))
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 40])
    with torch.no_grad():
        a, b = source(x, t).sample, widened(x, t).sample
    torch.testing.assert_close(b[:, :1], a)
    assert b[:, 1:].abs().max() == 0  # v = ½ everywhere to start


def test_a_learned_variance_checkpoint_loads_and_a_mismatched_one_is_refused(tmp_path):
    from pipelines.loading import CheckpointError, load_pipeline

    pipeline(learned_unet(), num_train_timesteps=50).save_pretrained(tmp_path / "learned")
    pipe = load_pipeline(tmp_path / "learned")
    assert pipe.unet.config.out_channels == 2 and pipe.scheduler.config.variance_type == "learned_range"
    fixed = DDPMExplorerPipeline(unet=learned_unet(), scheduler=DDPMExplorerScheduler(num_train_timesteps=50))
    fixed.save_pretrained(tmp_path / "fixed")  # 2 output channels but a fixed Σ: not a model of ours
    with pytest.raises(CheckpointError, match="needs as many output channels"):
        load_pipeline(tmp_path / "fixed")


def test_a_recorded_run_keeps_v_per_pixel_and_a_fixed_one_keeps_none():
    from pipelines.trajectory import from_uint8

    learned = pipeline(learned_unet(), num_train_timesteps=50)
    traj = learned.sample_trajectory(batch_size=2, num_inference_steps=5, generator=torch.Generator().manual_seed(0))
    assert traj.variance_fraction is not None and traj.variance_fraction.shape == traj.samples.shape
    steps = list(
        learned.iter_trajectory(
            batch_size=2, num_inference_steps=5, generator=torch.Generator().manual_seed(0), show_progress=False
        )
    )
    v = (from_uint8(traj.variance_fraction[0]) + 1) / 2
    torch.testing.assert_close(v, steps[0].variance_fraction.clamp(0, 1), atol=1 / 255, rtol=0)
    assert traj.nbytes == 4 * traj.samples.numel()
    fixed = DDPMExplorerPipeline(unet=make_tiny_unet(), scheduler=DDPMExplorerScheduler(num_train_timesteps=50))
    assert fixed.sample_trajectory(batch_size=1, num_inference_steps=3).variance_fraction is None


def test_the_reverse_payload_carries_v_for_a_learned_model_only():
    import json

    from app.scrub_payload import reverse_payload

    learned = pipeline(learned_unet(), num_train_timesteps=50)
    traj = learned.sample_trajectory(batch_size=2, num_inference_steps=5, generator=torch.Generator().manual_seed(0))
    p = json.loads(reverse_payload(traj, learned.scheduler.tables))
    assert "v" in p["atlas"] and len(p["variance"]["mean"]) == len(p["t"])
    assert all(0 <= v <= 1 for v in p["variance"]["mean"])
    fixed = DDPMExplorerPipeline(unet=make_tiny_unet(), scheduler=DDPMExplorerScheduler(num_train_timesteps=50))
    q = json.loads(
        reverse_payload(fixed.sample_trajectory(batch_size=1, num_inference_steps=3), fixed.scheduler.tables)
    )
    assert "v" not in q["atlas"] and q["variance"] is None


def test_the_reverse_tab_samples_a_learned_model_with_its_sigma_or_a_fixed_one(app_models, monkeypatch, tmp_path):
    """A learned-variance checkpoint in the menu: the Σ_t radio starts on the model's learned Σ_θ, the run records v
    for the scrubber, and the fixed Σ_t choices sample the same model with its Σ_θ channels set aside."""
    import json
    import shutil

    import gradio as gr

    from app import models, plans, settings
    from app.callbacks import reverse

    shutil.copytree(app_models / "tiny-random", tmp_path / "tiny-random")  # a menu of its own, not the shared one
    pipeline(learned_unet(), num_train_timesteps=100).save_pretrained(tmp_path / "tiny-learned")
    monkeypatch.setattr(settings, "CHECKPOINT_DIR", tmp_path)
    monkeypatch.setattr(models, "_cache", {})
    update = reverse.variance_controls("tiny-learned")
    assert update["value"] == plans.LEARNED_CHOICE and plans.LEARNED_CHOICE in update["choices"]
    assert plans.LEARNED_CHOICE not in reverse.variance_controls("tiny-random")["choices"]
    run = dict(sampler=plans.DDPM, steps=4, eta=0.0, clip=True, seed=0, batch_size=2)
    outputs = list(reverse.reverse_generate("tiny-learned", variance_type=plans.LEARNED_CHOICE, **run, in_page=True))
    payload = json.loads([o["scrubber"] for o in outputs if isinstance(o.get("scrubber"), str)][-1])
    assert "v" in payload["atlas"] and payload["variance"]["mean"]
    fixed = next(k for k, v in plans.VARIANCE_CHOICES.items() if v == "fixed_large")
    assert "Done" in list(reverse.reverse_generate("tiny-learned", variance_type=fixed, **run))[-1]["status"]
    with pytest.raises(gr.Error, match="no learned Σ_θ"):
        list(reverse.reverse_generate("tiny-random", variance_type=plans.LEARNED_CHOICE, **run))


def test_the_elbo_tab_compares_a_fixed_and_a_learned_sigma_on_the_same_image_timesteps_and_noise(
    app_models, monkeypatch, tmp_path
):
    """ "Compare with": both models' bounds on the same x₀, timesteps and noise (each the same as measured alone), a
    row per model saying its Σ, and the paired difference; a model of another size is refused, saying why."""
    import re
    import shutil

    import gradio as gr

    from app import models, settings
    from app.callbacks import loss

    shutil.copytree(app_models / "tiny-random", tmp_path / "tiny-random")  # a menu of its own, not the shared one
    learned = pipeline(learned_unet(), num_train_timesteps=100, beta_schedule="cosine")
    learned.save_pretrained(tmp_path / "tiny-learned")
    bigger = make_tiny_unet(sample_size=16, learned_variance=True)
    pipeline(bigger, num_train_timesteps=100).save_pretrained(tmp_path / "tiny-learned-16")
    monkeypatch.setattr(settings, "CHECKPOINT_DIR", tmp_path)
    monkeypatch.setattr(models, "_cache", {})
    image = "app/assets/fashion_tshirt.png"

    def bound_alone(name):
        *_, (_, summary) = loss.elbo_terms(name, image, 6, 3)
        return float(re.search(r"(\d+\.\d+) bits/dim\*\*", summary).group(1))

    *_, (figure, summary) = loss.elbo_terms("tiny-random", image, 6, 3, "tiny-learned")
    model_line = r"^- \*\*(tiny-\S+)\*\* \((.+)\): \*\*(\d+\.\d+) bits/dim"
    rows = {m[0]: m[1:] for m in re.findall(model_line, summary, re.M)}
    assert rows["tiny-random"][0] == "Σ fixed at $\\tilde\\beta_t$" and len(rows) == 2
    assert rows["tiny-learned"][0] == "$\\Sigma_\\theta$ learned between $\\tilde\\beta_t$ and $\\beta_t$"
    fixed, learned = float(rows["tiny-random"][1]), float(rows["tiny-learned"][1])
    assert (fixed, learned) == (bound_alone("tiny-random"), bound_alone("tiny-learned"))  # the same noise as alone
    difference = float(re.search(r"tiny-learned − tiny-random: \*\*([+-]\d+\.\d+) bits/dim", summary).group(1))
    assert difference == pytest.approx(learned - fixed, abs=1.5e-3)
    assert np.asarray(figure).shape[0] > np.asarray(result_of(loss.elbo_terms("tiny-random", image, 6, 3))).shape[0]
    # "none" (or the model itself) is the single model's bound
    *_, (_, alone) = loss.elbo_terms("tiny-random", image, 6, 3, "none")
    assert "tiny-learned" not in alone and f"{fixed:.3f} bits/dim" in alone
    with pytest.raises(gr.Error, match=r"can't be compared with tiny-random.*16×16×1, T = 100 against 8×8×1"):
        list(loss.elbo_terms("tiny-random", image, 6, 3, "tiny-learned-16"))


def result_of(outputs):
    """The figure of a callback's last yield."""
    *_, (figure, _) = outputs
    return figure


def test_the_elbo_tab_compares_a_model_with_the_same_network_under_a_fixed_sigma(app_models, monkeypatch, tmp_path):
    """ "this model, Σ fixed at …": the same UNet's bound with that Σ (its μ_θ the same), equal to the bound of the
    same weights saved as a model with that Σ; the model's own fixed Σ is refused, saying why."""
    import json
    import re
    import shutil

    import gradio as gr

    from app import models, settings
    from app.callbacks import loss

    shutil.copytree(app_models / "tiny-random", tmp_path / "tiny-random")
    shutil.copytree(app_models / "tiny-random", tmp_path / "tiny-random-large")
    config_file = tmp_path / "tiny-random-large" / "scheduler" / "scheduler_config.json"
    config_file.write_text(json.dumps(json.loads(config_file.read_text()) | {"variance_type": "fixed_large"}))
    pipeline(learned_unet(), num_train_timesteps=100, beta_schedule="cosine").save_pretrained(
        tmp_path / "tiny-learned"
    )
    monkeypatch.setattr(settings, "CHECKPOINT_DIR", tmp_path)
    monkeypatch.setattr(models, "_cache", {})
    image = "app/assets/fashion_tshirt.png"

    def rows(summary):
        found = re.findall(r"^- \*\*(.+?)\*\* \((.+)\): \*\*(\d+\.\d+) bits/dim", summary, re.M)
        return {name: (sigma, float(bpd)) for name, sigma, bpd in found}

    *_, (_, summary) = loss.elbo_terms("tiny-random", image, 6, 3, "this model, Σ fixed at β_t")
    measured = rows(summary)
    assert measured["tiny-random, Σ fixed at β_t"][0] == "Σ fixed at $\\beta_t$"
    *_, (_, saved) = loss.elbo_terms("tiny-random-large", image, 6, 3)
    assert f"{measured['tiny-random, Σ fixed at β_t'][1]:.3f} bits/dim" in saved, "as the same weights saved with β_t"
    assert "tiny-random, Σ fixed at β_t − tiny-random: **" in summary
    with pytest.raises(gr.Error, match="fixes Σ there already"):
        list(loss.elbo_terms("tiny-random", image, 6, 3, "this model, Σ fixed at β̃_t"))
    *_, (_, summary) = loss.elbo_terms("tiny-learned", image, 6, 3, "this model, Σ fixed at β̃_t")
    measured = rows(summary)
    assert set(measured) == {"tiny-learned", "tiny-learned, Σ fixed at β̃_t"}
    assert measured["tiny-learned"][1] != measured["tiny-learned, Σ fixed at β̃_t"][1]


@pytest.mark.slow
def test_evaluate_pairs_a_learned_sigma_with_the_same_unet_under_sigma_fixed(tmp_path, fake_fashion_mnist):  # noqa: F811
    """``pipelines.evaluate --elbo-fixed-variance``: the learned model's bound, the same UNet's with Σ fixed at β̃_t
    on the same images, timesteps and noise, and their paired difference; refused for a fixed-Σ model."""
    import json

    from pipelines.objective import ELBOEstimate, elbo_bpd
    from pipelines.training import evaluate

    unet = make_tiny_unet(sample_size=32, learned_variance=True)
    pipe = pipeline(unet, num_train_timesteps=50)
    pipe.save_pretrained(tmp_path / "learned")
    out = tmp_path / "eval.json"

    def bound_of(checkpoint, *extra):
        args = ["--checkpoint", str(checkpoint), "--data-dir", str(fake_fashion_mnist), "--num-samples", "0"]
        evaluate.main([*args, "--elbo-images", "40", "--elbo-timesteps", "3", "--json", str(out), *extra])
        return json.loads(out.read_text())["elbo"]

    alone = bound_of(tmp_path / "learned")
    assert "same_unet_sigma_fixed_at_beta_tilde" not in alone, "only when asked"
    elbo = bound_of(tmp_path / "learned", "--elbo-fixed-variance")
    fixed = elbo["same_unet_sigma_fixed_at_beta_tilde"]
    assert elbo["bits_per_dim"] == pytest.approx(alone["bits_per_dim"]), "the learned bound is the same either way"

    x0 = evaluate.load_evaluation_data(fake_fashion_mnist).test_x[
        :40
    ]  # one batch (of at most 64), seeded by its start
    fixed_scheduler = DDPMExplorerScheduler(num_train_timesteps=50, variance_type="fixed_small")
    by_hand = {}
    for name, scheduler in (("learned", pipe.scheduler), ("fixed", fixed_scheduler)):
        batches = [elbo_bpd(unet, scheduler, x0[i : i + 64], 3, torch.Generator().manual_seed(i)) for i in (0,)]
        by_hand[name] = ELBOEstimate.cat(batches).total
    assert elbo["bits_per_dim"] == pytest.approx(by_hand["learned"].mean().item(), rel=1e-5)
    assert fixed["bits_per_dim"] == pytest.approx(by_hand["fixed"].mean().item(), rel=1e-5)
    difference = by_hand["learned"] - by_hand["fixed"]
    assert fixed["learned_minus_fixed"] == pytest.approx(difference.mean().item(), rel=1e-4, abs=1e-6)
    assert fixed["share_of_images_lower_with_learned"] == pytest.approx((difference < 0).float().mean().item())
    assert fixed["bits_per_dim"] != pytest.approx(elbo["bits_per_dim"]), "a different Σ, a different bound"

    fixed_model = DDPMExplorerPipeline(unet=make_tiny_unet(sample_size=32), scheduler=fixed_scheduler)
    fixed_model.save_pretrained(tmp_path / "fixed")
    with pytest.raises(SystemExit, match="fixes Σ already"):
        bound_of(tmp_path / "fixed", "--elbo-fixed-variance")
