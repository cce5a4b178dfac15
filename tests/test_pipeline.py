import itertools

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler, ForwardTrajectory, NonFiniteSampleError
from pipelines.trajectory import NOISE_RANGE, frames_to_keep, from_uint8, to_uint8


def test_call_returns_shapes_and_ranges(tiny_pipeline, generator):
    images = tiny_pipeline(batch_size=3, generator=generator, num_inference_steps=5, output_type="np").images
    assert images.shape == (3, 8, 8, 1) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    pt = tiny_pipeline(batch_size=2, generator=generator, num_inference_steps=5, output_type="pt").images
    assert pt.shape == (2, 1, 8, 8)
    pil = tiny_pipeline(batch_size=2, generator=generator, num_inference_steps=5).images
    assert len(pil) == 2 and pil[0].size == (8, 8)
    (tup,) = tiny_pipeline(batch_size=1, num_inference_steps=2, output_type="np", return_dict=False)
    assert tup.shape == (1, 8, 8, 1)


def test_same_seed_same_frames(tiny_pipeline):
    run = lambda seed: tiny_pipeline.sample_trajectory(
        batch_size=2, generator=torch.Generator().manual_seed(seed), num_inference_steps=10
    )
    a, b, c = run(0), run(0), run(1)
    assert torch.equal(a.samples, b.samples) and torch.equal(a.final, b.final)
    assert not torch.equal(a.samples, c.samples)


def test_full_loop_equals_diffusers_ddpm_pipeline(tiny_unet):
    """Our pipeline and diffusers' DDPMPipeline: same UNet, same seed, same 1000 steps, same images."""
    ours = DDPMExplorerPipeline(unet=tiny_unet, scheduler=DDPMExplorerScheduler())
    ref = DDPMPipeline(unet=tiny_unet, scheduler=DDPMScheduler())
    for p in (ours, ref):
        p.set_progress_bar_config(disable=True)
    a = ours(batch_size=2, generator=torch.Generator().manual_seed(0), output_type="np").images
    b = ref(
        batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=1000, output_type="np"
    ).images
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("n", [1, 7, 50])
def test_trajectory_has_the_requested_steps_and_starts_at_T_minus_1(tiny_pipeline, n):
    steps = list(tiny_pipeline.iter_trajectory(batch_size=1, num_inference_steps=n, show_progress=False))
    assert len(steps) == n
    assert steps[0].timestep == tiny_pipeline.scheduler.config.num_train_timesteps - 1
    assert [s.step_index for s in steps] == list(range(n))
    assert steps[-1].timestep >= 0
    for prev, nxt in itertools.pairwise(steps):
        assert torch.equal(prev.prev_sample, nxt.sample)
    assert all(s.pred_original_sample.shape == s.pred_epsilon.shape == (1, 1, 8, 8) for s in steps)


def test_sample_trajectory_records_uint8_and_subsamples(tiny_pipeline, generator):
    traj = tiny_pipeline.sample_trajectory(batch_size=2, generator=generator, max_frames=8)
    assert len(traj) == 8 and traj.samples.shape == (8, 2, 1, 8, 8) and traj.samples.dtype == torch.uint8
    assert traj.timesteps[0] == 49 and traj.timesteps[-1] == 0
    assert traj.nbytes == 3 * 8 * 2 * 64
    full = tiny_pipeline.sample_trajectory(batch_size=2, generator=torch.Generator().manual_seed(0))
    assert len(full) == 50
    assert torch.equal(full.samples[0], traj.samples[0]) and torch.equal(full.samples[-1], traj.samples[-1])
    assert traj.t_values[0] == 50 and traj.t_values[-1] == 1, "the paper's t = diffusers' timestep + 1"
    assert traj.t_prev_values[-1] == 0 and traj.step_indices[-1] == 49 and traj.num_steps == 50


def test_callback_on_step_end_is_called_once_per_step_and_can_replace_the_sample(tiny_pipeline):
    calls = []

    def callback(pipe, i, t, kwargs):
        calls.append((i, t, tuple(kwargs)))
        return {"sample": torch.zeros_like(kwargs["sample"])}

    images = tiny_pipeline(num_inference_steps=6, output_type="pt", callback_on_step_end=callback).images
    assert [c[0] for c in calls] == list(range(6)) and calls[0][1] == 49 and calls[0][2] == ("sample",)
    assert torch.allclose(images, torch.full_like(images, 0.5))


def test_sdedit_starts_from_the_noised_image(tiny_pipeline, generator):
    image = torch.zeros(2, 1, 8, 8)
    steps = list(
        tiny_pipeline.iter_trajectory(
            image=image, start_timestep=20, num_inference_steps=5, generator=generator, show_progress=False
        )
    )
    assert steps[0].timestep == 20 and len(steps) == 5 and steps[0].sample.shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="image must be"):
        next(tiny_pipeline.iter_trajectory(image=torch.zeros(1, 3, 8, 8), start_timestep=5))


def test_nan_from_the_model_stops_the_run(tiny_pipeline):
    def poison(module, args, output):
        if int(args[1]) < 30:
            output.sample = output.sample * float("nan")
        return output

    tiny_pipeline.unet.register_forward_hook(poison)
    with pytest.raises(NonFiniteSampleError, match="NaN or Inf at timestep"):
        tiny_pipeline(num_inference_steps=10)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=2.5), "batch_size"),
        (dict(num_inference_steps=0), "num_inference_steps"),
        (dict(num_inference_steps=51), "between 1 and 50"),
        (dict(output_type="webp"), "output_type"),
        (dict(eta=-1.0), "eta"),
    ],
)
def test_bad_arguments(tiny_pipeline, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_pipeline(**{"num_inference_steps": 2, **kwargs})


def test_save_and_load_round_trip_with_safetensors_only(tiny_pipeline, tmp_path, generator):
    tiny_pipeline.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.rglob("*") if p.is_file()}
    assert "diffusion_pytorch_model.safetensors" in files and not any(
        f.endswith((".bin", ".pt", ".pkl")) for f in files
    )
    loaded = DDPMExplorerPipeline.from_pretrained(tmp_path, use_safetensors=True)
    assert isinstance(loaded.scheduler, DDPMExplorerScheduler)
    loaded.set_progress_bar_config(disable=True)
    a = tiny_pipeline(num_inference_steps=4, generator=torch.Generator().manual_seed(3), output_type="np").images
    b = loaded(num_inference_steps=4, generator=torch.Generator().manual_seed(3), output_type="np").images
    np.testing.assert_allclose(a, b, atol=1e-5)  # same weights; oneDNN may pick another kernel for the new tensors
    assert UNet2DModel.from_pretrained(tmp_path, subfolder="unet").config.sample_size == 8


def test_uint8_round_trip():
    x = torch.linspace(-1, 1, 101)
    assert (from_uint8(to_uint8(x)) - x).abs().max() <= 1 / 255 + 1e-6
    eps = torch.linspace(-NOISE_RANGE, NOISE_RANGE, 11)
    assert (from_uint8(to_uint8(eps, NOISE_RANGE), NOISE_RANGE) - eps).abs().max() <= NOISE_RANGE / 255 + 1e-6
    assert frames_to_keep(5, None) == [0, 1, 2, 3, 4] and frames_to_keep(1000, 4) == [0, 333, 666, 999]


def test_forward_trajectory_frames_are_the_closed_form():
    s = DDPMExplorerScheduler(num_train_timesteps=100, beta_schedule="cosine")
    x0 = torch.rand(3, 16, 16) * 2 - 1
    fwd = ForwardTrajectory(x0, s.tables, generator=torch.Generator().manual_seed(0))
    assert torch.equal(fwd.frame(0), x0)
    for t in (1, 37, 100):
        ab = s.tables.alphas_cumprod[t - 1].item()
        torch.testing.assert_close(fwd.frame(t), ab**0.5 * x0 + (1 - ab) ** 0.5 * fwd.noise)
        signal, noise = fwd.signal_and_noise(t)
        torch.testing.assert_close(signal + noise, fwd.frame(t))
        v = fwd.values(t)
        assert v.alpha_bar == pytest.approx(ab) and v.snr == pytest.approx(ab / (1 - ab))
    assert torch.equal(fwd.frame(50), fwd.frame(50)), "scrubbing must not redraw noise"
    assert fwd.values(0).alpha_bar == 1.0
    with pytest.raises(ValueError, match="t must be an integer in"):
        fwd.frame(101)
    chain = fwd.markov_chain(100, generator=torch.Generator().manual_seed(1))
    assert chain.shape == x0.shape and abs(chain.std().item() - 1) < 0.1


@pytest.mark.slow
def test_fast_cpu_paths_equal_eager(tiny_unet):
    """channels_last, and torch.compile on top of it, give the eager model's frames up to float rounding. (One
    compiled model: each compilation takes 30–50 s on 2 loaded cores, and channels_last alone is checked.)"""
    scheduler = DDPMExplorerScheduler(num_train_timesteps=20)
    run = lambda pipe: (
        pipe.sample_trajectory(batch_size=2, generator=torch.Generator().manual_seed(0), show_progress=False).final
    )
    eager = run(DDPMExplorerPipeline(unet=tiny_unet, scheduler=scheduler))
    import copy

    fast = DDPMExplorerPipeline(unet=copy.deepcopy(tiny_unet), scheduler=scheduler).enable_fast_cpu()
    torch.testing.assert_close(run(fast), eager, atol=1e-4, rtol=1e-4)
    both = DDPMExplorerPipeline(unet=copy.deepcopy(tiny_unet), scheduler=scheduler).enable_fast_cpu(compile=True)
    torch.testing.assert_close(run(both), eager, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("sampler", ["ddpm", "unipc"])
def test_a_recorded_run_builds_its_scheduler_once_and_equals_the_plain_loop(tiny_pipeline, monkeypatch, sampler):
    from pipelines.samplers import SAMPLERS

    scheduler = SAMPLERS[sampler].scheduler(tiny_pipeline.scheduler.config)
    plain = list(tiny_pipeline.iter_trajectory(num_inference_steps=4, scheduler=scheduler, generator=seeded(3)))
    built = []
    run_scheduler = tiny_pipeline.run_scheduler
    monkeypatch.setattr(tiny_pipeline, "run_scheduler", lambda *a, **k: built.append(1) or run_scheduler(*a, **k))
    run = tiny_pipeline.record(None, num_inference_steps=4, scheduler=scheduler, generator=seeded(3))
    assert len(run) == len(plain) and built == [1]
    steps = list(run)
    assert built == [1]
    assert all(torch.equal(a.prev_sample, b.prev_sample) for a, b in zip(steps, plain, strict=True))
    trajectory = run.trajectory
    assert torch.equal(trajectory.final, plain[-1].prev_sample) and len(trajectory) == len(plain)
    assert torch.equal(trajectory.samples[-1], to_uint8(plain[-1].sample))


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
