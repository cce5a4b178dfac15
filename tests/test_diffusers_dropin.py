"""DDPMExplorerScheduler in place of diffusers' DDPMScheduler: what a diffusers user's code and a Hub config expect
(compatibles, zero-SNR rescaling, trained betas, previous_timestep, _get_variance)."""

import logging

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from diffusers.utils import logging as diffusers_logging

from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler
from pipelines.samplers import SAMPLERS
from tests.conftest import make_tiny_unet

DIFFUSERS_NAMES = {"linear": "linear", "quadratic": "scaled_linear", "cosine": "squaredcos_cap_v2"}


class Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def diffusers_warnings():
    """Every warning diffusers' logger emits during the test."""
    handler, logger = Captured(), diffusers_logging.get_logger("diffusers")
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def test_compatibles_are_the_registrys_solvers_and_each_samples():
    scheduler = DDPMExplorerScheduler(num_train_timesteps=100, beta_schedule="cosine")
    compatible = {type(c).__name__ if not isinstance(c, type) else c.__name__ for c in scheduler.compatibles}
    registry = {s.scheduler_class.__name__ for s in SAMPLERS.values()} - {"DDPMExplorerScheduler"}
    assert registry <= compatible and "DDPMScheduler" in compatible
    pipe = DDPMExplorerPipeline(unet=make_tiny_unet(), scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    for solver_class in scheduler.compatibles:
        pipe.scheduler = solver_class.from_config(scheduler.config)
        out = pipe(batch_size=2, num_inference_steps=4, generator=torch.Generator().manual_seed(0), output_type="np")
        assert out.images.shape == (2, 8, 8, 1) and np.isfinite(out.images).all(), solver_class.__name__


@pytest.mark.parametrize("schedule", ["linear", "cosine", "sigmoid"])
def test_every_solver_from_our_config_warns_about_nothing(schedule, diffusers_warnings):
    config = DDPMExplorerScheduler(num_train_timesteps=100, beta_schedule=schedule).config
    for solver_class in DDPMExplorerScheduler(num_train_timesteps=100).compatibles:
        solver_class.from_config(config)
    assert diffusers_warnings == []
    # the capture is real: a key no scheduler knows is warned about
    DDPMScheduler.from_config({**config, "not_a_setting": 1})
    assert any("not_a_setting" in m for m in diffusers_warnings)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("schedule", DIFFUSERS_NAMES)
def test_rescale_betas_zero_snr_equals_diffusers(schedule, prediction_type, tmp_path):
    ours = DDPMExplorerScheduler(beta_schedule=schedule, rescale_betas_zero_snr=True, prediction_type=prediction_type)
    ref = DDPMScheduler(beta_schedule=DIFFUSERS_NAMES[schedule], rescale_betas_zero_snr=True)
    torch.testing.assert_close(ours.betas, ref.betas, atol=0, rtol=0)
    assert ours.alphas_cumprod[-1] == 0.0  # zero terminal SNR
    assert torch.isfinite(ours.tables.log_snr).all()  # the analysis tables cap β_T at 0.999 instead
    ours.save_config(tmp_path)
    again = DDPMExplorerScheduler.from_pretrained(tmp_path)
    assert again.config.rescale_betas_zero_snr and torch.equal(again.betas, ours.betas)
    assert torch.equal(DDPMScheduler.from_pretrained(tmp_path).betas, ref.betas)  # diffusers reads our config alike


def test_a_diffusers_config_with_zero_snr_loads(tmp_path):
    DDPMScheduler(rescale_betas_zero_snr=True, prediction_type="v_prediction").save_pretrained(tmp_path)
    ours = DDPMExplorerScheduler.from_pretrained(tmp_path)
    assert torch.equal(ours.betas, DDPMScheduler.from_pretrained(tmp_path).betas)


def test_old_configs_with_rescale_betas_load_the_same_betas_without_warning(tmp_path, diffusers_warnings):
    """Configs saved when ``rescale_betas`` (β range × 1000/T) was a config key carry their β in trained_betas."""
    scaled = DDPMExplorerScheduler(num_train_timesteps=50, beta_schedule="linear", rescale_betas=True)
    assert "rescale_betas" not in scaled.config and scaled.config.trained_betas is not None
    old = {**scaled.config, "rescale_betas": True, "_class_name": "DDPMExplorerScheduler"}
    again = DDPMExplorerScheduler.from_config(old)
    assert torch.equal(again.betas, scaled.betas) and diffusers_warnings == []


@pytest.mark.parametrize("schedule", ["linear", "scaled_linear", "squaredcos_cap_v2"])
def test_trained_betas_win_over_the_schedule_name_as_in_diffusers(schedule):
    betas = np.linspace(1e-3, 0.05, 100).tolist()
    ours = DDPMExplorerScheduler(num_train_timesteps=100, beta_schedule=schedule, trained_betas=betas)
    ref = DDPMScheduler(num_train_timesteps=100, beta_schedule=schedule, trained_betas=betas)
    torch.testing.assert_close(ours.betas, ref.betas, atol=0, rtol=0)
    assert ours.schedule_name == "custom"
    # a schedule's own β stay that schedule
    own = DDPMExplorerScheduler(num_train_timesteps=100, beta_schedule="linear")
    assert DDPMExplorerScheduler(**{**own.config, "trained_betas": own.betas.tolist()}).schedule_name == "linear"


def test_previous_timestep_is_a_tensor_for_a_tensor_as_in_diffusers():
    ours = DDPMExplorerScheduler()
    ours.set_timesteps(timesteps=[100, 87, 50, 1, 0])
    for i, t in enumerate(ours.timesteps):
        prev = ours.previous_timestep(t)
        assert torch.is_tensor(prev) and prev.item() == [87, 50, 1, 0, -1][i]
    assert ours.previous_timestep(100) == 87 and isinstance(ours.previous_timestep(100), int)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(timesteps=[100, 87, 50, 51, 0]),  # not decreasing
        dict(timesteps=[100, 87, 87, 0]),  # repeated
        dict(timesteps=[1000]),  # ≥ T
        dict(timesteps=[100, 87, 0], num_inference_steps=3),  # both
    ],
)
def test_custom_timesteps_are_refused_where_diffusers_refuses_them(kwargs):
    for scheduler in (DDPMExplorerScheduler(), DDPMScheduler()):
        with pytest.raises(ValueError):
            scheduler.set_timesteps(**kwargs)


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large", "learned", "learned_range"])
def test_get_variance_equals_diffusers(variance_type):
    ours = DDPMExplorerScheduler(variance_type=variance_type)
    ref = DDPMScheduler(variance_type=variance_type)
    predicted = torch.linspace(-0.9, 0.9, 8) if variance_type == "learned_range" else torch.linspace(1e-4, 0.02, 8)
    for t in (0, 1, 487, 999):
        a = ours._get_variance(t, predicted_variance=predicted)
        b = ref._get_variance(t, predicted_variance=predicted)
        torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float32), b, atol=1e-7, rtol=1e-6)


def test_trained_betas_set_T_as_in_diffusers(tmp_path):
    """diffusers takes trained_betas whatever num_train_timesteps says; here T follows them, and the config says so."""
    scheduler = DDPMExplorerScheduler(num_train_timesteps=1000, trained_betas=np.array([0.1, 0.3]))
    assert scheduler.config.num_train_timesteps == 2 and scheduler.timesteps.tolist() == [1, 0]
    scheduler.save_pretrained(tmp_path)
    assert DDPMExplorerScheduler.from_pretrained(tmp_path).betas.tolist() == scheduler.betas.tolist()
