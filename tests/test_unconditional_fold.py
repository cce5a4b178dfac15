"""The unconditional model inside a class-conditional one (pipelines/training/unconditional.py): its null label
folded into the time embedding gives a UNet without classes that computes the same function, which diffusers'
DDPMPipeline samples as the conditional pipeline samples the null label."""

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline, DDPMScheduler

from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler
from pipelines.loading import load_pipeline
from pipelines.training import unconditional
from tests.conftest import make_tiny_unet


def conditional_unet(learned_variance=False):
    unet = make_tiny_unet(num_class_embeds=4, learned_variance=learned_variance)  # classes 0-2, the null label 3
    with torch.no_grad():  # embeddings of a trained size, so that a fold that dropped them would show
        unet.class_embedding.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(5))
    return unet


@pytest.mark.parametrize("learned_variance", [False, True])
def test_the_folded_unet_is_the_null_labels_unet_without_a_class_input(learned_variance):
    unet = conditional_unet(learned_variance)
    folded = unconditional.unconditional_unet(unet)
    assert folded.config.num_class_embeds is None and folded.class_embedding is None
    assert folded.config.out_channels == unet.config.out_channels
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 400, 999])
    with torch.no_grad():
        null = unet(x, t, class_labels=torch.full((3,), 3)).sample
        a_class = unet(x, t, class_labels=torch.zeros(3, dtype=torch.long)).sample
        without = folded(x, t).sample
    torch.testing.assert_close(without, null, atol=1e-5, rtol=1e-5)
    assert (without - a_class).abs().max() > 1e-2  # the class mattered, so the fold picked the null one
    assert unet.config.num_class_embeds == 4 and unet.class_embedding is not None  # the input left as it was


def test_diffusers_ddpm_pipeline_samples_the_folded_model_as_ours_samples_the_null_label():
    """Same seed, all T steps, learned Σ_θ: DDPMPipeline on the folded UNet gives the conditional pipeline's
    unconditional images."""
    scheduler = DDPMExplorerScheduler(num_train_timesteps=50, variance_type="learned_range")
    conditional = DDPMExplorerPipeline(unet=conditional_unet(learned_variance=True), scheduler=scheduler)
    folded = unconditional.unconditional_pipeline(conditional)
    reference = DDPMPipeline(unet=folded.unet, scheduler=DDPMScheduler.from_config(folded.scheduler.config))
    for pipe in (conditional, reference):
        pipe.set_progress_bar_config(disable=True)
    ours = conditional(
        batch_size=2, class_labels=[3, 3], generator=torch.Generator().manual_seed(0), output_type="np"
    ).images
    theirs = reference(
        batch_size=2, generator=torch.Generator().manual_seed(0), num_inference_steps=50, output_type="np"
    ).images
    np.testing.assert_allclose(ours, np.asarray(theirs, dtype=np.float32), atol=1e-4, rtol=0)


def test_the_command_writes_an_unconditional_checkpoint_and_refuses_an_unconditional_one(tmp_path):
    scheduler = DDPMExplorerScheduler(num_train_timesteps=50, variance_type="learned_range")
    DDPMExplorerPipeline(
        unet=conditional_unet(learned_variance=True), scheduler=scheduler, class_names=["a", "b", "c"]
    ).save_pretrained(tmp_path / "cond")
    unconditional.main(["--checkpoint", str(tmp_path / "cond"), "--output-dir", str(tmp_path / "out"), "--save-fp16"])
    pipe = load_pipeline(tmp_path / "out")
    assert pipe.null_class_label is None and pipe.scheduler.config.variance_type == "learned_range"
    assert not any((tmp_path / "out").rglob("*.bin"))
    with pytest.raises(ValueError, match="class-conditional"):
        unconditional.unconditional_unet(make_tiny_unet())
