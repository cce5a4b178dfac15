"""Evaluate a checkpoint: sample quality in the classifiers' feature spaces, and the ELBO in bits/dim.

    python -m pipelines.evaluate --checkpoint checkpoints/fashion-mnist-32 --num-samples 1000 --sample-steps 100

Prints the Fréchet distance of the samples against the test set beside the real-data floor (train against test, same
N) in each judge's space (the committed classifier's; ``second_space``, the independent ResNet's; ``third_space``,
the no-flip judge's, which sees a shoe pointing the wrong way), the mean max-softmax, the class histogram, and the
variational bound on test images (mean ± standard error). ``--elbo-fixed-variance``, for a model with a learned
Σ_θ: the same UNet's bound with Σ fixed at β̃_t too (the same μ_θ), on the same images, timesteps and noise, and the
paired difference: what learning Σ alone changes in the bound.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from pipelines.guidance import Guidance
from pipelines.loading import load_pipeline
from pipelines.objective import ELBOEstimate, elbo_bpd, quantize, standard_error
from pipelines.scheduler import LEARNED_VARIANCE_TYPES
from pipelines.training.classifier import (
    CONFIG_FILE,
    DEFAULT_CLASSIFIER_DIR,
    SECOND_CLASSIFIER_DIR,
    THIRD_CLASSIFIER_DIR,
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

    def distance(self, samples: torch.Tensor, class_labels=None, class_names=FASHION_MNIST_CLASSES) -> dict:
        """The samples' Fréchet distance to the test images beside this space's floor and, given the labels asked
        for, how often this network reads them (:func:`class_accuracy`)."""
        features, p_samples = predict(self.net, samples)
        fd = frechet_distance(*gaussian_stats(features), *self.test_stats)
        out = {"frechet_distance": fd, "frechet_distance_real_floor": self.floor, "fd_ratio": fd / self.floor}
        if class_labels is not None:
            out |= class_accuracy(p_samples.argmax(-1), class_labels, class_names)
        return out


def class_accuracy(predicted: torch.Tensor, class_labels: torch.Tensor, class_names) -> dict:
    """How often a classifier reads the class that was asked for, over all samples and per class asked for."""
    asked = class_labels.cpu()
    hit = (predicted == asked).float()
    return {
        "class_accuracy": hit.mean().item(),
        "class_accuracy_per_class": {
            name: hit[asked == c].mean().item() for c, name in enumerate(class_names) if (asked == c).any()
        },
    }


class SampleScorer:
    """Scores sets of ``n`` samples: the committed classifier's view (Fréchet distance and floor in its feature space,
    mean max-softmax, class histogram over ``class_names`` (default: Fashion-MNIST's), and, given the labels asked
    for, class accuracy) and, given ``second_classifier`` and ``third_classifier`` (the no-flip judge), the distance
    and class accuracy in those spaces too (``second_space``, ``third_space``). The real images' features are
    computed once, so a sweep scores each point against the same real subsets at the cost of its samples alone."""

    def __init__(
        self,
        classifier,
        train_x,
        test_x,
        n: int,
        seed: int = 0,
        second_classifier=None,
        class_names=None,
        third_classifier=None,
    ):
        g = torch.Generator().manual_seed(seed)
        self.class_names = tuple(class_names or FASHION_MNIST_CLASSES)
        train_sub = train_x[torch.randperm(len(train_x), generator=g)[:n]]
        test_sub = test_x[torch.randperm(len(test_x), generator=g)[:n]]
        self.n, self.classifier = n, classifier
        self.first = FeatureSpace(classifier, train_sub, test_sub)
        self.others = {  # the spaces beside the committed classifier's, by their key in the scores
            key: FeatureSpace(net, train_sub, test_sub)
            for key, net in (("second_space", second_classifier), ("third_space", third_classifier))
            if net is not None
        }

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
            quality |= class_accuracy(predicted, class_labels, self.class_names)
        for key, space in self.others.items():
            quality[key] = space.distance(samples, class_labels, self.class_names)
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
    parser.add_argument(
        "--third-classifier",
        default=None,
        help=f"a judge trained without flips (default: {THIRD_CLASSIFIER_DIR.name} for Fashion-MNIST, where it is "
        "there; '' for none)",
    )
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


OTHER_SPACES = {"second_space": "independent network", "third_space": "no-flip judge"}  # a point's key: whose space


def space_scores(point: dict) -> dict:
    """A scored point's figures in each space it was measured in, by key (``first`` the committed classifier's)."""
    return {"first": point, **{key: point[key] for key in OTHER_SPACES if key in point}}


def worst_fd_ratio(point: dict) -> float:
    """The largest of a scored point's FD / real-floor ratios: it must look right to every network."""
    return max(s["fd_ratio"] for s in space_scores(point).values())


def parse_interval(text: str) -> tuple[float, float] | None:
    """A guidance interval as the command lines write it: ``LO-HI`` in the paper's t (t = 0 data, t = T noise), or
    ``none`` (or empty) for every step."""
    text = text.strip()
    if text.lower() in ("", "none"):
        return None
    lo, sep, hi = text.partition("-")
    try:
        interval = (float(lo), float(hi))
    except ValueError:
        interval = None
    if not sep or interval is None or not 0 <= interval[0] <= interval[1]:
        raise SystemExit(f"A guidance interval is LO-HI with 0 ≤ LO ≤ HI (the paper's t) or none, got {text!r}.")
    return interval


def command_line_guidance(pipe, w: float | None, interval: str | None, rescale: float | None) -> Guidance:
    """The guidance an evaluation command samples a class-conditional checkpoint with: the command line's w (one for
    every class), interval (``LO-HI`` or ``none``) and φ where it gives them, else the checkpoint's recommendation,
    the app's defaults (a w per class where it records them). A value out of range exits, saying which."""
    recommended = pipe.recommended_guidance()
    scale, class_scales = (recommended.scale, recommended.class_scales) if w is None else (w, None)
    interval = recommended.interval if interval is None else parse_interval(interval)
    rescale = recommended.rescale if rescale is None else rescale
    if not 0 <= rescale <= 1:
        raise SystemExit(f"--guidance-rescale takes φ in [0, 1], got {rescale}.")
    try:
        return Guidance(scale, rescale, interval, class_scales)
    except ValueError as e:  # one line, no traceback
        raise SystemExit(str(e)) from None


def guidance_label(w: float, interval: tuple[float, float] | None = None, rescale: float = 0.0) -> str:
    """A guidance setting's key: ``w=2`` plainly (as sweeps before interval and φ named their points), else
    ``w=2,t=50-600,phi=0.7`` with the parts that are set."""
    parts = [f"w={w:g}"]
    if interval is not None:
        parts.append(f"t={interval[0]:g}-{interval[1]:g}")
    if rescale:
        parts.append(f"phi={rescale:g}")
    return ",".join(parts)


def space_cell(point: dict, key: str) -> str:
    """A Markdown table cell: the FD in the space ``key`` and its ratio to that space's floor, or – where not
    measured."""
    s = point.get(key)
    return f"{s['frechet_distance']:.2f} ({s['fd_ratio']:.1f}×)" if s else "–"


def accuracy_cell(point: dict, key: str) -> str:
    """A Markdown table cell: the class accuracy in the space ``key``, or – where not measured."""
    s = point.get(key, {})
    return f"{100 * s['class_accuracy']:.1f} %" if "class_accuracy" in s else "–"


def other_spaces_summary(point: dict) -> str:
    """The FD / real-floor ratio in each space but the first, for a progress line: ", independent network 1.2×, …"."""
    return "".join(f", {name} {point[key]['fd_ratio']:.1f}×" for key, name in OTHER_SPACES.items() if key in point)


def judge_dirs(args) -> dict[str, str]:
    """The judges' folders of a sweep's command line (``--classifier``, ``--second-classifier``,
    ``--third-classifier``: :func:`third_classifier_dir`) by the quality report's keys ``convnet``, ``resnet`` and
    ``noflip``; an empty folder is a judge left out."""
    return {"convnet": args.classifier, "resnet": args.second_classifier, "noflip": third_classifier_dir(args)}


def judges_from(args) -> dict:
    """The judges of a sweep's command line (:func:`judge_dirs`) by the same keys: ``convnet``, and ``resnet`` and
    ``noflip`` where their folders are there."""
    directories = judge_dirs(args)
    nets = {"convnet": load_classifier(directories.pop("convnet"))}
    for key, directory in directories.items():
        net = load_second_classifier(directory)
        if net is not None:
            nets[key] = net
    return nets


def scorer_from(args, n: int, nets: dict | None = None, data: EvaluationData | None = None) -> SampleScorer:
    """The :class:`SampleScorer` of a sweep's command line (:func:`judges_from`, ``--data-dir``, ``--seed``) for sets
    of ``n`` samples (``nets`` and ``data``: those already loaded)."""
    nets = nets or judges_from(args)
    data = data or load_evaluation_data(args.data_dir)
    return SampleScorer(
        nets["convnet"],
        data.train_x,
        data.test_x,
        n,
        args.seed,
        nets.get("resnet"),
        third_classifier=nets.get("noflip"),
    )


def third_classifier_dir(args) -> str:
    """``--third-classifier``, or by default the no-flip judge, which reads Fashion-MNIST's classes only: none for a
    ``--data-folder``."""
    if args.third_classifier is not None:
        return args.third_classifier
    return "" if getattr(args, "data_folder", None) else str(THIRD_CLASSIFIER_DIR)


def sample_quality(
    samples,
    classifier,
    train_x,
    test_x,
    seed: int = 0,
    second_classifier=None,
    class_labels=None,
    third_classifier=None,
):
    """One set of samples scored by a :class:`SampleScorer` of its size."""
    scorer = SampleScorer(
        classifier, train_x, test_x, len(samples), seed, second_classifier, third_classifier=third_classifier
    )
    return scorer(samples, class_labels)


def load_second_classifier(directory):
    """An optional evaluation network (the independent one, the no-flip judge), or None when its folder is not there
    (``--second-classifier ''``, ``--third-classifier ''``)."""
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
            "--classifier (and --second-classifier and --third-classifier, or '' for none) trained on that data."
        )


def bound(unet, scheduler, x0: torch.Tensor, k: int | None) -> ELBOEstimate:
    """Each image's bound (:func:`~pipelines.objective.elbo_bpd`, ``k`` terms) in batches of 64, the timesteps and
    noise of the batch starting at image i drawn from seed i: two schedulers on the same images see the same draws,
    so their bounds pair image by image."""
    est = []
    for i in tqdm(range(0, len(x0), 64), desc="ELBO"):
        batch = x0[i : i + 64].to(unet.device)
        est.append(elbo_bpd(unet, scheduler, batch, k, torch.Generator().manual_seed(i)))
    return ELBOEstimate.cat(est)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="checkpoints/fashion-mnist-32")
    add_scoring_arguments(p)
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--sample-steps", type=int, default=100, help="respaced ancestral steps (None: all T)")
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--elbo-images", type=int, default=256, help="test images for the bound (0 skips it)")
    p.add_argument("--elbo-timesteps", type=int, default=50, help="stratified MC terms per image; 0 = all T−1")
    p.add_argument(
        "--elbo-fixed-variance",
        action="store_true",
        help="a learned-Σ_θ model: also the bound of the same UNet with Σ fixed at β̃_t, on the same images, "
        "timesteps and noise, and the paired difference",
    )
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
    third = load_second_classifier(third_classifier_dir(args))
    data = load_evaluation_data(args.data_dir)
    train_x, test_x = data.train_x, data.test_x

    results: dict = {"checkpoint": args.checkpoint, "sample_steps": args.sample_steps, "seed": args.seed}
    if args.num_samples:
        samples = quantize(generate(pipe, args.num_samples, args.sample_steps, args.batch_size, args.seed))
        if args.samples_png:
            save_image_grid((samples[:64] + 1) / 2, args.samples_png, ncols=8)
        results["quality"] = sample_quality(
            samples, classifier, train_x, test_x, args.seed, second, third_classifier=third
        )
    learned = pipe.scheduler.config.variance_type in LEARNED_VARIANCE_TYPES
    if args.elbo_fixed_variance and not learned:
        raise SystemExit(f"--elbo-fixed-variance: {args.checkpoint} fixes Σ already; it has no learned Σ_θ.")
    if args.elbo_images:
        x0 = test_x[: args.elbo_images]
        k = args.elbo_timesteps or None
        elbo = bound(pipe.unet, pipe.scheduler, x0, k)
        results["elbo"] = {
            "images": len(x0),
            "terms_per_image": "all" if k is None else f"{k} (stratified Monte-Carlo, unbiased)",
            "bits_per_dim": elbo.mean,
            "standard_error": elbo.standard_error,
            "prior_L_T": elbo.prior.mean().item(),
            "decoder_L_0": elbo.decoder.mean().item(),
        }
        if args.elbo_fixed_variance:
            fixed_scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config, variance_type="fixed_small")
            fixed = bound(pipe.unet, fixed_scheduler, x0, k)
            difference = elbo.total - fixed.total  # paired: the same images, timesteps and noise
            results["elbo"]["same_unet_sigma_fixed_at_beta_tilde"] = {
                "bits_per_dim": fixed.mean,
                "standard_error": fixed.standard_error,
                "decoder_L_0": fixed.decoder.mean().item(),
                "learned_minus_fixed": difference.mean().item(),
                "learned_minus_fixed_standard_error": standard_error(difference),
                "share_of_images_lower_with_learned": (difference < 0).float().mean().item(),
            }
    results["wall_s"] = round(time.time() - start, 1)

    if "quality" in results:
        q = results["quality"]
        print(
            f"Fréchet distance (classifier features), N={q['n']}: {q['frechet_distance']:.3f} "
            f"(real floor, train vs test: {q['frechet_distance_real_floor']:.3f}; "
            f"ratio {q['frechet_distance'] / q['frechet_distance_real_floor']:.1f}×)"
        )
        for key, network in OTHER_SPACES.items():
            if key in q:
                s = q[key]
                print(
                    f"Fréchet distance ({network}'s features): {s['frechet_distance']:.3f} "
                    f"(real floor {s['frechet_distance_real_floor']:.3f}; ratio {s['fd_ratio']:.1f}×)"
                )
        print(f"Mean max-softmax: {q['mean_max_softmax']:.3f}")
        print("Class histogram: " + ", ".join(f"{k} {v}" for k, v in q["class_histogram"].items()))
    if "elbo" in results:
        e = results["elbo"]
        print(
            f"ELBO on {e['images']} test images: {e['bits_per_dim']:.3f} ± {e['standard_error']:.3f} bits/dim "
            f"(terms per image: {e['terms_per_image']}; L_T {e['prior_L_T']:.2e}, L_0 {e['decoder_L_0']:.3f})"
        )
        f = e.get("same_unet_sigma_fixed_at_beta_tilde")
        if f:
            print(
                f"The same UNet with Σ fixed at β̃_t: {f['bits_per_dim']:.3f} ± {f['standard_error']:.3f} bits/dim; "
                f"learned − fixed {f['learned_minus_fixed']:+.3f} ± {f['learned_minus_fixed_standard_error']:.3f} "
                f"(paired), lower for {100 * f['share_of_images_lower_with_learned']:.1f} % of the images"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
