"""Training-step throughput of the class-conditional UNet under the options that could speed it up on a CPU:
channels_last, ``torch.compile`` (forward and backward), and the batch size. Images/s of whole steps (L_simple,
backward, clipping, AdamW, EMA), interleaved repeats after a warm-up.

python benchmarks/training_recipe.py --steps 10 --repeats 3
"""

from __future__ import annotations

import argparse

import torch
from common import rate_rows, table, timed, write_section
from diffusers.training_utils import EMAModel

from pipelines.objective import l_simple
from pipelines.scheduler import DDPMExplorerScheduler
from pipelines.training.train import draw_training_inputs
from pipelines.training.unet_presets import build_unet

NULL_LABEL = 10


def make_variant(batch_size: int, channels_last: bool, compile: bool):
    torch.manual_seed(0)
    unet = build_unet("small", 32, 1, num_class_embeds=NULL_LABEL + 1)
    if channels_last:
        unet = unet.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    ema = EMAModel(unet.parameters(), decay=0.9999, use_ema_warmup=True, power=0.75)
    model = torch.compile(unet) if compile else unet
    scheduler = DDPMExplorerScheduler(beta_schedule="cosine")
    x0 = torch.rand(batch_size, 1, 32, 32) * 2 - 1
    labels = torch.randint(0, NULL_LABEL, (batch_size,))
    if channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)

    def step():
        noise, t, y = draw_training_inputs(x0, labels, 1000, NULL_LABEL, 0.1)
        loss = l_simple(model, scheduler, x0, noise, t, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.step(unet.parameters())

    return step, batch_size


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    variants = {
        "eager, batch 64": (64, False, False),
        "channels_last, batch 64": (64, True, False),
        "compile, batch 64": (64, False, True),
        "channels_last + compile, batch 64": (64, True, True),
        "eager, batch 32": (32, False, False),
        "eager, batch 128": (128, False, False),
    }
    steps = {name: make_variant(*v) for name, v in variants.items()}
    for step, _ in steps.values():  # warm-up (and compilation)
        step()
        step()
    rates = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, (step, batch) in steps.items():
            elapsed = timed(lambda: [step() for _ in range(args.steps)])
            rates[name].append(args.steps * batch / elapsed)
    rows = rate_rows(rates, "eager, batch 64")
    body = (
        "The class-conditional `small` UNet (2.7 M parameters, 11 class embeddings), one whole training step "
        f"(L_simple with label dropout, backward, clipping, AdamW, EMA); {args.steps} steps per timing, "
        f"{args.repeats} interleaved repeats (images/s).\n\n"
        + table(["variant", "median img/s", "range", "vs eager 64"], rows)
    )
    write_section(
        "training-recipe", f"python benchmarks/training_recipe.py --steps {args.steps} --repeats {args.repeats}", body
    )


if __name__ == "__main__":
    main()
