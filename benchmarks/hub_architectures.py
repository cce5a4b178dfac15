"""What one UNet step of each allowlisted Hub model costs on a CPU like a free Hugging Face CPU Space (2 vCPU), with
the bundled checkpoints beside them, and the default run each model gets in the reverse tab.

    python benchmarks/hub_architectures.py --repeats 9 --large-repeats 3

Each architecture runs in a process of its own (so that its peak RSS is its own), with 2 torch threads and again with
1: a UNet of the Hub models' exact config with random weights (the speed of a forward does not depend on the
weights; nothing is downloaded), or a bundled checkpoint's. One UNet call at t = 500 per batch size: a warm-up (which
also counts the FLOPs), then ``repeats`` timed calls (``large-repeats`` for the 256 px architecture, whose call takes
seconds); median, min and max. Then, for the Hub architectures, the tab's default run of that model
(app/model_defaults.py: the default sampler at the model's default steps and batch), recorded as the tab records it,
timed twice. ``--rounds`` measures everything that many times, one after the other, so that a burst of other work
meets them alike.

Why one thread too: this machine's 2 cores are shared with other jobs. Two threads then wait at every operation for
the one that lost its core (with one busy job beside them, in two runs, a 32 px UNet, made of many short operations,
ran 2–57× slower with two threads than with one, the 256 px one 1.3–1.9×); one thread mostly finds a core of its own.
Both are upper bounds of what 2 threads take on a quiet 2-vCPU machine, so the figure for one call is the smaller
median of the two.

The four 256 px Hub models (CelebA-HQ, cat, church, bedroom) share one architecture, so it is measured once.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, stats, table, write_section

from pipelines.hub_models import google_ddpm_configs

ARG_KEYS = ("repeats", "large_repeats", "rounds", "batches")
THREADS = (2, 1)  # a free CPU Space's 2 vCPU; and one thread, which other work on a shared machine disturbs less

# The Hub models' configs as their repos hold them (pipelines/hub_models.py); the four 256 px ones share one UNet
HUB_CONFIGS = google_ddpm_configs()
HUB_ARCHITECTURES = {
    "ddpm-cifar10-32": ["google/ddpm-cifar10-32"],
    "ddpm-256": [
        "google/ddpm-celebahq-256",
        "google/ddpm-cat-256",
        "google/ddpm-church-256",
        "google/ddpm-bedroom-256",
    ],
}
assert all(HUB_CONFIGS[m][0] == HUB_CONFIGS[ms[0]][0] for ms in HUB_ARCHITECTURES.values() for m in ms)
assert sorted(m for ms in HUB_ARCHITECTURES.values() for m in ms) == sorted(HUB_CONFIGS)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def build_unet(key: str):
    """A UNet of the architecture ``key`` (random weights, seeded) or the bundled checkpoint folder ``key``."""
    import torch
    from diffusers import UNet2DModel

    if key in HUB_ARCHITECTURES:
        torch.manual_seed(0)
        return UNet2DModel.from_config(HUB_CONFIGS[HUB_ARCHITECTURES[key][0]][0]).eval()
    return UNet2DModel.from_pretrained(ROOT / "checkpoints" / key / "unet", use_safetensors=True).eval()


def time_calls(unet, batch: int, repeats: int) -> tuple[list[float], float]:
    """``repeats`` timed UNet calls at ``batch`` after a warm-up; and the GFLOP of one call, counted in the warm-up."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from pipelines.objective import null_labels

    c, size = unet.config.in_channels, unet.config.sample_size
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((batch, c, size, size), generator=generator)
    t = torch.tensor(500)
    labels = null_labels(unet, batch)  # a class-conditional UNet needs labels
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            unet(x, t, class_labels=labels)
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            unet(x, t, class_labels=labels)
            seconds.append(time.perf_counter() - start)
    return seconds, counter.get_total_flops() / 1e9


def time_default_run(unet, model: str, sampler_key: str, steps: int, batch: int, repeats: int) -> list[float]:
    """The tab's default run of a Hub model with its scheduler config, recorded as the tab records it (64 frames at
    most)."""
    import torch

    from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler
    from pipelines.samplers import SAMPLERS

    scheduler = DDPMExplorerScheduler.from_config(HUB_CONFIGS[model][1])
    pipe = DDPMExplorerPipeline(unet=unet, scheduler=scheduler)
    sampler = SAMPLERS[sampler_key]
    seconds = []
    for seed in range(repeats):
        start = time.perf_counter()
        run = pipe.record(
            64,
            scheduler=sampler.scheduler(pipe.scheduler.config),
            num_inference_steps=steps,
            batch_size=batch,
            generator=torch.Generator().manual_seed(seed),
        )
        for _ in run:
            pass
        seconds.append(time.perf_counter() - start)
    return seconds


def measure_one(args) -> dict:
    """One architecture, in this (fresh) process; printed as JSON."""
    import torch

    torch.set_num_threads(args.threads)
    import diffusers  # noqa: F401  (imported before the baseline RSS: every model pays it)

    baseline = peak_rss_mb()
    unet = build_unet(args.one)
    result = {
        "parameters_m": sum(p.numel() for p in unet.parameters()) / 1e6,
        "sample_size": unet.config.sample_size,
        "channels": unet.config.in_channels,
        "rss_baseline_mb": baseline,
        "calls": {},
    }
    for batch in args.batches:
        seconds, gflop = time_calls(unet, batch, args.repeats)
        result["calls"][str(batch)] = {"seconds": seconds, "gflop": gflop}
    if args.default_run:
        sampler, steps, batch = args.default_run.split(",")
        result["default_run"] = {
            "sampler": sampler,
            "steps": int(steps),
            "batch": int(batch),
            "seconds": time_default_run(unet, HUB_ARCHITECTURES[args.one][0], sampler, int(steps), int(batch), 2),
        }
    result["rss_peak_mb"] = peak_rss_mb()
    return result


def run_isolated(key: str, threads: int, repeats: int, batches: list[int], default_run: str | None) -> dict:
    command = [sys.executable, __file__, "--one", key, "--threads", str(threads), "--repeats", str(repeats)]
    command += ["--batches", ",".join(map(str, batches))]
    if default_run:
        command += ["--default-run", default_run]
    load = os.getloadavg()[0]
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result["load"] = [load, os.getloadavg()[0]]  # the machine's 1-minute load average before and after
    return result


def merged(rounds: list[dict]) -> dict:
    """One architecture's rounds (at one thread count) as one result: every timed call, the largest peak RSS, the
    loads met."""
    result = dict(rounds[0])
    result["calls"] = {
        b: {"seconds": [x for r in rounds for x in r["calls"][b]["seconds"]], "gflop": c["gflop"]}
        for b, c in rounds[0]["calls"].items()
    }
    result["rss_peak_mb"] = max(r["rss_peak_mb"] for r in rounds)
    result["load"] = [x for r in rounds for x in r["load"]]
    if "default_run" in rounds[0]:
        result["default_run"] = dict(rounds[0]["default_run"])
        result["default_run"]["seconds"] = [x for r in rounds for x in r["default_run"]["seconds"]]
    return result


def name_of(key: str) -> str:
    return ", ".join(HUB_ARCHITECTURES[key]) if key in HUB_ARCHITECTURES else f"{key} (bundled)"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5, help="timed calls per batch size (32 px architectures)")
    p.add_argument("--large-repeats", type=int, default=3, help="timed calls per batch size at 256 px")
    p.add_argument("--rounds", type=int, default=1, help="times to measure every architecture, interleaved")
    p.add_argument("--batches", type=lambda s: [int(b) for b in s.split(",")], default=[1, 4])
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=THREADS[0], help=argparse.SUPPRESS)
    p.add_argument("--default-run", help=argparse.SUPPRESS)
    p.add_argument("--save", type=Path, help="also write the measurements to this JSON file")
    p.add_argument("--reuse", type=Path, help="write the section from a --save file instead of measuring")
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure_one(args)))
        return

    from app import model_defaults, plans

    if args.reuse:  # the section again (after the per-model table was updated from it), the same measurements
        saved = json.loads(args.reuse.read_text())
        args.repeats, args.large_repeats, args.rounds, args.batches = (saved["args"][k] for k in ARG_KEYS)
        results = {(r["key"], r["threads"]): r for r in saved["results"]}
        write_report(args, results)
        return

    sampler_key = plans.SAMPLER_NAMES[plans.DEFAULT_SAMPLER]
    local = sorted(path.parent.name for path in (ROOT / "checkpoints").glob("*/model_index.json"))
    rounds = {(key, threads): [] for key in [*HUB_ARCHITECTURES, *local] for threads in THREADS}
    for k in range(args.rounds):
        for key, threads in rounds:
            repeats = args.large_repeats if key == "ddpm-256" else args.repeats
            default_run = None
            if key in HUB_ARCHITECTURES:
                defaults = model_defaults.by_name(HUB_ARCHITECTURES[key][0] + model_defaults.HUB_SUFFIX)
                default_run = f"{sampler_key},{defaults.steps},{defaults.batch}"
            print(f"round {k + 1}: {key}, {threads} thread(s), {repeats} repeats …", file=sys.stderr, flush=True)
            rounds[key, threads].append(run_isolated(key, threads, repeats, args.batches, default_run))
    results = {key: merged(r) for key, r in rounds.items()}
    if args.save:
        saved = [{**r, "key": key, "threads": threads} for (key, threads), r in results.items()]
        args.save.write_text(json.dumps({"args": {k: getattr(args, k) for k in ARG_KEYS}, "results": saved}))
    write_report(args, results)


def write_report(args, results: dict) -> None:
    """The section of docs/PERFORMANCE.md: every measurement, the figure per call, the default runs, the table."""
    from app import model_defaults, plans, settings

    rows, figures = [], {}
    for (key, threads), r in results.items():
        size = f"{r['sample_size']}×{r['sample_size']}×{r['channels']}"
        for batch, call in r["calls"].items():
            s = stats(call["seconds"])
            figures.setdefault((key, batch), []).append(s["median"])
            rows.append(
                [
                    name_of(key),
                    size,
                    f"{r['parameters_m']:.1f} M",
                    threads,
                    batch,
                    f"{call['gflop']:.1f}",
                    f"{s['median']:.3f}",
                    f"{s['min']:.3f}",
                    f"{s['max']:.3f}",
                    f"{call['gflop'] / s['min']:.0f}",
                    s["n"],
                    f"{r['rss_peak_mb']:.0f} (+{r['rss_peak_mb'] - r['rss_baseline_mb']:.0f})",
                    f"{min(r['load']):.1f}–{max(r['load']):.1f}",
                ]
            )
    header = ["models", "size", "parameters", "threads", "batch", "GFLOP", "median s", "min s", "max s"]
    header += ["GFLOP/s at min", "n", "peak RSS MB (+ over torch and diffusers)", "load"]
    best = [
        [name_of(key), batch, f"{min(medians):.3f}", f"{min(medians) / int(batch):.3f}"]
        for (key, batch), medians in figures.items()
    ]
    runs = []
    for (key, threads), r in results.items():
        if "default_run" not in r:
            continue
        d = r["default_run"]
        s = stats(d["seconds"])
        runs.append(
            [
                HUB_ARCHITECTURES[key][0] + (" (and the other 256 px models)" if key == "ddpm-256" else ""),
                f"{plans.DEFAULT_SAMPLER}, {plans.plural(d['steps'], 'step')}, batch {d['batch']}",
                threads,
                f"{s['median']:.2f}",
                f"{s['min']:.2f}–{s['max']:.2f}",
            ]
        )
    table_rows = []
    for name, d in model_defaults.BY_NAME.items():
        size = d.architecture.sample_size
        nfe = plans.check_sampler(plans.DEFAULT_SAMPLER).nfe_of(d.steps)
        table_rows.append(
            [
                name.removesuffix(model_defaults.HUB_SUFFIX),
                ", ".join(f"{x:g}" for x in d.architecture.seconds_per_call),
                d.steps,
                d.batch,
                f"{d.run_seconds(nfe, d.batch):.1f}",
                f"{d.work_cap:,} ({plans.plural(d.work_cap // size**2, 'call')} of one image, "
                f"{d.run_seconds(d.work_cap // size**2, 1):.0f} s)",
            ]
        )
    command = f"python benchmarks/hub_architectures.py --repeats {args.repeats} --large-repeats {args.large_repeats}"
    command += f" --rounds {args.rounds}" if args.rounds != 1 else ""
    command += " --batches " + ",".join(map(str, args.batches)) if args.batches != [1, 4] else ""
    body = (
        f"One UNet call at t = 500, with {' and with '.join(map(str, THREADS))} torch thread(s), each architecture "
        f"and thread count in a process of its own ({plans.plural(args.rounds, 'round')}, interleaved); random "
        "weights of the Hub models' exact configs (nothing downloaded), the bundled checkpoints' own. A warm-up "
        "(counting the FLOPs), then n timed calls per batch size: median, min, max. Peak RSS: the process's, and its "
        "growth over importing torch and diffusers. Load: the machine's 1-minute load average before and after each "
        "process (2 cores; other jobs ran beside it).\n\n"
        + table(header, rows)
        + "\n\nWhat one call takes on a 2-vCPU CPU of this speed: the smaller median of the two thread counts. On a "
        "quiet 2-vCPU machine two threads take at most what one does, and each measurement here is slowed by the "
        "other work beside it, most for two threads (one of them waits for a core at every operation), most at "
        "32 px (many short operations):\n\n"
        + table(["models", "batch", "s per call", "s per image"], best)
        + "\n\nThe reverse tab's default run of each Hub model, recorded as the tab records it (the solver's steps "
        "and recording; without the page's streaming), 2 runs a round:\n\n"
        + table(["model", "default run", "threads", "median s", "range s"], runs)
        + "\n\nThe per-model table in `app/model_defaults.py` (its figures copied from a run of this benchmark: "
        f"s per call at batch 1 and 4), with the default run and the cap's longest run of one image as it computes "
        f"them (the UNet calls × {model_defaults.RUN_OVERHEAD}); the cap at the shipped `MAX_WORK` = "
        f"{settings.DEFAULT_MAX_WORK:,}:\n\n"
        + table(["model", "s per call", "steps", "batch", "default run s", "cap: calls × batch × pixels"], table_rows)
        + "\n"
    )
    write_section("hub_architectures", command, body)


if __name__ == "__main__":
    main()
