"""RePaint inpainting (Lugmayr et al. 2022) on our scheduler and models: equal to diffusers' RePaint for the same
seed, and right on the known answers (nothing to fill; everything to fill)."""

import itertools

import pytest
import torch
from diffusers import RePaintPipeline, RePaintScheduler

from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler
from pipelines.repaint import iter_repaint, moves_down, repaint, repaint_timesteps
from tests.conftest import make_tiny_unet

T = 100


def pipeline(**scheduler_kwargs):
    pipe = DDPMExplorerPipeline(
        unet=make_tiny_unet(), scheduler=DDPMExplorerScheduler(num_train_timesteps=T, **scheduler_kwargs)
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def image_and_mask():
    g = torch.Generator().manual_seed(3)
    image = torch.rand(2, 1, 8, 8, generator=g) * 2 - 1
    keep = torch.ones(2, 1, 8, 8)
    keep[:, :, :, 4:] = 0  # regenerate the right half
    return image, keep


@pytest.mark.parametrize("eta", [0.0, 1.0])
@pytest.mark.parametrize("jump_n_sample", [1, 3])
def test_equals_diffusers_repaint_for_the_same_seed(jump_n_sample, eta):
    pipe = pipeline(beta_schedule="linear", rescale_betas=True, clip_sample=True)
    image, keep = image_and_mask()
    ref_scheduler = RePaintScheduler(
        num_train_timesteps=T, beta_schedule="linear", beta_start=1e-3, beta_end=0.2, clip_sample=True
    )
    assert torch.allclose(ref_scheduler.alphas_cumprod, pipe.scheduler.alphas_cumprod)
    ref = RePaintPipeline(unet=pipe.unet, scheduler=ref_scheduler)
    ref.set_progress_bar_config(disable=True)
    kwargs = dict(num_inference_steps=20, jump_length=4, jump_n_sample=jump_n_sample, eta=eta)
    expected = ref(image, keep, generator=torch.Generator().manual_seed(0), output_type="np", **kwargs).images
    ours = repaint(pipe, image, keep, generator=torch.Generator().manual_seed(0), **kwargs)
    ours = (ours / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert abs(ours - expected).max() < 1e-5


def test_the_schedule_goes_back_up_and_counts_its_jumps():
    timesteps, stride = repaint_timesteps(T, 20, jump_length=4, jump_n_sample=3)
    assert stride == 5 and timesteps[0] == 95 and timesteps[-1] == 0
    downs = moves_down(timesteps)
    assert not all(downs) and downs[0]
    frames = list(iter_repaint(pipeline(), *image_and_mask(), num_inference_steps=20, jump_length=4, jump_n_sample=3))
    assert len(frames) == len(timesteps) and [f.down for f in frames] == downs
    climbs = frames[-1].num_jumps
    assert climbs == 8 and max(f.jump for f in frames) == climbs  # 4 jump points × (3 − 1) climbs
    assert all(f.pred_original_sample is None for f in frames if not f.down)
    assert all(a.next_sample is b.sample for a, b in itertools.pairwise(frames))
    assert all(a.next_timestep == b.timestep for a, b in itertools.pairwise(frames)), "each move starts where x is"
    naive = repaint_timesteps(T, 20, jump_length=4, jump_n_sample=1)[0]
    assert all(moves_down(naive)) and len(naive) == 20


def test_nothing_to_fill_gives_the_image_back_and_everything_to_fill_is_a_plain_sample():
    pipe = pipeline(beta_schedule="linear", rescale_betas=True, clip_sample=False)
    image, _ = image_and_mask()
    kwargs = dict(num_inference_steps=10, jump_length=2, jump_n_sample=1, eta=1.0)
    kept = repaint(pipe, image, torch.ones_like(image), generator=torch.Generator().manual_seed(0), **kwargs)
    torch.testing.assert_close(kept, image)
    filled = repaint(pipe, image, torch.zeros_like(image), generator=torch.Generator().manual_seed(0), **kwargs)
    # DDIM with η = 1 (DDPM's β̃) on the same timesteps, from the same x_T: a plain sample
    scheduler = pipe.scheduler.with_timesteps(timesteps=repaint_timesteps(T, 10, 2, 1)[0])
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(image.shape, generator=generator)
    for t in scheduler.timesteps:
        x = scheduler.step(pipe.unet(x, t).sample, t, x, generator=generator, eta=1.0).prev_sample
    torch.testing.assert_close(filled, x, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize(
    "mask, message",
    [
        (torch.ones(1, 1, 4, 4), "image's size"),
        (torch.full((1, 1, 8, 8), 0.5), "binary"),
        ("left", "image's size"),
    ],
)
def test_bad_masks_are_refused(mask, message):
    image, _ = image_and_mask()
    with pytest.raises(ValueError, match=message):
        repaint(pipeline(), image, mask, num_inference_steps=5)


def test_mask_presets_regenerate_what_they_say():
    from pipelines.repaint import MASK_PRESETS, preset_mask

    masks = {name: preset_mask(name, 8, 8, seed=1) for name in MASK_PRESETS}
    assert masks["left half"][..., :4].eq(0).all() and masks["left half"][..., 4:].eq(1).all()
    assert torch.equal(masks["right half"], masks["left half"].flip(-1))
    assert masks["centre square"].sum() == 64 - 16 and masks["centre square"][..., 2:6, 2:6].eq(0).all()
    assert masks["random 50 %"].sum() == 32 and not torch.equal(
        masks["random 50 %"], preset_mask("random 50 %", 8, 8, 2)
    )
    with pytest.raises(ValueError, match="Unknown mask preset"):
        preset_mask("ring", 8, 8)
