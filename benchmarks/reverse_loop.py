"""The reverse loop against diffusers' DDPMPipeline, interleaved in one process, and the CPU's matmul peak.

    python benchmarks/reverse_loop.py --repeats 3

Variants, all on the bundled checkpoint's UNet with the same seed:
  ours+record   DDPMExplorerPipeline.sample_trajectory: x_t, x̂₀ and ε̂ kept as uint8 at every step
  ours          DDPMExplorerPipeline.__call__ (no recording)
  diffusers     diffusers' DDPMPipeline with its DDPMScheduler set up to equal ours
  ours+cl       ours with the opt-in channels_last UNet (enable_fast_cpu())
  ours+compile  ours with the opt-in torch.compile'd UNet (enable_fast_cpu(channels_last=False, compile=True));
                compile time excluded
  ours+cl+compile  both (enable_fast_cpu(compile=True))
"""

from __future__ import annotations

import argparse
import statistics

import torch
from common import CHECKPOINT, stats, table, timed, write_section
from diffusers import DDPMPipeline, DDPMScheduler
from torch.utils.flop_counter import FlopCounterMode

from pipelines.loading import load_pipeline
from pipelines.trajectory import RunSchedule, TrajectoryRecorder


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def unet_gflop(unet, batch: int) -> float:
    x = torch.randn(batch, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        unet(x, torch.tensor(500))
    return counter.get_total_flops() / 1e9


def recording_cost_us(batch: int, shape: tuple[int, ...], steps: int = 100) -> float:
    """What recording adds to one step, measured alone: three frames converted to uint8 and copied into the buffers
    (microseconds; the median over ``steps`` calls, so the machine's run-to-run noise does not enter)."""
    timesteps = list(range(steps - 1, -1, -1))
    recorder = TrajectoryRecorder(RunSchedule(timesteps, [*timesteps[1:], -1], [0.5] * steps), (batch, *shape))
    x = torch.randn(batch, *shape)
    return statistics.median(timed(lambda i=i: recorder.record(i, x, x, x)) for i in range(steps)) * 1e6


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--configs", default="1x100,16x100,1x1000,16x1000", help="batch x steps, comma-separated")
    p.add_argument("--variants", default="ours+record,ours,diffusers,ours+cl,ours+compile,ours+cl+compile")
    args = p.parse_args()
    torch.manual_seed(0)
    ours = load_pipeline(CHECKPOINT)
    ours.set_progress_bar_config(disable=True)
    cfg = ours.scheduler.config
    ref_scheduler = DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        variance_type=cfg.variance_type,
        prediction_type=cfg.prediction_type,
        clip_sample=cfg.clip_sample,
        timestep_spacing="trailing",
    )
    ref = DDPMPipeline(unet=ours.unet, scheduler=ref_scheduler)
    ref.set_progress_bar_config(disable=True)
    T = cfg.num_train_timesteps
    fast = {}
    for name, kwargs in (
        ("ours+cl", {}),
        ("ours+compile", {"channels_last": False, "compile": True}),
        ("ours+cl+compile", {"compile": True}),
    ):
        pipe = load_pipeline(CHECKPOINT)
        pipe.set_progress_bar_config(disable=True)
        fast[name] = pipe.enable_fast_cpu(**kwargs)
    variants = {
        "ours+record": lambda b, n: ours.sample_trajectory(
            batch_size=b, generator=torch.Generator().manual_seed(0), num_inference_steps=n, show_progress=False
        ),
        "ours": lambda b, n: ours(
            batch_size=b, generator=torch.Generator().manual_seed(0), num_inference_steps=n, output_type="np"
        ),
        "diffusers": lambda b, n: ref(
            batch_size=b, generator=torch.Generator().manual_seed(0), num_inference_steps=n, output_type="np"
        ),
    }
    for name, pipe in fast.items():
        variants[name] = lambda b, n, pipe=pipe: pipe.sample_trajectory(
            batch_size=b, generator=torch.Generator().manual_seed(0), num_inference_steps=n, show_progress=False
        )
    variants = {name: variants[name] for name in args.variants.split(",")}
    peak = matmul_peak_gflops()
    rows, notes = [], []
    for config in args.configs.split(","):
        batch, steps = map(int, config.split("x"))
        times = {name: [] for name in variants}
        for run in variants.values():  # warm-up (and compilation) outside the timings
            run(batch, 2)
        for _ in range(args.repeats):  # interleaved: each repeat runs every variant once
            for name, run in variants.items():
                times[name].append(timed(lambda run=run: run(batch, steps if steps < T else T)))
        flop = unet_gflop(ours.unet, batch)
        base = stats(times["diffusers"])["median"]
        shape = (ours.unet.config.in_channels, ours.unet.config.sample_size, ours.unet.config.sample_size)
        record_us = recording_cost_us(batch, shape)
        notes.append(
            f"batch {batch}: recording costs {record_us:.0f} µs a step, "
            f"{record_us * 1e-6 / (base / steps):.2%} of diffusers' step time here"
        )
        for name in variants:
            s = stats(times[name])
            achieved = flop * steps / s["median"]
            rows.append(
                [
                    f"{batch}",
                    f"{steps}",
                    name,
                    f"{s['median']:.2f}",
                    f"{s['min']:.2f}–{s['max']:.2f}",
                    f"{s['median'] / base:.3f}×",
                    f"{achieved:.1f}",
                    f"{achieved / peak:.0%}",
                ]
            )
        print(rows[-len(variants) :])
    n_params = sum(p.numel() for p in ours.unet.parameters())
    body = (
        f"UNet: {n_params / 1e6:.2f} M parameters, {unet_gflop(ours.unet, 1):.3f} GFLOP per forward at batch 1 "
        f"(`torch.utils.flop_counter`). Matmul peak (2048² fp32): **{peak:.1f} GFLOP/s**. "
        f"{args.repeats} interleaved repeats; time in seconds, median and range; ratio against diffusers' "
        "median in the same run.\n\n"
        + table(["batch", "steps", "variant", "median s", "range s", "vs diffusers", "GFLOP/s", "of peak"], rows)
        + "\n\nRecording's own cost, timed alone (median of 100 calls, free of the run-to-run noise above): "
        + "; ".join(notes)
        + "."
    )
    write_section(
        f"reverse_loop_{args.configs}",
        f"python benchmarks/reverse_loop.py --repeats {args.repeats} --configs {args.configs} "
        f"--variants {args.variants}",
        body,
    )


if __name__ == "__main__":
    main()
