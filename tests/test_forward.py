import math

import pytest
import torch

from pipelines.forward import ForwardTrajectory, q_sample, standardized_residual
from pipelines.schedules import extract, make_schedule


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_q_sample_is_the_closed_form_in_any_dtype(dtype):
    tables = make_schedule("cosine", 100)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 1, 4, 4, generator=g, dtype=dtype) * 2 - 1
    noise = torch.randn(2, 1, 4, 4, generator=g, dtype=dtype)
    t = torch.tensor([3, 90])
    sqrt_ab = extract(tables.sqrt_alphas_cumprod, t, x0.shape, dtype)
    sqrt_1mab = extract(tables.sqrt_one_minus_alphas_cumprod, t, x0.shape, dtype)
    x_t = q_sample(x0, noise, sqrt_ab, sqrt_1mab)
    assert x_t.dtype == dtype
    for i in range(2):
        ab = tables.alphas_cumprod[t[i]].item()
        torch.testing.assert_close(x_t[i], math.sqrt(ab) * x0[i] + math.sqrt(1 - ab) * noise[i])
    assert torch.equal(q_sample(x0, noise, 1.0, 0.0), x0)


def test_standardized_residual_of_a_frame_is_its_noise():
    tables = make_schedule("linear", 50)
    x0 = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    fwd = ForwardTrajectory(x0, tables, generator=torch.Generator().manual_seed(2))
    for t in (1, 25, 50):
        residual = standardized_residual(fwd.frame(t), fwd.x0, fwd.values(t))
        torch.testing.assert_close(residual, fwd.noise, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="t ≥ 1"):
        standardized_residual(fwd.frame(0), fwd.x0, fwd.values(0))


def test_step_values_read_log_snr_from_the_tables():
    tables = make_schedule("cosine", 20)
    fwd = ForwardTrajectory(torch.zeros(1, 2, 2), tables, noise=torch.zeros(1, 2, 2))
    assert fwd.values(0).log_snr == math.inf and fwd.values(0).snr == math.inf
    for t in (1, 7, 20):
        v = fwd.values(t)
        assert v.log_snr == tables.log_snr[t - 1].item()
        assert v.log_snr == pytest.approx(math.log(v.snr))
