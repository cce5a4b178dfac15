"""New image or copy: the nearest-training-image search (pipelines/nearest.py) and the reverse tab's section that
shows it after a run (app/callbacks/nearest.py), on tiny hand-made training sets."""

import json

import numpy as np
import pytest
import torch

from app import models, settings
from app.callbacks import nearest as cb
from app.reverse_session import ReverseState
from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler
from pipelines.nearest import (
    TRAINING_SET_FILE,
    NearestTraining,
    TrainingSetError,
    load_training_set,
    save_training_set,
    to_model_range,
)
from pipelines.training.classifier import CONFIG_FILE, WEIGHTS_FILE, FashionClassifier
from pipelines.trajectory import Trajectory
from tests.conftest import make_tiny_unet


def distinct_images(n: int, side: int = 8, seed: int = 0) -> np.ndarray:
    """n random RGB images, far apart from one another."""
    return np.random.default_rng(seed).integers(0, 256, (n, 3, side, side), dtype=np.uint8)


def write_training_set(path, n_train=12, n_held_out=6, side=32):
    images = distinct_images(n_train + n_held_out, side)
    names = [f"emoji {i}" for i in range(n_train)]
    save_training_set(path, images[:n_train], np.arange(n_train) % 2, names, images[n_train:])
    return images[:n_train], images[n_train:]


def test_a_training_set_round_trips_and_bad_ones_are_refused(tmp_path):
    train, held_out = write_training_set(tmp_path / "set.npz")
    loaded = load_training_set(tmp_path / "set.npz")
    assert torch.equal(loaded.images, torch.from_numpy(train)) and torch.equal(
        loaded.held_out, torch.from_numpy(held_out)
    )
    assert loaded.names[3] == "emoji 3" and loaded.labels.tolist()[:3] == [0, 1, 0]
    np.savez(tmp_path / "pickled.npz", images=np.array([object()]), labels=[0], names=["a"], held_out=held_out)
    np.savez(tmp_path / "missing.npz", images=train, labels=np.zeros(12), names=np.array(["a"] * 12))
    np.savez(
        tmp_path / "float.npz", images=train.astype(float), labels=np.zeros(12), names=["a"] * 12, held_out=held_out
    )
    np.savez(tmp_path / "names.npz", images=train, labels=np.zeros(12), names=["a"] * 3, held_out=held_out)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for bad in ("pickled", "missing", "float", "names", "junk"):
        with pytest.raises(TrainingSetError):
            load_training_set(tmp_path / f"{bad}.npz")


def test_a_copy_is_found_at_distance_zero_and_closer_than_any_real_image(tmp_path):
    train, held_out = write_training_set(tmp_path / "set.npz")
    search = NearestTraining(load_training_set(tmp_path / "set.npz"), features=lambda x: x.flatten(1)[:, :16])
    copies = to_model_range(torch.from_numpy(train[[4, 7]]))
    found = search.of(copies)
    assert found.pixel_index.tolist() == [4, 7] and found.pixel_distance.max() < 1e-4
    assert found.feature_index.tolist() == [4, 7] and found.feature_distance.max() < 1e-4
    assert search.percentile(0.0, "pixels") == 0.0 and search.percentile(0.0, "features") == 0.0
    # a held-out image is as far as the reference says: its own distance sits inside the reference
    d = float(search.of(to_model_range(torch.from_numpy(held_out[:1]))).pixel_distance[0])
    assert d == pytest.approx(float(search.reference.pixel_distance[0]), abs=1e-4)
    assert 0 < search.percentile(d + 1e-3, "pixels") <= 100
    with pytest.raises(ValueError, match="shape"):
        search.of(torch.zeros(1, 1, 32, 32))


def copying_checkpoints(root):
    """A checkpoint folder with a tiny 32 px RGB class-conditional model, 'emoji-tiny', that ships its training set
    and names a classifier beside it, and 'plain-tiny', which ships nothing; returns the training images."""
    scheduler = DDPMExplorerScheduler(num_train_timesteps=100, beta_schedule="cosine")
    unet = make_tiny_unet(sample_size=32, channels=3, num_class_embeds=3)
    DDPMExplorerPipeline(unet=unet, scheduler=scheduler, class_names=["a", "b"]).save_pretrained(root / "emoji-tiny")
    DDPMExplorerPipeline(unet=make_tiny_unet(), scheduler=scheduler).save_pretrained(root / "plain-tiny")
    train, _ = write_training_set(root / "emoji-tiny" / "training_set.npz")
    (root / "emoji-tiny" / "nearest.json").write_text(json.dumps({"classifier": "tiny-classifier"}))
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = FashionClassifier(2, 3)
    (root / "tiny-classifier").mkdir()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(root / "tiny-classifier" / WEIGHTS_FILE))
    config = {"architecture": "convnet", "in_channels": 3, "num_classes": 2, "class_names": ["a", "b"]}
    (root / "tiny-classifier" / CONFIG_FILE).write_text(json.dumps(config))
    return train


@pytest.fixture
def copying_model(tmp_path, monkeypatch):
    """:func:`copying_checkpoints`, the app's model folder, 'emoji-tiny' its default."""
    root = tmp_path / "checkpoints"
    train = copying_checkpoints(root)
    monkeypatch.setattr(settings, "CHECKPOINT_DIR", root)
    monkeypatch.setattr(settings, "DEFAULT_MODEL", "emoji-tiny")
    models.nearest_training.cache_clear()
    yield train
    models.nearest_training.cache_clear()


def run_state(model: str, final: torch.Tensor | None) -> ReverseState:
    frames = [torch.zeros(1, 2, 3, 32, 32, dtype=torch.uint8) for _ in range(3)]
    trajectory = Trajectory([99], [-1], [0], 1, [0.5], *frames, final=final)
    return ReverseState(model, trajectory, 100, plot=None, values={})


def test_the_section_shows_each_sample_beside_its_nearest_training_image(copying_model):
    """Samples that are training images 2 and 5: found, at distance 0, said closer than any real image comes; the
    plot drawn; the summary counts both as closer than 99 % of real images, in pixels and features."""
    train = copying_model
    assert models.TRAINING_SET_FILE == TRAINING_SET_FILE  # the app names the file without importing torch's side
    assert models.nearest_training("plain-tiny") is None
    assert cb.section_visible("emoji-tiny")["visible"] and not cb.section_visible("plain-tiny")["visible"]
    final = to_model_range(torch.from_numpy(train[[2, 5]]))
    items, plot, summary = cb.nearest_of_run(run_state("emoji-tiny", final))
    assert len(items) == 6  # each sample, its neighbour in pixels, its neighbour in features
    captions = [c for _, c in items]
    assert captions[0] == "sample 1" and captions[3] == "sample 2"
    assert captions[1] == "pixels: emoji 2 · d 0.0 · 0 %"  # closer than any held-out image comes
    assert captions[2] == "features: emoji 2 · d 0.0 · 0 %"
    assert captions[4].startswith("pixels: emoji 5 · d 0.0")
    assert np.array_equal(items[1][0][::3, ::3], train[2].transpose(1, 2, 0))  # the training image, upscaled 3×
    assert items[0][0].shape == (96, 96, 3) and np.asarray(plot).ndim == 3
    assert "2 of 2 in pixels, 2 of 2 in features" in summary


def test_without_a_finished_run_the_section_says_what_to_do(copying_model):
    for state in (None, run_state("emoji-tiny", None), run_state("plain-tiny", torch.zeros(2, 3, 32, 32))):
        gallery, plot, message = cb.nearest_of_run(state)
        assert gallery["value"] is None and plot["value"] is None and "Generate" in message
