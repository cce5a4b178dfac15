"""Forward tab handlers: an image noised in closed form at any t, the Markov chain beside it, the schedules."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import gradio as gr
import numpy as np
import torch

from app import rendering, settings
from app.images import to_model_tensor, upload_note
from app.plans import SCHEDULES
from app.scrub_payload import forward_payload
from app.serving.compute_slots import collected, compute_slot, stoppable
from app.serving.session_memory import ledger
from app.serving.sessions import SessionFiles, export_gif
from app.validation import UserError, check_choice, check_float, check_int, open_image, require_session
from pipelines import ForwardTrajectory, make_schedule
from pipelines.forward import StepValues, standardized_residual
from pipelines.schedules import RANGED_SCHEDULES
from pipelines.trajectory import evenly_spread


def schedule_tables(schedule, T, beta_start, beta_end):
    """Validated schedule tables; cached, since they are immutable and shared."""
    schedule = check_choice("Schedule", schedule, SCHEDULES)
    T = check_int("T", T, 1, settings.MAX_T)
    beta_start = check_float("β start", beta_start, 1e-8, 0.999)
    beta_end = check_float("β end", beta_end, 1e-8, 0.999)
    if schedule in RANGED_SCHEDULES and not beta_start < beta_end:
        raise UserError(f"β start must be below β end, got {beta_start} and {beta_end}.")
    try:
        return _tables(schedule, T, beta_start, beta_end)
    except ValueError as e:
        raise UserError(str(e)) from None


@lru_cache(maxsize=32)
def _tables(schedule, T, beta_start, beta_end):
    kwargs = dict(beta_start=beta_start, beta_end=beta_end) if schedule in RANGED_SCHEDULES else {}
    return make_schedule(schedule, T, **kwargs)


@lru_cache(maxsize=32)
def _plot_for(schedule, T, beta_start, beta_end) -> rendering.CursorPlot:
    return rendering.schedule_plot(_tables(schedule, T, beta_start, beta_end))


@dataclass
class ForwardState:
    """One user's forward view: x₀ and ε fixed, so scrubbing is coherent. Counted against the sessions' memory
    bound (app/serving/session_memory.py), which may release its trajectory."""

    trajectory: ForwardTrajectory | None
    plot_key: tuple
    source: str = ""  # what became of the image on its way to x₀ (crop, resize), in words

    @property
    def nbytes(self) -> int:
        t = self.trajectory
        return 0 if t is None else sum(x.numel() * x.element_size() for x in (t.x0, t.noise))

    def release(self) -> None:
        self.trajectory = None


def forward_state(image, schedule, num_timesteps, beta_start, beta_end, seed, resolution) -> ForwardState:
    """Validate the inputs, load and resize the image, fix ε from the seed, and precompute the schedule of T =
    ``num_timesteps`` steps."""
    tables = schedule_tables(schedule, num_timesteps, beta_start, beta_end)
    seed = check_int("Seed", seed, 0, settings.MAX_SEED)
    resolution = check_int("Resolution", resolution, settings.MIN_RESOLUTION, settings.MAX_RESOLUTION)
    pil = open_image(image)
    x0 = to_model_tensor(pil, resolution, 3 if pil.mode == "RGB" else 1)
    trajectory = ForwardTrajectory(x0, tables, generator=torch.Generator().manual_seed(seed))
    plot_key = (schedule, tables.num_timesteps, float(beta_start), float(beta_end))
    return ForwardState(trajectory, plot_key, upload_note(pil, resolution))


def forward_setup(image, schedule, num_timesteps, beta_start, beta_end, seed, resolution):
    """:func:`forward_state`, plus what the page gets once per setup: x₀ as the model sees it, the scrubber's
    payload (x₀, the fixed ε and the schedule: every frame is then computed in the page), and the slider's range."""
    with compute_slot():  # decoding and resizing cannot stop part-way: they count against the concurrency limit
        state = forward_state(image, schedule, num_timesteps, beta_start, beta_end, seed, resolution)
        trajectory = state.trajectory
        x0 = rendering.png_output(rendering.image_to_uint8(trajectory.x0))
        payload = forward_payload(trajectory.x0, trajectory.noise, trajectory.tables)
    ledger.admit(state)
    return state, x0, payload, gr.update(maximum=trajectory.num_timesteps, interactive=True)


def forward_setup_in_page(image, schedule, num_timesteps, beta_start, beta_end, seed, resolution, t):
    """:func:`forward_setup` for the page, which also passes the slider's t. A T below t moves the slider's value
    with its range: with only its maximum updated, T = 50 under t = 500 left the number box at 500, which the next
    event was refused (every view of t now agrees: slider, number box, scrubber, captions). A t within the new range
    is left alone: the user may have moved it while this ran. x₀'s caption says what became of the image (a
    non-square one is centre-cropped)."""
    state, x0, payload, _ = forward_setup(image, schedule, num_timesteps, beta_start, beta_end, seed, resolution)
    T = state.trajectory.num_timesteps
    slider = gr.update(maximum=T, interactive=True)
    if not stays_within(t, T):
        slider["value"] = T if _number(t) > T else 0
    return state, x0, f"Your image: {state.source}.", payload, slider


def _number(t) -> float:
    try:
        return float(t)
    except (TypeError, ValueError, OverflowError):
        return float("nan")


def stays_within(t, T: int) -> bool:
    """Whether the slider's t is a valid t of a schedule of T steps (else the page's setup moves it)."""
    return 0 <= _number(t) <= T


def check_t(t, T: int, hi: int | None = None) -> int:
    """The paper's t in 0 … ``hi`` (default T), or a message that says which limit it passed and what to do."""
    t = check_int("t", t, 0, settings.MAX_T)
    hi = T if hi is None else hi
    if t > hi:
        what = f"this schedule's T = {T}" if hi == T else f"the chain's limit of {hi} steps"
        raise UserError(f"t must be between 0 and {hi}, got {t}: past {what}. Move the slider back and try again.")
    return t


def format_values(v: StepValues, T: int) -> str:
    """The schedule's numbers at t as a Markdown table."""
    snr = "∞" if math.isinf(v.snr) else f"{v.snr:.4g}"
    log_snr = "∞" if math.isinf(v.log_snr) else f"{v.log_snr:.3f}"
    rows = [
        ("t", f"{v.t} / {T}"),
        ("β_t", f"{v.beta:.4g}"),
        ("ᾱ_t", f"{v.alpha_bar:.4g}"),
        ("√ᾱ_t (signal)", f"{v.sqrt_alpha_bar:.4f}"),
        ("√(1−ᾱ_t) (noise)", f"{v.sqrt_one_minus_alpha_bar:.4f}"),
        ("SNR = ᾱ_t/(1−ᾱ_t)", snr),
        ("ln SNR (natural log)", log_snr),
    ]
    return "| quantity | value |\n|---|---|\n" + "\n".join(f"| {k} | {val} |" for k, val in rows)


def require(state: ForwardState | None) -> ForwardState:
    """The session's forward view, or a message saying how to get one."""
    return require_session(state, "Choose an image first.", "choose the image or a setting again")


def forward_scrub(state: ForwardState | None, t):
    """The API's slider move: x_t, the two parts of x_t, the curves with a cursor, and the numbers. No model work,
    and nothing but this one frame is computed. (In the page, the scrubber computes the same frames itself.)"""
    trajectory = require(state).trajectory
    t = check_t(t, trajectory.num_timesteps)
    signal, noise = trajectory.signal_and_noise(t)
    plot = _plot_for(*state.plot_key)
    return (
        rendering.png_output(rendering.image_to_uint8(trajectory.frame(t))),
        rendering.png_output(rendering.image_to_uint8(signal)),
        rendering.png_output(rendering.noise_to_uint8(noise)),
        rendering.png_output(plot.at(t)),
        format_values(trajectory.values(t), trajectory.num_timesteps),
    )


def forward_frame(image, schedule, num_timesteps, beta_start, beta_end, seed, resolution, t):
    """Stateless API: x_t of an image under a schedule of T = ``num_timesteps`` steps, a seed's ε and a timestep
    t ∈ [0, T]."""
    with compute_slot():
        state = forward_state(image, schedule, num_timesteps, beta_start, beta_end, seed, resolution)
        t = check_int("t", t, 0, state.trajectory.num_timesteps)
        return rendering.png_output(rendering.image_to_uint8(state.trajectory.frame(t)))


def forward_markov_chain(state: ForwardState | None, t, seed):
    """x_t by iterating q(x_s | x_{s−1}) beside the closed form, and the statistics that show they agree. A step at
    a time: a cancelled request stops."""
    trajectory = require(state).trajectory
    t = check_t(t, trajectory.num_timesteps, min(trajectory.num_timesteps, settings.MAX_CHAIN_STEPS))
    seed = check_int("Seed", seed, 0, settings.MAX_SEED)
    steps = trajectory.iter_markov_chain(t, generator=torch.Generator().manual_seed(seed + 1))
    chain = yield from stoppable(steps, 3)
    closed = trajectory.frame(t)
    v = trajectory.values(t)
    lines = [
        f"**t = {t}.** Both are draws from q(x_t | x₀) = N(√ᾱ_t·x₀, (1−ᾱ_t)·I), with √ᾱ_t = "
        f"{v.sqrt_alpha_bar:.4f}. Their pixels differ because the chain drew {t} fresh noises while the closed "
        "form used one ε; their distribution is the same."
    ]
    if t > 0:
        rows = []
        for name, x in (("Markov chain", chain), ("closed form", closed)):
            z = standardized_residual(x, trajectory.x0, v)
            rows.append(f"| {name} | {z.mean().item():+.3f} | {z.std().item():.3f} |")
        lines.append(
            "Standardized residual (x_t − √ᾱ_t·x₀)/√(1−ᾱ_t), which should be N(0, 1) for both:\n\n"
            "| | mean | std |\n|---|---|---|\n" + "\n".join(rows)
        )
    images = [rendering.png_output(rendering.image_to_uint8(x)) for x in (chain, closed)]
    yield *images, "\n\n".join(lines)


def forward_compare(state: ForwardState | None, t):
    """The same x₀ and ε at the same t under every schedule (same T and β range), and their ᾱ curves."""
    state = require(state)
    _, T, beta_start, beta_end = state.plot_key
    t = check_t(t, T)
    gallery, curves = [], {}
    for name in SCHEDULES:
        try:
            tables = _tables(name, T, beta_start, beta_end)
        except ValueError as e:
            gallery.append((rendering.png_output(np.zeros((8, 8), np.uint8)), f"{name}: {e}"))
            continue
        same_noise = ForwardTrajectory(state.trajectory.x0, tables, noise=state.trajectory.noise)
        caption = f"{name}: ᾱ_t = {same_noise.values(t).alpha_bar:.3g}"
        gallery.append((rendering.png_output(rendering.image_to_uint8(same_noise.frame(t))), caption))
        curves[name] = tables.alphas_cumprod.numpy()
    return gallery, rendering.png_output(rendering.figure_compare_alpha_bar(curves, t))


def forward_gif(
    state: ForwardState | None, session: SessionFiles | None = None, frames: int = 60, progress=gr.Progress()
):
    """The whole forward process, t = 0 … T, as a GIF in a fresh per-session file; a frame at a time, so a cancelled
    request stops. Its progress (frames drawn, then the file written) shows where the GIF will appear."""
    trajectory = require(state).trajectory
    T = trajectory.num_timesteps
    ts = evenly_spread(T, frames)

    def drawn():
        for k, t in enumerate(ts):
            progress((k, len(ts)), desc=f"Drawing frame {k + 1} of {len(ts)} (t = {t})", unit="frames")
            yield rendering.image_to_uint8(trajectory.frame(t))

    images = yield from stoppable(collected(drawn()), 3)
    progress(1.0, desc="Writing the GIF")
    with compute_slot():
        path, session = export_gif(images, session)
    yield path, path, session
