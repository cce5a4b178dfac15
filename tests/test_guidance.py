"""Class-conditional sampling with classifier-free guidance: ε̂ = ε̂(x_t, ∅) + w·(ε̂(x_t, c) − ε̂(x_t, ∅))."""

import pytest
import torch
from conftest import make_tiny_unet
from diffusers import UNet2DModel

from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler
from pipelines.guidance import Guidance
from pipelines.loading import load_pipeline

NULL = 3  # tiny conditional UNets here have labels 0, 1, 2 and the null label 3


def make_conditional_unet(seed: int = 0) -> UNet2DModel:
    unet = make_tiny_unet(sample_size=8, seed=seed, num_class_embeds=NULL + 1)
    with torch.no_grad():  # a fresh embedding is small; make the labels matter
        unet.class_embedding.weight.normal_(0, 3.0)
    return unet


def count_batches(unet) -> list[int]:
    """The batch size of every later call of ``unet``."""
    batches = []
    unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    return batches


@pytest.fixture
def conditional_pipeline():
    scheduler = DDPMExplorerScheduler(num_train_timesteps=20, beta_schedule="cosine")
    pipe = DDPMExplorerPipeline(unet=make_conditional_unet(), scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sample(pipe, **kwargs):
    kwargs.setdefault("num_inference_steps", 5)
    return pipe(generator=torch.Generator().manual_seed(0), output_type="pt", **kwargs).images


def test_guided_prediction_is_the_cfg_combination(conditional_pipeline):
    pipe = conditional_pipeline
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 2])
    t = torch.tensor(10)
    with torch.no_grad():
        cond = pipe.unet(x, t, class_labels=labels).sample
        uncond = pipe.unet(x, t, class_labels=torch.full((2,), NULL)).sample
        for w in (0.0, 1.0, 2.5):
            expected = uncond + w * (cond - uncond)
            torch.testing.assert_close(pipe.predict(x, t, labels, w), expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(cond, uncond, atol=1e-3)  # the labels do change the output


def test_guidance_batches_both_passes_into_one_call(conditional_pipeline):
    pipe = conditional_pipeline
    batches = count_batches(pipe.unet)
    sample(pipe, class_labels=[0, 1, 2], guidance_scale=3.0)
    assert batches == [6] * 5  # one call per step, conditional and unconditional side by side
    batches.clear()
    sample(pipe, class_labels=[0, 1, 2], guidance_scale=1.0)
    assert batches == [3] * 5  # w = 1 is plain conditional: one pass
    batches.clear()
    sample(pipe, class_labels=None, batch_size=2, guidance_scale=3.0)
    assert batches == [2] * 5  # unconditional: only ∅, so guidance has nothing to add


def test_w0_is_unconditional_and_labels_set_the_batch(conditional_pipeline):
    pipe = conditional_pipeline
    unconditional = sample(pipe, class_labels=None, batch_size=3)
    w0 = sample(pipe, class_labels=[0, 1, 2], guidance_scale=0.0)
    torch.testing.assert_close(w0, unconditional)
    conditional = sample(pipe, class_labels=[0, 1, 2], guidance_scale=1.0)
    assert conditional.shape == (3, 1, 8, 8) and not torch.allclose(conditional, unconditional, atol=1e-3)
    one_class = sample(pipe, class_labels=1, batch_size=2, guidance_scale=2.0)
    assert one_class.shape == (2, 1, 8, 8)


def test_every_recorded_step_holds_the_guided_prediction(conditional_pipeline):
    pipe = conditional_pipeline
    g = torch.Generator().manual_seed(0)
    steps = list(pipe.iter_trajectory(generator=g, num_inference_steps=4, class_labels=[2], guidance_scale=4.0))
    for step in steps:
        t = torch.tensor(step.timestep)
        guided = pipe.predict(step.sample, t, torch.tensor([2]), 4.0)
        torch.testing.assert_close(step.pred_epsilon, guided, atol=1e-5, rtol=1e-5)


def test_recommended_guidance_scale_is_saved_and_used(conditional_pipeline, tmp_path):
    pipe = conditional_pipeline
    pipe.register_to_config(recommended_guidance_scale=2.5)
    pipe.save_pretrained(tmp_path / "cond")
    loaded = load_pipeline(tmp_path / "cond")
    assert loaded.config.recommended_guidance_scale == 2.5
    loaded.set_progress_bar_config(disable=True)
    torch.testing.assert_close(
        sample(loaded, class_labels=[0, 1], guidance_scale=None),
        sample(loaded, class_labels=[0, 1], guidance_scale=2.5),
    )


def test_bad_labels_and_scales_are_refused(conditional_pipeline):
    pipe = conditional_pipeline
    with pytest.raises(ValueError, match=r"integers in \[0, 3\]"):
        sample(pipe, class_labels=[0, 7])
    with pytest.raises(ValueError, match="guidance_scale"):
        sample(pipe, class_labels=[0], guidance_scale=float("nan"))
    unconditional = DDPMExplorerPipeline(unet=make_tiny_unet(), scheduler=pipe.scheduler)
    with pytest.raises(ValueError, match="unconditional"):
        sample(unconditional, class_labels=[0])


def test_guidance_interval_guides_only_inside_it_and_saves_the_unconditional_pass(conditional_pipeline):
    """Kynkäänniemi et al. 2024: w inside t_lo ≤ t ≤ t_hi (the paper's t), plainly conditional (one pass) outside."""
    pipe = conditional_pipeline
    batches = count_batches(pipe.unet)
    steps = list(
        pipe.iter_trajectory(
            class_labels=[0, 1],
            guidance_scale=3.0,
            guidance_interval=(5, 12),
            num_inference_steps=5,  # table indices 19, 15, 11, 7, 3: the paper's t 20, 16, 12, 8, 4
            generator=torch.Generator().manual_seed(0),
            show_progress=False,
        )
    )
    assert [s.timestep + 1 for s in steps] == [20, 16, 12, 8, 4]
    assert batches == [2, 2, 4, 4, 2]  # guided (both passes batched) at t = 12 and 8 only
    # everywhere outside: the same as w = 1; everywhere inside: the same as plain w = 3
    outside = sample(pipe, class_labels=[0, 1], guidance_scale=3.0, guidance_interval=(100, 200))
    torch.testing.assert_close(outside, sample(pipe, class_labels=[0, 1], guidance_scale=1.0))
    inside = sample(pipe, class_labels=[0, 1], guidance_scale=3.0, guidance_interval=(0, 20))
    torch.testing.assert_close(inside, sample(pipe, class_labels=[0, 1], guidance_scale=3.0))


def test_guidance_rescale_matches_the_conditional_std_and_zero_changes_nothing(conditional_pipeline):
    from pipelines.guidance import Guidance, rescale_guided

    g = torch.Generator().manual_seed(0)
    conditional, unconditional = torch.randn(3, 1, 8, 8, generator=g), torch.randn(3, 1, 8, 8, generator=g)
    guided = unconditional + 5 * (conditional - unconditional)
    full = rescale_guided(guided, conditional, 1.0)
    torch.testing.assert_close(full.std(dim=(1, 2, 3)), conditional.std(dim=(1, 2, 3)))
    unit = lambda x: x / x.flatten(1).norm(dim=1)[:, None, None, None]
    torch.testing.assert_close(unit(full), unit(guided))  # each image's direction is kept
    torch.testing.assert_close(Guidance(5.0, 0.0).combine(conditional, unconditional, 5.0), guided)
    half = Guidance(5.0, 0.5).combine(conditional, unconditional, 5.0)
    torch.testing.assert_close(half, 0.5 * full + 0.5 * guided)
    pipe = conditional_pipeline
    plain = sample(pipe, class_labels=[0, 1], guidance_scale=4.0)
    torch.testing.assert_close(sample(pipe, class_labels=[0, 1], guidance_scale=4.0, guidance_rescale=0.0), plain)
    assert not torch.allclose(sample(pipe, class_labels=[0, 1], guidance_scale=4.0, guidance_rescale=0.7), plain)


@pytest.mark.parametrize(
    "kwargs", [dict(guidance_rescale=1.5), dict(guidance_rescale=-0.1), dict(guidance_interval=(10, 5))]
)
def test_bad_guidance_settings_are_refused(conditional_pipeline, kwargs):
    with pytest.raises(ValueError, match="guidance_"):
        sample(conditional_pipeline, class_labels=[0], guidance_scale=2.0, **kwargs)


def test_recommended_interval_and_rescale_are_saved_loaded_and_start_the_guidance(conditional_pipeline, tmp_path):
    pipe = conditional_pipeline
    pipe.register_to_config(
        recommended_guidance_scale=3.0, recommended_guidance_interval=[4, 15], recommended_guidance_rescale=0.7
    )
    pipe.save_pretrained(tmp_path / "cond")
    loaded = load_pipeline(tmp_path / "cond")
    assert loaded.recommended_guidance() == Guidance(3.0, 0.7, (4.0, 15.0))
    plain = DDPMExplorerPipeline(unet=pipe.unet, scheduler=pipe.scheduler)  # none recommended: every step, φ = 0
    assert plain.recommended_guidance() == Guidance(1.0, 0.0, None)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("recommended_guidance_interval", [15, 4], r"0 ≤ t_lo ≤ t_hi ≤ T = 20, got \[15, 4\]"),
        ("recommended_guidance_interval", [0, 21], r"t_hi ≤ T = 20, got \[0, 21\]"),
        ("recommended_guidance_interval", [-1, 5], r"must be \[t_lo, t_hi\]"),
        ("recommended_guidance_interval", 7, r"must be \[t_lo, t_hi\]"),
        ("recommended_guidance_interval", [1, 2, 3], r"must be \[t_lo, t_hi\]"),
        ("recommended_guidance_interval", ["a", 5], r"must be \[t_lo, t_hi\]"),
        ("recommended_guidance_rescale", 1.5, r"recommended_guidance_rescale must be a number in \[0, 1\], got 1.5"),
        ("recommended_guidance_rescale", True, r"recommended_guidance_rescale must be a number in \[0, 1\]"),
        ("recommended_guidance_rescale", "0.5", r"recommended_guidance_rescale must be a number in \[0, 1\]"),
    ],
)
def test_bad_recommended_interval_or_rescale_is_a_checkpoint_error(
    conditional_pipeline, tmp_path, key, value, message
):
    import json

    from pipelines.loading import CheckpointError

    conditional_pipeline.save_pretrained(tmp_path / "cond")
    index = tmp_path / "cond" / "model_index.json"
    index.write_text(json.dumps({**json.loads(index.read_text()), key: value}))
    with pytest.raises(CheckpointError, match=f"{key} must be .*{message}|{message}"):
        load_pipeline(tmp_path / "cond")


def test_guided_evaluations_are_the_calls_that_run_both_passes(conditional_pipeline):
    """Known before the run, per model evaluation: exactly the UNet calls of 2B images, for a one-pass-a-step sampler
    and for Heun (two evaluations a step, on Karras σ steps: fractional timesteps)."""
    from diffusers import HeunDiscreteScheduler

    pipe = conditional_pipeline
    guidance = Guidance(3.0, 0.0, (5, 12))
    for scheduler, n in ((None, 5), (HeunDiscreteScheduler.from_config(pipe.scheduler.config), 4)):
        prepared = pipe.prepare_run(scheduler, n)
        expected = pipe.guided_evaluations(prepared, [0, 1], guidance)
        batches = count_batches(pipe.unet)
        run = pipe.iter_trajectory(
            scheduler=prepared,
            class_labels=[0, 1],
            guidance_scale=3.0,
            guidance_interval=(5, 12),
            generator=torch.Generator().manual_seed(0),
            show_progress=False,
        )
        assert len(list(run)) == len(expected)
        assert batches == [4 if guided else 2 for guided in expected], (scheduler, expected)
        assert 0 < sum(expected) < len(expected)
        pipe.unet._forward_pre_hooks.clear()
    assert pipe.guided_evaluations(pipe.run_scheduler(None, 5), None, guidance) == [False] * 5  # ∅ only: one pass
    assert pipe.guided_evaluations(pipe.run_scheduler(None, 5), [0], Guidance(1.0)) == [False] * 5
    assert pipe.guided_evaluations(pipe.run_scheduler(None, 5), 2, Guidance(2.0)) == [True] * 5


def test_each_class_is_guided_with_its_own_w(conditional_pipeline):
    """w per class: each image of a mixed batch equals the one a run with its class's single w draws, in one call of
    2B images a step; one w for all classes equals the plain run bit for bit."""
    pipe = conditional_pipeline
    batches = count_batches(pipe.unet)
    mixed = sample(pipe, class_labels=[0, 1, 2], guidance_scale=[3.0, 1.0, 0.0])
    assert batches == [6] * 5
    for i, w in enumerate((3.0, 1.0, 0.0)):
        alone = sample(pipe, class_labels=[0, 1, 2], guidance_scale=w)
        torch.testing.assert_close(mixed[i], alone[i], atol=1e-5, rtol=1e-5)
    assert torch.equal(
        sample(pipe, class_labels=[0, 2], guidance_scale=[2.5, 2.5, 2.5]),
        sample(pipe, class_labels=[0, 2], guidance_scale=2.5),
    )
    batches.clear()  # only classes whose w is 1 in the batch: one conditional pass a step, as with w = 1
    only_w1 = sample(pipe, class_labels=[1, 1], guidance_scale=[3.0, 1.0, 0.0])
    assert batches == [2] * 5
    torch.testing.assert_close(only_w1, sample(pipe, class_labels=[1, 1], guidance_scale=1.0))


def test_the_recommended_class_scales_are_saved_loaded_and_used(conditional_pipeline, tmp_path):
    import json

    from pipelines.loading import CheckpointError

    pipe = conditional_pipeline
    pipe.register_to_config(recommended_guidance_scale=2.0, recommended_guidance_class_scales=[3.0, 2.0, 1.0])
    pipe.save_pretrained(tmp_path / "cond")
    loaded = load_pipeline(tmp_path / "cond")
    assert loaded.recommended_guidance() == Guidance(2.0, 0.0, None, (3.0, 2.0, 1.0))
    torch.testing.assert_close(
        sample(loaded, class_labels=[0, 1, 2], guidance_scale=None),
        sample(loaded, class_labels=[0, 1, 2], guidance_scale=[3.0, 2.0, 1.0]),
    )
    assert loaded.guidance_for(1.5) == Guidance(1.5)  # a number: one w for all, the classes' set aside
    index = tmp_path / "cond" / "model_index.json"
    for bad in ([3.0, 2.0], [3.0, 2.0, 60.0], "3"):
        index.write_text(json.dumps({**json.loads(index.read_text()), "recommended_guidance_class_scales": bad}))
        with pytest.raises(CheckpointError, match="recommended_guidance_class_scales"):
            load_pipeline(tmp_path / "cond")
    with pytest.raises(ValueError, match="one per class"):
        sample(pipe, class_labels=[0], guidance_scale=[2.0, 3.0])
    with pytest.raises(ValueError, match=r"\[0, 50\]"):
        sample(pipe, class_labels=[0], guidance_scale=[2.0, 3.0, -1.0])


def test_guided_evaluations_follow_the_classes_of_the_batch(conditional_pipeline):
    pipe = conditional_pipeline
    run = pipe.run_scheduler(None, 5)
    per_class = Guidance(2.0, 0.0, None, (3.0, 1.0, 1.0))
    assert pipe.guided_evaluations(run, [1, 2], per_class) == [False] * 5  # both at w = 1
    assert pipe.guided_evaluations(run, [0, 1], per_class) == [True] * 5


def test_a_recommended_sampler_is_saved_loaded_and_checked(conditional_pipeline, tmp_path):
    import json

    from pipelines.loading import CheckpointError

    pipe = conditional_pipeline
    pipe.register_to_config(recommended_sampler="ddpm", recommended_num_inference_steps=10)
    pipe.save_pretrained(tmp_path / "cond")
    loaded = load_pipeline(tmp_path / "cond")
    assert (loaded.config.recommended_sampler, loaded.config.recommended_num_inference_steps) == ("ddpm", 10)
    index = tmp_path / "cond" / "model_index.json"
    good = json.loads(index.read_text())
    for bad, message in (
        ({"recommended_sampler": "fast"}, "recommended_sampler must be one of"),
        ({"recommended_num_inference_steps": 21}, r"an integer N in 1 … T = 20"),
        ({"recommended_num_inference_steps": None}, "needs recommended_num_inference_steps"),
        ({"recommended_num_inference_steps": 2.5}, "needs recommended_num_inference_steps"),
    ):
        index.write_text(json.dumps(good | bad))
        with pytest.raises(CheckpointError, match=message):
            load_pipeline(tmp_path / "cond")
    with pytest.raises(ValueError, match="come together"):
        DDPMExplorerPipeline(unet=pipe.unet, scheduler=pipe.scheduler, recommended_sampler="ddpm")
