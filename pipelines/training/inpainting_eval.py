"""Inpainting measured: RePaint against the naive method (replace the known region at each step, never go back), on
test images with each mask preset, scored by the committed classifier.

    python -m pipelines.training.inpainting_eval --checkpoint checkpoints/fashion-mnist-32-cond --num-images 200 \\
        --jumps 1,5 --json checkpoints/fashion-mnist-32-cond/evaluation/inpainting.json

For each preset and ``jump_n_sample`` J (1 is the naive method): the class agreement of the completed images with the
original images' labels (the model is asked for no class: the kept pixels must carry it), the Fréchet distance of the
completed images to the test set beside its real floor in both feature spaces, and the model evaluations per image.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pipelines.loading import load_pipeline
from pipelines.repaint import MASK_PRESETS, moves_down, preset_mask, repaint, repaint_timesteps
from pipelines.training.classifier import predict
from pipelines.training.data import FASHION_MNIST_CLASSES, load_fashion_mnist, uint8_to_model_range
from pipelines.training.evaluate import add_scoring_arguments, scorer_from
from pipelines.training.visualize import save_image_grid


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="checkpoints/fashion-mnist-32-cond")
    p.add_argument("--num-images", type=int, default=200)
    p.add_argument("--steps", type=int, default=50, help="reverse steps of each run (T/steps apart)")
    p.add_argument("--jump-length", type=int, default=10)
    p.add_argument("--jumps", default="1,5", help="jump_n_sample values; 1 is the naive method")
    p.add_argument("--eta", type=float, default=1.0)
    p.add_argument("--presets", default=",".join(MASK_PRESETS))
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--grid", default=None, help="a PNG: per preset, rows of originals, kept pixels and each J's fill")
    p.add_argument("--grid-images", type=int, default=10, help="images per row of --grid")
    p.add_argument("--table", action="store_true", help="print the JSON's results as Markdown tables, and stop")
    add_scoring_arguments(p)
    return p.parse_args(argv)


def _per_class(predicted: torch.Tensor, labels: torch.Tensor) -> dict:
    """The class agreement of each class (its share of that class's images read as that class)."""
    return {
        "class_agreement_per_class": {
            name: (predicted[labels == c] == c).float().mean().item()
            for c, name in enumerate(FASHION_MNIST_CLASSES)
            if (labels == c).any()
        }
    }


def evaluate(args) -> dict:
    pipe = load_pipeline(args.checkpoint)
    pipe.set_progress_bar_config(disable=True)
    images, labels = load_fashion_mnist(args.data_dir, "test")
    pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(args.seed))[: args.num_images]
    x0, y = uint8_to_model_range(images[pick]), labels[pick]
    scorer = scorer_from(args, args.num_images)
    T = pipe.scheduler.config.num_train_timesteps
    results, rows = {}, []  # rows: the --grid's, in [−1, 1]
    originals = predict(scorer.classifier, x0)[1].argmax(-1)
    reference = {"class_agreement": (originals == y).float().mean().item(), **_per_class(originals, y)}
    for preset in args.presets.split(","):
        keep = preset_mask(preset, x0.shape[-2], x0.shape[-1], args.seed)
        shown = x0[: args.grid_images]
        rows += [shown, torch.where(keep.bool(), shown, torch.zeros_like(shown))]  # the regenerated region grey
        for jumps in [int(j) for j in args.jumps.split(",")]:
            nfe = sum(moves_down(repaint_timesteps(T, args.steps, args.jump_length, jumps)[0]))
            started, out = time.perf_counter(), []
            generator = torch.Generator().manual_seed(args.seed)
            for start in range(0, len(x0), args.batch_size):
                batch = x0[start : start + args.batch_size]
                out.append(
                    repaint(
                        pipe,
                        batch,
                        keep.expand(len(batch), -1, -1, -1),
                        num_inference_steps=args.steps,
                        jump_length=args.jump_length,
                        jump_n_sample=jumps,
                        eta=args.eta,
                        generator=generator,
                    )
                )
            completed = torch.cat(out).clamp(-1, 1)
            rows.append(completed[: args.grid_images])
            predicted = predict(scorer.classifier, completed)[1].argmax(-1)
            quality = scorer(completed, y)
            results[f"{preset} / J={jumps}"] = {
                "preset": preset,
                "jump_n_sample": jumps,
                "nfe_per_image": nfe,
                "class_agreement": (predicted == y).float().mean().item(),
                **_per_class(predicted, y),
                "fd_ratio": quality["fd_ratio"],
                "second_space_fd_ratio": quality.get("second_space", {}).get("fd_ratio"),
                "third_space_fd_ratio": quality.get("third_space", {}).get("fd_ratio"),
                "wall_s": time.perf_counter() - started,
            }
            print(json.dumps({k: v for k, v in results[f"{preset} / J={jumps}"].items()}))
    if args.grid:
        save_image_grid((torch.cat(rows) + 1) / 2, args.grid, ncols=len(rows[0]), scale=3)
    return {
        "checkpoint": args.checkpoint,
        "num_images": args.num_images,
        "steps": args.steps,
        "jump_length": args.jump_length,
        "eta": args.eta,
        "classes": list(FASHION_MNIST_CLASSES),
        "originals": reference,
        "results": results,
    }


def markdown_tables(report: dict) -> str:
    """The report as two Markdown tables: each preset and J overall, then the class agreement per class."""
    rows = list(report["results"].values())
    lines = [
        "| mask | method | model evaluations per image | class agreement | FD / floor (convnet) | FD / floor (resnet) "
        "| wall s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        method = "naive (J = 1)" if r["jump_n_sample"] == 1 else f"RePaint (J = {r['jump_n_sample']})"
        second = r.get("second_space_fd_ratio")
        lines.append(
            f"| {r['preset']} | {method} | {r['nfe_per_image']} | {100 * r['class_agreement']:.1f} % "
            f"| {r['fd_ratio']:.2f}× | {f'{second:.2f}×' if second else '–'} | {r['wall_s']:.0f} |"
        )
    classes = report["classes"]
    lines += ["", "| mask | method | " + " | ".join(classes) + " |", "|---|---|" + "---|" * len(classes)]
    per_class = lambda d: " | ".join(f"{100 * d[c]:.0f}" if c in d else "–" for c in classes)
    lines.append(f"| (the originals) | | {per_class(report['originals']['class_agreement_per_class'])} |")
    for r in rows:
        lines.append(f"| {r['preset']} | J = {r['jump_n_sample']} | {per_class(r['class_agreement_per_class'])} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.table:
        print(markdown_tables(json.loads(Path(args.json).read_text())))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    report = evaluate(args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
