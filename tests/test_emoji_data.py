"""The colour data set's preparation (pipelines/training/emoji.py) on a hand-made package tarball, never the
download; and what a labelled image folder trains: a class-conditional RGB model and a category classifier."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines import DDPMExplorerPipeline
from pipelines.training import classifier, emoji
from pipelines.training.data import DatasetNotFoundError, folder_class_names, load_labelled_image_folder
from pipelines.training.train import main as train_main

# (category, code, RGBA colour, sort order); "Component" is left out, as in the real package
EMOJI = [
    ("Smileys & Emotion", "1f600", (250, 200, 0, 255), 1),
    ("Smileys & Emotion", "1f601", (240, 190, 10, 255), 2),
    ("Smileys & Emotion", "1f602", (230, 180, 20, 255), 3),
    ("Animals & Nature", "1f431", (200, 120, 40, 255), 10),
    ("Animals & Nature", "1f436", (180, 110, 60, 128), 11),
    ("Animals & Nature", "1f98a", (210, 100, 30, 255), 12),
    ("Component", "1f3fb", (255, 220, 180, 255), 5),
]


def png(rgba, side=64) -> bytes:
    """A 64 px emoji: a coloured disc on a transparent ground."""
    yy, xx = np.mgrid[:side, :side]
    inside = (yy - side / 2) ** 2 + (xx - side / 2) ** 2 < (side / 3) ** 2
    arr = np.zeros((side, side, 4), np.uint8)
    arr[inside] = rgba
    out = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(out, format="PNG")
    return out.getvalue()


def package_tarball(entries=EMOJI, with_index=True) -> bytes:
    """A .tgz in emoji-datasource-google's layout: package/emoji.json and package/img/google/64/<code>.png."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:

        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        index = []
        for category, code, rgba, order in entries:
            index.append(
                dict(
                    name=f"EMOJI {code}",
                    short_name=code,
                    unified=code.upper(),
                    image=f"{code}.png",
                    category=category,
                    sort_order=order,
                    has_img_google=True,
                    skin_variations={"1F3FB": {"image": f"{code}-1f3fb.png", "has_img_google": True}},
                )
            )
            add(f"package/img/google/64/{code}.png", png(rgba))
            add(f"package/img/google/64/{code}-1f3fb.png", png((0, 0, 0, 255)))
        if with_index:
            add("package/emoji.json", json.dumps(index).encode())
    return out.getvalue()


@pytest.fixture
def emoji_folder(tmp_path):
    out = tmp_path / "emoji"
    counts = emoji.build(package_tarball(), out, test_percent=34)
    return out, counts


def test_the_data_set_keeps_base_emoji_by_category_over_white(emoji_folder):
    out, counts = emoji_folder
    assert json.loads((out / "classes.json").read_text()) == ["Smileys & Emotion", "Animals & Nature"]
    index = json.loads((out / "index.json").read_text())
    assert len(index) == 6 and not any("1f3fb" in e["file"] for e in index)  # no skin-tone variants, no Component
    assert sum(counts["train"].values()) + sum(counts["test"].values()) == 6 and counts["dropped"] == []
    for e in index:
        split = "test" if emoji.in_test_split(e["code"], 34) else "train"
        assert e["file"] == f"{split}/{e['category']}/{e['code']}.png"
        with Image.open(out / e["file"]) as im:
            assert im.mode == "RGB" and im.size == (32, 32)
            arr = np.asarray(im)
        assert (arr[0, 0] == 255).all()  # the transparent corner is white
    half = next(e for e in index if e["code"] == "1f436")  # alpha 128 over white: halfway to white
    with Image.open(out / half["file"]) as im:
        centre = np.asarray(im)[16, 16].astype(int)
    assert np.abs(centre - np.array([218, 182, 157])).max() <= 2
    assert "Apache License 2.0" in (out / "NOTICE.md").read_text()


def test_the_split_is_stable_and_near_the_asked_share():
    codes = [f"{i:05x}" for i in range(2000)]
    held_out = [c for c in codes if emoji.in_test_split(c, 15)]
    assert 0.12 < len(held_out) / len(codes) < 0.18
    assert held_out == [c for c in codes if emoji.in_test_split(c.upper(), 15)]  # case does not move an emoji


def test_a_tarball_without_emoji_json_is_refused(tmp_path):
    with pytest.raises(emoji.DataError, match="emoji.json"):
        emoji.build(package_tarball(with_index=False), tmp_path / "x")


def test_a_download_that_is_not_the_pinned_package_is_refused(tmp_path, monkeypatch):
    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(emoji.urllib.request, "urlopen", lambda url, timeout: Response(b"not the package"))
    with pytest.raises(emoji.DataError, match="SHA-1"):
        emoji.download()


def test_the_command_refuses_to_write_over_a_folder(tmp_path, emoji_folder):
    out, _ = emoji_folder
    tarball = tmp_path / "package.tgz"
    tarball.write_bytes(package_tarball())
    with pytest.raises(SystemExit, match="not empty"):
        emoji.main(["--tarball", str(tarball), "--output", str(out)])


def labelled_folder(root, per_class=4):
    """train/ and test/ with a red and a blue class; classes.json lists blue first."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
            (root / split / name).mkdir(parents=True)
            for i in range(per_class):
                arr = np.clip(np.array(colour) + rng.integers(-20, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(arr).save(root / split / name / f"{i}.png")
    (root / "classes.json").write_text(json.dumps(["blue", "red"]))
    return root


def test_a_labelled_folder_reads_its_classes_in_the_listed_order(tmp_path):
    root = labelled_folder(tmp_path / "data")
    assert folder_class_names(root / "train") == ["blue", "red"]
    images, labels, names = load_labelled_image_folder(root / "train", 32, 3)
    assert names == ["blue", "red"] and images.shape == (8, 3, 32, 32) and labels.tolist() == [0] * 4 + [1] * 4
    assert images[labels == 0, 2].mean() > 0.5 > images[labels == 0, 0].mean()  # blue's blue channel is high
    (root / "classes.json").unlink()
    assert folder_class_names(root / "train") == ["blue", "red"]  # sorted names, without the listing
    with pytest.raises(DatasetNotFoundError, match="one folder per class"):
        folder_class_names(root / "train" / "red")


def test_a_class_conditional_rgb_model_trains_on_a_labelled_folder(tmp_path):
    root = labelled_folder(tmp_path / "data")
    out = tmp_path / "run"
    args = ["--image-folder", str(root / "train"), "--class-conditional", "--channels", "3", "--preset", "tiny"]
    args += ["--batch-size", "4", "--steps", "2", "--sample-steps", "2", "--num-train-timesteps", "20"]
    train_main([*args, "--output-dir", str(out), "--threads", "1"])
    pipe = DDPMExplorerPipeline.from_pretrained(out / "pipeline")
    assert pipe.class_names == ["blue", "red"] and pipe.unet.config.num_class_embeds == 3  # two and the null label
    assert pipe.unet.config.in_channels == 3
    assert json.loads((out / "args.json").read_text())["class_names"] == ["blue", "red"]
    pipe.set_progress_bar_config(disable=True)
    images = pipe(class_labels=[0, 1], num_inference_steps=2, output_type="pt").images
    assert images.shape == (2, 3, 32, 32) and torch.isfinite(images).all()


def test_a_category_classifier_trains_on_a_labelled_folder_and_reads_its_classes(tmp_path):
    root = labelled_folder(tmp_path / "data", per_class=8)
    out = tmp_path / "classifier"
    args = ["--image-folder", str(root / "train"), "--shift", "2", "--epochs", "4", "--batch-size", "8"]
    classifier.main([*args, "--lr", "3e-3", "--threads", "1", "--output-dir", str(out)])
    config = json.loads((out / "config.json").read_text())
    assert config["class_names"] == ["blue", "red"] and config["in_channels"] == 3 and config["num_classes"] == 2
    model = classifier.load_classifier(out)
    x_test, y_test, _ = load_labelled_image_folder(root / "test", 32, 3)
    assert classifier.accuracy(model, x_test, y_test) == 1.0  # red against blue: nothing to confuse
    assert json.loads((out / "metrics.json").read_text())["test_images"] == 16


def test_the_training_set_ships_to_a_model_folder_for_the_nearest_image_view(emoji_folder, tmp_path):
    from pipelines.nearest import load_training_set

    out, counts = emoji_folder
    model = tmp_path / "model"
    model.mkdir()
    emoji.main(["--output", str(out), "--ship-to", str(model)])
    shipped = load_training_set(model / "training_set.npz")
    index = json.loads((out / "index.json").read_text())
    train = [e for e in index if e["file"].startswith("train/")]
    assert len(shipped.images) == sum(counts["train"].values()) == len(train)
    assert len(shipped.held_out) == sum(counts["test"].values())
    assert shipped.names == [e["name"] for e in train] and shipped.images.shape[1:] == (3, 32, 32)
    first = np.asarray(Image.open(out / train[0]["file"])).transpose(2, 0, 1)
    assert np.array_equal(shipped.images[0].numpy(), first)
    classes = json.loads((out / "classes.json").read_text())
    assert shipped.labels.tolist() == [classes.index(e["category"]) for e in train]


def test_a_held_out_emoji_that_is_a_training_image_pixel_for_pixel_is_left_out(tmp_path):
    """Two regions sharing one flag: the held-out twin is dropped (no held-out image may be a training image)."""
    codes = [f"1f1{i:03x}" for i in range(60)]
    test_code = next(c for c in codes if emoji.in_test_split(c, 15))
    train_code = next(c for c in codes if not emoji.in_test_split(c, 15))
    other = next(c for c in codes if emoji.in_test_split(c, 15) and c != test_code)
    flag = (0, 90, 200, 255)
    entries = [
        ("Flags", train_code, flag, 1),
        ("Flags", test_code, flag, 2),
        ("Flags", other, (200, 0, 0, 255), 3),
    ]
    counts = emoji.build(package_tarball(entries), tmp_path / "out", test_percent=15)
    assert counts["dropped"] == [f"emoji {test_code}"]
    assert counts["train"]["Flags"] == 1 and counts["test"]["Flags"] == 1
    files = [e["file"] for e in json.loads((tmp_path / "out" / "index.json").read_text())]
    assert files == [f"train/Flags/{train_code}.png", f"test/Flags/{other}.png"]
