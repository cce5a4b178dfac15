"""Interpolation between samples: slerp keeps a Gaussian's norm, lerp does not; deterministic sampling of the strip;
class embeddings mixed between two labels."""

import math

import pytest
import torch

from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler
from pipelines.interpolation import crossfade, interpolated_latents, mixed_class_embeddings, slerp
from tests.conftest import make_tiny_unet


def two_latents(d=(1, 1, 32, 32)):
    g = torch.Generator().manual_seed(0)
    return torch.randn(d, generator=g), torch.randn(d, generator=g)


def test_slerp_keeps_both_ends_and_a_gaussians_norm_where_lerp_does_not():
    a, b = two_latents()
    strip = interpolated_latents(a, b, 9, "slerp")
    torch.testing.assert_close(strip[0:1], a)
    torch.testing.assert_close(strip[-1:], b, atol=1e-5, rtol=1e-5)
    d = a.numel()
    norms = strip.flatten(1).norm(dim=1) / math.sqrt(d)
    assert ((norms - 1).abs() < 0.08).all()  # every point has a Gaussian sample's norm, ≈ √d
    middle = interpolated_latents(a, b, 9, "lerp")[4].norm() / math.sqrt(d)
    assert abs(middle - 1 / math.sqrt(2)) < 0.08  # linear: ≈ √(d/2) halfway, what the model never saw
    with pytest.raises(ValueError, match="Unknown interpolation"):
        interpolated_latents(a, b, 9, "cubic")
    torch.testing.assert_close(slerp(a, a, 0.3), a)  # parallel ends: no division by sin 0
    fade = crossfade(a, b, 3)
    torch.testing.assert_close(fade[1], (a[0] + b[0]) / 2)


def test_a_deterministic_strip_is_a_function_of_its_latents():
    pipe = DDPMExplorerPipeline(unet=make_tiny_unet(), scheduler=DDPMExplorerScheduler(num_train_timesteps=50))
    pipe.set_progress_bar_config(disable=True)
    a, b = two_latents((1, 1, 8, 8))
    latents = interpolated_latents(a, b, 5)
    run = lambda lat: [
        s.prev_sample for s in pipe.iter_trajectory(latents=lat, num_inference_steps=10, eta=0.0, show_progress=False)
    ][-1]
    first = run(latents)
    torch.testing.assert_close(run(latents), first)
    torch.testing.assert_close(run(latents[:1]), first[:1])  # each point alone is the same image


def test_mixed_class_embeddings_are_the_labels_at_the_ends():
    unet = make_tiny_unet(num_class_embeds=4)  # classes 0, 1, 2, null 3
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    t = torch.tensor(10)
    with torch.no_grad():
        plain_a = unet(x, t, class_labels=torch.tensor([0, 0, 0])).sample
        plain_b = unet(x, t, class_labels=torch.tensor([2, 2, 2])).sample
        with mixed_class_embeddings(unet, 0, 2, [0.0, 0.5, 1.0], null_label=3):
            mixed = unet(x, t, class_labels=torch.tensor([0, 0, 0])).sample
            guided = unet(torch.cat([x, x]), t, class_labels=torch.tensor([0, 0, 0, 3, 3, 3])).sample
        null = unet(x, t, class_labels=torch.tensor([3, 3, 3])).sample
    torch.testing.assert_close(mixed[0], plain_a[0])
    torch.testing.assert_close(mixed[2], plain_b[2])
    assert not torch.allclose(mixed[1], plain_a[1]) and not torch.allclose(mixed[1], plain_b[1])
    torch.testing.assert_close(guided[:3], mixed)
    torch.testing.assert_close(guided[3:], null)  # ∅ untouched
    with torch.no_grad():  # the hook is gone afterwards
        torch.testing.assert_close(unet(x, t, class_labels=torch.tensor([0, 0, 0])).sample, plain_a)
