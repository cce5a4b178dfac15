"""Classifier-free guidance against quality: one sampler of a class-conditional checkpoint at several guidance
scales w, guidance intervals and rescales φ, on the same seeds (so the same x_T at every setting), 100 samples per
class at N = 1,000.

    python -m pipelines.guidance_sweep --checkpoint checkpoints/fashion-mnist-32-cond --sampler ddpm --steps 100 \\
        --guidance 0,1,2,3,5,8 --json checkpoints/fashion-mnist-32-cond/evaluation/guidance_ddpm100.json \\
        --plot checkpoints/fashion-mnist-32-cond/guidance.png --grid guidance_grid.png

``--interval none,100-700`` and ``--rescale 0,0.7`` add the guidance interval (Kynkäänniemi et al. 2024: w only for
the paper's t in [LO, HI], plainly conditional elsewhere) and guidance rescale (Lin et al. 2024): every w runs at
every interval and φ given (w = 0 and 1 once, since neither guides). ``--write-model-index`` records the recommended
setting in the checkpoint's model_index.json, which the app's controls start on.

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
from pathlib import Path

import torch

from pipelines.objective import quantize
from pipelines.samplers import get_sampler
from pipelines.training import targets
from pipelines.training.evaluate import (
    OTHER_SPACES,
    accuracy_cell,
    add_sampling_arguments,
    add_scoring_arguments,
    conditional_pipeline,
    guidance_label,
    judges_from,
    load_evaluation_data,
    other_spaces_summary,
    parse_interval,
    scorer_from,
    space_cell,
    space_scores,
)
from pipelines.training.quality_report import ClassMatchedScorer
from pipelines.training.sampler_sweep import generate_as_asked, resume_results, write_model_index
from pipelines.training.visualize import save_image_grid


def judges_accuracy(point: dict) -> list[float]:
    """The point's class accuracy as read by each judge that read it (the committed classifier, and the independent
    network and the no-flip judge where they scored it)."""
    return [s["class_accuracy"] for s in space_scores(point).values() if "class_accuracy" in s]


def strictest(point: dict) -> targets.Miss:
    """The point's measure furthest from the default model's targets (:mod:`pipelines.training.targets`): its
    overall figures in every judge's space and, where the sweep measured them, each judge's class-matched ones
    (per-class accuracy, confusions and FD)."""
    return targets.strictest(point, point.get("spaces"))


def recommend(points: dict) -> dict | None:
    """The setting to ship (w, interval, φ): of the guided ones (w > 0), the one whose strictest measure is the
    nearest to its target (:func:`strictest`), so that every judge reads the class asked for and no space, overall
    or class by class, sees the samples far from the data (guidance beyond it buys fidelity with diversity, short of
    it the reverse); None before any w > 0 was measured."""
    conditional = [p for p in points.values() if p["guidance_scale"] > 0]
    if not conditional:
        return None
    return min(conditional, key=lambda p: strictest(p).ratio)


def setting_of(point: dict) -> dict:
    """A point's guidance as model_index.json records it."""
    return {
        "recommended_guidance_scale": point["guidance_scale"],
        "recommended_guidance_interval": point.get("guidance_interval"),
        "recommended_guidance_rescale": point.get("guidance_rescale") or None,
        "recommended_guidance_class_scales": point.get("guidance_class_scales"),
    }


def parse_class_scales(text: str, class_names: list[str]) -> list[dict[str, float]]:
    """``--class-scales``: settings separated by ';', each 'none' (one w for every class) or 'Name=w,Name=w' (those
    classes at their own w, the rest at the point's). SystemExit with one line for a class the model lacks or a w
    out of [0, 50]."""
    out = []
    for part in text.split(";"):
        part = part.strip()
        overrides: dict[str, float] = {}
        for item in [] if part in ("", "none") else part.split(","):
            name, _, value = item.partition("=")
            name = name.strip()
            if name not in class_names:
                raise SystemExit(f"--class-scales: no class {name!r}; the model's are {', '.join(class_names)}.")
            try:
                w = float(value)
            except ValueError:
                w = float("nan")
            if not 0 <= w <= 50:
                raise SystemExit(f"--class-scales: {name}'s w must be a number in [0, 50], got {value!r}.")
            overrides[name] = w
        if overrides not in out:
            out.append(overrides)
    return out


def class_scales_of(w: float, overrides: dict[str, float], class_names: list[str]) -> list[float] | None:
    """Every class's w: its override, else the point's w; None without overrides (one w for all)."""
    return [overrides.get(name, w) for name in class_names] if overrides else None


def overrides_text(overrides: dict[str, float] | None) -> str:
    """'Shirt 3, Sneaker 1' of a point's per-class w ('' for none)."""
    return ", ".join(f"{name} {w:g}" for name, w in (overrides or {}).items())


def settings(args) -> list[tuple[float, tuple[float, float] | None, float]]:
    """Every (w, interval, φ) the command line asks for, in its order: w = 0 and w = 1 once, since neither guides."""
    scales = [float(x) for x in args.guidance.split(",")]
    intervals = [parse_interval(x) for x in args.interval.split(",")]
    rescales = [float(x) for x in args.rescale.split(",")]
    if any(not 0 <= phi <= 1 for phi in rescales):
        raise SystemExit(f"--rescale takes φ in [0, 1], got {args.rescale!r}.")
    out = []
    for w in scales:
        for interval in intervals if w not in (0, 1) else [None]:
            for phi in rescales if w not in (0, 1) else [0.0]:
                if (w, interval, phi) not in out:
                    out.append((w, interval, phi))
    return out


def plot_guidance(results: dict, path: str) -> None:
    """Class accuracy and FD / real floor (every space) against w: the fidelity-diversity trade-off."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    for variant, points in variants(results["points"]).items():
        w = [p["guidance_scale"] for p in points]
        suffix = f" ({variant})" if variant else ""
        line = left.plot(w, [100 * p["class_accuracy"] for p in points], marker="o", label=f"class accuracy{suffix}")
        colour = line[0].get_color()
        if not variant:
            left.plot(w, [100 * p["mean_max_softmax"] for p in points], marker="s", ls="--", label="mean max-softmax")
        if all("class_accuracy" in p.get("third_space", {}) for p in points):
            third = [100 * p["third_space"]["class_accuracy"] for p in points]
            left.plot(w, third, marker="^", ls=":", color=colour, label=f"class accuracy, no-flip judge{suffix}")
        right.plot(w, [p["fd_ratio"] for p in points], marker="o", color=colour, label=f"committed classifier{suffix}")
        for (key, network), style in zip(OTHER_SPACES.items(), ("--", ":")):
            if all(key in p for p in points):
                right.plot(
                    w,
                    [p[key]["fd_ratio"] for p in points],
                    marker="o",
                    ls=style,
                    color=colour,
                    label=f"{network}{suffix}",
                )
    left.axhline(100 * targets.MIN_CLASS_ACCURACY, color="grey", lw=0.8, ls=":")
    left.set_ylabel("%  (committed classifier unless named)")
    right.axhline(targets.MAX_FD_RATIO, color="grey", lw=0.8, ls=":")
    right.set_yscale("log")
    right.set_ylabel("Fréchet distance / real floor, by whose features")
    for ax in (left, right):
        ax.set_xlabel("guidance scale w (0: unconditional, 1: conditional)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    recommended = results.get("recommended_guidance_scale")
    for ax in (left, right):
        if recommended is not None:
            ax.axvline(recommended, color="tab:green", lw=0.8)
    name = Path(results["checkpoint"]).name
    fig.suptitle(
        f"{name}: {get_sampler(results['sampler']).name}, {results['steps']} steps, {results['num_samples']} samples "
        f"per setting (100 per class); green: recommended w",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def label_of(point: dict) -> str:
    """A point's key, from its setting (:func:`~pipelines.training.evaluate.guidance_label`, then the classes at
    their own w)."""
    key = guidance_label(point["guidance_scale"], point.get("guidance_interval"), point.get("guidance_rescale") or 0)
    return sweep_key(key, point.get("guidance_class_overrides"))


def sweep_key(label: str, overrides: dict[str, float] | None) -> str:
    """'w=2,t=170-790;Shirt=3,Sneaker=1': a guidance label and the classes at their own w."""
    return label + (";" + ",".join(f"{k}={v:g}" for k, v in overrides.items()) if overrides else "")


def variant_of(point: dict) -> str:
    """The interval and φ of a point, in words ('' for guidance at every step, unrescaled)."""
    interval, phi = point.get("guidance_interval"), point.get("guidance_rescale") or 0
    parts = [f"t in [{interval[0]:g}, {interval[1]:g}]"] if interval else []
    per_class = overrides_text(point.get("guidance_class_overrides"))
    return ", ".join(parts + ([f"φ = {phi:g}"] if phi else []) + ([f"per class: {per_class}"] if per_class else []))


def variants(points: dict) -> dict[str, list[dict]]:
    """The points by :func:`variant_of`, each list in order of w; w = 0 and 1 (which do not guide) in every list."""
    plain = [p for p in points.values() if p["guidance_scale"] in (0, 1)]
    out: dict[str, list[dict]] = {}
    for p in points.values():
        if p["guidance_scale"] not in (0, 1):
            out.setdefault(variant_of(p), []).append(p)
    out = out or {"": []}
    return {k: sorted(plain + v, key=lambda p: p["guidance_scale"]) for k, v in out.items()}


def markdown_table(results: dict) -> str:
    rows = [
        "| w | interval, φ | class accuracy | class accuracy, no-flip | FD (× real floor) "
        "| FD, 2nd space (× its floor) | FD, no-flip space (× its floor) | mean max-softmax | smallest class "
        "| strictest measure (its ratio to the target) | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in sorted(results["points"].values(), key=lambda p: (p["guidance_scale"], variant_of(p))):
        rows.append(
            f"| {p['guidance_scale']:g} | {variant_of(p) or '–'} | {100 * p['class_accuracy']:.1f} % "
            f"| {accuracy_cell(p, 'third_space')} "
            f"| {p['frechet_distance']:.2f} ({p['fd_ratio']:.1f}×) | {space_cell(p, 'second_space')} "
            f"| {space_cell(p, 'third_space')} | {p['mean_max_softmax']:.3f} | {p['min_class_fraction']:.3f} "
            f"| {strictest(p).what} ({strictest(p).ratio:.2f}) | {p['wall_s']:.0f} |"
        )
    return "\n".join(rows)


def class_matched_table(results: dict) -> str:
    """The points scored class by class (those with ``spaces``) against the targets, one row each: the class accuracy
    and the FD over its real floor in every judge (random and class-matched subsets), the class furthest from the
    data, how many measures miss their targets and the strictest (:func:`strictest`); '' when no point has them."""
    points = [p for p in results["points"].values() if p.get("spaces")]
    rows = [
        "| w | interval, φ | class accuracy (each judge) | FD ÷ floor, random subsets | FD ÷ floor, class-matched "
        "| the class furthest from the data | measures missed | strictest measure (its ratio to the target) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in sorted(points, key=lambda p: (p["guidance_scale"], variant_of(p))):
        judges = targets.overall_spaces(p)
        judged = [s for s in judges.values() if "class_accuracy" in s]
        accuracy = " / ".join(f"{100 * s['class_accuracy']:.1f}" for s in judged)
        fd = " / ".join(f"{s['fd_ratio']:.2f}" for s in judges.values())
        matched = " / ".join(f"{s['fd_ratio']:.2f}" for s in p["spaces"].values())
        name, cls, worst = max(
            ((name, cls, c["fd_ratio"]) for name, s in p["spaces"].items() for cls, c in s["per_class"].items()),
            key=lambda x: x[2],
        )
        measures = targets.measures(p, p["spaces"])  # strictest first: the targets' figures computed once a row
        missed = sum(m.ratio > 1 for m in measures)
        rows.append(
            f"| {p['guidance_scale']:g} | {variant_of(p) or '–'} | {accuracy} % ({' / '.join(judges)}) | {fd}× "
            f"| {matched}× ({' / '.join(p['spaces'])}) | {cls} {worst:.1f}× ({name}) "
            f"| {missed} | {measures[0].what} ({measures[0].ratio:.2f}) |"
        )
    return "\n".join(rows) if points else ""


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="checkpoints/fashion-mnist-32-cond")
    add_scoring_arguments(p)
    add_sampling_arguments(p, sampler="ddpm", steps=100)
    p.add_argument("--guidance", default="0,1,2,3,5,8", help="comma-separated guidance scales w")
    p.add_argument(
        "--interval", default="none", help="comma-separated guidance intervals LO-HI in the paper's t, or none"
    )
    p.add_argument("--rescale", default="0", help="comma-separated guidance rescales φ in [0, 1]")
    p.add_argument(
        "--class-scales",
        default="none",
        help="';'-separated per-class w, each 'none' or 'Name=w,Name=w' (those classes at their own w, the rest at "
        "the point's), e.g. 'none;Shirt=3,Sneaker=1'",
    )
    p.add_argument(
        "--write-model-index", action="store_true", help="record the recommended setting in the checkpoint's index"
    )
    p.add_argument("--json", required=True, help="results, read first to resume and rewritten after every point")
    p.add_argument("--plot", default=None, help="class accuracy and FD against w, as a PNG")
    p.add_argument(
        "--grid", default=None, help="a PNG: one row per w, one sample per class, the same x_T down a column"
    )
    p.add_argument("--samples-out", default=None, help="every point's samples as uint8, in one .safetensors file")
    p.add_argument(
        "--choose",
        default=None,
        help="record this point of --json (its key) in --checkpoint's model_index.json instead of the recommended "
        "one (a tie within sampling noise, say), and stop",
    )
    p.add_argument(
        "--table",
        action="store_true",
        help="print the JSON's results as Markdown tables (the class-by-class one where measured), and stop",
    )
    args = p.parse_args(argv)
    if args.table:
        results = json.loads(Path(args.json).read_text())
        print("\n\n".join(filter(None, [markdown_table(results), class_matched_table(results)])))
        return
    if args.choose:
        points = json.loads(Path(args.json).read_text())["points"]
        if args.choose not in points:
            raise SystemExit(f"--choose: no point {args.choose!r} in {args.json}; it has {', '.join(points)}.")
        write_model_index(Path(args.checkpoint), setting_of(points[args.choose]))
        return
    pipe = conditional_pipeline(args, "guidance")
    classes = pipe.null_class_label
    labels = pipe.balanced_class_labels(args.num_samples)
    nets, data = judges_from(args), load_evaluation_data(args.data_dir)
    score = scorer_from(args, args.num_samples, nets, data)
    # each judge's class-matched figures too (per-class accuracy, confusions and FD), as the quality report has them
    class_matched = ClassMatchedScorer(
        nets, (data.train_x, data.train_y), (data.test_x, data.test_y), labels, args.seed
    )

    path = Path(args.json)
    setup = {
        "checkpoint": args.checkpoint,
        "sampler": args.sampler,
        "steps": args.steps,
        "num_samples": args.num_samples,
        "seed": args.seed,
    }
    results = resume_results(path, setup)
    kept = {}  # uint8 samples per setting, in the order asked, for the grid and --samples-out
    names = pipe.config.class_names or [str(c) for c in range(classes)]
    per_class = parse_class_scales(args.class_scales, names)
    asked = [(*s, o) for s in settings(args) for o in (per_class if s[0] not in (0, 1) else [{}])]
    for w, interval, phi, overrides in asked:
        key = sweep_key(guidance_label(w, interval, phi), overrides)
        if key in results["points"] and not (args.grid or args.samples_out):
            continue
        class_scales = class_scales_of(w, overrides, names)
        samples, wall = generate_as_asked(pipe, args, labels, class_scales or w, phi, interval)
        samples = quantize(samples)
        kept[key] = ((samples + 1) * 127.5).round().to(torch.uint8)
        if key in results["points"]:
            continue
        q = score(samples, labels) | {"spaces": class_matched(samples)}
        setting = {"guidance_scale": w, "guidance_interval": None if interval is None else list(interval)}
        if overrides:
            setting |= {"guidance_class_overrides": overrides, "guidance_class_scales": class_scales}
        results["points"][key] = {**setting, "guidance_rescale": phi, **q, "wall_s": round(wall, 1)}
        print(
            f"{key}: class accuracy {', '.join(f'{100 * a:.1f}' for a in judges_accuracy(q))} % (by each judge), "
            f"FD {q['fd_ratio']:.2f}× floor"
            f"{other_spaces_summary(q)}, "
            f"max-softmax {q['mean_max_softmax']:.3f}, {wall:.0f} s; strictest: {strictest(q).what}",
            flush=True,
        )
        best = recommend(results["points"])
        results |= setting_of(best) if best else {}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2))
        if args.plot:
            plot_guidance(results, args.plot)
    best = recommend(results["points"])
    print(f"Recommended: {label_of(best) if best else None}")
    if args.write_model_index and best:
        write_model_index(Path(args.checkpoint), setting_of(best))
    if args.grid and kept:
        rows = [kept[k][:classes] for k in kept]  # one of each class
        save_image_grid(torch.cat(rows).float() / 255, args.grid, ncols=classes)
    if args.samples_out and kept:
        from safetensors.torch import save_file

        save_file(
            {k: v.contiguous() for k, v in kept.items()}, args.samples_out, metadata={"setup": json.dumps(setup)}
        )


if __name__ == "__main__":
    main()
