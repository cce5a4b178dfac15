"""The spectral view's math on images whose spectrum is known."""

import math

import pytest
import torch

from pipelines.spectral import RadialSpectrum, crossing_frequency, radial_power_spectrum


@pytest.mark.parametrize("k", [1, 3, 8, 15])
def test_a_cosine_puts_its_power_in_its_ring(k):
    n = 32
    x = torch.arange(n, dtype=torch.float64)
    image = torch.cos(2 * math.pi * k * x / n)[None, :].expand(n, n)  # k cycles across, constant down
    spectrum = radial_power_spectrum(image)
    assert spectrum.freqs[k - 1] == pytest.approx(k / n)
    assert int(spectrum.power.argmax()) == k - 1
    others = torch.cat([spectrum.power[: k - 1], spectrum.power[k:]])
    assert others.abs().max() < 1e-12


def test_white_noise_is_flat_at_its_variance():
    noise = 0.5 * torch.randn(256, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    spectrum = radial_power_spectrum(noise)
    assert len(spectrum.freqs) == 16 and spectrum.freqs[-1] == pytest.approx(0.5)
    assert torch.allclose(spectrum.power, torch.full_like(spectrum.power, 0.25), rtol=0.05)


def test_scaling_and_the_crossing():
    freqs = torch.tensor([0.1, 0.2, 0.3, 0.4])
    signal = RadialSpectrum(freqs, torch.tensor([100.0, 10.0, 1.0, 0.1]))
    flat = RadialSpectrum(freqs, torch.ones(4))
    assert crossing_frequency(signal, flat) == pytest.approx(0.3)  # 1 ≥ 1: noise reaches the signal there
    assert crossing_frequency(signal.scaled(0.01), flat) == pytest.approx(0.1)
    assert crossing_frequency(signal, flat.scaled(0.01)) is None  # the signal is above the noise everywhere


def test_an_image_loses_its_high_frequencies_first():
    """Under the forward process the crossing moves to lower frequencies as t grows."""
    from pipelines.schedules import make_schedule

    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(torch.randn(1, 1, 40, 40, generator=g), 9, stride=1)  # 32×32, 1/f-ish
    x0 = smooth / smooth.std()
    eps = radial_power_spectrum(torch.randn(64, 1, 32, 32, generator=g))
    tables = make_schedule("linear", 1000)
    crossings = []
    for t in (50, 200, 400, 700):
        ab = float(tables.alphas_cumprod[t - 1])
        crossings.append(crossing_frequency(radial_power_spectrum(x0).scaled(ab), eps.scaled(1 - ab)) or 1.0)
    assert crossings == sorted(crossings, reverse=True) and crossings[0] > crossings[-1]


def test_the_reverse_payload_carries_x0_hat_spectra_and_the_datas(tiny_pipeline):
    import json

    from app.scrub_payload import reverse_payload

    traj = tiny_pipeline.sample_trajectory(
        batch_size=2, num_inference_steps=6, generator=torch.Generator().manual_seed(0)
    )
    data = {"power": [1.0, 0.5, 0.25, 0.125]}
    payload = json.loads(reverse_payload(traj, tiny_pipeline.scheduler.tables, data_spectrum=data))
    sp = payload["spectrum"]
    assert len(sp["x0_hat"]) == len(payload["t"]) == 6 and len(sp["freqs"]) == 4 == len(sp["result"])
    assert sp["data"] == data["power"]
    from pipelines.trajectory import from_uint8

    expected = radial_power_spectrum(from_uint8(traj.pred_original[2])).power
    assert torch.allclose(torch.tensor(sp["x0_hat"][2], dtype=torch.float64), expected, rtol=1e-3)
