"""The quality report on a labelled RGB image folder (train/ and test/, one subfolder per class): class names and
split from the folder, colour levels, and the memorisation figures, on a tiny folder made here (never real data)."""

import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_unet
from PIL import Image
from test_quality_report import save_random_classifier

from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler
from pipelines.training import quality_report as qr
from pipelines.training.classifier import CONFIG_FILE, FashionClassifier, ResidualClassifier
from pipelines.training.evaluate import load_evaluation_data

NAMES = ["Smileys & Emotion", "Flags", "Animals"]  # label order: classes.json's, not sorted
TRAIN_PER_CLASS = 10
TEST_PER_CLASS = (4, 5, 6)  # unbalanced, as a small data set's held-out split is
COLOURS = ((230, 200, 40), (40, 90, 220), (60, 170, 70))


def class_image(c: int, g: torch.Generator) -> np.ndarray:
    """A white 32×32 ground with a disc of class c's colour, at a random place and size, and some noise."""
    yy, xx = np.mgrid[:32, :32]
    cy, cx, r = torch.randint(10, 22, (2,), generator=g).tolist() + torch.randint(5, 10, (1,), generator=g).tolist()
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    image = np.full((32, 32, 3), 255.0)
    image[disc] = COLOURS[c]
    noise = torch.randint(-20, 21, (32, 32, 3), generator=g).numpy()
    return np.clip(image + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """data/<split>/<class>/<i>.png with classes.json, like pipelines.training.emoji's output."""
    root = tmp_path_factory.mktemp("tiny-emoji")
    (root / "classes.json").write_text(json.dumps(NAMES))
    g = torch.Generator().manual_seed(0)
    for split, counts in (("train", (TRAIN_PER_CLASS,) * 3), ("test", TEST_PER_CLASS)):
        for c, (name, n) in enumerate(zip(NAMES, counts)):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(class_image(c, g)).save(root / split / name / f"{i}.png")
    return root


def random_nets(seed: int = 0) -> dict:
    torch.manual_seed(seed)
    return {
        "convnet": FashionClassifier(3, in_channels=3).eval(),
        "resnet": ResidualClassifier(3, in_channels=3).eval(),
    }


def test_the_folder_gives_its_split_and_class_names_in_classes_json_order(folder):
    data = load_evaluation_data(data_folder=folder, channels=3)
    assert data.class_names == tuple(NAMES) and data.source == str(folder)
    assert data.train_x.shape == (30, 3, 32, 32) and data.test_x.shape == (15, 3, 32, 32)
    assert torch.bincount(data.test_y).tolist() == list(TEST_PER_CLASS)
    yellow = data.train_x[data.train_y == 0]  # Smileys' discs are yellow: more red than blue
    assert (yellow[:, 0].mean() > yellow[:, 2].mean()).item()


def test_samples_ask_for_the_classes_in_the_held_out_proportions():
    balanced = torch.arange(30) % 3
    assert qr.class_labels_like(balanced, 10, 3).tolist() == (torch.arange(10) % 3).tolist()  # i mod K
    test = torch.tensor([0] * 4 + [1] * 5 + [2] * 6)
    labels = qr.class_labels_like(test, 30, 3)
    assert torch.bincount(labels).tolist() == [8, 10, 12]
    assert torch.bincount(labels[:15], minlength=3).tolist() == [4, 5, 6]  # spread evenly, not in blocks
    assert torch.bincount(qr.class_labels_like(test, 7, 3), minlength=3).tolist() == [2, 2, 3]  # largest remainder


def test_colour_levels_are_one_for_identical_sets_and_see_a_redder_one():
    g = torch.Generator().manual_seed(3)
    real = torch.rand(40, 3, 32, 32, generator=g) * 2 - 1
    reference = torch.rand(40, 3, 32, 32, generator=g) * 2 - 1
    same = qr.colour_levels(real, real, reference)
    assert same["histogram_intersection"] == pytest.approx({"R": 1.0, "G": 1.0, "B": 1.0})
    assert all(0.9 < v < 1 for v in same["histogram_intersection_real"].values())
    redder = real.clone()
    redder[:, 0] = (redder[:, 0] + 0.5).clamp(-1, 1)
    shifted = qr.colour_levels(redder, real, reference)
    assert shifted["histogram_intersection"]["R"] < 0.8 and shifted["histogram_intersection"]["G"] == pytest.approx(1)
    means = shifted["channel_mean"]
    assert means["generated"]["R"] - means["real"]["R"] > 0.3 and means["generated"]["B"] == means["real"]["B"]
    assert shifted["brightness_difference"] == pytest.approx(0.299 * (means["generated"]["R"] - means["real"]["R"]))
    grey = torch.rand(5, 1, 8, 8, generator=g)
    assert torch.allclose(qr.luma(grey.expand(-1, 3, -1, -1)), grey)  # a grey RGB image: its own luma


def report_of(samples, labels, folder):
    data = load_evaluation_data(data_folder=folder, channels=3)
    train, test = (data.train_x, data.train_y), (data.test_x, data.test_y)
    return qr.quality_report(samples, labels, random_nets(), train, test, seed=0, k=3, class_names=data.class_names)


def test_memorisation_finds_training_images_among_the_samples(folder):
    data = load_evaluation_data(data_folder=folder, channels=3)
    labels = qr.class_labels_like(data.test_y, 15, 3)
    picks = torch.cat([(data.train_y == c).nonzero()[:n, 0] for c, n in enumerate(torch.bincount(labels).tolist())])
    samples = data.train_x[picks][labels.argsort().argsort()]  # copies of training images, of the class asked for
    report, tensors = report_of(samples, labels, folder)
    nearest = report["nearest_training_image"]
    for space in ("pixels", "features"):
        assert nearest[space]["generated_median"] == pytest.approx(0, abs=1e-4) and nearest[space]["test_median"] > 0
        assert nearest[space]["generated_closer_than_any_test"] == 1.0
        assert nearest[space]["generated_closer_than_1pct_of_test"] == 1.0
    assert nearest["exact_copies"]["generated"] == 15 and nearest["exact_copies"]["test"] == 0
    assert nearest["exact_copies"]["per_class"] == dict(zip(NAMES, TEST_PER_CLASS))
    assert tensors["train_x"][tensors["nearest"]["pixels"]["generated_index"]].equal(samples)


def test_held_out_images_as_samples_look_like_the_held_out_images(folder):
    data = load_evaluation_data(data_folder=folder, channels=3)
    labels = qr.class_labels_like(data.test_y, 15, 3)  # 15 = the test set: its subset is all of it, in class order
    samples = data.test_x[labels.argsort().argsort()]  # test image j of class c asks for c
    report, _ = report_of(samples, labels, folder)
    nearest = report["nearest_training_image"]
    for space in ("pixels", "features"):
        d = nearest[space]
        assert d["generated_median"] == pytest.approx(d["test_median"])  # the same distances, in another order
        # the closest one ties with the closest test image (in features up to float noise): not closer than any
        assert d["generated_closer_than_any_test"] < 0.07 and d["generated_closer_than_1pct_of_test"] < 0.07  # ≤ 1/15
        assert d["n_generated"] == d["n_test"] == d["n_test_thresholds"] == 15
    assert nearest["pixels"]["generated_closer_than_any_test"] == 0
    assert nearest["exact_copies"]["generated"] == 0
    for name, counts in report["class_counts"].items():
        assert counts["samples"] == counts["test"] == counts["test_subset"] == counts["train_subset"]
        for space in report["spaces"].values():
            assert space["per_class"][name]["class_accuracy"] == space["per_class"][name]["real_class_accuracy"]
    assert report["colour_levels"]["histogram_intersection"] == pytest.approx({"R": 1.0, "G": 1.0, "B": 1.0})
    assert "grey_levels" not in report


def test_a_held_out_copy_of_a_training_image_is_counted_apart_and_not_a_threshold(folder):
    data = load_evaluation_data(data_folder=folder, channels=3)
    test_x = data.test_x.clone()
    test_x[0] = data.train_x[data.train_y == 0][0]  # a duplicate across the split, as four Noto flags are
    labels = qr.class_labels_like(data.test_y, 15, 3)
    samples = data.test_x[labels.argsort().argsort()]
    train, test = (data.train_x, data.train_y), (test_x, data.test_y)
    report, _ = qr.quality_report(samples, labels, random_nets(), train, test, class_names=data.class_names)
    nearest = report["nearest_training_image"]
    assert nearest["exact_copies"]["test"] == 1 and nearest["pixels"]["n_test_thresholds"] == 14
    assert nearest["pixels"]["test_min"] > 1  # the next-closest test image's distance, not the copy's 0


def write_classifier(net, directory, architecture):
    path = save_random_classifier(net, directory, architecture)
    config = {"architecture": architecture, "in_channels": 3, "num_classes": 3, "class_names": NAMES}
    (directory / CONFIG_FILE).write_text(json.dumps(config))
    return path


def test_the_command_line_reports_an_rgb_folder_model(folder, tmp_path):
    unet = make_tiny_unet(sample_size=32, channels=3, num_class_embeds=4)
    pipe = DDPMExplorerPipeline(unet=unet, scheduler=DDPMExplorerScheduler(), class_names=NAMES)
    pipe.save_pretrained(tmp_path / "tiny-emoji")
    nets = random_nets()
    convnet = write_classifier(nets["convnet"], tmp_path / "convnet", "convnet")
    resnet = write_classifier(nets["resnet"], tmp_path / "resnet", "resnet")
    args = ["--checkpoint", str(tmp_path / "tiny-emoji"), "--data-folder", str(folder), "--classifier", convnet]
    args += ["--sampler", "ddim", "--steps", "2", "--num-samples", "15", "--batch-size", "15"]
    out = tmp_path / "report.json"
    qr.main([*args, "--second-classifier", resnet, "--json", str(out), "--plot-dir", str(tmp_path / "plots")])
    report = json.loads(out.read_text())
    assert report["class_names"] == NAMES and report["data"] == str(folder) and report["guidance_scale"] == 1.0
    assert list(report["spaces"]) == ["convnet", "resnet"]  # no default third judge: it reads Fashion-MNIST's classes
    assert {name: c["test"] for name, c in report["class_counts"].items()} == dict(zip(NAMES, TEST_PER_CLASS))
    assert set(report["overall"]["class_histogram"]) == set(NAMES) and report["overall"]["n"] == 15
    for space in report["spaces"].values():
        assert {"frechet_distance", "frechet_distance_real_floor", "fd_ratio", "real_class_accuracy"} <= set(space)
        assert np.array(space["confusion"]).shape == (3, 3) and set(space["per_class"]) == set(NAMES)
    assert set(report["colour_levels"]["histogram_intersection"]) == {"R", "G", "B"}
    assert {"exact_copies", "pixels", "features"} <= set(report["nearest_training_image"])
    assert set(report["mirrored_share"]) == set(NAMES)
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == [
        "colour_levels.png",
        "confusion.png",
        "nearest_distances.png",
        "nearest_train.png",
        "nearest_train_closest.png",
        "per_class.png",
    ]
    assert "| Smileys & Emotion |" in qr.markdown_tables(report)
    with pytest.raises(SystemExit, match="reads the classes"):  # the default: Fashion-MNIST's classifier
        qr.main(args[:4] + args[6:] + ["--second-classifier", ""])
    with pytest.raises(SystemExit, match="more samples of 'Smileys & Emotion' than it has training images"):
        qr.main([*args[:-4], "--num-samples", "40", "--second-classifier", ""])
