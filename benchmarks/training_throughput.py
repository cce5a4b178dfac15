"""Training throughput: our training step against a plain diffusers-example loop, same UNet, batch and optimizer.

python benchmarks/training_throughput.py --steps 20 --repeats 3
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from common import rate_rows, table, timed, write_section
from diffusers import DDPMScheduler
from diffusers.training_utils import EMAModel

from pipelines.objective import l_simple
from pipelines.scheduler import DDPMExplorerScheduler
from pipelines.training.train import draw_training_inputs
from pipelines.training.unet_presets import build_unet


def ours_step(unet, opt, ema, scheduler, x0):
    noise, t, _ = draw_training_inputs(x0, None, scheduler.config.num_train_timesteps, None, 0.0)
    loss = l_simple(unet, scheduler, x0, noise, t)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    ema.step(unet.parameters())


def plain_step(unet, opt, ema, scheduler, x0):
    """The loop of diffusers' examples/unconditional_image_generation/train_unconditional.py, condensed."""
    noise = torch.randn(x0.shape)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],)).long()
    noisy = scheduler.add_noise(x0, noise, timesteps)
    loss = F.mse_loss(unet(noisy, timesteps).sample.float(), noise.float())
    loss.backward()
    torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    ema.step(unet.parameters())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()
    torch.manual_seed(0)
    x0 = torch.rand(args.batch_size, 1, 32, 32) * 2 - 1
    setups = {
        "ours (pipelines.train)": (ours_step, DDPMExplorerScheduler(beta_schedule="cosine")),
        "plain diffusers loop": (plain_step, DDPMScheduler(beta_schedule="squaredcos_cap_v2")),
    }
    models = {}
    for name in setups:
        unet = build_unet("small", 32, 1)
        ema = EMAModel(unet.parameters(), decay=0.9999, use_ema_warmup=True, power=0.75)
        models[name] = (unet, torch.optim.AdamW(unet.parameters(), lr=1e-4), ema)
    times = {name: [] for name in setups}
    for name, (step, sched) in setups.items():  # warm-up
        step(*models[name], sched, x0)
    for _ in range(args.repeats):
        for name, (step, sched) in setups.items():
            unet, opt, ema = models[name]
            elapsed = timed(lambda: [step(unet, opt, ema, sched, x0) for _ in range(args.steps)])
            times[name].append(args.steps * args.batch_size / elapsed)
    rows = rate_rows(times, "plain diffusers loop", ratio_digits=3)
    body = (
        f"The `small` UNet (bundled checkpoint's), batch {args.batch_size}, AdamW, gradient clipping, EMA; "
        f"{args.steps} steps per timing, {args.repeats} interleaved repeats (images/s).\n\n"
        + table(["loop", "median img/s", "range", "vs plain"], rows)
    )
    write_section(
        "training", f"python benchmarks/training_throughput.py --steps {args.steps} --repeats {args.repeats}", body
    )


if __name__ == "__main__":
    main()
