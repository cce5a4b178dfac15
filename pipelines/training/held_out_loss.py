"""Held-out loss: how well checkpoints predict the noise on test images none of them trained on, compared in pairs.

    python -m pipelines.training.held_out_loss --checkpoints checkpoints/fashion-mnist-32-cond \
        runs/fm32-cond-cont/pipeline --json held-out.json

Every checkpoint sees the same test images x₀, the same timesteps t (uniform over 0 … T−1) and the same noise ε,
each image with its own class (a class-conditional model; ``--null-label`` asks for ∅ instead). Its score is the
unweighted ε-MSE ‖ε − ε̂(x_t, t)‖² per image, ε̂ read from whatever the network predicts (ε, x₀ or v; a learned Σ_θ's
channels left out): L_simple on held-out data. Because the inputs are shared, the difference of two checkpoints is
measured image by image, and its standard error is that of the paired differences: a few ten-thousandths of the loss
tell two milestones of one training run apart where the sample measures (FD, class accuracy on 1,000 samples) move
by less than their own noise. Differences are given against the first checkpoint, overall, per band of t and per
class.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pipelines.loading import load_pipeline
from pipelines.objective import standard_error
from pipelines.scheduler import x0_and_eps_from_model_output
from pipelines.schedules import extract
from pipelines.training.data import DEFAULT_FASHION_MNIST_DIR
from pipelines.training.evaluate import load_evaluation_data

T_BANDS = ((0.0, 0.1), (0.1, 0.3), (0.3, 0.6), (0.6, 1.0))  # fractions of T: low noise (detail) … high noise (layout)


def fixed_inputs(n: int, shape, num_train_timesteps: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, ε) for n images of ``shape`` (C, H, W): t uniform over 0 … T−1 (diffusers' index), ε standard normal."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, num_train_timesteps, (n,), generator=g)
    return t, torch.randn((n, *shape), generator=g)


@torch.no_grad()
def eps_errors(unet, scheduler, x0, t, noise, class_labels=None, batch_size: int = 500) -> torch.Tensor:
    """(N,) ‖ε − ε̂‖² per image (mean over pixels) of ``unet`` at (x_t, t), x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε on
    ``scheduler``'s schedule, whatever the network predicts."""
    tables = scheduler.tables
    channels = x0.shape[1]
    errors = []
    for start in range(0, len(x0), batch_size):
        part = slice(start, start + batch_size)
        x_t = scheduler.q_sample(x0[part], t[part], noise[part])
        labels = None if class_labels is None else class_labels[part]
        out = unet(x_t, t[part], class_labels=labels).sample[:, :channels]  # a learned Σ_θ's channels left out
        sqrt_ab = extract(tables.sqrt_alphas_cumprod, t[part], x_t.shape, x_t.dtype)
        sqrt_1mab = extract(tables.sqrt_one_minus_alphas_cumprod, t[part], x_t.shape, x_t.dtype)
        _, eps = x0_and_eps_from_model_output(scheduler.config.prediction_type, out, x_t, sqrt_ab, sqrt_1mab)
        errors.append((eps - noise[part]).square().flatten(1).mean(1))
    return torch.cat(errors)


def mean_and_error(values: torch.Tensor) -> dict:
    """The mean of per-image values and its standard error."""
    n = len(values)
    return {"mean": values.mean().item(), "se": standard_error(values), "n": n}


def compare(errors: dict[str, torch.Tensor], t, labels, num_train_timesteps: int, class_names) -> dict:
    """Per checkpoint: its ε-MSE, and its paired difference from the first checkpoint's, overall, per band of t
    (``T_BANDS``) and per class."""
    reference = next(iter(errors.values()))
    groups = {"all": torch.ones_like(t, dtype=torch.bool)}
    for lo, hi in T_BANDS:
        a, b = round(lo * num_train_timesteps), round(hi * num_train_timesteps)
        groups[f"t in [{a + 1}, {b}]"] = (t >= a) & (t < b)  # the paper's t: diffusers' index + 1
    for c, name in enumerate(class_names):
        groups[name] = labels == c
    report = {}
    for name, e in errors.items():
        report[name] = {
            group: {"eps_mse": mean_and_error(e[m]), "minus_first": mean_and_error(e[m] - reference[m])}
            for group, m in groups.items()
            if m.any()
        }
    return report


def markdown_table(report: dict) -> str:
    """One row per group (all, bands of t, classes), one column per checkpoint: ε-MSE, and after the first the
    paired difference from it ± its standard error."""
    names = list(report["checkpoints"])
    first = names[0]
    rows = [
        f"| images | {first} | " + " | ".join(f"{n} − {first}" for n in names[1:]) + " |",
        "|---" * len(names) + "|---|",
    ]
    for group, ref in report["checkpoints"][first].items():
        cells = [f"{ref['eps_mse']['mean']:.5f}"]
        for n in names[1:]:
            d = report["checkpoints"][n][group]["minus_first"]
            cells.append(f"{d['mean']:+.6f} ± {d['se']:.6f}")
        rows.append(f"| {group} ({ref['eps_mse']['n']:,}) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", nargs="+", help="pipeline folders; differences are against the first")
    p.add_argument("--data-dir", default=DEFAULT_FASHION_MNIST_DIR, help="Fashion-MNIST IDX files")
    p.add_argument("--data-folder", default=None, help="a labelled image folder's test/ images instead")
    p.add_argument("--num-images", type=int, default=None, help="the first N test images (default: all)")
    p.add_argument("--null-label", action="store_true", help="ask a class-conditional model for ∅, not the class")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="write the report here")
    p.add_argument("--table", action="store_true", help="print --json's report as Markdown, and stop")
    args = p.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(Path(args.json).read_text())))
        return
    if not args.checkpoints:
        p.error("--checkpoints: name at least one pipeline folder")
    if args.threads:
        torch.set_num_threads(args.threads)
    pipes = {path: load_pipeline(path) for path in args.checkpoints}
    first = next(iter(pipes.values()))
    T, shape = first.scheduler.config.num_train_timesteps, first.sample_shape
    for path, pipe in pipes.items():
        if pipe.scheduler.config.num_train_timesteps != T or pipe.sample_shape != shape:
            raise SystemExit(f"{path}: its T or image shape differs from the first checkpoint's; no pairs to compare.")
    channels = shape[0]
    data = load_evaluation_data(args.data_dir, args.data_folder, channels)
    x0, labels = data.test_x[: args.num_images], data.test_y[: args.num_images]
    if tuple(x0.shape[1:]) != tuple(shape):
        raise SystemExit(f"The test images are {tuple(x0.shape[1:])}; the checkpoints draw {tuple(shape)}.")
    t, noise = fixed_inputs(len(x0), x0.shape[1:], T, args.seed)
    errors = {}
    for path, pipe in pipes.items():
        conditional = pipe.null_class_label is not None
        asked = torch.full_like(labels, pipe.null_class_label) if conditional and args.null_label else labels
        labels_asked = asked if conditional else None
        errors[path] = eps_errors(pipe.unet, pipe.scheduler, x0, t, noise, labels_asked, args.batch_size)
    report = {
        "data": data.source,
        "num_images": len(x0),
        "seed": args.seed,
        "null_label": args.null_label,
        "checkpoints": compare(errors, t, labels, T, data.class_names),
    }
    print(markdown_table(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
