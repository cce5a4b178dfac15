"""The quality report's measures on tiny synthetic sets: each one is 1 (or 0) where it must be, and moves when a set
is shifted."""

import json

import pytest
import torch
from conftest import make_tiny_unet
from PIL import Image
from safetensors.torch import save_file
from test_training import write_idx
from torch import nn

from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler
from pipelines.training import quality_report as qr
from pipelines.training.classifier import CONFIG_FILE, WEIGHTS_FILE, FashionClassifier, ResidualClassifier
from pipelines.training.evaluate import SampleScorer, worst_fd_ratio
from pipelines.training.metrics import (
    grey_histogram,
    histogram_intersection,
    knn_radii,
    nearest_neighbours,
    precision_recall,
)
from pipelines.training.quality_plots import save_quality_plots

K = 10


@pytest.fixture
def clusters():
    """(200, 8) features in 10 Gaussian clusters of 20, and their labels (i mod 10, as the sweeps ask)."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(200) % K
    centres = 5 * torch.randn(K, 8, generator=g)
    return centres[labels] + torch.randn(200, 8, generator=g), labels


def test_knn_radius_is_the_distance_to_the_kth_other_point():
    points = torch.tensor([[0.0], [1.0], [3.0], [6.0], [10.0]])
    assert knn_radii(points, k=1).tolist() == [1.0, 1.0, 2.0, 3.0, 4.0]
    assert knn_radii(points, k=3).tolist() == [6.0, 5.0, 3.0, 5.0, 9.0]
    with pytest.raises(ValueError, match="more than 3"):
        knn_radii(points[:3], k=3)


def test_precision_and_recall_are_one_for_identical_sets_and_fall_for_a_shifted_one(clusters):
    features, _ = clusters
    assert precision_recall(features, features.clone()) == {"precision": 1.0, "recall": 1.0}
    far = precision_recall(features, features + 100)
    assert far == {"precision": 0.0, "recall": 0.0}
    near = precision_recall(features, features + 1.5)
    assert 0 < near["precision"] < 1 and 0 < near["recall"] < 1


def test_recall_sees_a_missing_mode_and_precision_does_not(clusters):
    features, labels = clusters
    collapsed = features[labels < 5]  # half the classes never generated
    pr = precision_recall(features, collapsed)
    assert pr["precision"] == 1.0 and pr["recall"] == pytest.approx(0.5, abs=0.05)


def test_a_training_image_is_its_own_nearest_neighbour_at_distance_zero():
    g = torch.Generator().manual_seed(1)
    train = torch.rand(300, 1, 32, 32, generator=g) * 2 - 1
    distances, indices = nearest_neighbours(train[[7, 123, 299]], train, chunk=2)
    assert indices.tolist() == [7, 123, 299] and distances.tolist() == [0.0, 0.0, 0.0]
    moved = train[[5]] + 0.01
    d, i = nearest_neighbours(moved, train)
    assert i.item() == 5 and d.item() == pytest.approx(0.01 * 32, rel=1e-4)  # ‖0.01·1‖ over 1,024 pixels


def test_histogram_intersection_is_one_for_identical_sets_and_zero_for_disjoint_ones():
    g = torch.Generator().manual_seed(2)
    images = torch.rand(20, 1, 8, 8, generator=g) * 2 - 1
    assert grey_histogram(images).sum().item() == pytest.approx(1.0)
    assert histogram_intersection(grey_histogram(images), grey_histogram(images.flip(0))) == pytest.approx(1.0)
    assert histogram_intersection(grey_histogram(-torch.ones(4, 1, 8, 8)), grey_histogram(torch.ones(4, 1, 8, 8))) == 0


def test_grey_levels_report_a_brighter_lower_contrast_set():
    g = torch.Generator().manual_seed(3)
    real = torch.rand(50, 1, 32, 32, generator=g) * 2 - 1
    reference = torch.rand(50, 1, 32, 32, generator=g) * 2 - 1
    brighter = (real * 0.5 + 0.3).clamp(-1, 1)
    same = qr.grey_levels(real, real, reference)
    assert same["histogram_intersection"] == pytest.approx(1.0) and same["brightness_difference"] == 0
    assert 0.9 < same["histogram_intersection_real"] < 1  # other uniform images: close, not equal
    shifted = qr.grey_levels(brighter, real, reference)
    assert shifted["brightness_difference"] == pytest.approx(0.3, abs=0.02)
    assert shifted["contrast_difference"] < -0.2 and shifted["histogram_intersection"] < 0.8
    assert abs(shifted["brightness_difference_real"]) < 0.02


def test_sharpness_falls_for_a_blurred_set():
    g = torch.Generator().manual_seed(6)
    real = torch.rand(20, 1, 32, 32, generator=g) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(real, 3, stride=1, padding=1)
    assert qr.mean_gradient(torch.zeros(2, 1, 8, 8)) == 0
    assert qr.mean_gradient(blurred) < 0.5 * qr.mean_gradient(real)
    assert qr.grey_levels(blurred, real, real)["sharpness_difference"] < 0


def test_class_balanced_indices_take_as_many_of_each_class_as_asked():
    labels = torch.arange(100) % K
    picked = qr.class_balanced_indices(labels, torch.tensor([3] * 5 + [1] * 5), torch.Generator().manual_seed(0))
    assert labels[picked].tolist() == [c for c in range(5) for _ in range(3)] + list(range(5, 10))
    with pytest.raises(ValueError, match="class 0"):
        qr.class_balanced_indices(labels, torch.tensor([11] + [0] * 9), torch.Generator())


def test_confusion_matrix_rows_are_the_class_asked_for():
    m = qr.confusion_matrix(torch.tensor([9, 9, 9, 8]), torch.tensor([9, 8, 8, 8]), K)
    assert m[9, 9] == 1 and m[9, 8] == 2 and m[8, 8] == 1 and m.sum() == 4


def test_per_class_frechet_distance_is_zero_for_identical_classes_and_grows_only_for_the_shifted_one(clusters):
    test, labels = clusters
    reference = test + 0.3 * torch.randn(test.shape, generator=torch.Generator().manual_seed(4))
    generated = test.clone()
    generated[labels == 9] += 3.0  # the "ankle boots" are off; every other class is the test set itself
    read = labels.clone()
    read[labels == 9] = 8  # and read as bags
    # test_sub: the whole test set in class order (the subset the overall precision/recall compares with)
    reference = reference[labels.argsort()]
    space = qr.Space("toy", generated, read, test, labels, reference, reference + 3.0, labels)
    out = qr.space_report(space, labels, labels, labels.argsort(), k=3, classes=K)
    per_class = out["per_class"]
    for c in range(9):
        assert per_class[qr.FASHION_MNIST_CLASSES[c]]["frechet_distance"] == pytest.approx(0, abs=1e-6)
        assert per_class[qr.FASHION_MNIST_CLASSES[c]]["frechet_distance_real_floor"] > 0
    boot = per_class["Ankle boot"]
    assert boot["fd_ratio"] > 10 and boot["class_accuracy"] == 0 and boot["read_as"] == {"Bag": 20}
    assert boot["precision_recall"]["precision"] < 0.5 and boot["precision_recall"]["real_precision"] > 0.5
    assert out["class_accuracy"] == pytest.approx(0.9)
    assert all(c["mirrored_real_fd_ratio"] > 10 and c["mirrored_real_class_accuracy"] == 1 for c in per_class.values())


def test_mirrored_share_is_zero_for_left_pointing_shoes_and_one_for_right_pointing_ones():
    shoes = -torch.ones(30, 1, 32, 32)
    for i in range(30):  # a wedge: toe at the left, heel and shaft at the right, of varying height
        shoes[i, 0, 20 - i // 3 : 26, 4:28] = torch.linspace(-1, 1, 24).clamp(min=-0.5)
    train, queries = shoes[::2], shoes[1::2]
    assert qr.mirrored_share(queries, train) == 0
    assert qr.mirrored_share(queries.flip(-1), train) == 1


def test_the_report_runs_end_to_end_on_random_networks_and_writes_small_plots(tmp_path):
    g = torch.Generator().manual_seed(5)
    train = (torch.rand(80, 1, 32, 32, generator=g) * 2 - 1, torch.arange(80) % K)
    test = (torch.rand(60, 1, 32, 32, generator=g) * 2 - 1, torch.arange(60) % K)
    labels = torch.arange(40) % K
    samples = train[0][:40].clone()  # copies of training images: nearest neighbours at distance 0
    torch.manual_seed(0)
    nets = {"convnet": FashionClassifier().eval(), "resnet": ResidualClassifier().eval()}
    nets["noflip"] = FashionClassifier().eval()
    report, tensors = qr.quality_report(samples, labels, nets, train, test, seed=0, k=3)
    assert list(report["spaces"]) == ["convnet", "resnet", "noflip"]
    nn = report["nearest_training_image"]
    assert nn["pixels"]["generated_median"] == 0 and nn["pixels"]["test_median"] > 1
    assert nn["pixels"]["generated_closer_than_1pct_of_test"] == 1.0
    assert tensors["nearest"]["pixels"]["generated_index"].tolist() == list(range(40))
    assert nn["pixels"]["per_class"]["Bag"]["neighbour_same_class"] == 1.0  # copies: their own class
    assert nn["pixels"]["per_class"]["Bag"]["neighbour_other_classes"] == {}
    assert torch.tensor(nn["pixels"]["confusion"]).diag().sum() == 40
    results = {"k": 3, **report}
    save_quality_plots(results, samples, labels, tensors, tmp_path)
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == [
        "confusion.png",
        "grey_levels.png",
        "nearest_distances.png",
        "nearest_train.png",
        "nearest_train_closest.png",
        "per_class.png",
    ]
    assert all(1000 < (tmp_path / p).stat().st_size < 300_000 for p in pngs)
    assert Image.open(tmp_path / "confusion.png").width == round(4.4 * 80 * 4)  # three spaces and the pixel 1-NN
    assert set(report["mirrored_share"]["Bag"]) == {"generated", "test"}
    table = qr.markdown_tables(report)
    assert "| Ankle boot |" in table and "| class acc. (noflip) | FD ratio (noflip) |" in table
    assert "| acc. on real / mirrored real (noflip) |" in table and "- noflip: FD" in table
    # the sweeps' class-matched scorer: the same figures as the report's, with the real side computed once
    matched = qr.ClassMatchedScorer(nets, train, test, labels, seed=0, k=3)
    for _ in range(2):
        scored = matched(samples)
        for key, space in report["spaces"].items():
            assert scored[key]["fd_ratio"] == space["fd_ratio"] and scored[key]["confusion"] == space["confusion"]
            assert scored[key]["precision_recall"] == space["precision_recall"]
            for name, figures in scored[key]["per_class"].items():
                assert figures == {f: space["per_class"][name][f] for f in qr.ClassMatchedScorer.KEPT_PER_CLASS}
    other = matched(test[0][:40])
    assert other["convnet"]["per_class"]["Bag"]["fd_ratio"] != scored["convnet"]["per_class"]["Bag"]["fd_ratio"]


class ColumnJudge(nn.Module):
    """Reads an image by its 32 column means: an ankle boot where its left half is the brighter (Fashion-MNIST's
    shoes point left), else a bag. ``symmetric``: by each column's mean with its mirror column's, so that a mirror
    image reads the same (a judge trained with random flips); ties go to the boot."""

    feature_dim = 32

    def __init__(self, symmetric: bool):
        super().__init__()
        self.symmetric = symmetric
        self.head = nn.Linear(32, K)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.weight[9, :16], self.head.weight[9, 16:] = 10.0, -10.0
            self.head.weight[8] = -self.head.weight[9]
            self.head.bias.fill_(-1e3)
            self.head.bias[8], self.head.bias[9] = 0.0, 1.0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.symmetric:
            x = (x + x.flip(-1)) / 2
        return x.mean(dim=(1, 2))  # (B, 1, H, W) -> (B, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def left_pointing(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n noisy images brighter in their left half (pointing left, as Fashion-MNIST's shoes do), labelled i mod K."""
    x = 0.3 * torch.randn(n, 1, 32, 32, generator=g) - 0.5
    x[..., :16] += 0.8
    return x, torch.arange(n) % K


def samples_with_right_pointing_boots(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """40 left-pointing samples but for the ankle boots (class 9), mirrored, and the labels they asked for."""
    samples, labels = left_pointing(40, g)
    samples[labels == 9] = samples[labels == 9].flip(-1)
    return samples, labels


def test_only_the_no_flip_space_reads_boots_pointing_the_wrong_way_as_bags():
    """Every real image points left (brighter left half); the generated ankle boots point right. The judge that sees
    orientation reads them as bags, and mirror-imaged real boots too; the flip-invariant one reads boots throughout."""
    g = torch.Generator().manual_seed(3)
    train, test = left_pointing(80, g), left_pointing(60, g)
    samples, labels = samples_with_right_pointing_boots(g)
    nets = {"convnet": ColumnJudge(symmetric=True), "noflip": ColumnJudge(symmetric=False)}
    report, _ = qr.quality_report(samples, labels, nets, train, test, seed=0, k=3)
    flipped, noflip = (report["spaces"][key]["per_class"] for key in ("convnet", "noflip"))
    boot, boot_flipped = noflip["Ankle boot"], flipped["Ankle boot"]
    assert boot_flipped["class_accuracy"] == 1 and boot_flipped["mirrored_real_class_accuracy"] == 1
    assert boot["class_accuracy"] == 0 and boot["read_as"] == {"Bag": 4}
    assert boot["real_class_accuracy"] == 1 and boot["mirrored_real_class_accuracy"] == 0
    assert boot["mirrored_real_read_as"] == {"Bag": 6} and boot_flipped["mirrored_real_read_as"] == {}
    assert boot["mirrored_real_fd_ratio"] > 10 * boot_flipped["mirrored_real_fd_ratio"]
    assert boot["fd_ratio"] > 10 * noflip["Sandal"]["fd_ratio"]
    assert "| Ankle boot | 100 % |" in qr.markdown_tables(report)
    assert "| 100 % / 0 % |" in qr.markdown_tables(report)


def test_the_overall_scores_take_the_no_flip_judge_as_a_third_space_that_sees_right_pointing_boots():
    """The sweeps' scorer (the report's ``overall``): in the no-flip judge's space the right-pointing boots are bags,
    and its FD against its own floor rises; a flip-invariant third judge scores them as the first does."""
    g = torch.Generator().manual_seed(3)
    train, test = left_pointing(80, g)[0], left_pointing(60, g)[0]
    samples, labels = samples_with_right_pointing_boots(g)
    flipped = ColumnJudge(symmetric=True)
    q = SampleScorer(flipped, train, test, 40, third_classifier=ColumnJudge(symmetric=False))(samples, labels)
    third = q["third_space"]
    assert q["class_accuracy_per_class"]["Ankle boot"] == 1 and third["class_accuracy_per_class"]["Ankle boot"] == 0
    boots_only = pytest.approx(0.1)  # the column judges read boots (or bags) only: the boots asked for
    assert third["class_accuracy"] == 0 and q["class_accuracy"] == boots_only
    assert third["fd_ratio"] == pytest.approx(third["frechet_distance"] / third["frechet_distance_real_floor"])
    assert third["fd_ratio"] > 2 * q["fd_ratio"] and worst_fd_ratio(q) == third["fd_ratio"]
    same = SampleScorer(flipped, train, test, 40, third_classifier=ColumnJudge(symmetric=True))(samples, labels)
    assert same["third_space"]["fd_ratio"] == pytest.approx(q["fd_ratio"])
    assert same["third_space"]["class_accuracy"] == boots_only
    assert "third_space" not in SampleScorer(flipped, train, test, 40)(samples, labels), "no third judge: no space"


def test_the_table_mode_reads_the_committed_report_and_one_written_before_the_third_judge(tmp_path, capsys):
    """The previous default model's report (kept with its card in docs/history) has three spaces; written as it was
    before the third judge (two spaces, none of the later keys: the committed report until it was rerun), it still
    prints. The shipped model's report prints too."""
    root = qr.Path(__file__).resolve().parent.parent
    qr.main(
        [
            "--table",
            "--json",
            str(root / "checkpoints/fashion-mnist-32-cond/evaluation/quality-report-unipc15-w2.json"),
        ]
    )
    assert "| Ankle boot | 97 % | 1.8× |" in capsys.readouterr().out
    path = root / "docs/history/fashion-mnist-32-cond-fixed-variance/evaluation/quality-report-unipc10-w1.75.json"
    qr.main(["--table", "--json", str(path)])
    assert "| Ankle boot | 98 % | 11.1× | 0.51 (0.90) | 0.72 (0.82) | 98 % | 3.8×" in capsys.readouterr().out
    report = json.loads(path.read_text())
    assert "| 53 % | 110.6× |" in qr.markdown_tables(report)  # the no-flip judge reads 46 of 100 boots as bags
    del report["spaces"]["noflip"]
    for key in ("class_counts", "class_names", "classifiers", "data", "real_floor"):
        del report[key]
    for space in report["spaces"].values():
        for key in ("fd_ratio", "frechet_distance", "frechet_distance_real_floor", "real_class_accuracy"):
            del space[key]
        for c in space["per_class"].values():
            del c["mirrored_real_read_as"]
    (tmp_path / "old.json").write_text(json.dumps(report))
    qr.main(["--table", "--json", str(tmp_path / "old.json")])
    table = capsys.readouterr().out
    assert "| Ankle boot | 98 % | 11.1× |" in table and "noflip" not in table


@pytest.fixture
def balanced_fake_fashion_mnist(tmp_path):
    """10 random 28×28 images of each class in each split."""
    g = torch.Generator().manual_seed(7)
    for split in ("train", "t10k"):
        write_idx(
            tmp_path / f"{split}-images-idx3-ubyte.gz", torch.randint(0, 256, (100, 28, 28), generator=g).numpy()
        )
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", (torch.arange(100) % K).numpy().astype("uint8"))
    return tmp_path


def save_random_classifier(net, directory, architecture, **config):
    directory.mkdir()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(directory / WEIGHTS_FILE))
    (directory / CONFIG_FILE).write_text(json.dumps({"architecture": architecture, **config}))
    return str(directory)


def test_the_command_line_samples_once_then_reads_its_samples_back(balanced_fake_fashion_mnist, tmp_path, capsys):
    unet = make_tiny_unet(sample_size=32, num_class_embeds=K + 1)
    DDPMExplorerPipeline(unet=unet, scheduler=DDPMExplorerScheduler()).save_pretrained(tmp_path / "tiny-cond")
    convnet = save_random_classifier(FashionClassifier().eval(), tmp_path / "convnet", "convnet")
    resnet = save_random_classifier(ResidualClassifier().eval(), tmp_path / "resnet", "resnet")
    noflip = save_random_classifier(FashionClassifier().eval(), tmp_path / "noflip", "convnet", hflip=False)
    args = ["--checkpoint", str(tmp_path / "tiny-cond"), "--data-dir", str(balanced_fake_fashion_mnist)]
    args += ["--classifier", convnet, "--second-classifier", resnet, "--sampler", "ddim", "--guidance", "2"]
    args += ["--third-classifier", noflip]
    args += ["--num-samples", "40", "--batch-size", "20", "--samples", str(tmp_path / "s.st")]
    qr.main([*args, "--steps", "2", "--json", str(tmp_path / "a.json"), "--plot-dir", str(tmp_path / "plots")])
    first = json.loads((tmp_path / "a.json").read_text())
    assert first["guidance_scale"] == 2 and first["overall"]["n"] == 40
    # random judges and a random model: far from the targets, and the report says by how much, strictest first
    assert not first["targets"]["met"] and first["targets"]["missed"][0] == first["targets"]["strictest"]
    assert all(m["ratio"] > 1 for m in first["targets"]["missed"])
    assert "- targets: **" in capsys.readouterr().out
    third = first["overall"]["third_space"]  # the overall block scores the no-flip judge too, against its own floor
    assert third["frechet_distance_real_floor"] != first["overall"]["frechet_distance_real_floor"]
    assert 0 <= third["class_accuracy"] <= 1 and len(third["class_accuracy_per_class"]) == K
    assert first["classifiers"] == {"convnet": convnet, "resnet": resnet, "noflip": noflip}
    assert list(first["spaces"]) == ["convnet", "resnet", "noflip"]
    assert len(list((tmp_path / "plots").glob("*.png"))) == 6
    qr.main([*args, "--steps", "2", "--json", str(tmp_path / "b.json")])  # the same samples, read back, not redrawn
    second = json.loads((tmp_path / "b.json").read_text())
    assert second["spaces"] == first["spaces"] and second["grey_levels"] == first["grey_levels"]
    with pytest.raises(SystemExit, match="choose another --samples"):
        qr.main([*args, "--steps", "3"])
    qr.main([*args, "--steps", "2", "--third-classifier", "", "--json", str(tmp_path / "c.json")])
    without = json.loads((tmp_path / "c.json").read_text())
    assert list(without["spaces"]) == ["convnet", "resnet"] and "third_space" not in without["overall"]


def test_the_report_samples_with_the_checkpoints_interval_and_rescale_unless_told(
    balanced_fake_fashion_mnist, tmp_path
):
    from safetensors.torch import load_file

    unet = make_tiny_unet(sample_size=32, num_class_embeds=K + 1)
    checkpoint = tmp_path / "tiny-cond"
    DDPMExplorerPipeline(unet=unet, scheduler=DDPMExplorerScheduler()).save_pretrained(checkpoint)
    index = json.loads((checkpoint / "model_index.json").read_text())
    index |= {"recommended_guidance_scale": 3.0, "recommended_guidance_interval": [400, 1000]}
    (checkpoint / "model_index.json").write_text(json.dumps(index | {"recommended_guidance_rescale": 0.5}))
    convnet = save_random_classifier(FashionClassifier().eval(), tmp_path / "convnet", "convnet")
    args = ["--checkpoint", str(checkpoint), "--data-dir", str(balanced_fake_fashion_mnist), "--classifier", convnet]
    args += ["--second-classifier", "", "--third-classifier", "", "--sampler", "ddim", "--steps", "2"]
    args += ["--num-samples", "20", "--batch-size", "20"]
    report = tmp_path / "r.json"
    qr.main([*args, "--samples", str(tmp_path / "own.st"), "--json", str(report)])
    own = json.loads(report.read_text())
    assert (own["guidance_scale"], own["guidance_interval"], own["guidance_rescale"]) == (3.0, [400, 1000], 0.5)
    qr.main([*args, "--guidance-interval", "none", "--guidance-rescale", "0", "--samples", str(tmp_path / "plain.st")])
    told = [*args, "--guidance-interval", "0-200", "--guidance-rescale", "0.5", "--json", str(report)]
    qr.main([*told, "--samples", str(tmp_path / "other.st")])
    assert json.loads(report.read_text())["guidance_interval"] == [0, 200]
    drawn = {name: load_file(tmp_path / f"{name}.st")["samples"] for name in ("own", "plain", "other")}
    assert not torch.equal(drawn["own"], drawn["plain"]) and not torch.equal(drawn["own"], drawn["other"])
    with pytest.raises(SystemExit, match="choose another --samples"):  # the file holds another interval's samples
        qr.main([*told, "--samples", str(tmp_path / "own.st")])
    with pytest.raises(SystemExit, match="φ in"):
        qr.main([*args, "--guidance-rescale", "1.5"])
    with pytest.raises(SystemExit, match="LO-HI"):
        qr.main([*args, "--guidance-interval", "900-100"])
    # a checkpoint that records a w per class samples each class at its own, unless --guidance names one w
    scales = [3.0] * (K - 1) + [0.0]
    (checkpoint / "model_index.json").write_text(json.dumps(index | {"recommended_guidance_class_scales": scales}))
    qr.main([*args, "--samples", str(tmp_path / "per-class.st"), "--json", str(report)])
    assert json.loads(report.read_text())["guidance_class_scales"] == scales
    qr.main([*args, "--guidance", "3", "--samples", str(tmp_path / "one-w.st"), "--json", str(report)])
    assert json.loads(report.read_text())["guidance_class_scales"] is None
    per_class, one_w = (load_file(tmp_path / f"{name}.st")["samples"] for name in ("per-class", "one-w"))
    last = torch.arange(20) % K == K - 1  # the samples of the last class, at w = 0 in the checkpoint's scales
    assert torch.equal(per_class[~last], one_w[~last]) and not torch.equal(per_class[last], one_w[last])


def test_a_report_names_the_repositorys_folders_relative_to_it(tmp_path):
    root = qr.Path(qr.__file__).resolve().parents[2]
    assert qr.shown_path(root / "checkpoints" / "fashion-mnist-classifier") == "checkpoints/fashion-mnist-classifier"
    assert qr.shown_path(tmp_path / "judge") == str(tmp_path / "judge")  # outside it: as given
