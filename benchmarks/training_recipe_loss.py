"""The loss side of the class-conditional recipe: plain L_simple against min-SNR-γ weighting, ε against v prediction,
and a cosine learning-rate decay against a constant rate, each trained for the same number of Fashion-MNIST images
from the same initial weights and data order, then scored by one common measure: the unweighted ε-MSE of the
final weights on held-out test images at fixed timesteps (for a v model, ε̂ is read from its v). A weighted training
loss can't be compared across variants; this measure can.

python benchmarks/training_recipe_loss.py --steps 150 --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch
from common import table, write_section

from pipelines.objective import l_simple
from pipelines.training.data import DEFAULT_FASHION_MNIST_DIR, load_fashion_mnist, uint8_to_model_range
from pipelines.training.held_out_loss import eps_errors
from pipelines.training.train import draw_training_inputs, make_scheduler, parse_args
from pipelines.training.unet_presets import build_unet

NULL_LABEL = 10
VARIANTS = {  # name: (prediction type, min-SNR γ, learning-rate decay)
    "ε, L_simple, cosine decay (shipped)": ("epsilon", None, "cosine"),
    "ε, min-SNR γ = 5, cosine decay": ("epsilon", 5.0, "cosine"),
    "v, L_simple, cosine decay": ("v_prediction", None, "cosine"),
    "ε, L_simple, constant rate": ("epsilon", None, "constant"),
}


def train_variant(prediction_type, snr_gamma, decay, images, labels, steps, batch_size, lr, held_out):
    args = parse_args(["--prediction-type", prediction_type])
    scheduler = make_scheduler(args)
    torch.manual_seed(0)  # the same initial weights and data order for every variant
    unet = build_unet("small", 32, 1, num_class_embeds=NULL_LABEL + 1)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr)
    warmup = max(1, steps // 10)

    def rate(step):
        if step < warmup:
            return (step + 1) / warmup
        if decay == "constant":
            return 1.0
        return 0.5 * (1 + torch.cos(torch.tensor(torch.pi * (step - warmup) / (steps - warmup)))).item()

    sched = torch.optim.lr_scheduler.LambdaLR(opt, rate)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    for step in range(steps):
        idx = order[step * batch_size : (step + 1) * batch_size]
        x0, y = images[idx], labels[idx]
        noise, t, y = draw_training_inputs(x0, y, 1000, NULL_LABEL, 0.1)
        loss = l_simple(unet, scheduler, x0, noise, t, y, snr_gamma)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    wall = time.perf_counter() - start
    unet.eval()
    x0, labels, t, noise = held_out
    return eps_errors(unet, scheduler, x0, t, noise, labels).mean().item(), steps * batch_size / wall


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data-dir", default=DEFAULT_FASHION_MNIST_DIR)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    images, labels = load_fashion_mnist(args.data_dir, "train")
    images = uint8_to_model_range(images)
    test, test_labels = load_fashion_mnist(args.data_dir, "test")
    g = torch.Generator().manual_seed(1)
    n = 512
    x0 = uint8_to_model_range(test[:n])
    t = torch.arange(n) * 1000 // n  # every part of the schedule, evenly
    held_out = (x0, test_labels[:n], t, torch.randn(x0.shape, generator=g))

    rows = []
    for name, (prediction_type, gamma, decay) in VARIANTS.items():
        mse, ips = train_variant(
            prediction_type, gamma, decay, images, labels, args.steps, args.batch_size, args.lr, held_out
        )
        print(f"{name}: held-out ε-MSE {mse:.4f}, {ips:.1f} img/s", flush=True)
        rows.append([name, f"{mse:.4f}", f"{ips:.1f}"])
    images_seen = args.steps * args.batch_size
    intro = (
        f"The class-conditional `small` UNet trained for {args.steps} steps of batch {args.batch_size} "
        f"({images_seen:,} images, lr {args.lr:g} with {max(1, args.steps // 10)} warm-up steps, label dropout 0.1, "
        "seed 0 for weights and data order), then scored on 512 test images at evenly spread t with fixed ε: the "
        "unweighted ε-MSE (lower is better). One run per variant."
    )
    write_section(
        "training-recipe-loss",
        f"python benchmarks/training_recipe_loss.py --steps {args.steps} --threads {args.threads}",
        intro + "\n\n" + table(["variant", "held-out ε-MSE", "img/s"], rows),
    )


if __name__ == "__main__":
    main()
