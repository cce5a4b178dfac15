"""Event handlers: validate inputs (every number is checked here, not only by a slider's range), call pipelines/,
and hand the results to rendering. Per-user data lives in the session states defined here, never in globals."""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache

import gradio as gr
import numpy as np
import torch
from PIL import Image

from app import models, rendering, settings
from app.images import ImageLoadError, load_image, to_model_tensor
from pipelines import BETA_SCHEDULES, DDPMExplorerPipeline, DDPMExplorerScheduler, ForwardTrajectory, make_schedule
from pipelines.forward import StepValues
from pipelines.objective import elbo_bpd, per_timestep_terms
from pipelines.pipeline import NonFiniteSampleError
from pipelines.schedules import RANGED_SCHEDULES
from pipelines.trajectory import Trajectory, TrajectoryRecorder, from_uint8, to_uint8

try:  # ZeroGPU Spaces: sampling runs on a GPU lent per call; a no-op elsewhere
    import spaces

    gpu = spaces.GPU
except ImportError:
    gpu = lambda fn: fn

SCHEDULES = tuple(BETA_SCHEDULES)
SAMPLERS = ("DDPM, all T steps", "DDPM, respaced to N steps", "DDIM (η), N steps")
png = rendering.png_output
VARIANCE_TYPES = {"fixed_small (β̃_t, posterior)": "fixed_small", "fixed_large (β_t)": "fixed_large"}


# ----------------------------------------------------------------------------- validation


def check_int(name: str, value, lo: int, hi: int) -> int:
    """An integer in [lo, hi] from whatever the client sent, or a gr.Error that says what was wrong."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(f) or f != int(f):
        raise gr.Error(f"{name} must be a whole number, got {value!r}.")
    if not lo <= f <= hi:
        raise gr.Error(f"{name} must be between {lo} and {hi}, got {int(f)}.")
    return int(f)


def check_float(name: str, value, lo: float, hi: float) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(f) or not lo <= f <= hi:
        raise gr.Error(f"{name} must be a finite number between {lo} and {hi}, got {value!r}.")
    return f


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise gr.Error(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}.")
    return value


def open_image(path) -> Image.Image:
    if path is None:
        path = default_example()
    if not isinstance(path, (str, os.PathLike)):
        raise gr.Error("Upload an image file.")
    try:
        return load_image(path)
    except ImageLoadError as e:
        raise gr.Error(str(e)) from None


def examples() -> list[str]:
    """The shipped example images, the default first."""
    found = sorted(settings.ASSETS_DIR.glob("*.png"), key=lambda p: (p.name != settings.DEFAULT_EXAMPLE, p.name))
    return [str(p) for p in found]


def default_example() -> str:
    found = examples()
    if not found:
        raise gr.Error("No image given, and no example images are installed.")
    return found[0]


def schedule_tables(schedule, T, beta_start, beta_end):
    """Validated schedule tables; cached, since they are immutable and shared."""
    schedule = check_choice("Schedule", schedule, SCHEDULES)
    T = check_int("T", T, 1, settings.MAX_T)
    beta_start = check_float("β start", beta_start, 1e-8, 0.999)
    beta_end = check_float("β end", beta_end, 1e-8, 0.999)
    if schedule in RANGED_SCHEDULES and not beta_start < beta_end:
        raise gr.Error(f"β start must be below β end, got {beta_start} and {beta_end}.")
    try:
        return _tables(schedule, T, beta_start, beta_end)
    except ValueError as e:
        raise gr.Error(str(e)) from None


@lru_cache(maxsize=32)
def _tables(schedule, T, beta_start, beta_end):
    kwargs = dict(beta_start=beta_start, beta_end=beta_end) if schedule in RANGED_SCHEDULES else {}
    return make_schedule(schedule, T, **kwargs)


@lru_cache(maxsize=32)
def _plot_for(schedule, T, beta_start, beta_end) -> rendering.CursorPlot:
    tb = _tables(schedule, T, beta_start, beta_end)
    return rendering.schedule_plot(tb.betas.numpy(), tb.alphas_cumprod.numpy(), tb.log_snr.numpy())


# ----------------------------------------------------------------------------- forward process


@dataclass
class ForwardState:
    """One user's forward view: x₀ and ε fixed, so scrubbing is coherent."""

    traj: ForwardTrajectory
    plot_key: tuple


def forward_state(image, schedule, T, beta_start, beta_end, seed, resolution) -> ForwardState:
    """Validate the inputs, load and resize the image, fix ε from the seed, and precompute the schedule."""
    tables = schedule_tables(schedule, T, beta_start, beta_end)
    seed = check_int("Seed", seed, 0, settings.MAX_SEED)
    resolution = check_int("Resolution", resolution, settings.MIN_RESOLUTION, settings.MAX_RESOLUTION)
    pil = open_image(image)
    x0 = to_model_tensor(pil, resolution, 3 if pil.mode == "RGB" else 1)
    traj = ForwardTrajectory(x0, tables, generator=torch.Generator().manual_seed(seed))
    return ForwardState(traj, (schedule, int(T), float(beta_start), float(beta_end)))


def forward_setup(image, schedule, T, beta_start, beta_end, seed, resolution):
    """:func:`forward_state`, plus what the page shows once per setup: x₀ as the model sees it, the fixed ε, and the
    slider's new range."""
    state = forward_state(image, schedule, T, beta_start, beta_end, seed, resolution)
    traj = state.traj
    eps = png(rendering.noise_to_uint8(traj.noise))  # fixed: sent once here, never per slider move
    return state, png(rendering.image_to_uint8(traj.x0)), eps, gr.update(maximum=traj.num_timesteps)


def format_values(v: StepValues, T: int) -> str:
    snr = "∞" if math.isinf(v.snr) else f"{v.snr:.4g}"
    log_snr = "∞" if math.isinf(v.snr) else f"{math.log(v.snr):.3f}"
    rows = [
        ("t", f"{v.t} / {T}"),
        ("β_t", f"{v.beta:.4g}"),
        ("ᾱ_t", f"{v.alpha_bar:.4g}"),
        ("√ᾱ_t (signal)", f"{v.sqrt_alpha_bar:.4f}"),
        ("√(1−ᾱ_t) (noise)", f"{v.sqrt_one_minus_alpha_bar:.4f}"),
        ("SNR = ᾱ_t/(1−ᾱ_t)", snr),
        ("log SNR", log_snr),
    ]
    return "| quantity | value |\n|---|---|\n" + "\n".join(f"| {k} | {val} |" for k, val in rows)


def forward_scrub(state: ForwardState | None, t):
    """One slider move: x_t, the two parts of x_t, the curves with a cursor, and the numbers. No model work, and
    nothing but this one frame is computed (ε is fixed and was sent by :func:`forward_setup`)."""
    if state is None:
        raise gr.Error("Choose an image first.")
    traj = state.traj
    t = check_int("t", t, 0, traj.num_timesteps)
    signal, noise_part = traj.signal_and_noise(t)
    x_t = signal + noise_part
    plot = _plot_for(*state.plot_key)
    return (
        png(rendering.image_to_uint8(x_t)),
        png(rendering.image_to_uint8(signal)),
        png(rendering.noise_to_uint8(noise_part)),
        png(plot.at(max(t, 1))),
        format_values(traj.values(t), traj.num_timesteps),
    )


def forward_frame(image, schedule, T, beta_start, beta_end, seed, resolution, t):
    """Stateless API: x_t of an image under a schedule, a seed's ε and a timestep t ∈ [0, T]."""
    state = forward_state(image, schedule, T, beta_start, beta_end, seed, resolution)
    t = check_int("t", t, 0, state.traj.num_timesteps)
    return png(rendering.image_to_uint8(state.traj.frame(t)))


def forward_markov_chain(state: ForwardState | None, t, seed):
    """x_t by iterating q(x_s | x_{s−1}) beside the closed form, and the statistics that show they agree."""
    if state is None:
        raise gr.Error("Choose an image first.")
    traj = state.traj
    t = check_int("t", t, 0, min(traj.num_timesteps, settings.MAX_CHAIN_STEPS))
    seed = check_int("Seed", seed, 0, settings.MAX_SEED)
    chain = traj.markov_chain(t, generator=torch.Generator().manual_seed(seed + 1))
    closed = traj.frame(t)
    v = traj.values(t)
    lines = [
        f"**t = {t}.** Both are draws from q(x_t | x₀) = N(√ᾱ_t·x₀, (1−ᾱ_t)·I), with √ᾱ_t = "
        f"{v.sqrt_alpha_bar:.4f}. Their pixels differ because the chain drew {t} fresh noises while the closed "
        "form used one ε; their distribution is the same."
    ]
    if t > 0:
        rows = []
        for name, x in (("Markov chain", chain), ("closed form", closed)):
            z = (x - v.sqrt_alpha_bar * traj.x0) / v.sqrt_one_minus_alpha_bar
            rows.append(f"| {name} | {z.mean().item():+.3f} | {z.std().item():.3f} |")
        lines.append(
            "Standardized residual (x_t − √ᾱ_t·x₀)/√(1−ᾱ_t), which should be N(0, 1) for both:\n\n"
            "| | mean | std |\n|---|---|---|\n" + "\n".join(rows)
        )
    return png(rendering.image_to_uint8(chain)), png(rendering.image_to_uint8(closed)), "\n\n".join(lines)


def forward_compare(state: ForwardState | None, t):
    """The same x₀ and ε at the same t under every schedule (same T and β range), and their ᾱ curves."""
    if state is None:
        raise gr.Error("Choose an image first.")
    _, T, beta_start, beta_end = state.plot_key
    t = check_int("t", t, 0, T)
    gallery, curves = [], {}
    for name in SCHEDULES:
        try:
            tb = _tables(name, T, beta_start, beta_end)
        except ValueError as e:
            gallery.append((png(np.zeros((8, 8), np.uint8)), f"{name}: {e}"))
            continue
        same_noise = ForwardTrajectory(state.traj.x0, tb, noise=state.traj.noise)
        caption = f"{name}: ᾱ = {same_noise.values(t).alpha_bar:.3g}"
        gallery.append((png(rendering.image_to_uint8(same_noise.frame(t))), caption))
        curves[name] = tb.alphas_cumprod.numpy()
    return gallery, png(rendering.figure_compare_alpha_bar(curves, t))


def forward_gif(state: ForwardState | None, session: SessionFiles | None = None, frames: int = 60):
    """The whole forward process, t = 0 … T, as a GIF in a fresh per-session file."""
    if state is None:
        raise gr.Error("Choose an image first.")
    T = state.traj.num_timesteps
    ts = sorted(set(np.linspace(0, T, min(frames, T + 1)).round().astype(int).tolist()))
    images = [rendering.image_to_uint8(state.traj.frame(t)) for t in ts]
    path = rendering.write_gif(images, directory=export_dir())
    session = session or SessionFiles()
    session.keep_only(path)
    return path, path, session


def play_tick(t, maximum, stride_frac: float = 1 / 60):
    """Advance a playing slider by 1/60 of its range; wraps to 0 at the end."""
    maximum = check_int("T", maximum, 1, max(settings.MAX_T, settings.MAX_STEPS))
    t = check_int("t", t, 0, maximum)
    stride = max(1, round(maximum * stride_frac))
    return 0 if t >= maximum else min(t + stride, maximum)


# ----------------------------------------------------------------------------- files


@dataclass
class SessionFiles:
    """Export files of one session, deleted when the session ends.

    gradio ends a session in two ways: its state expires (``delete_callback`` runs) or, past
    ``state_session_capacity``, the oldest session is evicted and simply dropped. ``__del__`` covers the second, so
    no export outlives the session that made it.
    """

    paths: list[str] = field(default_factory=list)

    def keep_only(self, path: str) -> None:
        """Record a new export and delete the session's older ones: gradio has already served them from copies in its
        own cache, so a session holds one export file however many it makes."""
        delete_session_files(self)
        self.paths.append(path)

    def __del__(self):
        delete_session_files(self)


def delete_session_files(files: SessionFiles | None) -> None:
    while files is not None and files.paths:
        try:
            os.remove(files.paths.pop())
        except OSError:
            pass


@lru_cache(maxsize=1)
def export_dir() -> str:
    return tempfile.mkdtemp(prefix="ddpm-explorer-exports-")


# ----------------------------------------------------------------------------- reverse process


@dataclass
class ReverseState:
    """One user's recorded reverse run."""

    model: str
    trajectory: Trajectory
    num_train_timesteps: int


def run_plan(model_name, sampler, steps, eta, batch_size):
    """Validate a sampling request and return (pipeline, number of steps or None for all T, η, batch size)."""
    try:
        pipe = models.get_pipeline(model_name)
    except models.ModelUnavailable as e:
        raise gr.Error(str(e)) from None
    T = pipe.scheduler.config.num_train_timesteps
    sampler = check_choice("Sampler", sampler, SAMPLERS)
    batch_size = check_int("Batch size", batch_size, 1, settings.MAX_BATCH)
    if sampler == SAMPLERS[0]:
        n, eta = T, None
    else:
        n = check_int("Steps", steps, 1, min(T, settings.MAX_STEPS))
        eta = check_float("η", eta, 0.0, 1.0) if sampler == SAMPLERS[2] else None
    if n > settings.MAX_STEPS:
        raise gr.Error(f"That asks for {n} steps, over this server's limit of {settings.MAX_STEPS}; use respacing.")
    check_work(pipe, n, batch_size)
    return pipe, (None if n == T else n), eta, batch_size


def check_work(pipe, unet_calls: int, batch_size: int) -> None:
    """Cap what one request may ask for: UNet calls × batch × pixels ≤ MAX_WORK."""
    _, h, w = pipe.sample_shape
    work = unet_calls * batch_size * h * w
    if work > settings.MAX_WORK:
        raise gr.Error(
            f"That asks for {unet_calls} UNet calls × {batch_size} images × {h}×{w} px = {work:,}, over this "
            f"server's limit of {settings.MAX_WORK:,}. Use fewer steps or a smaller batch."
        )


def estimate_runtime(model_name, sampler, steps, eta, batch_size) -> str:
    """A run-time estimate from one measured UNet call, before a long run."""
    pipe, n, eta, batch_size = run_plan(model_name, sampler, steps, eta, batch_size)
    n = n or pipe.scheduler.config.num_train_timesteps
    per_call = models.seconds_per_unet_call(model_name, batch_size)
    return f"≈ {n * per_call:.1f} s for {n} steps at batch {batch_size} ({per_call * 1000:.0f} ms per UNet call here)."


def with_options(pipe: DDPMExplorerPipeline, variance_type: str, clip: bool) -> DDPMExplorerPipeline:
    """The shared pipeline's UNet with this request's scheduler options (the shared scheduler stays untouched)."""
    variance = check_choice("Variance type", variance_type, tuple(VARIANCE_TYPES))
    scheduler = DDPMExplorerScheduler.from_config(
        pipe.scheduler.config, variance_type=VARIANCE_TYPES[variance], clip_sample=bool(clip)
    )
    run = DDPMExplorerPipeline(unet=pipe.unet, scheduler=scheduler)
    run.set_progress_bar_config(leave=False)
    return run


def frame_budget(pipe, batch_size: int) -> int:
    """How many frames a session's trajectory may keep: the uint8 budget over the size of one recorded step."""
    c, h, w = pipe.sample_shape
    budget = settings.TRAJECTORY_BUDGET_SMALL if max(h, w) <= 64 else settings.TRAJECTORY_BUDGET_LARGE
    return max(2, budget // (3 * batch_size * c * h * w))


@gpu
def reverse_generate(
    model_name, sampler, steps, eta, variance_type, clip, seed, batch_size, progress=gr.Progress(track_tqdm=True)
):
    """Denoise pure noise step by step, streaming x_t and x̂₀ while it runs; the last yield carries the recorded
    trajectory (the session's handle for scrubbing) and the final images."""
    pipe, n, eta, batch_size = run_plan(model_name, sampler, steps, eta, batch_size)
    seed = check_int("Seed", seed, 0, settings.MAX_SEED)
    run = with_options(pipe, variance_type, clip)
    timesteps = run.run_timesteps(n)
    recorder = TrajectoryRecorder(timesteps, (batch_size, *run.sample_shape), frame_budget(run, batch_size))
    generator = torch.Generator(device=run.device).manual_seed(seed)
    last_yield, final = 0.0, None
    try:
        for step in run.iter_trajectory(batch_size=batch_size, generator=generator, num_inference_steps=n, eta=eta):
            recorder.record(step.step_index, step.sample, step.pred_original_sample, step.pred_epsilon)
            final = step.prev_sample
            if time.perf_counter() - last_yield > settings.STREAM_EVERY_S:
                last_yield = time.perf_counter()
                status = f"step {step.step_index + 1} / {step.num_steps}, t = {step.timestep}"
                yield (_grid(step.sample), _grid(step.pred_original_sample), status, gr.skip(), gr.skip(), gr.skip())
    except NonFiniteSampleError as e:
        raise gr.Error(str(e)) from None
    traj = recorder.trajectory
    traj.final = final.cpu()
    state = ReverseState(model_name, traj, run.scheduler.config.num_train_timesteps)
    done = f"Done: {len(timesteps)} steps; {len(traj)} frames kept ({traj.nbytes / 2**20:.1f} MB). Scrub t below."
    final_grid = _grid(final)
    slider = gr.update(minimum=0, maximum=state.num_train_timesteps - 1, value=traj.timesteps[-1])
    yield final_grid, _grid(traj_x0_last(traj)), done, state, slider, final_grid


def traj_x0_last(traj: Trajectory) -> torch.Tensor:
    return from_uint8(traj.pred_original[-1])


def _grid(x: torch.Tensor) -> Image.Image:
    """(B, C, H, W) in [−1, 1] -> one uint8 grid, as a PNG output."""
    return png(rendering.uint8_grid(to_uint8(x.detach().cpu())))


def reverse_frame(state: ReverseState | None, t):
    """One slider move over a recorded run: x_t, x̂₀ and ε̂ of the nearest recorded step, and the curves' cursor."""
    if state is None:
        raise gr.Error("Generate first; then the slider scrubs the recorded run.")
    t = check_int("t", t, 0, state.num_train_timesteps - 1)
    traj = state.trajectory
    k = traj.nearest_index(t)
    pipe = models.get_pipeline(state.model)
    tb = pipe.scheduler.tables
    plot = _model_plot(state.model)
    shown = traj.timesteps[k]
    caption = (
        f"Step {k + 1} of {len(traj)} recorded, t = {shown}: ᾱ_t = {tb.alphas_cumprod[shown].item():.4g}, "
        f"SNR = {tb.snr[shown].item():.4g}"
    )
    return (
        png(rendering.uint8_grid(traj.samples[k])),
        png(rendering.uint8_grid(traj.pred_original[k])),
        png(rendering.uint8_grid(traj.pred_epsilon[k])),
        png(plot.at(shown + 1)),
        caption,
    )


@lru_cache(maxsize=16)
def _model_plot(name: str) -> rendering.CursorPlot:
    tb = models.get_pipeline(name).scheduler.tables
    return rendering.schedule_plot(tb.betas.numpy(), tb.alphas_cumprod.numpy(), tb.log_snr.numpy())


def reverse_gif(state: ReverseState | None, session: SessionFiles | None = None):
    """The recorded run as a GIF: x_t beside x̂₀, in a fresh per-session file."""
    if state is None:
        raise gr.Error("Generate first.")
    traj = state.trajectory
    frames = [
        rendering.side_by_side([rendering.uint8_grid(traj.samples[k]), rendering.uint8_grid(traj.pred_original[k])])
        for k in range(len(traj))
    ]
    path = rendering.write_gif(frames, directory=export_dir())
    session = session or SessionFiles()
    session.keep_only(path)
    return path, path, session


def model_image_tensor(pipe, image) -> torch.Tensor:
    """An image converted to the model's channels and size: (1, C, H, W) in [−1, 1]."""
    c, h, _ = pipe.sample_shape
    return to_model_tensor(open_image(image), h, c).unsqueeze(0)


@gpu
def sdedit(model_name, image, t_start, steps, seed, progress=gr.Progress(track_tqdm=True)):
    """Noise an image to t in closed form, then let the model denoise from t (SDEdit); for t = 10 %, 30 %, … 90 % of
    T too, to show what survives as t grows."""
    try:
        pipe = models.get_pipeline(model_name)
    except models.ModelUnavailable as e:
        raise gr.Error(str(e)) from None
    T = pipe.scheduler.config.num_train_timesteps
    t_start = check_int("t", t_start, 0, T - 1)
    steps = check_int("Steps", steps, 1, settings.MAX_STEPS)
    seed = check_int("Seed", seed, 0, settings.MAX_SEED)
    sweep = sorted({t_start, *(round(f * (T - 1)) for f in (0.1, 0.3, 0.5, 0.7, 0.9))})
    check_work(pipe, sum(min(steps, t + 1) for t in sweep), 1)
    x0 = model_image_tensor(pipe, image).to(pipe.device)
    gallery = []
    for t in sweep:
        generator = torch.Generator(device=pipe.device).manual_seed(seed)
        noised, result = None, None
        try:
            for step in pipe.iter_trajectory(
                image=x0, start_timestep=t, num_inference_steps=min(steps, t + 1), generator=generator
            ):
                noised = step.sample if noised is None else noised
                result = step.prev_sample
        except NonFiniteSampleError as e:
            raise gr.Error(str(e)) from None
        mark = " (chosen)" if t == t_start else ""
        gallery.append((_grid(noised), f"x_t at t = {t}{mark}"))
        gallery.append((_grid(result), f"denoised from t = {t}{mark}"))
    return png(rendering.image_to_uint8(x0[0].cpu())), gallery


# ----------------------------------------------------------------------------- loss and the ELBO


@gpu
def elbo_terms(model_name, image, num_points, seed, progress=gr.Progress(track_tqdm=True)):
    """The bound's per-timestep terms and L_simple for one image, plotted, and its total in bits/dim."""
    try:
        pipe = models.get_pipeline(model_name)
    except models.ModelUnavailable as e:
        raise gr.Error(str(e)) from None
    num_points = check_int("Number of timesteps", num_points, 2, 200)
    seed = check_int("Seed", seed, 0, settings.MAX_SEED)
    check_work(pipe, 2 * num_points + 1, 1)
    # the decoder NLL uses 256 bins: quantize the image as real data is
    x0 = (model_image_tensor(pipe, image).add(1).mul(127.5).round().div(127.5).sub(1)).to(pipe.device)
    T = pipe.scheduler.config.num_train_timesteps
    ts = sorted(set(np.linspace(0, T - 1, num_points).round().astype(int).tolist()))
    g = torch.Generator().manual_seed(seed)
    terms = per_timestep_terms(pipe.unet, pipe.scheduler, x0, ts, generator=g)
    est = elbo_bpd(pipe.unet, pipe.scheduler, x0, num_timesteps=num_points, generator=g)
    summary = (
        f"**Variational bound for this image: {est.mean:.3f} bits/dim** (stratified Monte-Carlo over {num_points} "
        f"timesteps, unbiased): L_T = {est.prior.mean().item():.2e}, L_0 = {est.decoder.mean().item():.3f}, "
        f"Σ L_(t−1) ≈ {est.diffusion.mean().item():.3f}."
    )
    return png(rendering.figure_elbo_terms(terms)), summary


def reverse_play_tick(state: ReverseState | None, t):
    """Play a recorded run from t = T−1 down to 0 in about 60 ticks; wraps back to T−1."""
    if state is None:
        return gr.skip()
    T = state.num_train_timesteps
    t = check_int("t", t, 0, T - 1)
    stride = max(1, round(T / 60))
    return T - 1 if t <= 0 else max(t - stride, 0)


def model_num_timesteps(name) -> int:
    try:
        return models.get_pipeline(name).scheduler.config.num_train_timesteps
    except models.ModelUnavailable as e:
        raise gr.Error(str(e)) from None
