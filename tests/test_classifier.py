"""The feature classifiers' training options, on a fake Fashion-MNIST: flips on by default, off with --no-hflip."""

import json

import pytest
import torch
from test_training import fake_fashion_mnist  # noqa: F401 (a fixture)

from pipelines.training import classifier


def test_without_flips_no_image_is_mirrored_and_with_them_about_half_are():
    x = torch.arange(64 * 32 * 32, dtype=torch.float32).reshape(64, 1, 32, 32)  # no image is its own mirror image
    torch.manual_seed(0)
    assert torch.equal(classifier.augmented(x, shift=0, hflip=False), x)
    torch.manual_seed(0)
    out = classifier.augmented(x, shift=0)
    mirrored = (out == x.flip(-1)).flatten(1).all(-1)
    assert torch.equal(mirrored, ~(out == x).flatten(1).all(-1)), "each image is either kept or mirrored"
    assert 16 <= mirrored.sum() <= 48


@pytest.mark.parametrize(("flag", "hflip"), [([], True), (["--no-hflip"], False)], ids=["default", "no-hflip"])
def test_the_flip_option_reaches_training_and_is_recorded(fake_fashion_mnist, tmp_path, monkeypatch, flag, hflip):  # noqa: F811
    seen = []
    augmented = classifier.augmented
    monkeypatch.setattr(classifier, "augmented", lambda x, shift, h: seen.append(h) or augmented(x, shift, h))
    out = tmp_path / "classifier"
    args = ["--data-dir", str(fake_fashion_mnist), "--train-images", "32", "--epochs", "1", "--batch-size", "16"]
    classifier.main([*args, *flag, "--seed", "2", "--threads", "1", "--output-dir", str(out)])
    assert seen == [hflip, hflip]  # two batches of 16, each augmented as asked
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["hflip"] is hflip and metrics["seed"] == 2 and len(metrics["test_accuracy_by_epoch"]) == 1
    assert json.loads((out / "config.json").read_text()) == {"architecture": "convnet", "hflip": hflip}
    assert isinstance(classifier.load_classifier(out), classifier.FashionClassifier)
