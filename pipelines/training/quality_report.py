"""What one Fréchet distance over all classes hides: a class-conditional checkpoint's samples measured class by class,
in each judge's feature space, each number beside the same measure of real data against real data (same N).

The judges (``SPACE_NAMES``): ``convnet``, the committed classifier (``--classifier``); ``resnet``, an independent
architecture (``--second-classifier``); and, for Fashion-MNIST, ``noflip``, a convnet trained without random
horizontal flips (``--third-classifier``, ``checkpoints/fashion-mnist-classifier-noflip`` by default where it is
there), the only one of the three that can tell a shoe pointing the wrong way. Each per-class table is reported in
each space the run has.

    python -m pipelines.training.quality_report --checkpoint checkpoints/fashion-mnist-32-cond --sampler unipc \\
        --steps 10 --guidance 1.75 --num-samples 1000 --threads 1 \\
        --json checkpoints/fashion-mnist-32-cond/evaluation/quality-report-unipc10-w1.75.json \\
        --plot-dir checkpoints/fashion-mnist-32-cond/evaluation/quality

The guidance is the checkpoint's recommended one (w, interval and φ from its model_index.json) unless
``--guidance``, ``--guidance-interval LO-HI`` (the paper's t; ``none`` for every step) or ``--guidance-rescale φ`` say
otherwise.

A model trained on a labelled image folder (``train/`` and ``test/``, one subfolder per class in each, as
``python -m pipelines.training.emoji`` writes them) is measured against that folder, with classifiers trained on it:

    python -m pipelines.training.quality_report --checkpoint runs/emoji32-cond/pipeline \\
        --data-folder data/noto-emoji-32 --classifier checkpoints/noto-emoji-classifier \\
        --second-classifier checkpoints/noto-emoji-classifier-resnet --sampler unipc --steps 10 --num-samples 1000 \\
        --guidance W --threads 1 --json runs/emoji32-cond/evaluation/quality-report.json \\
        --plot-dir runs/emoji32-cond/evaluation/quality

The training images are the model's training data, the test images are held out (never trained on). The samples ask
for the classes in the held-out images' proportions: sample i asks for class i mod K where the held-out set is
class-balanced (Fashion-MNIST; the sweeps' "one of each class"), else each class's share of it. The reference sets
then match the samples class by class: as many held-out images of each class as there are samples of it (all of a
class's held-out images where it has fewer: a folder's few hundred against 1,000 samples) and, for the real-vs-real
value, as many training images of each class as samples, the same N. That floor, training images against held-out
ones, is what a model that draws exactly its training distribution would score; a model that copies its training
images reaches it too, which measure 4 sees. With a few dozen held-out images a class, the per-class values are noisy:
``class_counts`` gives each class's N.

1. Per-class Fréchet distance: the samples of class c against all test images of c, beside the floor (as many
   training images of c against the same test images); and over all classes, against the class-matched subsets.
2. Precision and recall (Kynkäänniemi et al. 2019, k-NN manifolds, k = 3), overall and per class, beside training
   images against test images.
3. Pixel levels: for grey images, histogram intersection with the test images, mean brightness and contrast
   (per-image std); for RGB, the histogram intersection and mean of each channel (R, G, B), and brightness, contrast
   and sharpness of the luma (BT.601).
4. Memorisation: the nearest training image of each sample, in pixels and in the committed classifier's features,
   against the test images' own distances to their nearest training image (medians; the share of samples closer to a
   training image than 99 % of test images are, and than any test image is); a grid of samples beside their
   neighbours, and one of the samples closest to a training image.
5. Class accuracy per class and the confusion matrix (asked-for class → class read) in each classifier (the no-flip
   judge's is the one to read for footwear: it reads a mirrored shoe as something else), beside its accuracy on the
   real test images.
6. Orientation: the share of samples whose mirror image is nearer (in pixels) to the training images of their
   class than they are, beside the test images' share; and, in each space, the per-class FD ratio and the class
   accuracy of mirror-imaged real images, which say whether that space can see a shoe pointing the wrong way. Kept for
   any data: it is cheap, and the test images' share beside it says whether the classes have a handedness (Fashion-
   MNIST's shoes point left; emoji's flags, arrows and letters have one, faces mostly not).
The overall Fréchet distance and class accuracy are the sweeps' own (:class:`SampleScorer`, random subsets rather
than class-matched ones: ``overall``, with ``second_space`` the resnet's and ``third_space`` the noflip judge's), for
comparison; every space's class-matched ones are in ``spaces``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from pipelines.objective import quantize
from pipelines.training import targets
from pipelines.training.classifier import predict
from pipelines.training.data import FASHION_MNIST_CLASSES
from pipelines.training.evaluate import (
    SampleScorer,
    add_sampling_arguments,
    add_scoring_arguments,
    check_classifier_classes,
    command_line_guidance,
    conditional_pipeline,
    judge_dirs,
    judges_from,
    load_evaluation_data,
)
from pipelines.training.metrics import (
    frechet_distance_between,
    grey_histogram,
    histogram_intersection,
    nearest_neighbours,
    precision_recall,
)
from pipelines.training.sampler_sweep import generate_as_asked

SPACE_NAMES = {"convnet": "committed classifier", "resnet": "independent ResNet", "noflip": "no-flip judge"}
BORDER = 2  # the zero padding of 28 px Fashion-MNIST to 32 px: black in every real image (an emoji's white ground)
CHANNEL_NAMES = ("R", "G", "B")
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601's Y' of R'G'B'
EXACT = 1e-3  # pixel L2 of an exact copy (one level of one pixel is 2/255 away)
REAL_FLOOR = (
    "training images with the samples' class counts (the same N) against the same held-out images: what a model "
    "that draws exactly its training distribution would score (a model that copies its training images too: see "
    "nearest_training_image)"
)


def class_balanced_indices(
    labels: torch.Tensor, counts: torch.Tensor, generator: torch.Generator, at_most: bool = False
) -> torch.Tensor:
    """Indices of counts[c] random images of each class c, in class order; with ``at_most``, all of a class's images
    where it has fewer."""
    picks = []
    for c, n in enumerate(counts.tolist()):
        of_c = (labels == c).nonzero().squeeze(1)
        if len(of_c) < n and not at_most:
            raise ValueError(f"class {c} has {len(of_c)} images, {n} asked for.")
        picks.append(of_c[torch.randperm(len(of_c), generator=generator)[:n]])
    return torch.cat(picks)


def class_labels_like(test_labels: torch.Tensor, n: int, classes: int) -> torch.Tensor:
    """n labels to ask the model for, in the held-out images' class proportions: sample i asks for class i mod K where
    they are class-balanced (``pipe.balanced_class_labels``), else each class gets its share of n (rounded by largest
    remainder, ties to the lower label), spread evenly over the n."""
    counts = torch.bincount(test_labels, minlength=classes)
    if (counts == counts[0]).all():
        return torch.arange(n) % classes
    quota = n * counts.double() / counts.sum()
    share = quota.floor().long()
    share[(quota - share).argsort(descending=True, stable=True)[: n - share.sum()]] += 1
    position = torch.cat([(torch.arange(s) + 0.5) / s for s in share.tolist()])  # class c's j-th at (j + ½)/n_c
    return torch.repeat_interleave(torch.arange(classes), share)[position.argsort(stable=True)]


def tone_statistics(sets: dict) -> dict:
    """Mean brightness, contrast (mean per-image std), sharpness (:func:`mean_gradient`) and the mean of the
    BORDER-pixel frame of one-channel images (N, 1, H, W) in [−1, 1]; each set's value and, but for the frame,
    ``generated``'s and ``reference``'s differences from ``real``'s."""
    x = next(iter(sets.values()))
    frame = torch.ones(x.shape[-2:], dtype=torch.bool)
    frame[BORDER:-BORDER, BORDER:-BORDER] = False
    stats = {
        "brightness": {name: x.mean().item() for name, x in sets.items()},
        "contrast": {name: x.flatten(1).std(1).mean().item() for name, x in sets.items()},
        "sharpness": {name: mean_gradient(x).item() for name, x in sets.items()},
    }
    out = {}
    for stat, value in stats.items():
        out[f"mean_{stat}"] = value
        out[f"{stat}_difference"] = value["generated"] - value["real"]
        out[f"{stat}_difference_real"] = value["reference"] - value["real"]
    out["border_mean"] = {name: x[..., frame].mean().item() for name, x in sets.items()}
    return out


def grey_levels(generated: torch.Tensor, real: torch.Tensor, reference: torch.Tensor, bins: int = 64) -> dict:
    """Grey-level statistics of generated images against real ones, with ``reference`` (other real images, as many)
    against the same real ones beside: histogram intersection, mean brightness, contrast (mean per-image std),
    sharpness (:func:`mean_gradient`) and the mean of the black border, all in [−1, 1]."""
    sets = {"generated": generated, "real": real, "reference": reference}
    hist = {name: grey_histogram(x, bins) for name, x in sets.items()}
    return {
        "histogram_intersection": histogram_intersection(hist["generated"], hist["real"]),
        "histogram_intersection_real": histogram_intersection(hist["reference"], hist["real"]),
        **tone_statistics(sets),
    }


def luma(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in [−1, 1] -> (N, 1, H, W) luma (BT.601) in [−1, 1]."""
    return torch.einsum("c,nchw->nhw", torch.tensor(LUMA_WEIGHTS, dtype=images.dtype), images).unsqueeze(1)


def colour_levels(generated: torch.Tensor, real: torch.Tensor, reference: torch.Tensor, bins: int = 64) -> dict:
    """:func:`grey_levels` for RGB images: the histogram intersection and mean of each channel (R, G, B), and the
    brightness, contrast, sharpness and frame of their luma."""
    sets = {"generated": generated, "real": real, "reference": reference}
    hist = {name: [grey_histogram(x[:, i], bins) for i in range(3)] for name, x in sets.items()}
    return {
        "histogram_intersection": {
            ch: histogram_intersection(hist["generated"][i], hist["real"][i]) for i, ch in enumerate(CHANNEL_NAMES)
        },
        "histogram_intersection_real": {
            ch: histogram_intersection(hist["reference"][i], hist["real"][i]) for i, ch in enumerate(CHANNEL_NAMES)
        },
        "channel_mean": {name: dict(zip(CHANNEL_NAMES, x.mean((0, 2, 3)).tolist())) for name, x in sets.items()},
        **tone_statistics({name: luma(x) for name, x in sets.items()}),
    }


LEVELS = {1: ("grey_levels", grey_levels), 3: ("colour_levels", colour_levels)}  # by the images' channels


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
        return cls.of_real(key, net, test_x, train_sub).with_samples(net, samples)

    @classmethod
    def of_real(cls, key, net, test_x, train_sub) -> Space:
        """The real images' side alone (no samples yet): what a sweep computes once for all its points."""
        test, p_test = predict(net, test_x)
        reference, reference_mirrored = predict(net, train_sub)[0], predict(net, train_sub.flip(-1))[0]
        test_mirrored_read = predict(net, test_x.flip(-1))[1].argmax(-1)
        empty = torch.empty(0)
        return cls(key, empty, empty, test, p_test.argmax(-1), reference, reference_mirrored, test_mirrored_read)

    def with_samples(self, net, samples) -> Space:
        generated, p_generated = predict(net, samples)
        return replace(self, generated=generated, generated_read=p_generated.argmax(-1))


def space_report(
    space: Space, labels, test_labels, test_sub: torch.Tensor, k: int, classes: int, class_names=FASHION_MNIST_CLASSES
) -> dict:
    """Measures 1, 2 and 5 in one feature space, and what mirror images do to it: the per-class FD ratio of the
    training subset flipped left to right, the class accuracy on flipped test images and what it reads them as.
    ``test_sub`` indexes the class-matched test subset (as many of each class as samples where there are, in class
    order; ``space.reference`` has exactly as many of each class as samples)."""
    real = space.test[test_sub]
    sub_labels = test_labels[test_sub]
    ref_labels = labels.sort().values  # the training subset's labels, in class order
    confusion = confusion_matrix(labels, space.generated_read, classes)
    real_confusion = confusion_matrix(test_labels, space.test_read, classes)
    mirrored_confusion = confusion_matrix(test_labels, space.test_mirrored_read, classes)
    fd, floor = frechet_distance_between(space.generated, real), frechet_distance_between(space.reference, real)
    out = {
        "frechet_distance": fd,
        "frechet_distance_real_floor": floor,
        "fd_ratio": fd / floor,
        "precision_recall": beside_real_pr(real, space.generated, space.reference, k),
        "class_accuracy": (confusion.diag().sum() / confusion.sum()).item(),
        "real_class_accuracy": (real_confusion.diag().sum() / real_confusion.sum()).item(),  # on every test image
        "confusion": confusion.tolist(),
        "real_confusion": real_confusion.tolist(),
        "per_class": {},
    }
    for c in range(classes):
        gen_c, ref_c, real_c = space.generated[labels == c], space.reference[ref_labels == c], real[sub_labels == c]
        all_test_c = space.test[test_labels == c]
        fd, floor = frechet_distance_between(gen_c, all_test_c), frechet_distance_between(ref_c, all_test_c)
        mirrored = frechet_distance_between(space.reference_mirrored[ref_labels == c], all_test_c)
        out["per_class"][class_names[c]] = {
            "class_accuracy": (confusion[c, c] / confusion[c].sum()).item(),
            "real_class_accuracy": (real_confusion[c, c] / real_confusion[c].sum()).item(),
            "read_as": {class_names[j]: int(n) for j, n in enumerate(confusion[c].tolist()) if n and j != c},
            "frechet_distance": fd,
            "frechet_distance_real_floor": floor,
            "fd_ratio": fd / floor,
            "mirrored_real_fd_ratio": mirrored / floor,  # the FD ratio of a class drawn all mirror-imaged
            "mirrored_real_class_accuracy": (space.test_mirrored_read[test_labels == c] == c).float().mean().item(),
            "mirrored_real_read_as": {
                class_names[j]: int(n) for j, n in enumerate(mirrored_confusion[c].tolist()) if n and j != c
            },
            "precision_recall": beside_real_pr(real_c, gen_c, ref_c, k),
        }
    return out


class ClassMatchedScorer:
    """Each judge's class-matched figures (:func:`space_report`: class accuracy, what each class is read as, the
    per-class and the class-matched overall FD, each against its real floor, and precision and recall beside the
    real images') for sample sets that all ask for
    ``labels``, as :func:`quality_report` computes them with the same ``seed``; the real images' features are
    computed once. A sweep scores each of its points with it (``pipelines.training.targets`` reads the result)."""

    KEPT = (
        "frechet_distance",
        "frechet_distance_real_floor",
        "fd_ratio",
        "class_accuracy",
        "confusion",
        "precision_recall",
    )
    KEPT_PER_CLASS = (
        "class_accuracy",
        "read_as",
        "frechet_distance",
        "frechet_distance_real_floor",
        "fd_ratio",
        "precision_recall",
    )

    def __init__(self, nets: dict, train, test, labels, seed: int = 0, k: int = 3, class_names=FASHION_MNIST_CLASSES):
        (train_x, train_y), (test_x, test_y) = train, test
        self.labels, self.test_y, self.k, self.class_names = labels, test_y, k, tuple(class_names)
        counts = torch.bincount(labels, minlength=len(class_names))
        g = torch.Generator().manual_seed(seed)  # the report's draws, in its order
        self.test_sub = class_balanced_indices(test_y, counts, g, at_most=True)
        train_sub = train_x[class_balanced_indices(train_y, counts, g)]
        self.nets = nets
        self.real = {key: Space.of_real(key, net, test_x, train_sub) for key, net in nets.items()}

    def __call__(self, samples: torch.Tensor) -> dict:
        out = {}
        for key, net in self.nets.items():
            space = self.real[key].with_samples(net, samples)
            full = space_report(
                space, self.labels, self.test_y, self.test_sub, self.k, len(self.class_names), self.class_names
            )
            out[key] = {name: full[name] for name in self.KEPT} | {
                "per_class": {c: {n: v[n] for n in self.KEPT_PER_CLASS} for c, v in full["per_class"].items()}
            }
        return out


def beside_real_pr(real: torch.Tensor, generated: torch.Tensor, reference: torch.Tensor, k: int) -> dict:
    """Precision and recall of the generated images against the real test images, and those of the real training
    images (``reference``) against the same test images, the values to expect (``real_precision``, ``real_recall``);
    NaN where a set has k points or fewer (a class of a few held-out images)."""
    if min(len(real), len(generated), len(reference)) <= k:
        return dict.fromkeys(("precision", "recall", "real_precision", "real_recall"), float("nan"))
    pr, real_pr = precision_recall(real, generated, k), precision_recall(real, reference, k)
    return {**pr, "real_precision": real_pr["precision"], "real_recall": real_pr["recall"]}


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


def closer_than(distances: torch.Tensor, threshold: torch.Tensor) -> float:
    """The share of ``distances`` strictly below ``threshold`` (NaN for none)."""
    return (distances < threshold).float().mean().item() if len(distances) else float("nan")


def nearest_summary(nn: dict, labels, test_labels, train_y, classes: int, class_names=FASHION_MNIST_CLASSES) -> dict:
    """Medians of the nearest-training-image distances of the samples (asked for ``labels``) and of the test images
    (of ``test_labels``), overall and per class; the share of samples closer to a training image than 99 % of test
    images are, and than any test image is (copies would show there; overall thresholds in the per-class shares too);
    and, per class, how often the nearest training image is of the class asked for (a 1-NN classifier in that space),
    beside the same for test images, and the other classes it is of.

    Exact copies (pixel-identical to a training image) are counted apart, of the samples and of the test images. A
    test image that is one (a duplicate in the data: in the Noto emoji, four territories' flags are their country's)
    is left out of the thresholds, which it would set to 0, where no sample can be closer."""
    twin = nn["pixels"]["test"] <= EXACT
    copy = nn["pixels"]["generated"] <= EXACT
    out = {
        "exact_copies": {
            "generated": int(copy.sum()),
            "generated_share": copy.float().mean().item(),
            "test": int(twin.sum()),
            "test_share": twin.float().mean().item(),
            "per_class": {name: int(copy[labels == c].sum()) for c, name in enumerate(class_names)},
        }
    }
    for space, d in nn.items():
        unique = d["test"][~twin] if not twin.all() else torch.tensor([float("nan")])
        first_percentile, closest = unique.quantile(0.01), unique.min()
        out[space] = {
            "n_generated": len(d["generated"]),
            "n_test": len(d["test"]),
            "n_test_thresholds": len(unique),  # the test images but the exact copies
            "generated_median": d["generated"].median().item(),
            "test_median": d["test"].median().item(),
            "test_1st_percentile": first_percentile.item(),
            "test_min": closest.item(),
            "generated_closer_than_1pct_of_test": closer_than(d["generated"], first_percentile),
            "generated_closer_than_any_test": closer_than(d["generated"], closest),
            "confusion": confusion_matrix(labels, train_y[d["generated_index"]], classes).tolist(),
            "per_class": {},
        }
        for c in range(classes):
            gen_c, test_c = d["generated"][labels == c], d["test"][test_labels == c]
            neighbours_c = train_y[d["generated_index"][labels == c]]
            out[space]["per_class"][class_names[c]] = {
                "generated_median": gen_c.median().item(),
                "test_median": test_c.median().item(),
                "generated_closer_than_1pct_of_test": closer_than(gen_c, first_percentile),
                "generated_closer_than_any_test": closer_than(gen_c, closest),
                "neighbour_same_class": (neighbours_c == c).float().mean().item(),
                "test_neighbour_same_class": (train_y[d["test_index"][test_labels == c]] == c).float().mean().item(),
                "neighbour_other_classes": {
                    class_names[j]: int(n)
                    for j, n in enumerate(torch.bincount(neighbours_c, minlength=classes))
                    if n and j != c
                },
            }
    return out


def quality_report(
    samples, labels, nets: dict, train, test, seed: int = 0, k: int = 3, class_names=FASHION_MNIST_CLASSES
) -> tuple[dict, dict]:
    """Measures 1–6 for ``samples`` (N, C, H, W) in [−1, 1] that asked for ``labels``; ``nets`` maps a space's key to
    its network (the first one also serves the nearest neighbours in features), ``train`` and ``test`` are (images,
    labels) pairs, ``class_names`` what the labels mean. Returns the JSON-ready report and the tensors the plots draw
    from."""
    (train_x, train_y), (test_x, test_y) = train, test
    classes = len(class_names)
    counts = torch.bincount(labels, minlength=classes)
    g = torch.Generator().manual_seed(seed)
    test_sub = class_balanced_indices(test_y, counts, g, at_most=True)
    train_sub = class_balanced_indices(train_y, counts, g)
    sub_labels = test_y[test_sub]
    spaces = {key: Space.of(key, net, samples, test_x, train_x[train_sub]) for key, net in nets.items()}
    report = {
        "class_names": list(class_names),
        "class_counts": {
            name: {
                "samples": int(counts[c]),
                "test": int((test_y == c).sum()),  # the per-class FD's reference: every test image of the class
                "test_subset": int((sub_labels == c).sum()),  # the overall measures' and the nearest neighbours'
                "train": int((train_y == c).sum()),
                "train_subset": int(counts[c]),  # the floor's
            }
            for c, name in enumerate(class_names)
        },
        "real_floor": REAL_FLOOR,
        "spaces": {
            key: space_report(s, labels, test_y, test_sub, k, classes, class_names) for key, s in spaces.items()
        },
    }

    ref_labels = labels.sort().values
    levels_key, levels = LEVELS[samples.shape[1]]
    test_sub_x, train_sub_x = test_x[test_sub], train_x[train_sub]
    report[levels_key] = levels(samples, test_sub_x, train_sub_x)
    report[f"{levels_key}_per_class"] = {
        name: levels(samples[labels == c], test_sub_x[sub_labels == c], train_sub_x[ref_labels == c])
        for c, name in enumerate(class_names)
    }
    first_key, first_net = next(iter(nets.items()))
    train_f = predict(first_net, train_x)[0]
    nn = nearest_training_images(
        samples, test_sub_x, train_x, spaces[first_key].generated, spaces[first_key].test[test_sub], train_f
    )
    report["nearest_training_image"] = {
        "feature_space": first_key,
        **nearest_summary(nn, labels, sub_labels, train_y, classes, class_names),
    }
    report["mirrored_share"] = {
        name: {
            "generated": mirrored_share(samples[labels == c], train_x[train_y == c]),
            "test": mirrored_share(test_sub_x[sub_labels == c], train_x[train_y == c]),
        }
        for c, name in enumerate(class_names)
    }
    tensors = {"test_sub": test_sub, "nearest": nn, "test_x": test_x, "train_x": train_x}
    return report, tensors


def load_or_sample(args, pipe, labels: torch.Tensor) -> torch.Tensor:
    """The samples in [−1, 1], quantized: read from ``--samples`` when it holds this setup's, else drawn (and saved
    there, uint8, when ``--samples`` is given)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    setup = {k: str(getattr(args, k)) for k in ("checkpoint", "sampler", "steps", "guidance", "num_samples", "seed")}
    if args.guidance_interval is not None or args.guidance_rescale:  # unguided-interval, unrescaled files still read
        setup |= {"guidance_interval": str(args.guidance_interval), "guidance_rescale": str(args.guidance_rescale)}
    if args.class_scales is not None:
        setup["guidance_class_scales"] = str(list(args.class_scales))
    path = Path(args.samples) if args.samples else None
    if path and path.exists():
        with safe_open(path, framework="pt") as f:
            if f.metadata() != setup:
                raise SystemExit(f"{path} holds samples of {f.metadata()}, not {setup}; choose another --samples.")
            return f.get_tensor("samples").float() / 127.5 - 1
    w = list(args.class_scales) if args.class_scales is not None else args.guidance
    samples, wall = generate_as_asked(pipe, args, labels, w, args.guidance_rescale, args.guidance_interval)
    print(f"sampled {len(samples)} images in {wall:.0f} s", flush=True)
    samples = quantize(samples)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"samples": ((samples + 1) * 127.5).round().to(torch.uint8).contiguous()}, path, metadata=setup)
    return samples


def levels_of(report: dict) -> tuple[str, dict]:
    """The report's pixel-level key (``grey_levels`` or ``colour_levels``) and its per-class figures."""
    key = "colour_levels" if "colour_levels" in report else "grey_levels"
    return key, report[f"{key}_per_class"]


def markdown_tables(report: dict) -> str:
    """The per-class figures as Markdown tables: one row per class, every space side by side, then the
    memorisation figures."""
    spaces = report["spaces"]
    keys = list(spaces)
    names = report.get("class_names", FASHION_MNIST_CLASSES)
    head = "| class | " + " | ".join(
        f"class acc. ({k}) | FD ratio ({k}) | precision ({k}, real) | recall ({k}, real)" for k in keys
    )
    rows = [head + " |", "|---" * (1 + 4 * len(keys)) + "|"]
    for name in names:
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
    for name in names:
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
    for name, g in levels_of(report)[1].items():
        b, s, d, n = g["mean_brightness"], g["mean_contrast"], g["mean_sharpness"], nn[name]
        m = report["mirrored_share"][name]
        others = ", ".join(f"{k} {v}" for k, v in n["neighbour_other_classes"].items())
        grey.append(
            f"| {name} | {b['generated']:.3f} / {b['real']:.3f} | {s['generated']:.3f} / {s['real']:.3f} "
            f"| {d['generated']:.3f} / {d['real']:.3f} "
            f"| {histogram_cell(g)} "
            f"| {n['generated_median']:.2f} / {n['test_median']:.2f} "
            f"| {100 * n['neighbour_same_class']:.0f} % / {100 * n['test_neighbour_same_class']:.0f} % | {others} "
            f"| {100 * m['generated']:.0f} % / {100 * m['test']:.0f} % |"
        )
    return "\n".join(rows + mirror + grey + memorisation_lines(report) + targets_lines(report))


def histogram_cell(levels: dict) -> str:
    """A pixel-level histogram intersection with the real-vs-real value in brackets, per channel for RGB."""
    ours, real = levels["histogram_intersection"], levels["histogram_intersection_real"]
    if isinstance(ours, float):
        return f"{ours:.3f} ({real:.3f})"
    return " ".join(f"{ch} {ours[ch]:.2f} ({real[ch]:.2f})" for ch in ours)


def memorisation_lines(report: dict) -> list[str]:
    """The overall figures, in each classifier and in pixels: FD ratio and class accuracy (the judge's own accuracy
    on the real test images beside), N per class, and the memorisation figures."""
    spaces, nearest = report["spaces"], report["nearest_training_image"]
    lines = [""]
    for key, s in spaces.items():
        if "fd_ratio" in s:  # reports written before the class-matched overall values have none
            lines.append(
                f"- {key}: FD {s['frechet_distance']:.3g} against its real floor "
                f"{s['frechet_distance_real_floor']:.3g} ({s['fd_ratio']:.1f}×); class accuracy "
                f"{100 * s['class_accuracy']:.1f} % on the samples, {100 * s['real_class_accuracy']:.1f} % on the "
                "real test images"
            )
    if "class_counts" in report:
        lines.append(
            "- N per class (samples / test images / in the floor's training subset): "
            + ", ".join(
                f"{name} {n['samples']}/{n['test']}/{n['train_subset']}" for name, n in report["class_counts"].items()
            )
        )
    if "exact_copies" in nearest:
        copies = nearest["exact_copies"]
        lines.append(
            f"- exact copies of a training image (pixels): {copies['generated']} of the samples "
            f"({100 * copies['generated_share']:.1f} %), {copies['test']} of the test images "
            f"({100 * copies['test_share']:.1f} %: duplicates in the data, left out of the thresholds below)"
        )
    for space in ("pixels", "features"):
        d = nearest[space]
        where = "pixels" if space == "pixels" else f"{nearest['feature_space']} features"
        line = (
            f"- nearest training image in {where}: median distance {d['generated_median']:.2f} (samples) against "
            f"{d['test_median']:.2f} (test images); {100 * d['generated_closer_than_1pct_of_test']:.1f} % of samples "
            "closer than 99 % of test images"
        )
        if "generated_closer_than_any_test" in d:
            line += f", {100 * d['generated_closer_than_any_test']:.1f} % closer than any ({d['test_min']:.2f})"
        lines.append(line)
    return lines


def targets_summary(overall: dict, spaces: dict) -> dict:
    """Whether the figures meet the default model's targets (:mod:`pipelines.training.targets`), the strictest
    measure and every one that misses, each with its ratio to its target."""
    missed = targets.missed(overall, spaces)
    strictest = targets.strictest(overall, spaces)
    return {
        "met": not missed,
        "strictest": {"ratio": strictest.ratio, "what": strictest.what},
        "missed": [{"ratio": m.ratio, "what": m.what} for m in missed],
    }


def targets_lines(report: dict) -> list[str]:
    """The targets block in words (nothing for a report written before it)."""
    summary = report.get("targets")
    if summary is None:
        return []
    if summary["met"]:
        head = f"- targets: **all met**; the nearest to missing: {summary['strictest']['what']}"
        return [head]
    lines = [f"- targets: **{len(summary['missed'])} missed**, strictest first (ratio to the target):"]
    return lines + [f"  - {m['ratio']:.2f}: {m['what']}" for m in summary["missed"]]


def shown_path(directory) -> str:
    """A folder as the report records it: relative to the repository where it lies inside it (the defaults are
    absolute), so a committed report names no machine's paths."""
    path = Path(directory).resolve()
    root = Path(__file__).resolve().parents[2]
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(directory)


def check_classes(pipe, data, classifiers) -> None:
    """End the run unless the checkpoint and the classifiers read the data's classes, in its order."""
    names = list(data.class_names)
    ours = pipe.config.class_names
    if pipe.null_class_label != len(names) or (ours is not None and list(ours) != names):
        raise SystemExit(
            f"The checkpoint's classes ({ours or pipe.null_class_label}) are not {data.source}'s {names}: pass "
            "--data-folder (or --data-dir) with the model's training data."
        )
    for directory in classifiers:
        if directory:
            check_classifier_classes(directory, names, data.source)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="checkpoints/fashion-mnist-32-cond")
    add_scoring_arguments(p)
    p.add_argument(
        "--data-folder", default=None, help="a labelled image folder's train/ and test/ instead of --data-dir's"
    )
    add_sampling_arguments(p, sampler="unipc", steps=10)
    p.add_argument(
        "--guidance",
        type=float,
        default=None,
        help="guidance scale w for every class (default: the checkpoint's, per class where it records them)",
    )
    p.add_argument(
        "--guidance-interval",
        default=None,
        help="LO-HI: guide only for the paper's t in [LO, HI], or none (default: the checkpoint's)",
    )
    p.add_argument("--guidance-rescale", type=float, default=None, help="φ in [0, 1] (default: the checkpoint's)")
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
    # the command line's, else the checkpoint's (else w = 1, plain conditional; φ = 0; every t)
    g = command_line_guidance(pipe, args.guidance, args.guidance_interval, args.guidance_rescale)
    args.guidance, args.class_scales, args.guidance_interval, args.guidance_rescale = (
        g.scale,
        g.class_scales,
        g.interval,
        g.rescale,
    )
    data = load_evaluation_data(args.data_dir, args.data_folder, pipe.unet.config.in_channels)
    directories = judge_dirs(args)
    check_classes(pipe, data, directories.values())
    labels = class_labels_like(data.test_y, args.num_samples, len(data.class_names))
    short = torch.bincount(labels, minlength=len(data.class_names)) > torch.bincount(data.train_y)
    if short.any():
        c = short.nonzero()[0].item()
        raise SystemExit(
            f"--num-samples {args.num_samples} asks for more samples of {data.class_names[c]!r} than it has training "
            "images: the real floor needs as many of each class as samples; ask for fewer."
        )
    samples = load_or_sample(args, pipe, labels)

    nets = judges_from(args)  # resnet and noflip each optional: left out where its folder is not there (or '')
    scorer = SampleScorer(
        nets["convnet"],
        data.train_x,
        data.test_x,
        len(samples),
        args.seed,
        nets.get("resnet"),
        data.class_names,
        third_classifier=nets.get("noflip"),
    )
    train, test = (data.train_x, data.train_y), (data.test_x, data.test_y)
    report, tensors = quality_report(samples, labels, nets, train, test, args.seed, args.k, data.class_names)
    results = {
        "checkpoint": args.checkpoint,
        "data": data.source,
        "classifiers": {key: shown_path(directories[key]) for key in nets},
        "sampler": args.sampler,
        "steps": args.steps,
        "guidance_scale": args.guidance,
        "guidance_class_scales": None if args.class_scales is None else list(args.class_scales),
        "guidance_interval": None if args.guidance_interval is None else list(args.guidance_interval),
        "guidance_rescale": args.guidance_rescale,
        "num_samples": args.num_samples,
        "seed": args.seed,
        "k": args.k,
        "overall": scorer(samples, labels),
        **report,
    }
    results["targets"] = targets_summary(results["overall"], report["spaces"])
    results["wall_s"] = round(time.time() - start, 1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.plot_dir:
        from pipelines.training.quality_plots import save_quality_plots

        save_quality_plots(results, samples, labels, tensors, Path(args.plot_dir))
    print(markdown_tables(results))


if __name__ == "__main__":
    main()
