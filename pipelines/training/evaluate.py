"""Evaluate a checkpoint: sample quality in the classifier's feature space, and the ELBO in bits/dim.

    python -m pipelines.evaluate --checkpoint checkpoints/fashion-mnist-32 --num-samples 1000 --sample-steps 100

Prints the Fréchet distance of the samples against the test set beside the real-data floor (train against test, same
N), the mean max-softmax, the class histogram, and the variational bound on test images (mean ± standard error).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from pipelines.loading import load_pipeline
from pipelines.objective import ELBOEstimate, elbo_bpd, quantize
from pipelines.training.classifier import (
    CONFIG_FILE,
    DEFAULT_CLASSIFIER_DIR,
    SECOND_CLASSIFIER_DIR,
    WEIGHTS_FILE,
    load_classifier,
    predict,
)
from pipelines.training.data import (
    DEFAULT_FASHION_MNIST_DIR,
    FASHION_MNIST_CLASSES,
    load_fashion_mnist,
    load_labelled_image_folder,
    uint8_to_model_range,
)
from pipelines.training.metrics import frechet_distance, gaussian_stats
from pipelines.training.visualize import save_image_grid


def generate(pipe, n: int, steps: int | None, batch_size: int, seed: int) -> torch.Tensor:
    """n samples in [−1, 1], (n, C, H, W), from respaced ancestral sampling with ``steps`` steps."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for start in tqdm(range(0, n, batch_size), desc="sampling"):
        b = min(batch_size, n - start)
        images = pipe(batch_size=b, generator=generator, num_inference_steps=steps, output_type="pt").images
        out.append(images.cpu() * 2 - 1)
    return torch.cat(out)


class FeatureSpace:
    """One network's feature space, with the real test images' statistics and the real-data floor (as many training
    images against the same test images) computed once."""

    def __init__(self, net, train_sub: torch.Tensor, test_sub: torch.Tensor):
        self.net = net
        self.test_stats = gaussian_stats(predict(net, test_sub)[0])
        self.floor = frechet_distance(*gaussian_stats(predict(net, train_sub)[0]), *self.test_stats)

    def distance(self, samples: torch.Tensor) -> dict:
        """The samples' Fréchet distance to the test images beside this space's floor."""
        fd = frechet_distance(*gaussian_stats(predict(self.net, samples)[0]), *self.test_stats)
        return {"frechet_distance": fd, "frechet_distance_real_floor": self.floor, "fd_ratio": fd / self.floor}


class SampleScorer:
    """Scores sets of ``n`` samples: the committed classifier's view (Fréchet distance and floor in its feature space,
    mean max-softmax, class histogram over ``class_names`` (default: Fashion-MNIST's), and, given the labels asked
    for, class accuracy) and, given ``second_classifier``, the distance in that independent space too
    (``second_space``). The real images' features are computed once, so a sweep scores each point against the same
    real subsets at the cost of its samples alone."""

    def __init__(self, classifier, train_x, test_x, n: int, seed: int = 0, second_classifier=None, class_names=None):
        g = torch.Generator().manual_seed(seed)
        self.class_names = tuple(class_names or FASHION_MNIST_CLASSES)
        train_sub = train_x[torch.randperm(len(train_x), generator=g)[:n]]
        test_sub = test_x[torch.randperm(len(test_x), generator=g)[:n]]
        self.n, self.classifier = n, classifier
        self.first = FeatureSpace(classifier, train_sub, test_sub)
        self.second = None if second_classifier is None else FeatureSpace(second_classifier, train_sub, test_sub)

    def __call__(self, samples: torch.Tensor, class_labels: torch.Tensor | None = None) -> dict:
        if len(samples) != self.n:
            raise ValueError(f"this scorer compares sets of {self.n} samples, got {len(samples)}.")
        _, p_samples = predict(self.classifier, samples)
        predicted = p_samples.argmax(-1)
        counts = torch.bincount(predicted, minlength=len(self.class_names))
        quality = {
            "n": self.n,
            **self.first.distance(samples),
            "mean_max_softmax": p_samples.max(-1).values.mean().item(),
            "class_histogram": {name: int(c) for name, c in zip(self.class_names, counts.tolist())},
            "min_class_fraction": (counts.min() / self.n).item(),
        }
        if class_labels is not None:  # how often the classifier sees the class that was asked for
            asked = class_labels.cpu()
            hit = (predicted == asked).float()
            quality["class_accuracy"] = hit.mean().item()
            quality["class_accuracy_per_class"] = {
                name: hit[asked == c].mean().item() for c, name in enumerate(self.class_names) if (asked == c).any()
            }
        if self.second is not None:
            quality["second_space"] = self.second.distance(samples)
        return quality


@dataclass(frozen=True)
class EvaluationData:
    """The real images samples are measured against, in [−1, 1]: the model's training images and the held-out ones
    it never saw, with their labels and what the labels mean."""

    train_x: torch.Tensor  # (N_train, C, 32, 32)
    train_y: torch.Tensor  # (N_train,) int64
    test_x: torch.Tensor  # (N_test, C, 32, 32)
    test_y: torch.Tensor  # (N_test,) int64
    class_names: tuple[str, ...]
    source: str


def load_evaluation_data(data_dir=DEFAULT_FASHION_MNIST_DIR, data_folder=None, channels: int = 1) -> EvaluationData:
    """Fashion-MNIST's train and test splits from ``data_dir``, or, given ``data_folder``, a labelled image folder's
    ``train/`` and ``test/`` (one subfolder per class in each, as ``python -m pipelines.training.emoji`` writes them)
    at 32 px with ``channels`` channels."""
    if not data_folder:
        (train_images, train_y), (test_images, test_y) = (load_fashion_mnist(data_dir, s) for s in ("train", "test"))
        train_x, test_x = uint8_to_model_range(train_images), uint8_to_model_range(test_images)
        return EvaluationData(train_x, train_y, test_x, test_y, FASHION_MNIST_CLASSES, f"Fashion-MNIST ({data_dir})")
    folder = Path(data_folder)
    train_x, train_y, names = load_labelled_image_folder(folder / "train", 32, channels)
    test_x, test_y, test_names = load_labelled_image_folder(folder / "test", 32, channels)
    if test_names != names:
        raise SystemExit(
            f"{folder}/test's classes {test_names} are not {folder}/train's {names}: every class needs "
            "held-out images."
        )
    return EvaluationData(train_x, train_y, test_x, test_y, tuple(names), str(folder))


def add_scoring_arguments(parser) -> None:
    """The command-line options :func:`scorer_from` reads (but ``--seed``, which the sweeps share with sampling)."""
    parser.add_argument("--classifier", default=str(DEFAULT_CLASSIFIER_DIR))
    parser.add_argument("--second-classifier", default=str(SECOND_CLASSIFIER_DIR), help="an independent feature space")
    parser.add_argument("--data-dir", default=DEFAULT_FASHION_MNIST_DIR)


def add_sampling_arguments(parser, sampler: str, steps: int) -> None:
    """The command-line options of a sweep that samples a class-balanced set with one solver of the registry."""
    parser.add_argument("--sampler", default=sampler, help="a key of the sampler registry")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--num-samples", type=int, default=1000, help="an equal share of every class")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu", help="where the UNet runs (cuda on a GPU machine)")


def conditional_pipeline(args, what_for: str):
    """A sweep's ``--checkpoint`` on its ``--device`` with no progress bar (and ``--threads`` set); an unconditional
    one ends the run with ``what_for`` said."""
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = load_pipeline(args.checkpoint).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    if pipe.null_class_label is None:
        raise SystemExit(f"{args.checkpoint} is unconditional: {what_for} needs a class-conditional checkpoint.")
    return pipe


def worst_fd_ratio(point: dict) -> float:
    """The larger of a scored point's two FD / real-floor ratios: it must look right to both networks."""
    return max(point["fd_ratio"], point.get("second_space", {}).get("fd_ratio", 0.0))


def second_space_cell(point: dict) -> str:
    """A Markdown table cell: the second space's FD and its ratio to that space's floor, or – where not measured."""
    s2 = point.get("second_space")
    return f"{s2['frechet_distance']:.2f} ({s2['fd_ratio']:.1f}×)" if s2 else "–"


def scorer_from(args, n: int) -> SampleScorer:
    """The :class:`SampleScorer` of a sweep's command line (``--classifier``, ``--second-classifier``, ``--data-dir``,
    ``--seed``) for sets of ``n`` samples."""
    classifier = load_classifier(args.classifier)
    second = load_second_classifier(args.second_classifier)
    data = load_evaluation_data(args.data_dir)
    return SampleScorer(classifier, data.train_x, data.test_x, n, args.seed, second)


def sample_quality(samples, classifier, train_x, test_x, seed: int = 0, second_classifier=None, class_labels=None):
    """One set of samples scored by a :class:`SampleScorer` of its size."""
    return SampleScorer(classifier, train_x, test_x, len(samples), seed, second_classifier)(samples, class_labels)


def load_second_classifier(directory):
    """The independent evaluation network, or None when its folder is not there (``--second-classifier ''``)."""
    if not directory or not (Path(directory) / WEIGHTS_FILE).exists():
        return None
    return load_classifier(directory)


def check_classifier_classes(directory, class_names, source: str) -> None:
    """End the run unless the classifier in ``directory`` reads ``class_names``, in that order: its config.json's
    ``class_names`` (one without them was trained on Fashion-MNIST)."""
    config = Path(directory) / CONFIG_FILE
    read = json.loads(config.read_text()).get("class_names") if config.is_file() else None
    read = tuple(read or FASHION_MNIST_CLASSES)
    if read != tuple(class_names):
        raise SystemExit(
            f"The classifier {directory} reads the classes {list(read)}, not {source}'s {list(class_names)}: pass "
            "--classifier (and --second-classifier, or '' for none) trained on that data."
        )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="checkpoints/fashion-mnist-32")
    add_scoring_arguments(p)
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--sample-steps", type=int, default=100, help="respaced ancestral steps (None: all T)")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--elbo-images", type=int, default=256, help="test images for the bound (0 skips it)")
    p.add_argument("--elbo-timesteps", type=int, default=50, help="stratified MC terms per image; 0 = all T−1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu", help="where the UNet runs (cuda on a GPU machine)")
    p.add_argument("--samples-png", default=None, help="save the first 64 samples as a grid here")
    p.add_argument("--json", default=None, help="write the figures here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    start = time.time()
    pipe = load_pipeline(args.checkpoint).to(args.device)
    classifier = load_classifier(args.classifier)
    second = load_second_classifier(args.second_classifier)
    data = load_evaluation_data(args.data_dir)
    train_x, test_x = data.train_x, data.test_x

    results: dict = {"checkpoint": args.checkpoint, "sample_steps": args.sample_steps, "seed": args.seed}
    if args.num_samples:
        samples = quantize(generate(pipe, args.num_samples, args.sample_steps, args.batch_size, args.seed))
        if args.samples_png:
            save_image_grid((samples[:64] + 1) / 2, args.samples_png, ncols=8)
        results["quality"] = sample_quality(samples, classifier, train_x, test_x, args.seed, second)
    if args.elbo_images:
        x0 = test_x[: args.elbo_images]
        k = args.elbo_timesteps or None
        est = []
        for i in tqdm(range(0, len(x0), 64), desc="ELBO"):
            batch = x0[i : i + 64].to(pipe.device)
            est.append(elbo_bpd(pipe.unet, pipe.scheduler, batch, k, torch.Generator().manual_seed(i)))
        elbo = ELBOEstimate.cat(est)
        results["elbo"] = {
            "images": len(x0),
            "terms_per_image": "all" if k is None else f"{k} (stratified Monte-Carlo, unbiased)",
            "bits_per_dim": elbo.mean,
            "standard_error": elbo.standard_error,
            "prior_L_T": elbo.prior.mean().item(),
            "decoder_L_0": elbo.decoder.mean().item(),
        }
    results["wall_s"] = round(time.time() - start, 1)

    if "quality" in results:
        q = results["quality"]
        print(
            f"Fréchet distance (classifier features), N={q['n']}: {q['frechet_distance']:.3f} "
            f"(real floor, train vs test: {q['frechet_distance_real_floor']:.3f}; "
            f"ratio {q['frechet_distance'] / q['frechet_distance_real_floor']:.1f}×)"
        )
        if "second_space" in q:
            s2 = q["second_space"]
            print(
                f"Fréchet distance (independent network's features): {s2['frechet_distance']:.3f} "
                f"(real floor {s2['frechet_distance_real_floor']:.3f}; ratio {s2['fd_ratio']:.1f}×)"
            )
        print(f"Mean max-softmax: {q['mean_max_softmax']:.3f}")
        print("Class histogram: " + ", ".join(f"{k} {v}" for k, v in q["class_histogram"].items()))
    if "elbo" in results:
        e = results["elbo"]
        print(
            f"ELBO on {e['images']} test images: {e['bits_per_dim']:.3f} ± {e['standard_error']:.3f} bits/dim "
            f"(terms per image: {e['terms_per_image']}; L_T {e['prior_L_T']:.2e}, L_0 {e['decoder_L_0']:.3f})"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
