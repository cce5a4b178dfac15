"""The reverse tab's default run, now against before the samplers issue, through the page's own handler, interleaved.

    python benchmarks/default_run.py --repeats 5

Variants (seed 0, the tab's other defaults: the model's own Σ_t, x̂₀ clipped), each timed from the click to the
last yield of the page's ``reverse_generate(..., in_page=True)`` (sampling, recording, the streamed images and
scrubber payloads, the class-decision curves), models loaded and warmed up first:
  before   the old default: fashion-mnist-32, DDPM respaced to 100 steps, batch 4
  now      the tab's default: the default model, its default sampler and steps, its classes and guidance as the tab
           starts ("one of each" at the recommended w, guidance interval and φ: one image per class, two UNet passes
           per step inside the interval, one outside it)

Each run's quality is read from the committed evaluation of exactly those settings (1,000 samples): Fréchet distance
over the real floor, in the committed classifier's features and the independent network's.
"""

from __future__ import annotations

import argparse
import json

from common import CHECKPOINT, ROOT, stats, table, timed, write_section

from app import plans
from app.callbacks import reverse
from app.settings import DEFAULT_MODEL
from pipelines.training.guidance_sweep import variant_of


def guidance_words(plan: plans.RunPlan) -> str:
    """The run's guidance as the docs write it: w, then its interval and φ where set (the sweeps' words for them)."""
    setting = {"guidance_interval": plan.guidance_interval, "guidance_rescale": plan.guidance_rescale}
    w = f"w = {plan.guidance_scale:g}"
    if plan.guidance_class_scales is not None:
        w = f"each class at its own w ({plans.class_scales_text(plan.pipe, plan.guidance_class_scales)})"
    return ", ".join(filter(None, [w, variant_of(setting)]))


CONDITIONING = ("class_choice", "guidance", "guidance_t_lo", "guidance_t_hi", "guidance_rescale", "guidance_per_class")


def variants() -> dict[str, tuple]:
    """name → (model, sampler, steps, batch, class choice, guidance w, t_lo, t_hi, φ, per-class w), as the tab
    starts (``reverse.tab_defaults``)."""
    starts = reverse.tab_defaults(DEFAULT_MODEL)
    now = (DEFAULT_MODEL, plans.DEFAULT_SAMPLER, plans.DEFAULT_STEPS, 4, *(starts[k] for k in CONDITIONING))
    before = ("fashion-mnist-32", plans.DDPM, 100, 4, plans.ANY_CLASS, None, None, None, None, None)
    return {"before": before, "now": now}


def click(model, sampler, steps, batch, *conditioning) -> dict:
    variance = reverse.tab_defaults(model)["variance_type"]  # the model's own Σ_t, as the tab starts
    args = (model, sampler, steps, 0.0, variance, True, 0, batch, *conditioning)
    return list(reverse.reverse_generate(*args, in_page=True))[-1]


def plan_args(variant: tuple) -> tuple:
    """``run_plan``'s arguments for a variant (η 0: no variant is DDIM)."""
    model, sampler, steps, batch, *conditioning = variant
    return model, sampler, steps, 0.0, batch, *conditioning


def same_guidance(point: dict, plan: plans.RunPlan) -> bool:
    """Whether a sweep's point guided as the run does: w, interval, φ and the classes' own w."""
    scales = plan.guidance_class_scales
    return (
        point["guidance_scale"] == plan.guidance_scale
        and point.get("guidance_interval")
        == (None if plan.guidance_interval is None else list(plan.guidance_interval))
        and (point.get("guidance_rescale") or 0.0) == plan.guidance_rescale
        and point.get("guidance_class_scales") == (None if scales is None else list(scales))
    )


def quality(model: str, sampler: str, steps: int, plan: plans.RunPlan) -> str:
    """FD × each real floor of these settings: an unguided run's point of the model's sampler sweep, a guided one's
    setting (w, interval, φ) in the guidance sweep of that sampler and step count."""
    key = plans.SAMPLER_NAMES[sampler]
    folder = CHECKPOINT.parent / model / "evaluation"
    if plan.guidance_scale is None:
        path, point = folder / "samplers.json", f"{key}@{steps}"
        p = json.loads(path.read_text())["points"].get(point) if path.exists() else None
    else:  # the guidance sweeps of this sampler and N (one w for all, and each class at its own)
        path, point, p = None, None, None
        for candidate in sorted(folder.glob(f"guidance-{key}{steps}*.json")):
            for label, q in json.loads(candidate.read_text())["points"].items():
                if same_guidance(q, plan):
                    path, point, p = candidate, label, q
    if p is None:
        return "not measured"
    return f"{p['fd_ratio']:.1f}× / {p['second_space']['fd_ratio']:.1f}× (`{path.relative_to(ROOT)}`, {point})"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    runs = variants()
    for v in runs.values():  # load each model and its classifier, and warm up
        click(*v)
    seconds = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, v in runs.items():
            seconds[name].append(timed(lambda v=v: click(*v)))
    base = stats(seconds["before"])["median"]
    before = plans.run_plan(*plan_args(runs["before"]))
    rows = []
    for name, (model, sampler, steps, _, _, guidance, *_) in runs.items():
        s = stats(seconds[name])
        plan = plans.run_plan(*plan_args(runs[name]))  # images and NFE as the tab counts them
        passes = plan.unet_passes * plan.batch_size  # images through the UNet: two passes where it guides
        rows.append(
            [
                name,
                model,
                f"{sampler}, {steps} steps" + ("" if guidance is None else f", {guidance_words(plan)}"),
                plan.batch_size,
                plan.nfe,
                passes,
                f"{s['median']:.2f}",
                f"{s['min']:.2f}–{s['max']:.2f}",
                f"{base / s['median']:.1f}×",
                f"{base / before.batch_size / (s['median'] / plan.batch_size):.1f}×",
                quality(model, sampler, steps, plan),
            ]
        )
    header = ["run", "model", "sampler", "images", "NFE", "image evaluations", "median s", "range s", "speed-up"]
    header += ["per image", "FD × floors (committed / independent features)"]
    body = (
        f"{args.repeats} interleaved repeats of the page's handler (`reverse_generate(..., in_page=True)`), "
        "after a warm-up. "
        "Image evaluations: NFE × images, × 2 when guided. Speed-up: the old default's median over this run's, "
        "in the same run; per image: the same for seconds per image.\n\n" + table(header, rows) + "\n"
    )
    write_section("default_run", f"python benchmarks/default_run.py --repeats {args.repeats}", body)


if __name__ == "__main__":
    main()
