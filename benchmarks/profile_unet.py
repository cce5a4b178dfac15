"""Where a batch-1 UNet forward spends its time on this CPU (torch.profiler), for docs/PERFORMANCE.md.

python benchmarks/profile_unet.py --batch 1
"""

from __future__ import annotations

import argparse

import torch
from common import CHECKPOINT, table, write_section
from torch.profiler import ProfilerActivity, profile

from pipelines.loading import load_pipeline


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--calls", type=int, default=50)
    args = p.parse_args()
    unet = load_pipeline(CHECKPOINT).unet
    x = torch.randn(args.batch, 1, 32, 32)
    t = torch.tensor(500)
    with torch.inference_mode():
        for _ in range(5):
            unet(x, t)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.calls):
                unet(x, t)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    rows = [
        [
            f"`{e.key}`",
            e.count // args.calls,
            f"{e.self_cpu_time_total / args.calls / 1e3:.2f}",
            f"{e.self_cpu_time_total / total:.0%}",
        ]
        for e in events[:12]
    ]
    body = (
        f"Self CPU time per forward at batch {args.batch}, {args.calls} forwards, top 12 operators of "
        f"{total / args.calls / 1e3:.1f} ms in all.\n\n" + table(["operator", "calls", "ms", "share"], rows)
    )
    write_section(f"profile_batch{args.batch}", f"python benchmarks/profile_unet.py --batch {args.batch}", body)


if __name__ == "__main__":
    main()
