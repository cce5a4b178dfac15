"""Train a DDPM on Fashion-MNIST or a folder of images.

    python -m pipelines.train --preset small --steps 4000 --output-dir runs/fm32
    accelerate launch -m pipelines.train --preset base --batch-size 128 --mixed-precision bf16 ...
    ACCELERATE_USE_CPU=true torchrun --standalone --nproc_per_node 2 -m pipelines.train ...   # 2 CPU processes, gloo

``--batch-size`` is the global batch: with N processes each takes its 1/N share of every batch, so the same command
trains the same model (up to the noise each process draws) on one process or several, with the same learning-rate
schedule. Each process draws its own ε, t and labels' dropout (seed + its rank).

The loop: L_simple (MSE on ε, or on v; :func:`pipelines.objective.l_simple`), optional min-SNR-γ weighting, or
L_hybrid for a learned Σ_θ (``--variance-type learned_range``: the UNet outputs 2·C channels; L_simple + λ·L_vlb,
:func:`pipelines.objective.l_hybrid`, Nichol & Dhariwal 2021),
optional class conditioning with label dropout (for classifier-free guidance, Ho & Salimans 2022), AdamW with
warm-up and cosine decay, gradient clipping, an EMA of the weights (diffusers' ``EMAModel``), a fixed seed, resumable
safetensors state every N steps (and on SIGTERM or Ctrl-C, at the end of the step under way), a sample grid every N
steps, and at the end the EMA weights saved as a :class:`DDPMExplorerPipeline`.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import signal
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from diffusers import UNet2DModel
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel
from tqdm.auto import tqdm

from pipelines.loading import save_checkpoint
from pipelines.objective import l_hybrid, l_simple
from pipelines.pipeline import DDPMExplorerPipeline
from pipelines.scheduler import LEARNED_VARIANCE_TYPES, PREDICTION_TYPES, DDPMExplorerScheduler
from pipelines.schedules import SCHEDULE_NAMES
from pipelines.training.data import (
    DEFAULT_FASHION_MNIST_DIR,
    FASHION_MNIST_CLASSES,
    DatasetNotFoundError,
    folder_class_names,
    load_fashion_mnist,
    load_image_folder,
    load_labelled_image_folder,
    uint8_to_model_range,
)
from pipelines.training.training_state import STATE_FILE, load_training_state, save_training_state
from pipelines.training.unet_presets import MODEL_PRESETS, build_unet
from pipelines.training.visualize import HYBRID_LOSS, SIMPLE_LOSS, save_image_grid, save_loss_curve

LOG_FILE = "loss.csv"
SAVED_ARG_DEFAULTS = {"variance_type": "fixed_small", "vlb_weight": 0.001}  # of runs saved before these options


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--data-dir", default=DEFAULT_FASHION_MNIST_DIR, help="Fashion-MNIST IDX files")
    data.add_argument("--image-folder", default=None, help="train on this folder of images instead")
    data.add_argument("--resolution", type=int, default=32)
    data.add_argument("--channels", type=int, choices=(1, 3), default=1)
    data.add_argument(
        "--hflip",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="random horizontal flips; off by default: Fashion-MNIST's shoes all point left, and a model trained "
        "with flips draws half of them pointing right, which a judge reads as bags (docs/QUALITY.md)",
    )
    model = p.add_argument_group("model and schedule")
    model.add_argument("--preset", choices=tuple(MODEL_PRESETS), default="small")
    model.add_argument("--model-config", default=None, help="a JSON UNet2DModel config instead of --preset")
    model.add_argument(
        "--class-conditional",
        action="store_true",
        help="condition on the class labels (Fashion-MNIST's, or an --image-folder's class subfolders): "
        "num_class_embeds = classes + 1, the last the null label",
    )
    model.add_argument("--label-dropout", type=float, default=0.1, help="p of training a label as the null label")
    model.add_argument("--num-train-timesteps", type=int, default=1000)
    model.add_argument("--beta-schedule", choices=[s for s in SCHEDULE_NAMES if s != "custom"], default="cosine")
    model.add_argument("--beta-start", type=float, default=1e-4)
    model.add_argument("--beta-end", type=float, default=0.02)
    model.add_argument("--prediction-type", choices=[t for t in PREDICTION_TYPES if t != "sample"], default="epsilon")
    model.add_argument(
        "--variance-type",
        choices=("fixed_small", "learned_range"),
        default="fixed_small",
        help="Σ_θ: fixed at β̃_t, or learned between β̃_t and β_t with L_hybrid (the UNet gets 2·C output channels)",
    )
    model.add_argument("--vlb-weight", type=float, default=0.001, help="λ of L_hybrid = L_simple + λ·L_vlb")
    loop = p.add_argument_group("optimization")
    loop.add_argument("--steps", type=int, default=4000, help="total optimizer steps")
    loop.add_argument("--batch-size", type=int, default=64, help="the global batch, split over the processes")
    loop.add_argument("--lr", type=float, default=5e-4)
    loop.add_argument("--weight-decay", type=float, default=0.0)
    loop.add_argument("--warmup-steps", type=int, default=200)
    loop.add_argument("--grad-clip", type=float, default=1.0)
    loop.add_argument(
        "--snr-gamma", type=float, default=None, help="min-SNR-γ loss weighting (Hang et al. 2023), e.g. 5"
    )
    loop.add_argument("--ema-max-decay", type=float, default=0.9999)
    loop.add_argument("--ema-power", type=float, default=0.75, help="EMA warm-up: decay = 1 − (1 + step)^−power")
    loop.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default="no")
    loop.add_argument("--seed", type=int, default=0)
    loop.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    out = p.add_argument_group("output")
    out.add_argument("--output-dir", default="runs/fashion-mnist-32", help="resumable state, samples, loss log")
    out.add_argument(
        "--export-dir", default=None, help="save the final EMA pipeline here (default: OUTPUT_DIR/pipeline)"
    )
    out.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR's saved state")
    out.add_argument(
        "--init-from",
        default=None,
        help="start a new run from an exported pipeline's UNet (a committed milestone), as weights and EMA, with a "
        "fresh optimizer; --init-step says which step those weights are (the LR schedule and EMA warm-up continue)",
    )
    out.add_argument("--init-step", type=int, default=0)
    out.add_argument(
        "--stop-step",
        type=int,
        default=None,
        help="end this run after step N, saving its state and exporting the EMA pipeline; the LR schedule still "
        "spans --steps (runs compared over the same stretch of one schedule; --resume goes on from there)",
    )
    out.add_argument("--checkpoint-every", type=int, default=250)
    out.add_argument("--sample-every", type=int, default=500)
    out.add_argument("--sample-steps", type=int, default=50, help="respaced steps for the sample grids")
    out.add_argument("--save-fp16", action="store_true", help="store the exported UNet in fp16 (loaded as fp32)")
    out.add_argument("--export-only", action="store_true", help="export the pipeline from the saved state and exit")
    return p.parse_args(argv)


def training_class_names(args) -> list[str]:
    """The classes a class-conditional model learns: Fashion-MNIST's, or a labelled image folder's subfolders."""
    if not args.image_folder:
        return list(FASHION_MNIST_CLASSES)
    try:
        return folder_class_names(args.image_folder)
    except DatasetNotFoundError as e:
        raise SystemExit(f"--class-conditional with --image-folder needs one subfolder per class: {e}") from e


def load_training_images(args) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, R, R) float images in [−1, 1] and their (N,) int64 class labels (all 0 for an unlabelled folder; a
    class-conditional run on a folder reads one subfolder per class, :func:`training_class_names`' order)."""
    if args.image_folder:
        if args.class_conditional:
            images, labels, names = load_labelled_image_folder(args.image_folder, args.resolution, args.channels)
            if names != args.class_names:
                raise SystemExit(f"{args.image_folder}'s classes {names} are not the run's {args.class_names}.")
            return images, labels
        images = load_image_folder(args.image_folder, args.resolution, args.channels)
        return images, torch.zeros(len(images), dtype=torch.long)
    if args.channels != 1:
        raise SystemExit("Fashion-MNIST is grayscale: use --channels 1, or --image-folder for RGB data.")
    images, labels = load_fashion_mnist(args.data_dir, "train")
    return uint8_to_model_range(images, args.resolution), labels


def make_scheduler(args) -> DDPMExplorerScheduler:
    """The model's scheduler, with the sampling settings its checkpoint recommends to diffusers' solvers (measured in
    docs/SAMPLERS.md): x̂₀ thresholded to [−1, 1] (the data's range) and, for the cosine schedule, DPM-Solver's
    ``lambda_min_clipped`` = −5.1 as diffusers recommends for it."""
    return DDPMExplorerScheduler(
        num_train_timesteps=args.num_train_timesteps,
        beta_schedule=args.beta_schedule,
        beta_start=args.beta_start,
        beta_end=args.beta_end,
        prediction_type=args.prediction_type,
        variance_type=args.variance_type,
        clip_sample=True,
        thresholding=True,
        sample_max_value=1.0,
        lambda_min_clipped=-5.1 if args.beta_schedule == "cosine" else -float("inf"),
    )


def draw_training_inputs(x0: torch.Tensor, labels: torch.Tensor, num_timesteps: int, null_label, label_dropout):
    """ε ~ N(0, I), t uniform in [0, T), and the labels with a fraction ``label_dropout`` replaced by the null label
    (None for an unconditional model). Drawn from torch's global generator, which the training state saves."""
    noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype)
    t = torch.randint(0, num_timesteps, (x0.shape[0],), device=x0.device)
    if null_label is None:
        return noise, t, None
    dropped = torch.rand(labels.shape, device=labels.device) < label_dropout
    return noise, t, torch.where(dropped, torch.full_like(labels, null_label), labels)


def widened_state_dict(source, unet) -> dict:
    """A fixed-variance UNet's weights for a learned-variance one (``out_channels`` doubled): the prediction channels
    keep the trained output layer, the new Σ_θ channels start at zero (v = ½: log Σ halfway between β̃ and β)."""
    state = source.state_dict()
    c = source.config.out_channels
    for name in ("conv_out.weight", "conv_out.bias"):
        extra = torch.zeros_like(state[name][:c])
        state[name] = torch.cat([state[name], extra], dim=0)
    return state


def init_from_milestone(export_dir, step: int, unet, ema: EMAModel, lr_scheduler) -> int:
    """Load an exported pipeline's UNet (EMA weights) as both the weights and the EMA, and set the LR schedule and
    the EMA's warm-up to ``step``: a run continues from a committed milestone when its full state is lost (AdamW's
    moments start again from zero, which the next few hundred steps rebuild). A fixed-variance milestone starts a
    learned-variance run of the same UNet (:func:`widened_state_dict`)."""
    source = UNet2DModel.from_pretrained(Path(export_dir) / "unet").float()
    as_json = lambda config, k: json.dumps(config.get(k))  # tuples and lists alike
    differing = sorted(
        k for k in unet.config if not k.startswith("_") and as_json(source.config, k) != as_json(unet.config, k)
    )
    widening = differing == ["out_channels"] and unet.config.out_channels == 2 * source.config.out_channels
    if differing and not widening:
        raise SystemExit(f"--init-from {export_dir}: its UNet differs from this run's in {differing}.")
    unet.load_state_dict(widened_state_dict(source, unet) if widening else source.state_dict())
    ema.shadow_params = [p.detach().clone() for p in unet.parameters()]
    ema.optimization_step = step
    lr_scheduler.last_epoch = step - 1  # the schedule's position, set directly: one step lands it on ``step``
    with warnings.catch_warnings():  # torch warns of a scheduler step before any optimizer step: here it is meant
        warnings.simplefilter("ignore", UserWarning)
        lr_scheduler.step()
    return step


def loss_name_of(args) -> str:
    """What the run's loss.csv holds: L_hybrid for a learned Σ_θ, else L_simple."""
    return HYBRID_LOSS if args.variance_type in LEARNED_VARIANCE_TYPES else SIMPLE_LOSS


def ema_unet(unet, ema: EMAModel):
    """A copy of the UNet carrying the EMA weights."""
    model = copy.deepcopy(unet)
    ema.copy_to(model.parameters())
    return model.eval()


def export_pipeline(unet, scheduler, export_dir, fp16: bool, class_names=None) -> Path:
    """The pipeline in diffusers' layout; a class-conditional one names its classes (Fashion-MNIST's by default)."""
    class_names = list(class_names or FASHION_MNIST_CLASSES) if unet.config.num_class_embeds else None
    pipeline = DDPMExplorerPipeline(unet=unet.half() if fp16 else unet, scheduler=scheduler, class_names=class_names)
    save_checkpoint(pipeline, export_dir)
    return Path(export_dir)


def save_samples(unet, scheduler, path, steps: int, seed: int = 0, n: int = 16) -> None:
    """A grid of n samples; for a class-conditional UNet two of each class, plainly conditional (guidance w = 1)."""
    pipe = DDPMExplorerPipeline(unet=unet, scheduler=scheduler)
    kwargs = dict(generator=torch.Generator().manual_seed(seed), num_inference_steps=steps, output_type="pt")
    if unet.config.num_class_embeds:
        classes = unet.config.num_class_embeds - 1
        kwargs.update(class_labels=[c for c in range(classes) for _ in range(2)], guidance_scale=1.0)
    else:
        kwargs.update(batch_size=n)
    images = pipe(**kwargs).images
    save_image_grid(images, path)


@contextmanager
def stop_requests():
    """Turn SIGTERM and SIGINT into a request the training loop answers at the end of its step; yields a dict whose
    ``"signal"`` holds the signal's name once one came. Outside the main thread (where Python cannot install signal
    handlers) nothing is caught."""
    request = {"signal": None}

    def ask_to_stop(signum, frame):
        request["signal"] = signal.Signals(signum).name

    try:
        previous = {sig: signal.signal(sig, ask_to_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not the main thread
        previous = {}
    try:
        yield request
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv=None) -> None:
    with stop_requests() as stop:
        train(parse_args(argv), stop)


def train(args: argparse.Namespace, stop: dict) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    # split_batches: each process takes its share of a --batch-size batch, and the learning-rate schedule is
    # stepped once per step (without it, accelerate steps it once per process: N times too fast)
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision, dataloader_config=DataLoaderConfiguration(split_batches=True)
    )
    if args.batch_size % accelerator.num_processes:
        raise SystemExit(
            f"--batch-size {args.batch_size} does not split over {accelerator.num_processes} processes; "
            f"choose a multiple of {accelerator.num_processes}."
        )
    set_seed(args.seed, device_specific=True)  # rank r draws from seed + r: its own ε and t (rank 0: seed)
    out_dir = Path(args.output_dir)
    export_dir = Path(args.export_dir or out_dir / "pipeline")
    resuming = args.resume or args.export_only
    if resuming and not (out_dir / STATE_FILE).exists():
        raise SystemExit(f"--resume: no saved state at {out_dir / STATE_FILE}.")
    if args.init_from and resuming:
        raise SystemExit("--init-from starts a new run: it does not go with --resume.")
    if not resuming and (out_dir / STATE_FILE).exists():
        raise SystemExit(
            f"{out_dir} already holds a run; pass --resume to continue it, or choose another --output-dir."
        )

    if resuming and (out_dir / "args.json").exists():  # the model and schedule come from the saved run
        saved = json.loads((out_dir / "args.json").read_text())
        for key in (
            "preset",
            "model_config",
            "resolution",
            "channels",
            "num_train_timesteps",
            "beta_schedule",
            "beta_start",
            "beta_end",
            "prediction_type",
            "class_conditional",
            "variance_type",
            "vlb_weight",
            "class_names",
        ):
            setattr(args, key, saved.get(key, SAVED_ARG_DEFAULTS.get(key, False)))
    if not getattr(args, "class_names", None):  # a new run, or one saved before runs recorded their classes
        args.class_names = training_class_names(args) if args.class_conditional else None
    num_classes = len(args.class_names or FASHION_MNIST_CLASSES)
    num_class_embeds = num_classes + 1 if args.class_conditional else None  # the last one is the null label
    null_label = num_classes if args.class_conditional else None
    unet = build_unet(
        None if args.model_config else args.preset,
        args.resolution,
        args.channels,
        args.model_config,
        num_class_embeds=num_class_embeds,
        learned_variance=args.variance_type in LEARNED_VARIANCE_TYPES,
    )
    scheduler = make_scheduler(args)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    lr_scheduler = get_cosine_schedule_with_warmup(optimizer, args.warmup_steps, args.steps)
    ema = EMAModel(unet.parameters(), decay=args.ema_max_decay, use_ema_warmup=True, power=args.ema_power)

    step = 0
    if resuming:
        step = load_training_state(out_dir, unet, ema, optimizer, lr_scheduler)["step"]
        accelerator.print(f"Resumed from {out_dir / STATE_FILE} at step {step}.")
        if accelerator.num_processes > 1:  # the saved generator is rank 0's: give each rank its own stream again
            set_seed(args.seed + step, device_specific=True)
    elif args.init_from:
        step = init_from_milestone(args.init_from, args.init_step, unet, ema, lr_scheduler)
        accelerator.print(f"Started from {args.init_from} as step {step}, with a fresh optimizer.")
    if args.export_only:
        export_pipeline(ema_unet(unet, ema), scheduler, export_dir, args.save_fp16, args.class_names)
        accelerator.print(f"Exported the EMA pipeline of step {step} to {export_dir}.")
        return

    images, labels = load_training_images(args)
    dataset = torch.utils.data.TensorDataset(images, labels)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)
    unet, optimizer, loader, lr_scheduler = accelerator.prepare(unet, optimizer, loader, lr_scheduler)
    ema.to(accelerator.device)
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "args.json").write_text(json.dumps(vars(args), indent=2))
        n_params = sum(p.numel() for p in unet.parameters())
        accelerator.print(f"{len(images)} images, UNet {n_params / 1e6:.2f} M parameters, {args.steps} steps.")

    log_path = out_dir / LOG_FILE
    if resuming and log_path.exists() and accelerator.is_main_process:  # drop rows logged after the saved state
        rows = log_path.read_text().splitlines()
        kept = [rows[0]] + [r for r in rows[1:] if int(r.split(",", 1)[0]) <= step]
        log_path.write_text("\n".join(kept) + "\n")
    progress = tqdm(total=args.steps, initial=step, disable=not accelerator.is_local_main_process, desc="train")
    unet.train()
    t_last, seen = time.perf_counter(), 0
    last_step = min(args.steps, args.stop_step or args.steps)
    while step < last_step:
        for x0, y in loader:
            if args.hflip:
                flip = torch.rand(x0.shape[0], device=x0.device) < 0.5
                x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
            with accelerator.accumulate(unet), accelerator.autocast():
                noise, t, class_labels = draw_training_inputs(
                    x0, y, args.num_train_timesteps, null_label, args.label_dropout
                )
                if args.variance_type in LEARNED_VARIANCE_TYPES:
                    loss = l_hybrid(unet, scheduler, x0, noise, t, class_labels, args.vlb_weight)
                else:
                    loss = l_simple(unet, scheduler, x0, noise, t, class_labels, args.snr_gamma)
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.grad_clip:
                    accelerator.clip_grad_norm_(unet.parameters(), args.grad_clip)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            ema.step(unet.parameters())
            step += 1
            seen += x0.shape[0] * accelerator.num_processes
            loss_value = accelerator.gather(loss.detach()).mean().item()
            if not math.isfinite(loss_value):
                raise SystemExit(f"Loss became {loss_value} at step {step}; lower --lr or enable --grad-clip.")
            now = time.perf_counter()
            ips = seen / max(now - t_last, 1e-9)
            if seen >= 64 * args.batch_size:  # a sliding window for images/s
                t_last, seen = now, 0
            progress.set_postfix(
                loss=f"{loss_value:.4f}", img_s=f"{ips:.0f}", lr=f"{lr_scheduler.get_last_lr()[0]:.1e}"
            )
            progress.update(1)
            if accelerator.is_main_process:
                new_log = not log_path.exists()
                with log_path.open("a", newline="") as f:
                    writer = csv.writer(f)
                    if new_log:
                        writer.writerow(["step", "loss", "lr", "images_per_s", "wall_s"])
                    writer.writerow(
                        [
                            step,
                            f"{loss_value:.6f}",
                            f"{lr_scheduler.get_last_lr()[0]:.3e}",
                            f"{ips:.1f}",
                            f"{time.time():.1f}",
                        ]
                    )
                if step % args.checkpoint_every == 0 or step == last_step or stop["signal"]:
                    save_training_state(out_dir, step, accelerator.unwrap_model(unet), ema, optimizer, lr_scheduler)
                if step % args.sample_every == 0 or step == args.steps:
                    model = ema_unet(accelerator.unwrap_model(unet), ema)
                    save_samples(model, scheduler, out_dir / f"samples_{step:06d}.png", args.sample_steps)
                    save_loss_curve(log_path, out_dir / "loss.png", loss_name=loss_name_of(args))
                    t_last, seen = time.perf_counter(), 0  # sampling time is not training throughput
            if stop["signal"]:
                progress.close()
                accelerator.print(f"{stop['signal']}: saved the state of step {step}; continue with --resume.")
                return
            if step >= last_step:
                break
    progress.close()
    if accelerator.is_main_process:
        model = ema_unet(accelerator.unwrap_model(unet), ema)
        export_pipeline(model, scheduler, export_dir, args.save_fp16, args.class_names)
        accelerator.print(f"Saved the EMA pipeline to {export_dir}.")


if __name__ == "__main__":
    main()
