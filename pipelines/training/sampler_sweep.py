"""Quality against steps: every sampler of the registry at several numbers of model evaluations (NFE), on the same
seeds, scored in independent classifiers' feature spaces, each against its own real-data floor.

    python -m pipelines.sampler_sweep --checkpoint checkpoints/fashion-mnist-32 --num-samples 1000 \\
        --samplers ddpm,ddim,dpmsolver++2m,unipc,euler-ancestral --nfe 5,10,20,50,100 --reference 1000 \\
        --json checkpoints/fashion-mnist-32/evaluation/samplers.json --plot checkpoints/fashion-mnist-32/samplers.png

Each point samples N images (seed fixed: every sampler starts from the same x_T) and reports the Fréchet distance to
the test set beside the floor (train against test, same N) in the committed classifier's space and in the second,
independent network's (``second_space``) and the no-flip judge's (``third_space``, with its class accuracy for a
class-conditional model), where those networks are installed, the mean max-softmax, the smallest class share, the NFE
and the wall time. ``--reference`` adds DDPM at that many steps (all T: 1000). Points already in the
JSON are kept and skipped, so an interrupted sweep resumes where it stopped; the JSON is written after every point,
and all-T DDPM (a million evaluations at 1,000 samples) saves its state every ``--save-every`` steps to ``--partial``,
so that point too resumes where it stopped, with the same result.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from pipelines.loading import load_pipeline
from pipelines.objective import quantize
from pipelines.samplers import SAMPLERS, get_sampler
from pipelines.training.evaluate import (
    OTHER_SPACES,
    accuracy_cell,
    add_scoring_arguments,
    command_line_guidance,
    other_spaces_summary,
    scorer_from,
    space_cell,
    space_scores,
    worst_fd_ratio,
)

# what a sweep written before a setting existed sampled with
SETUP_DEFAULTS = {"guidance_interval": None, "guidance_rescale": 0.0, "guidance_class_scales": None}


def resume_results(path: Path, setup: dict) -> dict:
    """A sweep's results so far: ``setup`` and its ``points`` from the JSON at ``path`` when that holds a sweep with
    the same setup (SystemExit when its setup differs; a key an older JSON lacks counts as its
    :data:`SETUP_DEFAULTS` value), else none yet."""
    results = json.loads(path.read_text()) if path.exists() else {}
    if results and any(results.get(k, SETUP_DEFAULTS.get(k)) != v for k, v in setup.items()):
        raise SystemExit(f"{path} holds a sweep with other settings ({setup}); choose another --json.")
    return {**results, **setup, "points": results.get("points", {})}


def point_key(sampler: str, steps: int) -> str:
    return f"{sampler}@{steps}"


def generate_with(
    pipe,
    sampler: str,
    steps: int,
    n: int,
    batch_size: int,
    seed: int,
    class_labels=None,
    guidance_scale=None,
    partial: Path | None = None,
    save_every: int = 20,
    guidance_rescale: float = 0.0,
    guidance_interval: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, float]:
    """n samples in [−1, 1] from one sampler at ``steps`` steps, and the seconds they took; batch k draws from
    seed + k, so every sampler starts from the same x_T. ``guidance_scale``, ``guidance_rescale`` and
    ``guidance_interval`` as :meth:`~pipelines.pipeline.DDPMExplorerPipeline.iter_trajectory` takes them.

    With ``partial``, a run of all T DDPM steps (the reference: hours on a CPU) saves its state there every
    ``save_every`` steps (the finished batches, x_t and the generator's state) and, started again, resumes from it
    with the same frames it would have made (its seconds count those of the runs before); the file is deleted when
    the point is done.
    """
    began = time.perf_counter()
    scheduler = get_sampler(sampler).scheduler(pipe.scheduler.config)
    eta = 0.0 if get_sampler(sampler).takes_eta else None  # DDIM here is the deterministic η = 0 (η = 1 is DDPM)
    key = {"point": point_key(sampler, steps), "num_samples": n, "batch_size": batch_size, "seed": seed}
    # Only a run of all T steps of ours restarts from x_t alone: its remaining timesteps are all those below t, and
    # its steps keep no history (a respaced run's or a multistep solver's tail would differ).
    resumable = partial is not None and sampler == "ddpm" and steps == pipe.scheduler.config.num_train_timesteps
    saved = load_partial(partial, key) if resumable else None
    out = list(saved["done"].split(batch_size)) if saved and "done" in saved else []
    earlier_s = saved["elapsed_s"] if saved else 0.0
    for k, start in enumerate(tqdm(range(0, n, batch_size), desc=f"{sampler} × {steps}", leave=False)):
        if k < len(out):
            continue
        b = min(batch_size, n - start)
        generator = torch.Generator().manual_seed(seed + k)
        latents, start_timestep, num_inference_steps = None, None, steps
        if saved and "x" in saved:  # x_t of this batch, mid-run: all the steps from there on, the same noise
            generator.set_state(saved["generator_state"])
            latents, start_timestep, num_inference_steps = saved.pop("x"), saved["timestep"], None
        trajectory = pipe.iter_trajectory(
            batch_size=b,
            generator=generator,
            num_inference_steps=num_inference_steps,
            scheduler=scheduler,
            class_labels=None if class_labels is None else class_labels[start : start + b],
            guidance_scale=guidance_scale,
            guidance_rescale=guidance_rescale,
            guidance_interval=guidance_interval,
            eta=eta,
            show_progress=False,
            start_timestep=start_timestep,
            latents=latents,
        )
        for step in trajectory:
            final = step.prev_sample
            if resumable and (step.step_index + 1) % save_every == 0 and step.prev_timestep >= 0:
                running = {"x": final, "timestep": step.prev_timestep, "generator": generator}
                save_partial(partial, key, earlier_s + time.perf_counter() - began, out, running)
        out.append(final.clamp(-1, 1).cpu())
        if resumable:
            save_partial(partial, key, earlier_s + time.perf_counter() - began, out)
    if resumable:
        partial.unlink(missing_ok=True)
    return torch.cat(out), earlier_s + time.perf_counter() - began


def generate_as_asked(pipe, args, class_labels, guidance_scale, guidance_rescale=0.0, guidance_interval=None):
    """:func:`generate_with` at a command line's ``--sampler``, ``--steps``, ``--num-samples``, ``--batch-size`` and
    ``--seed``, with the guidance given."""
    sizes = (args.sampler, args.steps, args.num_samples, args.batch_size, args.seed)
    return generate_with(
        pipe,
        *sizes,
        class_labels,
        guidance_scale,
        guidance_rescale=guidance_rescale,
        guidance_interval=guidance_interval,
    )


def save_partial(path: Path, key: dict, elapsed_s: float, done: list, running: dict | None = None) -> None:
    """A point's state, as safetensors: the seconds spent on it, the finished batches and, mid-batch, ``running``:
    x_t (``x``), its ``timestep`` and the ``generator`` that draws the rest of the batch's noise. Written to a
    temporary file first, so an interruption never leaves half a state."""
    tensors = {"done": torch.cat(done)} if done else {}
    metadata = {k: str(v) for k, v in key.items()} | {"elapsed_s": f"{elapsed_s:.1f}"}
    if running is not None:
        tensors |= {"x": running["x"].float().cpu().contiguous(), "generator_state": running["generator"].get_state()}
        metadata["timestep"] = str(running["timestep"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, tmp, metadata=metadata)
    tmp.replace(path)


def load_partial(path: Path, key: dict) -> dict | None:
    """The state :func:`save_partial` left at ``path`` for the point ``key`` (None when there is none); SystemExit
    when it holds another point's or another setup's."""
    if not path.exists():
        return None
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata()
        state = {name: f.get_tensor(name) for name in f.keys()}
    if any(metadata.get(k) != str(v) for k, v in key.items()):
        raise SystemExit(f"{path} holds the state of another run ({metadata}), not of {key}; delete it to start over.")
    if "timestep" in metadata:
        state["timestep"] = int(metadata["timestep"])
    return state | {"elapsed_s": float(metadata["elapsed_s"])}


def fastest_within(
    results: dict, reference: str | None = "ddpm@100", tolerance: float = 0.1, max_fd_ratio: float | None = None
) -> dict | None:
    """The point with the fewest model evaluations whose Fréchet distance is at most (1 + ``tolerance``) times the
    ``reference`` point's in every feature space the sweep measured (``reference`` None: no such bar) and, given
    ``max_fd_ratio``, at most that many times each space's real floor (ties: the smaller distance); None without
    the reference, or with neither bar. This is how the app's default sampler is chosen (with the default model's
    bar of 3× the floor), and a checkpoint's own."""
    points = results["points"]
    if (reference is not None and reference not in points) or (reference is None and max_fd_ratio is None):
        return None

    def distances(p):
        return {key: s["frechet_distance"] for key, s in space_scores(p).items()}

    good = list(points.values())
    if reference is not None:
        bar = {key: (1 + tolerance) * d for key, d in distances(points[reference]).items()}
        good = [
            p
            for p in good
            if distances(p).keys() == bar.keys() and all(d <= bar[key] for key, d in distances(p).items())
        ]
    if max_fd_ratio is not None:
        good = [p for p in good if worst_fd_ratio(p) <= max_fd_ratio]
    if not good:
        return None
    return min(good, key=lambda p: (p["nfe"], p["frechet_distance"]))


def plot_sweep(results: dict, path: str) -> None:
    """FD / real floor against NFE, one line per sampler, with 100-step DDPM's value and +10 % marked: one panel per
    feature space (the second and the third where their figures exist)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = results["points"]
    spaces = [("the committed classifier's features", lambda p: p["fd_ratio"])]
    for key, network in OTHER_SPACES.items():
        if any(key in p for p in points.values()):
            spaces.append((f"the {network}'s features", lambda p, key=key: p.get(key, {}).get("fd_ratio")))
    fig, axes = plt.subplots(1, len(spaces), figsize=(7 * len(spaces), 4.2), dpi=110, squeeze=False)
    for ax, (space, ratio) in zip(axes[0], spaces):
        for sampler in dict.fromkeys(p["sampler"] for p in points.values()):
            line = sorted((p["nfe"], ratio(p)) for p in points.values() if p["sampler"] == sampler and ratio(p))
            style = "--" if SAMPLERS[sampler].stochastic else "-"
            if line:
                ax.plot(*zip(*line), style, marker="o", ms=3, label=SAMPLERS[sampler].name)
        ref = points.get(point_key("ddpm", 100))
        if ref and ratio(ref):
            ax.axhline(ratio(ref), color="grey", lw=0.8)
            ax.axhline(ratio(ref) * 1.1, color="grey", lw=0.8, ls=":")
            ax.annotate(
                "DDPM, 100 steps (+10 % dotted)",
                (0.01, ratio(ref)),
                xycoords=("axes fraction", "data"),
                fontsize=7,
                va="bottom",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("model evaluations (NFE)")
        ax.set_ylabel(f"Fréchet distance / real floor\nin {space}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    name, n = Path(results["checkpoint"]).name, results["num_samples"]
    fig.suptitle(f"{name}: {n} samples per point (dashed: stochastic)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown_table(results: dict) -> str:
    """The sweep as a Markdown table, sorted by sampler and NFE, FD relative to 100-step DDPM where it was run; the
    no-flip judge's FD and class accuracy in their own columns (– where not measured)."""
    points = results["points"]
    ref = points.get(point_key("ddpm", 100))
    conditional = any("class_accuracy" in p for p in points.values())
    rows = [
        "| sampler | steps | NFE | FD (× real floor) | FD / DDPM 100 | FD, 2nd space (× its floor) "
        "| FD, no-flip space (× its floor) | mean max-softmax | smallest class | "
        + ("class accuracy | class accuracy, no-flip | " if conditional else "")
        + "wall s |",
        "|---|---|---|---|---|---|---|---|---|" + ("---|---|" if conditional else "") + "---|",
    ]
    order = list(SAMPLERS)
    for p in sorted(points.values(), key=lambda p: (order.index(p["sampler"]), p["nfe"])):
        relative = f"{p['frechet_distance'] / ref['frechet_distance']:.2f}" if ref else "–"
        rows.append(
            f"| {SAMPLERS[p['sampler']].name} | {p['steps']} | {p['nfe']} | {p['frechet_distance']:.1f} "
            f"({p['fd_ratio']:.1f}×) | {relative} | {space_cell(p, 'second_space')} "
            f"| {space_cell(p, 'third_space')} | {p['mean_max_softmax']:.3f} | {p['min_class_fraction']:.3f} | "
            + (f"{100 * p['class_accuracy']:.1f} % | {accuracy_cell(p, 'third_space')} | " if conditional else "")
            + f"{p['wall_s']:.0f} |"
        )
    return "\n".join(rows)


def guidance_setting(args, pipe) -> tuple[float | None, tuple[float, ...] | None, tuple[float, float] | None, float]:
    """(w, each class's w or None, guidance interval, φ) a class-conditional checkpoint samples with: the command
    line's (``--guidance-scale`` is one w for every class), else its recommended ones (the app's defaults), read now,
    so the sweep's JSON says what was sampled and a sweep made before the checkpoint's recommendation changed is not
    resumed as if it were the same; (None, None, None, 0) for an unconditional one."""
    if pipe.null_class_label is None:
        return None, None, None, 0.0
    g = command_line_guidance(pipe, args.guidance_scale, args.guidance_interval, args.guidance_rescale)
    return g.scale, g.class_scales, g.interval, g.rescale


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="checkpoints/fashion-mnist-32")
    add_scoring_arguments(p)
    p.add_argument("--samplers", default=",".join(SAMPLERS), help="comma-separated keys of the sampler registry")
    p.add_argument("--nfe", default="5,10,20,50,100", help="comma-separated numbers of model evaluations")
    p.add_argument("--reference", type=int, default=0, help="also DDPM at this many steps (e.g. 1000); 0: none")
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--guidance-scale", type=float, default=None, help="class-conditional models: w (default: card's)")
    p.add_argument(
        "--guidance-interval", default=None, help="LO-HI in the paper's t, or none (default: the checkpoint's)"
    )
    p.add_argument("--guidance-rescale", type=float, default=None, help="φ in [0, 1] (default: the checkpoint's)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu", help="where the UNet runs (cuda on a GPU machine)")
    p.add_argument("--json", required=True, help="results, read first to resume and rewritten after every point")
    p.add_argument(
        "--partial",
        default=None,
        help="where all-T DDPM saves its state to resume mid-point (default: the JSON's path, .partial.safetensors)",
    )
    p.add_argument("--save-every", type=int, default=20, help="--partial: save every this many steps")
    p.add_argument("--plot", default=None, help="FD against NFE, as a PNG")
    p.add_argument("--table", action="store_true", help="print the JSON's results as a Markdown table, and stop")
    p.add_argument("--fastest", action="store_true", help="print the fastest point within 10 %% of DDPM 100, and stop")
    p.add_argument("--max-fd-ratio", type=float, default=None, help="--fastest: also at most this × each real floor")
    p.add_argument(
        "--relative-to",
        default="ddpm@100",
        help="--fastest: the point whose FD (+10 %%) bounds the others', or 'none' for --max-fd-ratio alone",
    )
    p.add_argument(
        "--write-model-index",
        action="store_true",
        help="--fastest: record it in --checkpoint's model_index.json as the model's own sampler and steps",
    )
    args = p.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(Path(args.json).read_text())))
        return
    if args.fastest:
        reference = None if args.relative_to == "none" else args.relative_to
        best = fastest_within(json.loads(Path(args.json).read_text()), reference, max_fd_ratio=args.max_fd_ratio)
        print("none" if best is None else f"{best['sampler']} {best['steps']} {best['nfe']}")
        if args.write_model_index and best is not None:
            setting = {"recommended_sampler": best["sampler"], "recommended_num_inference_steps": best["steps"]}
            write_model_index(Path(args.checkpoint), setting)
        return
    if args.threads:
        torch.set_num_threads(args.threads)

    pipe = load_pipeline(args.checkpoint).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    score = scorer_from(args, args.num_samples)
    labels = pipe.balanced_class_labels(args.num_samples)
    w, class_scales, interval, phi = guidance_setting(args, pipe)

    path = Path(args.json)
    setup = {
        "checkpoint": args.checkpoint,
        "num_samples": args.num_samples,
        "seed": args.seed,
        "guidance_scale": w,
        "guidance_class_scales": None if class_scales is None else list(class_scales),
        "guidance_interval": None if interval is None else list(interval),
        "guidance_rescale": phi,
    }
    results = resume_results(path, setup)
    plan = [(s, get_sampler(s).steps_for(int(n))) for s in args.samplers.split(",") for n in args.nfe.split(",")]
    if args.reference:
        plan.append(("ddpm", args.reference))
    for sampler, steps in plan:
        key = point_key(sampler, steps)
        if key in results["points"]:
            continue
        samples, wall = generate_with(
            pipe,
            sampler,
            steps,
            args.num_samples,
            args.batch_size,
            args.seed,
            labels,
            w if class_scales is None else list(class_scales),
            partial=Path(args.partial) if args.partial else path.with_suffix(".partial.safetensors"),
            save_every=args.save_every,
            guidance_rescale=phi,
            guidance_interval=interval,
        )
        q = score(quantize(samples), labels)
        results["points"][key] = {
            "sampler": sampler,
            "steps": steps,
            "nfe": get_sampler(sampler).nfe_of(steps),
            "frechet_distance": q["frechet_distance"],
            "frechet_distance_real_floor": q["frechet_distance_real_floor"],
            "fd_ratio": q["fd_ratio"],
            **{key: q[key] for key in OTHER_SPACES if key in q},
            "mean_max_softmax": q["mean_max_softmax"],
            "min_class_fraction": q["min_class_fraction"],
            **({"class_accuracy": q["class_accuracy"]} if "class_accuracy" in q else {}),
            "wall_s": round(wall, 1),
        }
        print(
            f"{key}: FD {q['frechet_distance']:.3f} ({q['fd_ratio']:.1f}× floor{other_spaces_summary(q)}), "
            f"max-softmax {q['mean_max_softmax']:.3f}, min class {q['min_class_fraction']:.3f}, {wall:.0f} s",
            flush=True,
        )
        path.write_text(json.dumps(results, indent=2))
        if args.plot:
            plot_sweep(results, args.plot)
    if args.plot:  # also when every point was measured already: the plot of the JSON as it stands
        plot_sweep(results, args.plot)


def write_model_index(checkpoint: Path, setting: dict) -> None:
    """Record a recommended setting (guidance, or sampler and steps) in a checkpoint's model_index.json (keys that
    would be None are left out); the pipeline checks them when it loads."""
    path = checkpoint / "model_index.json"
    index = json.loads(path.read_text())
    for key, value in setting.items():
        if value is None:
            index.pop(key, None)
        else:
            index[key] = value
    path.write_text(json.dumps(dict(sorted(index.items())), indent=2) + "\n")
    print(f"wrote {', '.join(f'{k} = {v}' for k, v in setting.items() if v is not None)} to {path}")


if __name__ == "__main__":
    main()
