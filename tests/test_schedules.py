import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pipelines.schedules import (
    BETA_SCHEDULES,
    RANGED_SCHEDULES,
    SCHEDULE_NAMES,
    ScheduleTables,
    extract,
    index_to_paper_t,
    make_betas,
    paper_t_to_index,
    posterior_coefficients,
)

CUSTOM = {"custom": lambda T: np.linspace(1e-3, 0.5, T)}


def build(name, T, **kwargs):
    if name == "custom":
        return make_betas("custom", T, trained_betas=CUSTOM["custom"](T))
    return make_betas(name, T, **kwargs)


def test_registry_drives_the_names():
    assert set(SCHEDULE_NAMES) == {*BETA_SCHEDULES, "custom"}
    assert {"linear", "quadratic", "cosine", "sigmoid"} <= set(BETA_SCHEDULES)


@pytest.mark.parametrize("T", [10, 50, 1000])
@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_table_invariants(name, T):
    betas = build(name, T)
    assert betas.dtype == torch.float64 and betas.shape == (T,)
    tb = ScheduleTables.from_betas(betas)
    n = tb.as_numpy()
    assert np.all((n["betas"] > 0) & (n["betas"] < 1))
    np.testing.assert_allclose(n["alphas"], 1 - n["betas"])
    np.testing.assert_allclose(n["alphas_cumprod"], np.cumprod(1 - n["betas"]))
    assert np.all(np.diff(n["alphas_cumprod"]) < 0), "ᾱ must be strictly decreasing"
    assert n["alphas_cumprod_prev"][0] == 1.0
    np.testing.assert_array_equal(n["alphas_cumprod_prev"][1:], n["alphas_cumprod"][:-1])
    np.testing.assert_allclose(n["sqrt_alphas_cumprod"] ** 2, n["alphas_cumprod"])
    np.testing.assert_allclose(n["sqrt_one_minus_alphas_cumprod"] ** 2, 1 - n["alphas_cumprod"])
    ab, ab_prev, b = n["alphas_cumprod"], n["alphas_cumprod_prev"], n["betas"]
    np.testing.assert_allclose(n["posterior_variance"], b * (1 - ab_prev) / (1 - ab))
    assert n["posterior_variance"][0] == 0.0
    if T > 1:  # log β̃_0 borrows β̃_1: β̃_0 = 0 has no log
        assert n["posterior_log_variance_clipped"][0] == pytest.approx(np.log(n["posterior_variance"][1]))
        np.testing.assert_allclose(n["posterior_log_variance_clipped"][1:], np.log(n["posterior_variance"][1:]))
    np.testing.assert_allclose(n["posterior_mean_coef1"], b * np.sqrt(ab_prev) / (1 - ab))
    np.testing.assert_allclose(n["posterior_mean_coef2"], (1 - ab_prev) * np.sqrt(1 - b) / (1 - ab))
    np.testing.assert_allclose(n["snr"], ab / (1 - ab))
    np.testing.assert_allclose(np.exp(n["log_snr"]), n["snr"], rtol=1e-10)
    assert np.all(np.isfinite(np.stack(list(n.values()))))


@pytest.mark.parametrize("T", [1, 10, 1000])
@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_the_papers_t_view_prepends_the_data(name, T):
    """by_paper_t[t] is the tables' entry at index t − 1 for t = 1 … T, and t = 0 is the data (ᾱ₀ = 1)."""
    tb = ScheduleTables.from_betas(build(name, T))
    paper = tb.by_paper_t
    t = torch.arange(1, T + 1)
    assert paper.alphas_cumprod.shape == (T + 1,) and tb.by_paper_t is paper, "made once"
    assert paper.alphas_cumprod[0] == 1 and paper.sqrt_alphas_cumprod[0] == 1
    assert paper.sqrt_one_minus_alphas_cumprod[0] == 0 and paper.log_snr[0] == np.inf and paper.betas[0].isnan()
    for table in ("betas", "alphas_cumprod", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod", "snr", "log_snr"):
        assert torch.equal(getattr(paper, table)[t], getattr(tb, table)[paper_t_to_index(t)]), table
    assert index_to_paper_t(paper_t_to_index(t)).equal(t) and index_to_paper_t(-1) == 0, "past the last step: x₀"


@pytest.mark.parametrize("T", [10, 50, 1000])
@pytest.mark.parametrize("name", ["cosine", *[f"{s}+rescale" for s in RANGED_SCHEDULES]])
def test_pure_noise_at_T_where_promised(name, T):
    schedule, _, rescale = name.partition("+")
    tb = ScheduleTables.from_betas(make_betas(schedule, T, rescale=bool(rescale)))
    assert tb.alphas_cumprod[-1] < 1e-2


@pytest.mark.parametrize("name", RANGED_SCHEDULES)
def test_ho_et_al_defaults_reach_noise_at_1000(name):
    assert ScheduleTables.from_betas(make_betas(name, 1000)).alphas_cumprod[-1] < 1e-2


def test_linear_is_ho_et_al():
    betas = make_betas("linear", 1000)
    assert betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)
    np.testing.assert_allclose(np.diff(betas.numpy()), (0.02 - 1e-4) / 999)


def test_quadratic_is_linear_in_sqrt_beta():
    sqrt_b = make_betas("quadratic", 100).sqrt().numpy()
    np.testing.assert_allclose(np.diff(sqrt_b), np.diff(sqrt_b)[0])


def test_cosine_matches_nichol_dhariwal_alpha_bar():
    T, s = 1000, 0.008
    tb = ScheduleTables.from_betas(make_betas("cosine", T))
    f = lambda t: np.cos((t / T + s) / (1 + s) * np.pi / 2) ** 2
    expected = f(np.arange(1, T + 1)) / f(0)
    unclipped = tb.betas.numpy() < 0.999
    np.testing.assert_allclose(tb.alphas_cumprod.numpy()[unclipped], expected[unclipped], rtol=1e-10)
    assert tb.betas.max() == pytest.approx(0.999)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(schedule="nope", num_timesteps=10), "Unknown beta schedule"),
        (dict(schedule="linear", num_timesteps=0), "between 1 and"),
        (dict(schedule="linear", num_timesteps=-5), "between 1 and"),
        (dict(schedule="linear", num_timesteps=2.5), "must be an integer"),
        (dict(schedule="linear", num_timesteps=10, beta_start=0.02, beta_end=0.01), "beta_start < beta_end"),
        (dict(schedule="linear", num_timesteps=10, beta_start=0.01, beta_end=0.01), "beta_start < beta_end"),
        (dict(schedule="linear", num_timesteps=10, beta_start=0.0, beta_end=0.01), "beta_start < beta_end"),
        (dict(schedule="sigmoid", num_timesteps=10, beta_start=0.1, beta_end=1.5), "beta_start < beta_end"),
        (dict(schedule="linear", num_timesteps=10, beta_end=float("nan")), "finite"),
        (dict(schedule="custom", num_timesteps=3), "needs trained_betas"),
        (dict(schedule="custom", num_timesteps=3, trained_betas=[0.1, 1.0, 0.2]), "in \\(0, 1\\)"),
        (dict(schedule="custom", num_timesteps=3, trained_betas=[0.1, float("nan"), 0.2]), "finite"),
        (dict(schedule="custom", num_timesteps=4, trained_betas=[0.1, 0.2, 0.3]), "has 3 values"),
        (dict(schedule="linear", num_timesteps=3, trained_betas=[0.1, 0.2, 0.3]), "use beta_schedule='custom'"),
        (dict(schedule="cosine", num_timesteps=10, rescale=True), "rescale applies"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_betas(**kwargs)


def test_extract_broadcasts_per_sample():
    table = torch.arange(10, dtype=torch.float64)
    out = extract(table, torch.tensor([3, 7]), (2, 1, 4, 4), dtype=torch.float32)
    assert out.shape == (2, 1, 1, 1) and out.dtype == torch.float32
    assert out.flatten().tolist() == [3.0, 7.0]


@settings(deadline=None, max_examples=40)
@given(
    T=st.integers(2, 2000),
    start=st.floats(1e-5, 0.05),
    ratio=st.floats(1.01, 50.0),
    name=st.sampled_from(RANGED_SCHEDULES),
)
def test_any_valid_ranged_schedule_is_valid(T, start, ratio, name):
    end = min(start * ratio, 0.999)
    betas = make_betas(name, T, beta_start=start, beta_end=end)
    assume((-betas).log1p().neg().sum() < 600)  # ᾱ_T > 1e-260: representable in float64
    tb = ScheduleTables.from_betas(betas)
    assert torch.all((tb.betas > 0) & (tb.betas < 1))
    assert torch.all(tb.alphas_cumprod[1:] < tb.alphas_cumprod[:-1])
    assert torch.all(tb.posterior_variance[1:] > 0)


def test_posterior_coefficients_in_numpy_and_torch():
    ab_t, ab_prev = np.array([0.9, 0.5, 0.1]), np.array([1.0, 0.8, 0.4])  # a first step and two respaced ones
    x0_coeff, xt_coeff, variance = posterior_coefficients(ab_t, ab_prev)
    beta = 1 - ab_t / ab_prev
    np.testing.assert_allclose(x0_coeff, np.sqrt(ab_prev) * beta / (1 - ab_t))
    np.testing.assert_allclose(xt_coeff, np.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab_t))
    np.testing.assert_allclose(variance, (1 - ab_prev) / (1 - ab_t) * beta)
    assert variance[0] == 0.0 and x0_coeff[0] == 1.0, "after the last step the posterior is x₀ itself"
    for i in range(3):
        coefficients = posterior_coefficients(torch.tensor(ab_t[i]).float(), torch.tensor(ab_prev[i]).float())
        for got, expected in zip(coefficients, (x0_coeff, xt_coeff, variance)):
            assert got.dtype == torch.float32 and got.ndim == 0
            assert got.item() == pytest.approx(expected[i], rel=1e-6, abs=1e-7)


def test_underflowing_schedule_is_refused():
    with pytest.raises(ValueError, match="underflows"):
        ScheduleTables.from_betas(make_betas("linear", 2000, beta_start=0.5, beta_end=0.9))
