"""2D lab handlers: set up a data set and its forward process, train the ε-predicting MLP on it (streaming its loss),
and sample it with DDPM, DDIM(η) and the probability-flow ODE from the same x_T, measured against fresh data.

Trained models are kept per session (gr.State, a :class:`~app.lab_session.LabSession`), so going back to an earlier
setup reuses its model. Every t a user reads is the paper's (t = 0 the data, t = T noise).
"""

from __future__ import annotations

import hashlib
import json
import time

import gradio as gr
import numpy as np
import pandas as pd

from app import settings
from app.lab_payload import arrow_points, field_timesteps, lab_payload
from app.lab_session import LabKey, LabSession, TrainedModel
from app.plans import SCHEDULES
from app.serving.compute_slots import in_compute_slots
from app.serving.session_memory import RELEASED
from app.validation import UserError, check_choice, check_float, check_int
from pipelines.lab2d.cpu import one_thread
from pipelines.lab2d.datasets import DATASETS, RING, Distribution2D, from_sketch, get_dataset, rasterize_strokes
from pipelines.lab2d.experiment import Experiment
from pipelines.lab2d.model import EpsilonMLP
from pipelines.lab2d.quality import quality_rows
from pipelines.lab2d.sampling import LAB_SAMPLERS, RecordedRun, max_steps, record_run, sampler_name
from pipelines.lab2d.score_field import score_fields
from pipelines.lab2d.training import TrainingConfig, new_model, train_steps

DRAW_YOUR_OWN = "draw your own"
DATASET_CHOICES = (*DATASETS, DRAW_YOUR_OWN)
DEFAULT_DATASET = RING
DEFAULT_TRAIN_STEPS = TrainingConfig.steps
DEFAULT_STEPS = 100
QUALITY_HEADERS = ["samples", "steps N", "NFE", "MMD", "sliced W₂", "time (s)"]


def parse_strokes(sketch) -> list[list[tuple[float, float]]]:
    """The drawing pad's value (JSON ``{"strokes": [[[x, y], …], …]}``, x and y in [0, 1]) as lists of points,
    checked before anything is computed from it: its size in characters and points, and every coordinate."""
    if not isinstance(sketch, str) or not sketch.strip():
        raise UserError("Draw on the drawing pad first (or choose a built-in data set).")
    if len(sketch) > settings.LAB_SKETCH_MAX_CHARS:
        raise UserError(f"The drawing is over {settings.LAB_SKETCH_MAX_CHARS:,} characters; draw fewer strokes.")
    try:
        strokes = json.loads(sketch)["strokes"]
        strokes = [[(float(x), float(y)) for x, y in stroke] for stroke in strokes]
    except (ValueError, TypeError, KeyError) as e:
        raise UserError('A drawing is JSON {"strokes": [[[x, y], …], …]} with x and y in [0, 1].') from e
    points = sum(len(stroke) for stroke in strokes)
    if points > settings.LAB_SKETCH_MAX_POINTS:
        raise UserError(f"The drawing has {points:,} points; at most {settings.LAB_SKETCH_MAX_POINTS:,} are taken.")
    if any(not (0.0 <= v <= 1.0) for stroke in strokes for point in stroke for v in point):
        raise UserError("Every point of a drawing must have x and y in [0, 1].")
    if not points:
        raise UserError("Draw on the drawing pad first (or choose a built-in data set).")
    return strokes


def sketch_distribution(sketch) -> tuple[Distribution2D, str]:
    """The drawing pad's strokes as a distribution (uniform on the drawn cells of a LAB_SKETCH_SIDE² grid), and a
    digest of those cells."""
    strokes = parse_strokes(sketch)
    mask = rasterize_strokes(strokes, settings.LAB_SKETCH_SIDE, settings.LAB_SKETCH_PEN)
    try:
        distribution = from_sketch(mask)
    except ValueError as e:
        raise UserError(str(e)) from None
    digest = hashlib.sha256(np.packbits(mask).tobytes() + str(mask.shape).encode()).hexdigest()[:16]
    return distribution, digest


def lab_experiment(dataset, sketch, seed, num_points, schedule, num_timesteps) -> tuple[Experiment, str]:
    """A validated experiment, and the sketch's digest ("" for a built-in data set)."""
    dataset = check_choice("Data set", dataset, DATASET_CHOICES)
    seed = check_int("Seed", seed, 0, settings.MAX_SEED)
    num_points = check_int("Number of points", num_points, settings.LAB_MIN_POINTS, settings.LAB_MAX_POINTS)
    schedule = check_choice("Schedule", schedule, SCHEDULES)
    T = check_int("T", num_timesteps, settings.LAB_MIN_T, settings.MAX_T)
    distribution, digest = sketch_distribution(sketch) if dataset == DRAW_YOUR_OWN else (get_dataset(dataset), "")
    return Experiment(distribution, num_points, seed, schedule, T), digest


def fields_of(experiment: Experiment, model: EpsilonMLP | None):
    """The score arrows the page gets: the learned field of ``model`` (if any) and the mixture's exact one (if the
    data is the mixture), with the learned one's error, at LAB_FIELD_FRAMES t values; None when there are neither."""
    if model is None and experiment.distribution.mixture is None:
        return None
    shown = settings.LAB_SHOWN_POINTS
    with one_thread():
        return score_fields(
            model,
            experiment.scheduler,
            experiment.distribution.mixture,
            arrow_points(),
            field_timesteps(experiment.num_timesteps, settings.LAB_FIELD_FRAMES),
            experiment.data[:shown],
            experiment.noise[:shown],
        )


def lab_setup(dataset, sketch, seed, num_points, schedule, num_timesteps):
    """The forward view of a data set under a schedule (no model needed; for the mixture, its exact score too): the
    scrubber's payload, and the slider's range 0 … T."""
    experiment, _ = lab_experiment(dataset, sketch, seed, num_points, schedule, num_timesteps)
    fields = fields_of(experiment, None)
    with one_thread():
        payload = lab_payload(experiment, settings.LAB_SHOWN_POINTS, settings.LAB_FIELD_FRAMES, fields)
    return payload, gr.update(maximum=experiment.num_timesteps, interactive=True)


def lab_setup_in_page(dataset, sketch, seed, num_points, schedule, num_timesteps):
    """:func:`lab_setup` for the page's change events: "draw your own" with nothing drawn yet gets a hint, not an
    error, and the view stays as it was."""
    if dataset == DRAW_YOUR_OWN and not (isinstance(sketch, str) and "[[" in sketch):
        gr.Info("Draw on the pad with the mouse, a pen or a finger: your strokes become the data.")
        return gr.skip(), gr.skip()
    return lab_setup(dataset, sketch, seed, num_points, schedule, num_timesteps)


def loss_curve(losses: list[float], points: int = 200) -> pd.DataFrame:
    """L_simple by training step, averaged over windows so that at most ``points`` remain."""
    window = max(1, len(losses) // points)
    n = len(losses) // window * window
    means = np.asarray(losses[:n]).reshape(-1, window).mean(1) if n else np.zeros(0)
    return pd.DataFrame({"step": (np.arange(len(means)) + 1) * window, "L_simple": means})


def loss_plot(losses: list[float], steps: int) -> dict:
    """The loss curve so far on an x-axis of all ``steps`` training steps, so it grows across a still plot."""
    return gr.update(value=loss_curve(losses), x_lim=[0, steps])


def trained_status(key: LabKey, trained: TrainedModel, reused: bool) -> str:
    what = "Reusing this session's model" if reused else "Trained"
    return (
        f"**{what}**: {key.train_steps} steps of {TrainingConfig.batch_size} points in {trained.wall_s:.1f} s; "
        f"final L_simple {trained.final_loss:.3f} (mean of the last 10 % of steps; 1.0 is a model that predicts "
        "ε̂ = 0)."
    )


def lab_train(
    dataset, sketch, seed, num_points, schedule, num_timesteps, training_steps, session, progress=gr.Progress()
):
    """Train the MLP on L_simple for the experiment (or reuse this session's model of the same setup), streaming
    the status, the loss curve and the progress bar. Yields (status, loss plot update, session)."""
    experiment, digest = lab_experiment(dataset, sketch, seed, num_points, schedule, num_timesteps)
    steps = check_int("Training steps", training_steps, 1, settings.LAB_MAX_TRAIN_STEPS)
    session = session if isinstance(session, LabSession) else LabSession()
    key = LabKey(dataset, digest, experiment.seed, experiment.num_points, schedule, experiment.num_timesteps, steps)
    trained = session.get(key)
    if trained is not None:
        session.current = key
        yield trained_status(key, trained, reused=True), loss_plot(trained.losses, steps), session
        return
    model = new_model(experiment.training_seed)
    config = TrainingConfig(steps=steps, seed=experiment.training_seed)
    losses, wall_s, last_yield = [], 0.0, 0.0
    start = time.perf_counter()
    for step in in_compute_slots(train_steps(model, experiment.scheduler, experiment.data, config)):
        losses.append(step.loss)
        if time.perf_counter() - last_yield > settings.LAB_STREAM_EVERY_S and step.step < steps:
            last_yield = time.perf_counter()
            progress((step.step, steps), desc="training")
            status = f"Training: step {step.step} of {steps}, L_simple {step.loss:.3f}, {last_yield - start:.1f} s"
            yield status, loss_plot(losses, steps), gr.skip()
    wall_s = time.perf_counter() - start
    trained = TrainedModel(experiment, model, losses, wall_s)
    session.put(key, trained)
    yield trained_status(key, trained, reused=False), loss_plot(losses, steps), session


def quality_table(runs: list[RecordedRun], experiment: Experiment, num_steps: int) -> pd.DataFrame:
    """Each run's samples against fresh data (MMD, sliced W₂), then the start x_T and the floor (fresh data against
    the training data): pipelines/lab2d/quality.py's rows."""
    with one_thread():
        rows = quality_rows(experiment, runs, num_steps)
    dash = lambda v, digits: "–" if v is None else round(v, digits)
    return pd.DataFrame(
        [
            [r.what, dash(r.steps, 0), dash(r.nfe, 0), round(r.mmd, 4), round(r.swd, 4), dash(r.seconds, 2)]
            for r in rows
        ],
        columns=QUALITY_HEADERS,
    )


def lab_sample(session, steps, eta, progress=gr.Progress()):
    """Sample the session's current model with every lab sampler from the same x_T, N steps each; measure the
    samples; then send the scrubber everything: the forward view, the score fields and the runs. Yields
    (status, payload, quality table); the payload and table come with the last."""
    trained = session.get(session.current) if isinstance(session, LabSession) and session.current else None
    if trained is None:
        if isinstance(session, LabSession) and session.released:
            raise UserError(RELEASED.format(again="press Train again"))
        raise UserError("Train a model first: press Train.")
    experiment = trained.experiment
    n = check_int("Steps", steps, 1, min(max_steps(experiment.scheduler), settings.LAB_MAX_STEPS))
    eta = check_float("η", eta, 0.0, 1.0)
    runs, last_yield, done = [], 0.0, 0
    total = len(LAB_SAMPLERS) * (n + 2)  # what each recording yields: x_T, every step, then the run
    for key in LAB_SAMPLERS:
        recording = record_run(
            trained.model,
            experiment.scheduler,
            key,
            n,
            experiment.x_T,
            experiment.sampling_seed,
            eta,
            settings.LAB_MAX_FRAMES,
        )
        for result in in_compute_slots(recording):
            done += 1
            if result is not None:
                runs.append(result)
            elif time.perf_counter() - last_yield > settings.LAB_STREAM_EVERY_S:
                last_yield = time.perf_counter()
                progress((done, total), desc="sampling")
                yield f"Sampling: {sampler_name(key, eta)}, {n} steps…", gr.skip(), gr.skip()
    table = quality_table(runs, experiment, n)
    fields = fields_of(experiment, trained.model)
    with one_thread():
        payload = lab_payload(experiment, settings.LAB_SHOWN_POINTS, settings.LAB_FIELD_FRAMES, fields, runs)
    status = (
        f"**Sampled** {experiment.num_points} points with each sampler, {n} steps from the same x_T; measured against "
        f"{experiment.num_points} fresh points of the data set (the table). Scrub t to watch them."
    )
    yield status, payload, table
