"""Memory: peak RSS of the app's process with 8 sessions each holding a full 1,000-step trajectory, at 32 px (the
bundled model) and with a random 256 px UNet.

    python benchmarks/memory.py
"""

from __future__ import annotations

import gc
import tempfile
import tracemalloc
from pathlib import Path

import psutil
import torch
from common import CHECKPOINT, table, write_section
from diffusers import UNet2DModel

from app import plans, settings
from app.callbacks import reverse
from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def sessions(model: str, batch: int, sampler: str, steps: int, n: int = 8) -> tuple[list, float]:
    held = []
    before = rss_mb()
    for seed in range(n):
        state = list(
            reverse.reverse_generate(model, sampler, steps, 0.0, next(iter(plans.VARIANCE_CHOICES)), True, seed, batch)
        )[-1]["state"]
        held.append(state)
    return held, rss_mb() - before


def measure(label: str, model: str, batch: int, sampler: str, steps: int) -> list:
    held, growth = sessions(model, batch, sampler, steps)
    per = held[0].trajectory
    return [label, len(per), f"{per.nbytes / 2**20:.2f}", f"{growth:.1f}", f"{rss_mb():.0f}"]


def gradio_session_kb(n: int = 20) -> tuple[float, int]:
    """What gradio itself keeps per session, with no state in it: its SessionState copies a config for every block of
    the app. Measured with tracemalloc over n sessions; returns (KB per session, number of blocks)."""
    from gradio.state_holder import SessionState

    from app.ui import build_demo

    demo = build_demo()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    held = [SessionState(demo) for _ in range(n)]
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    del held
    return grown / n / 1024, len(demo.blocks)


def main() -> None:
    settings.CHECKPOINT_DIR = CHECKPOINT.parent
    session_kb, blocks = gradio_session_kb()
    base = rss_mb()
    rows = [measure("fashion-mnist-32 (32 px), batch 1, all 1000 steps", "fashion-mnist-32", 1, plans.DDPM, 1000)]
    with tempfile.TemporaryDirectory() as tmp:  # a random 256 px UNet (3 channels), like google/ddpm-*-256's shape
        unet = UNet2DModel(
            sample_size=256,
            in_channels=3,
            out_channels=3,
            block_out_channels=(8, 16, 32, 32),
            down_block_types=("DownBlock2D",) * 4,
            up_block_types=("UpBlock2D",) * 4,
            norm_num_groups=8,
            layers_per_block=1,
        )
        scheduler = DDPMExplorerScheduler(num_train_timesteps=1000)
        DDPMExplorerPipeline(unet=unet, scheduler=scheduler).save_pretrained(Path(tmp) / "random-256")
        settings.CHECKPOINT_DIR = Path(tmp)
        settings.MAX_WORK = 10**12  # this benchmark wants long runs at 256 px
        rows.append(
            measure("random UNet at 256 px × 3, batch 1, 120 respaced steps", "random-256", 1, plans.DDPM, 120)
        )
    body = (
        f"Each row: 8 sessions, each holding one recorded run (uint8 x_t, x̂₀, ε̂; frames subsampled to the "
        f"budget of {settings.TRAJECTORY_BUDGET_SMALL / 2**20:.0f} MB per session for models ≤ 64 px and "
        f"{settings.TRAJECTORY_BUDGET_LARGE / 2**20:.0f} MB above). Process RSS at start: {base:.0f} MB.\n\n"
        + table(["run", "frames kept", "MB per session", "RSS growth, 8 sessions, MB", "RSS after, MB"], rows)
        + f"\n\nBeside the trajectory, gradio keeps {session_kb:.0f} KB per session of its own (`SessionState`: a "
        f"copy of the config of each of the app's {blocks} blocks; tracemalloc over 20 sessions). It stays until the "
        f"session is evicted, so it is capped at `SESSION_CAPACITY` ({settings.SESSION_CAPACITY}) sessions: "
        f"{session_kb * settings.SESSION_CAPACITY / 1024:.0f} MB at most."
    )
    write_section("memory", "python benchmarks/memory.py", body)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
