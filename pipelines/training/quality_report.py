"""What one Fréchet distance over all classes hides: a class-conditional checkpoint's samples measured class by class,
in both feature spaces, each number beside the same measure of real data against real data (same N).

    python -m pipelines.training.quality_report --checkpoint checkpoints/fashion-mnist-32-cond --sampler unipc \\
        --steps 10 --guidance 1.75 --num-samples 1000 --threads 1 \\
        --json checkpoints/fashion-mnist-32-cond/evaluation/quality-report-unipc10-w1.75.json \\
        --plot-dir checkpoints/fashion-mnist-32-cond/evaluation/quality

Sample i asks for class i mod K (the sweeps' "one of each class"). The reference sets are class-balanced: as many
test images (and, for the real-vs-real value, training images) of each class as there are samples of it.

1. Per-class Fréchet distance: the samples of class c against all test images of c, beside the floor (as many
   training images of c against the same test images).
2. Precision and recall (Kynkäänniemi et al. 2019, k-NN manifolds, k = 3), overall and per class, beside training
   images against test images.
3. Grey levels: histogram intersection with the test images, mean brightness and contrast (per-image std).
4. Nearest training image of each sample, in pixels and in the committed classifier's features, against the test
   images' own distances to their nearest training image; a grid of samples beside their neighbours.
5. Class accuracy per class and the confusion matrix (asked-for class → class read) in each classifier.
6. Orientation: the share of samples whose mirror image is nearer (in pixels) to the training images of their
   class than they are, beside the test images' share; and, in each space, the per-class FD ratio and the class
   accuracy of mirror-imaged real images, which say whether that space can see a shoe pointing the wrong way.
The overall Fréchet distance and class accuracy are the sweeps' own (:class:`SampleScorer`), for comparison.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from pipelines.objective import quantize
from pipelines.training.classifier import load_classifier, predict
from pipelines.training.data import FASHION_MNIST_CLASSES, load_fashion_mnist, uint8_to_model_range
from pipelines.training.evaluate import (
    SampleScorer,
    add_sampling_arguments,
    add_scoring_arguments,
    conditional_pipeline,
    load_second_classifier,
)
from pipelines.training.metrics import (
    frechet_distance_between,
    grey_histogram,
    histogram_intersection,
    nearest_neighbours,
    precision_recall,
)
from pipelines.training.sampler_sweep import generate_with

SPACE_NAMES = {"convnet": "committed classifier", "resnet": "independent ResNet"}
BORDER = 2  # the zero padding of 28 px Fashion-MNIST to 32 px: black in every real image


def class_balanced_indices(labels: torch.Tensor, counts: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Indices of counts[c] random images of each class c, in class order."""
    picks = []
    for c, n in enumerate(counts.tolist()):
        of_c = (labels == c).nonzero().squeeze(1)
        if len(of_c) < n:
            raise ValueError(f"class {c} has {len(of_c)} images, {n} asked for.")
        picks.append(of_c[torch.randperm(len(of_c), generator=generator)[:n]])
    return torch.cat(picks)


def grey_levels(generated: torch.Tensor, real: torch.Tensor, reference: torch.Tensor, bins: int = 64) -> dict:
    """Grey-level statistics of generated images against real ones, with ``reference`` (other real images, as many)
    against the same real ones beside: histogram intersection, mean brightness, contrast (mean per-image std),
    sharpness (:func:`mean_gradient`) and the mean of the black border, all in [−1, 1]."""
    sets = {"generated": generated, "real": real, "reference": reference}
    hist = {name: grey_histogram(x, bins) for name, x in sets.items()}
    brightness = {name: x.mean().item() for name, x in sets.items()}
    contrast = {name: x.flatten(1).std(1).mean().item() for name, x in sets.items()}
    sharpness = {name: mean_gradient(x).item() for name, x in sets.items()}
    frame = torch.ones(generated.shape[-2:], dtype=torch.bool)
    frame[BORDER:-BORDER, BORDER:-BORDER] = False
    return {
        "histogram_intersection": histogram_intersection(hist["generated"], hist["real"]),
        "histogram_intersection_real": histogram_intersection(hist["reference"], hist["real"]),
        "mean_brightness": brightness,
        "brightness_difference": brightness["generated"] - brightness["real"],
        "brightness_difference_real": brightness["reference"] - brightness["real"],
        "mean_contrast": contrast,
        "contrast_difference": contrast["generated"] - contrast["real"],
        "contrast_difference_real": contrast["reference"] - contrast["real"],
        "mean_sharpness": sharpness,
        "sharpness_difference": sharpness["generated"] - sharpness["real"],
        "sharpness_difference_real": sharpness["reference"] - sharpness["real"],
        "border_mean": {name: x[..., frame].mean().item() for name, x in sets.items()},
    }


def mean_gradient(images: torch.Tensor) -> torch.Tensor:
    """Sharpness: the mean absolute difference between neighbouring pixels (across and down), over all images; fine
    detail (stitching, laces, texture) raises it, blur lowers it."""
    across = (images[..., :, 1:] - images[..., :, :-1]).abs().mean()
    down = (images[..., 1:, :] - images[..., :-1, :]).abs().mean()
    return (across + down) / 2


def mirrored_share(images: torch.Tensor, same_class_train: torch.Tensor) -> float:
    """The share of ``images`` whose mirror image (flipped left to right) lies closer, in pixels, to the nearest
    training image of their class than they do: about 0 for real shoes, which all point left in Fashion-MNIST;
    about a half for a model that draws shoes pointing either way."""
    if len(images) == 0:
        return float("nan")
    d, _ = nearest_neighbours(images, same_class_train)
    d_mirrored, _ = nearest_neighbours(images.flip(-1), same_class_train)
    return (d_mirrored < d).float().mean().item()


def confusion_matrix(asked: torch.Tensor, read: torch.Tensor, classes: int) -> torch.Tensor:
    """(K, K) counts: row = the class asked for (or the true class), column = the class the classifier reads."""
    return torch.bincount(asked * classes + read, minlength=classes * classes).reshape(classes, classes)


@dataclass
class Space:
    """One network's features of the samples, of every test image and of the class-balanced training subset, and
    how it sees mirror images (Fashion-MNIST's shoes all point left; a network trained on random flips, as ours
    are, may not tell a shoe from its mirror image)."""

    key: str
    generated: torch.Tensor  # (N, D)
    generated_read: torch.Tensor  # (N,) the class it reads
    test: torch.Tensor  # (N_test, D)
    test_read: torch.Tensor
    reference: torch.Tensor  # (N, D): the training subset, as many of each class as samples
    reference_mirrored: torch.Tensor  # (N, D): the same images flipped left to right
    test_mirrored_read: torch.Tensor  # (N_test,) the class it reads in each test image's mirror image

    @classmethod
    def of(cls, key, net, samples, test_x, train_sub):
        generated, p_generated = predict(net, samples)
        test, p_test = predict(net, test_x)
        reference, reference_mirrored = predict(net, train_sub)[0], predict(net, train_sub.flip(-1))[0]
        test_mirrored_read = predict(net, test_x.flip(-1))[1].argmax(-1)
        return cls(
            key,
            generated,
            p_generated.argmax(-1),
            test,
            p_test.argmax(-1),
            reference,
            reference_mirrored,
            test_mirrored_read,
        )


def space_report(space: Space, labels, test_labels, test_sub: torch.Tensor, k: int, classes: int) -> dict:
    """Measures 1, 2 and 5 in one feature space, and what mirror images do to it: the per-class FD ratio of the
    training subset flipped left to right, and the class accuracy on flipped test images. ``test_sub`` indexes the
    class-balanced test subset (as many of each class as samples, in class order, like ``space.reference``)."""
    ref_labels = labels.sort().values  # the subsets' labels, in class order
    real = space.test[test_sub]
    confusion = confusion_matrix(labels, space.generated_read, classes)
    real_confusion = confusion_matrix(test_labels, space.test_read, classes)
    out = {
        "precision_recall": {**precision_recall(real, space.generated, k), **real_pr(real, space.reference, k)},
        "class_accuracy": (confusion.diag().sum() / confusion.sum()).item(),
        "confusion": confusion.tolist(),
        "real_confusion": real_confusion.tolist(),
        "per_class": {},
    }
    for c in range(classes):
        gen_c, ref_c, real_c = space.generated[labels == c], space.reference[ref_labels == c], real[ref_labels == c]
        all_test_c = space.test[test_labels == c]
        fd, floor = frechet_distance_between(gen_c, all_test_c), frechet_distance_between(ref_c, all_test_c)
        mirrored = frechet_distance_between(space.reference_mirrored[ref_labels == c], all_test_c)
        out["per_class"][FASHION_MNIST_CLASSES[c]] = {
            "class_accuracy": (confusion[c, c] / confusion[c].sum()).item(),
            "real_class_accuracy": (real_confusion[c, c] / real_confusion[c].sum()).item(),
            "read_as": {FASHION_MNIST_CLASSES[j]: int(n) for j, n in enumerate(confusion[c].tolist()) if n and j != c},
            "frechet_distance": fd,
            "frechet_distance_real_floor": floor,
            "fd_ratio": fd / floor,
            "mirrored_real_fd_ratio": mirrored / floor,  # the FD ratio of a class drawn all mirror-imaged
            "mirrored_real_class_accuracy": (space.test_mirrored_read[test_labels == c] == c).float().mean().item(),
            "precision_recall": {**precision_recall(real_c, gen_c, k), **real_pr(real_c, ref_c, k)},
        }
    return out


def real_pr(real: torch.Tensor, reference: torch.Tensor, k: int) -> dict:
    """Precision and recall of real training images against the real test images: the values to expect."""
    pr = precision_recall(real, reference, k)
    return {"real_precision": pr["precision"], "real_recall": pr["recall"]}


def nearest_training_images(samples, test_sub_x, train_x, samples_f, test_sub_f, train_f) -> dict:
    """Measure 4: each sample's and each (subset) test image's nearest training image, in pixels and in features;
    distances and indices as tensors, for the plots and the summary."""
    out = {}
    for space, (gen, test, train) in {
        "pixels": (samples, test_sub_x, train_x),
        "features": (samples_f, test_sub_f, train_f),
    }.items():
        d_gen, i_gen = nearest_neighbours(gen, train)
        d_test, i_test = nearest_neighbours(test, train)
        out[space] = {"generated": d_gen, "generated_index": i_gen, "test": d_test, "test_index": i_test}
    return out


def nearest_summary(nn: dict, labels: torch.Tensor, train_y: torch.Tensor, classes: int) -> dict:
    """Medians of the nearest-training-image distances, overall and per class; the share of samples closer to a
    training image than 99 % of test images are (copies would show there); and, per class, how often the nearest
    training image is of the class asked for (a 1-NN classifier in that space), beside the same for test images, and
    the other classes it is of."""
    ref_labels = labels.sort().values
    out = {}
    for space, d in nn.items():
        first_percentile = d["test"].quantile(0.01)
        out[space] = {
            "generated_median": d["generated"].median().item(),
            "test_median": d["test"].median().item(),
            "test_1st_percentile": first_percentile.item(),
            "generated_closer_than_1pct_of_test": (d["generated"] < first_percentile).float().mean().item(),
            "confusion": confusion_matrix(labels, train_y[d["generated_index"]], classes).tolist(),
            "per_class": {
                FASHION_MNIST_CLASSES[c]: {
                    "generated_median": d["generated"][labels == c].median().item(),
                    "test_median": d["test"][ref_labels == c].median().item(),
                    "neighbour_same_class": (train_y[d["generated_index"][labels == c]] == c).float().mean().item(),
                    "test_neighbour_same_class": (train_y[d["test_index"][ref_labels == c]] == c)
                    .float()
                    .mean()
                    .item(),
                    "neighbour_other_classes": {
                        FASHION_MNIST_CLASSES[j]: int(n)
                        for j, n in enumerate(
                            torch.bincount(train_y[d["generated_index"][labels == c]], minlength=classes)
                        )
                        if n and j != c
                    },
                }
                for c in range(classes)
            },
        }
    return out


def quality_report(samples, labels, nets: dict, train, test, seed: int = 0, k: int = 3) -> tuple[dict, dict]:
    """Measures 1–5 for ``samples`` (N, 1, H, W) in [−1, 1] that asked for ``labels``; ``nets`` maps a space's key to
    its network (the first one also serves the nearest neighbours in features), ``train`` and ``test`` are (images,
    labels) pairs. Returns the JSON-ready report and the tensors the plots draw from."""
    (train_x, train_y), (test_x, test_y) = train, test
    classes = len(FASHION_MNIST_CLASSES)
    counts = torch.bincount(labels, minlength=classes)
    g = torch.Generator().manual_seed(seed)
    test_sub, train_sub = class_balanced_indices(test_y, counts, g), class_balanced_indices(train_y, counts, g)
    spaces = {key: Space.of(key, net, samples, test_x, train_x[train_sub]) for key, net in nets.items()}
    report = {"spaces": {key: space_report(s, labels, test_y, test_sub, k, classes) for key, s in spaces.items()}}

    ref_labels = labels.sort().values
    report["grey_levels"] = grey_levels(samples, test_x[test_sub], train_x[train_sub])
    report["grey_levels_per_class"] = {
        FASHION_MNIST_CLASSES[c]: grey_levels(
            samples[labels == c], test_x[test_sub][ref_labels == c], train_x[train_sub][ref_labels == c]
        )
        for c in range(classes)
    }
    first_key, first_net = next(iter(nets.items()))
    train_f = predict(first_net, train_x)[0]
    nn = nearest_training_images(
        samples, test_x[test_sub], train_x, spaces[first_key].generated, spaces[first_key].test[test_sub], train_f
    )
    report["nearest_training_image"] = {"feature_space": first_key, **nearest_summary(nn, labels, train_y, classes)}
    report["mirrored_share"] = {
        FASHION_MNIST_CLASSES[c]: {
            "generated": mirrored_share(samples[labels == c], train_x[train_y == c]),
            "test": mirrored_share(test_x[test_sub][ref_labels == c], train_x[train_y == c]),
        }
        for c in range(classes)
    }
    tensors = {"test_sub": test_sub, "nearest": nn, "test_x": test_x, "train_x": train_x}
    return report, tensors


def load_or_sample(args, pipe, labels: torch.Tensor) -> torch.Tensor:
    """The samples in [−1, 1], quantized: read from ``--samples`` when it holds this setup's, else drawn (and saved
    there, uint8, when ``--samples`` is given)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    setup = {k: str(getattr(args, k)) for k in ("checkpoint", "sampler", "steps", "guidance", "num_samples", "seed")}
    path = Path(args.samples) if args.samples else None
    if path and path.exists():
        with safe_open(path, framework="pt") as f:
            if f.metadata() != setup:
                raise SystemExit(f"{path} holds samples of {f.metadata()}, not {setup}; choose another --samples.")
            return f.get_tensor("samples").float() / 127.5 - 1
    samples, wall = generate_with(
        pipe, args.sampler, args.steps, args.num_samples, args.batch_size, args.seed, labels, args.guidance
    )
    print(f"sampled {len(samples)} images in {wall:.0f} s", flush=True)
    samples = quantize(samples)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"samples": ((samples + 1) * 127.5).round().to(torch.uint8).contiguous()}, path, metadata=setup)
    return samples


def markdown_tables(report: dict) -> str:
    """The per-class figures as Markdown tables: one row per class, both spaces side by side."""
    spaces = report["spaces"]
    keys = list(spaces)
    head = "| class | " + " | ".join(
        f"class acc. ({k}) | FD ratio ({k}) | precision ({k}, real) | recall ({k}, real)" for k in keys
    )
    rows = [head + " |", "|---" * (1 + 4 * len(keys)) + "|"]
    for name in FASHION_MNIST_CLASSES:
        cells = []
        for k in keys:
            c = spaces[k]["per_class"][name]
            pr = c["precision_recall"]
            cells += [
                f"{100 * c['class_accuracy']:.0f} %",
                f"{c['fd_ratio']:.1f}×",
                f"{pr['precision']:.2f} ({pr['real_precision']:.2f})",
                f"{pr['recall']:.2f} ({pr['real_recall']:.2f})",
            ]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    mirror = [
        "",
        "| class | "
        + " | ".join(f"FD ratio, all mirrored real ({k}) | acc. on real / mirrored real ({k})" for k in keys)
        + " |",
        "|---" * (1 + 2 * len(keys)) + "|",
    ]
    for name in FASHION_MNIST_CLASSES:
        cells = []
        for k in keys:
            c = spaces[k]["per_class"][name]
            cells += [
                f"{c['mirrored_real_fd_ratio']:.1f}×",
                f"{100 * c['real_class_accuracy']:.0f} % / {100 * c['mirrored_real_class_accuracy']:.0f} %",
            ]
        mirror.append(f"| {name} | " + " | ".join(cells) + " |")
    grey = [
        "",
        "| class | brightness gen / test | contrast gen / test | sharpness gen / test | histogram ∩ (real) "
        "| nearest train px: median distance gen / test | same class gen / test | other classes (gen) "
        "| mirrored gen / test |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    nn = report["nearest_training_image"]["pixels"]["per_class"]
    for name, g in report["grey_levels_per_class"].items():
        b, s, d, n = g["mean_brightness"], g["mean_contrast"], g["mean_sharpness"], nn[name]
        m = report["mirrored_share"][name]
        others = ", ".join(f"{k} {v}" for k, v in n["neighbour_other_classes"].items())
        grey.append(
            f"| {name} | {b['generated']:.3f} / {b['real']:.3f} | {s['generated']:.3f} / {s['real']:.3f} "
            f"| {d['generated']:.3f} / {d['real']:.3f} "
            f"| {g['histogram_intersection']:.3f} ({g['histogram_intersection_real']:.3f}) "
            f"| {n['generated_median']:.2f} / {n['test_median']:.2f} "
            f"| {100 * n['neighbour_same_class']:.0f} % / {100 * n['test_neighbour_same_class']:.0f} % | {others} "
            f"| {100 * m['generated']:.0f} % / {100 * m['test']:.0f} % |"
        )
    return "\n".join(rows + mirror + grey)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="checkpoints/fashion-mnist-32-cond")
    add_scoring_arguments(p)
    add_sampling_arguments(p, sampler="unipc", steps=10)
    p.add_argument("--guidance", type=float, default=None, help="guidance scale w (default: the checkpoint's)")
    p.add_argument("--k", type=int, default=3, help="neighbours of the precision/recall manifolds")
    p.add_argument("--samples", default=None, help="a .safetensors of the samples: read if there, else written")
    p.add_argument("--json", default=None, help="write the report here")
    p.add_argument("--plot-dir", default=None, help="write the PNGs here")
    p.add_argument("--table", action="store_true", help="print the JSON's per-class figures as Markdown, and stop")
    args = p.parse_args(argv)
    if args.table:
        print(markdown_tables(json.loads(Path(args.json).read_text())))
        return
    start = time.time()
    pipe = conditional_pipeline(args, "a per-class report")
    if args.guidance is None:
        args.guidance = pipe.config.recommended_guidance_scale
    labels = pipe.balanced_class_labels(args.num_samples)
    samples = load_or_sample(args, pipe, labels)

    train_images, train_y = load_fashion_mnist(args.data_dir, "train")
    test_images, test_y = load_fashion_mnist(args.data_dir, "test")
    train_x, test_x = uint8_to_model_range(train_images), uint8_to_model_range(test_images)
    nets = {"convnet": load_classifier(args.classifier)}
    second = load_second_classifier(args.second_classifier)
    if second is not None:
        nets["resnet"] = second
    scorer = SampleScorer(nets["convnet"], train_x, test_x, len(samples), args.seed, second)
    report, tensors = quality_report(samples, labels, nets, (train_x, train_y), (test_x, test_y), args.seed, args.k)
    results = {
        "checkpoint": args.checkpoint,
        "sampler": args.sampler,
        "steps": args.steps,
        "guidance_scale": args.guidance,
        "num_samples": args.num_samples,
        "seed": args.seed,
        "k": args.k,
        "overall": scorer(samples, labels),
        **report,
        "wall_s": round(time.time() - start, 1),
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.plot_dir:
        from pipelines.training.quality_plots import save_quality_plots

        save_quality_plots(results, samples, labels, tensors, Path(args.plot_dir))
    print(markdown_tables(results))


if __name__ == "__main__":
    main()
