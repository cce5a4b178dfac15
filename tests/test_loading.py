"""Broken checkpoints give clear errors, and the other models stay usable."""

import shutil

import pytest
import torch

from app import models, settings
from pipelines.loading import CheckpointError, load_pipeline


@pytest.fixture
def good(tiny_checkpoints, tmp_path):
    path = tmp_path / "good"
    shutil.copytree(tiny_checkpoints / "tiny-random", path)
    return path


def test_good_checkpoint_loads_in_float32(good):
    pipe = load_pipeline(good)
    assert pipe.unet.dtype == torch.float32 and pipe.sample_shape == (1, 8, 8)


def test_fp16_weights_load_as_float32(good):
    pipe = load_pipeline(good)
    pipe.unet.half()
    pipe.save_pretrained(good)
    assert load_pipeline(good).unet.dtype == torch.float32


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda p: shutil.rmtree(p), "does not exist"),
        (lambda p: (p / "unet" / "config.json").unlink(), "no unet/config.json"),
        (lambda p: (p / "unet" / "config.json").write_text("{not json"), "not valid JSON"),
        (lambda p: (p / "scheduler" / "scheduler_config.json").unlink(), "no scheduler"),
        (
            lambda p: (p / "scheduler" / "scheduler_config.json").write_text('{"beta_schedule": "nope"}'),
            "unusable scheduler config",
        ),
        (
            lambda p: (p / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x00garbage" * 10),
            "Corrupt safetensors|Could not load",
        ),
        (
            lambda p: (p / "unet" / "diffusion_pytorch_model.safetensors").rename(
                p / "unet" / "diffusion_pytorch_model.bin"
            ),
            "only pickle weights",
        ),
        (lambda p: (p / "unet" / "diffusion_pytorch_model.safetensors").unlink(), "no unet/diffusion_pytorch_model"),
    ],
    ids=[
        "missing folder",
        "missing config",
        "bad config",
        "missing scheduler",
        "bad scheduler",
        "corrupt weights",
        "pickle only",
        "no weights",
    ],
)
def test_broken_checkpoints_raise_clear_errors(good, breakage, message):
    breakage(good)
    with pytest.raises(CheckpointError, match=message):
        load_pipeline(good)


def test_channel_and_size_mismatch(good):
    with pytest.raises(CheckpointError, match="has 1 channels, expected 3"):
        load_pipeline(good, expected_channels=3)
    with pytest.raises(CheckpointError, match="works at 8 px, expected 32"):
        load_pipeline(good, expected_size=32)


def test_a_broken_model_in_the_registry_leaves_the_others_usable(app_models, tmp_path, monkeypatch):
    root = tmp_path / "ckpts"
    shutil.copytree(app_models / "tiny-random", root / "tiny-random")
    shutil.copytree(app_models / "tiny-random", root / "broken")
    (root / "broken" / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    monkeypatch.setattr(settings, "CHECKPOINT_DIR", root)
    with pytest.raises(models.ModelUnavailable, match="broken could not be loaded"):
        models.get_pipeline("broken")
    with pytest.raises(models.ModelUnavailable, match="broken could not be loaded"):  # remembered, not retried
        models.get_pipeline("broken")
    assert models.get_pipeline("tiny-random") is models.get_pipeline("tiny-random"), "loaded once, then cached"


def test_hub_ids_only_from_the_allowlist_and_unavailable_offline(app_models):
    names = models.registry()
    hub = [n for n, e in names.items() if e.is_hub]
    assert {names[n].source for n in hub} == set(models.HUB_MODELS)
    with pytest.raises(models.ModelUnavailable, match="offline"):
        models.get_pipeline(hub[0])
    with pytest.raises(models.ModelUnavailable, match="Unknown model"):
        models.get_pipeline("someone/malicious-model")
