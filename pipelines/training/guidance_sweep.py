"""Classifier-free guidance against quality: one sampler of a class-conditional checkpoint at several guidance
scales w, on the same seeds (so the same x_T at every w), 100 samples per class at N = 1,000.

    python -m pipelines.guidance_sweep --checkpoint checkpoints/fashion-mnist-32-cond --sampler ddpm --steps 100 \\
        --guidance 0,1,2,3,5,8 --json checkpoints/fashion-mnist-32-cond/evaluation/guidance_ddpm100.json \\
        --plot checkpoints/fashion-mnist-32-cond/guidance.png --grid guidance_grid.png

For each w it reports how often the committed classifier sees the class that was asked for (class accuracy, and per
class), the Fréchet distance in its feature space and in the independent network's (``second_space``) and the no-flip
judge's (``third_space``, with their class accuracy too), each against its own real floor, the mean max-softmax and
the wall time. w = 0 is the unconditional model (every label the null label), w = 1 the plain
conditional one. The fidelity-diversity trade-off shows as class accuracy rising with w while the distances, which
also see diversity, fall and then rise again. ``recommend`` picks the w the checkpoint ships with (see its rule).
Points already in the JSON are kept, so an interrupted sweep resumes.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from pipelines.objective import quantize
from pipelines.samplers import get_sampler
from pipelines.training.evaluate import (
    OTHER_SPACES,
    accuracy_cell,
    add_sampling_arguments,
    add_scoring_arguments,
    conditional_pipeline,
    other_spaces_summary,
    scorer_from,
    space_cell,
    worst_fd_ratio,
)
from pipelines.training.sampler_sweep import generate_with, resume_results
from pipelines.training.visualize import save_image_grid

# What a recommended w must reach (the model issue's bar): the class asked for, and confident samples
MIN_CLASS_ACCURACY = 0.95
MIN_MEAN_MAX_SOFTMAX = 0.90


def surely_accurate(point: dict) -> bool:
    """Class accuracy at least 95 % by a margin of one binomial standard error √(a(1−a)/n), so that another seed's
    1,000 samples would most likely clear the bar too."""
    a = point["class_accuracy"]
    return a - math.sqrt(a * (1 - a) / point["n"]) >= MIN_CLASS_ACCURACY


def recommend(points: dict) -> float | None:
    """The w to ship: of the scales whose samples are the class asked for at least 95 % of the time (by one standard
    error) with a mean max-softmax of at least 0.90, the one with the smallest Fréchet distance in the worst of the
    feature spaces it was measured in (:func:`worst_fd_ratio`: the no-flip judge's too; guidance beyond it buys
    fidelity with diversity); if none qualifies, the one with the highest
    class accuracy; None before any w > 0 was measured."""
    conditional = [p for p in points.values() if p["guidance_scale"] > 0]
    if not conditional:
        return None
    good = [p for p in conditional if surely_accurate(p) and p["mean_max_softmax"] >= MIN_MEAN_MAX_SOFTMAX]
    if good:
        return min(good, key=worst_fd_ratio)["guidance_scale"]
    return max(conditional, key=lambda p: p["class_accuracy"])["guidance_scale"]


def plot_guidance(results: dict, path: str) -> None:
    """Class accuracy and FD / real floor (every space) against w: the fidelity-diversity trade-off."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted(results["points"].values(), key=lambda p: p["guidance_scale"])
    w = [p["guidance_scale"] for p in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    left.plot(w, [100 * p["class_accuracy"] for p in points], marker="o", label="class accuracy")
    left.plot(w, [100 * p["mean_max_softmax"] for p in points], marker="s", ls="--", label="mean max-softmax")
    left.axhline(100 * MIN_CLASS_ACCURACY, color="grey", lw=0.8, ls=":")
    left.set_ylabel("%  (committed classifier unless named)")
    right.plot(w, [p["fd_ratio"] for p in points], marker="o", label="committed classifier's features")
    for key, network in OTHER_SPACES.items():
        if all(key in p for p in points):
            right.plot(w, [p[key]["fd_ratio"] for p in points], marker="o", label=f"{network}'s features")
    if all("class_accuracy" in p.get("third_space", {}) for p in points):
        third = [100 * p["third_space"]["class_accuracy"] for p in points]
        left.plot(w, third, marker="^", label="class accuracy, no-flip judge")
    right.axhline(3, color="grey", lw=0.8, ls=":")
    right.set_yscale("log")
    right.set_ylabel("Fréchet distance / real floor")
    for ax in (left, right):
        ax.set_xlabel("guidance scale w (0: unconditional, 1: conditional)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    recommended = results.get("recommended_guidance_scale")
    for ax in (left, right):
        if recommended is not None:
            ax.axvline(recommended, color="tab:green", lw=0.8)
    name = Path(results["checkpoint"]).name
    fig.suptitle(
        f"{name}: {get_sampler(results['sampler']).name}, {results['steps']} steps, {results['num_samples']} samples "
        f"per w (100 per class); green: recommended w",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown_table(results: dict) -> str:
    rows = [
        "| w | class accuracy | class accuracy, no-flip | FD (× real floor) | FD, 2nd space (× its floor) "
        "| FD, no-flip space (× its floor) | mean max-softmax | smallest class | wall s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in sorted(results["points"].values(), key=lambda p: p["guidance_scale"]):
        rows.append(
            f"| {p['guidance_scale']:g} | {100 * p['class_accuracy']:.1f} % | {accuracy_cell(p, 'third_space')} "
            f"| {p['frechet_distance']:.2f} ({p['fd_ratio']:.1f}×) | {space_cell(p, 'second_space')} "
            f"| {space_cell(p, 'third_space')} | {p['mean_max_softmax']:.3f} | {p['min_class_fraction']:.3f} "
            f"| {p['wall_s']:.0f} |"
        )
    return "\n".join(rows)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="checkpoints/fashion-mnist-32-cond")
    add_scoring_arguments(p)
    add_sampling_arguments(p, sampler="ddpm", steps=100)
    p.add_argument("--guidance", default="0,1,2,3,5,8", help="comma-separated guidance scales w")
    p.add_argument("--json", required=True, help="results, read first to resume and rewritten after every point")
    p.add_argument("--plot", default=None, help="class accuracy and FD against w, as a PNG")
    p.add_argument(
        "--grid", default=None, help="a PNG: one row per w, one sample per class, the same x_T down a column"
    )
    p.add_argument("--samples-out", default=None, help="every point's samples as uint8, in one .safetensors file")
    p.add_argument("--table", action="store_true", help="print the JSON's results as a Markdown table, and stop")
    args = p.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(Path(args.json).read_text())))
        return
    pipe = conditional_pipeline(args, "guidance")
    classes = pipe.null_class_label
    labels = pipe.balanced_class_labels(args.num_samples)
    score = scorer_from(args, args.num_samples)

    path = Path(args.json)
    setup = {
        "checkpoint": args.checkpoint,
        "sampler": args.sampler,
        "steps": args.steps,
        "num_samples": args.num_samples,
        "seed": args.seed,
    }
    results = resume_results(path, setup)
    kept = {}  # uint8 samples per w, for the grid and --samples-out
    for w in (float(x) for x in args.guidance.split(",")):
        key = f"w={w:g}"
        if key in results["points"] and not (args.grid or args.samples_out):
            continue
        samples, wall = generate_with(
            pipe, args.sampler, args.steps, args.num_samples, args.batch_size, args.seed, labels, w
        )
        samples = quantize(samples)
        kept[key] = ((samples + 1) * 127.5).round().to(torch.uint8)
        if key in results["points"]:
            continue
        q = score(samples, labels)
        results["points"][key] = {"guidance_scale": w, **q, "wall_s": round(wall, 1)}
        print(
            f"{key}: class accuracy {100 * q['class_accuracy']:.1f} %, FD {q['fd_ratio']:.2f}× floor"
            f"{other_spaces_summary(q)}, "
            f"max-softmax {q['mean_max_softmax']:.3f}, {wall:.0f} s",
            flush=True,
        )
        results["recommended_guidance_scale"] = recommend(results["points"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2))
        if args.plot:
            plot_guidance(results, args.plot)
    print(f"Recommended w: {results.get('recommended_guidance_scale')}")
    if args.grid and kept:
        rows = [kept[k][:classes] for k in sorted(kept, key=lambda k: float(k[2:]))]  # one of each class
        save_image_grid(torch.cat(rows).float() / 255, args.grid, ncols=classes)
    if args.samples_out and kept:
        from safetensors.torch import save_file

        save_file(
            {k: v.contiguous() for k, v in kept.items()}, args.samples_out, metadata={"setup": json.dumps(setup)}
        )


if __name__ == "__main__":
    main()
