"""Editing tab handlers: inpainting with RePaint beside the naive method from the same x_T, and interpolation between
two seeds (slerp of x_T, sampled with DDIM η = 0, beside lerp and a pixel cross-fade).

Both run as generators in compute slots (app/serving/compute_slots.py): a cancelled or abandoned request stops within
a move. The page's twin of each (``*_in_page``) also sends its scrubber's payload and moves its slider.
"""

from __future__ import annotations

import json
import time

import gradio as gr
import torch

from app import rendering, settings
from app.edit_inputs import BRUSH, MASK_CHOICES, mask_json, parse_mask, preset_json, source_image
from app.editing_payload import (
    InpaintState,
    MoveRecord,
    admitted,
    inpaint_payload,
    move_caption,
    move_record,
    require_inpainting,
)
from app.plans import ANY_CLASS, check_work, class_choices
from app.scrub_payload import png_b64
from app.serving.compute_slots import gpu, stoppable
from app.validation import UserError, check_choice, check_float, check_int, check_model, numerical_faults_as_errors
from pipelines.repaint import iter_repaint, moves_down, repaint_timesteps
from pipelines.trajectory import from_uint8

INPAINT_OUTPUTS = 6  # original, mask, RePaint's result, the naive result, status, state


def one_class(pipe, class_choice, guidance) -> tuple[int | None, float | None]:
    """A label (None: unconditional) and w for a run of one image."""
    choices = class_choices(pipe)
    if choices is None:
        if class_choice not in (None, "", ANY_CLASS):
            raise UserError("This model is unconditional: choose the class 'any', or a class-conditional model.")
        return None, None
    options = (ANY_CLASS, *choices[2:])  # "one of each" is a grid: not here
    choice = check_choice("Class", class_choice or ANY_CLASS, options)
    w = check_float("Guidance w", guidance, 0.0, settings.MAX_GUIDANCE)
    return (None if choice == ANY_CLASS else options.index(choice) - 1), w


def _record_run(pipe, x0, keep, record: MoveRecord, seed: int, moved=lambda k: None, **repaint_kwargs):
    """Run RePaint from seed's x_T, one move per step, keeping the record's frames and telling ``moved`` each move's
    number (1 …); returns the result."""
    generator = torch.Generator(device=pipe.device).manual_seed(seed)
    x0_hat, x = None, None
    for frame in iter_repaint(pipe, x0, keep, generator=generator, **repaint_kwargs):
        x0_hat = frame.pred_original_sample if frame.down else x0_hat
        record.record(frame.index, frame.sample, x0_hat)
        x = frame.next_sample
        moved(frame.index + 1)
        yield
    record.record(record.num_moves, x, x)
    return x


def _reporter(progress, done: int, total: int, what: str):
    """A run's report of its k-th move to gradio's ``progress``: the moves done of both runs (nothing without it)."""
    if progress is None:
        return lambda k: None
    return lambda k: progress((done + k, total), desc=what, unit="moves")


def _inpaint(
    model_name, source, image, mask, steps, jump_length, jump_n_sample, eta, seed, class_choice, guidance,
    progress=None,
):  # fmt: skip
    """The runs' outputs (the API's), then the state, as a generator in compute slots; ``progress`` (gradio's) is
    told the moves done of both runs (RePaint's took 75 s on a loaded machine with nothing to say how far it was)."""
    pipe = check_model(model_name)
    c, h, w = pipe.sample_shape
    T = pipe.scheduler.config.num_train_timesteps
    x0 = source_image(source, image, c, h).to(pipe.device)
    keep = parse_mask(mask, h, w).to(pipe.device)
    n = check_int("Steps", steps, 1, min(T, settings.MAX_STEPS))
    jump_length = check_int("Jump length", jump_length, 1, max(1, n - 1))
    jump_n_sample = check_int("Resamplings (jump_n_sample)", jump_n_sample, 1, 20)
    eta = check_float("η", eta, 0.0, 1.0)
    seed = check_int("Seed", seed, 0, settings.MAX_SEED)
    label, w_ = one_class(pipe, class_choice, guidance)
    runs = {}
    for name, resamplings in (("repaint", jump_n_sample), ("naive", 1)):
        timesteps, stride = repaint_timesteps(T, n, jump_length, resamplings)
        runs[name] = move_record(timesteps, moves_down(timesteps), stride, settings.EDIT_MAX_FRAMES)
    calls = sum(sum(r.down) for r in runs.values())
    check_work(pipe, calls, 2 if label is not None and w_ not in (0.0, 1.0) else 1)
    results = {}
    kwargs = dict(num_inference_steps=n, jump_length=jump_length, eta=eta, class_labels=label, guidance_scale=w_)
    total, done = sum(r.num_moves for r in runs.values()), 0
    with numerical_faults_as_errors():
        for name, resamplings in (("repaint", jump_n_sample), ("naive", 1)):
            moved = _reporter(progress, done, total, "RePaint" if name == "repaint" else "the naive method")
            run = _record_run(pipe, x0, keep, runs[name], seed, moved, jump_n_sample=resamplings, **kwargs)
            results[name] = yield from run
            done += runs[name].num_moves
    state = admitted(InpaintState(runs["repaint"], runs["naive"]))
    shown = keep * x0 + (1 - keep) * torch.full_like(x0, -0.2)  # the part that is regenerated, grey
    status = (
        f"Done: RePaint made {runs['repaint'].num_moves} moves ({sum(runs['repaint'].down)} model steps, "
        f"{runs['repaint'].num_jumps} jumps back up of {jump_length} steps, each region resampled {jump_n_sample}×); "
        f"the naive method, {n} steps from the same x_T."
    )
    images = [rendering.grid_image(x.cpu()) for x in (x0, shown, results["repaint"], results["naive"])]
    return (*images, status, state), (pipe.sample_shape, T)


@gpu
def inpaint(
    model_name, source, image, mask, steps, jump_length, jump_n_sample, eta, seed, class_choice, guidance,
    progress=gr.Progress(),
):  # fmt: skip
    """Inpaint where the keep-mask (JSON rows, 1 keep, 0 regenerate) is 0: RePaint, and the naive method
    (``jump_n_sample`` = 1) from the same x_T. Returns the original, the mask, both results, a status and the run."""
    args = (model_name, source, image, mask, steps, jump_length, jump_n_sample, eta, seed, class_choice, guidance)
    outputs, _ = yield from stoppable(_inpaint(*args, progress), INPAINT_OUTPUTS)
    yield outputs


@gpu
def inpaint_in_page(
    model_name, source, image, mask, steps, jump_length, jump_n_sample, eta, seed, class_choice, guidance,
    progress=gr.Progress(),
):  # fmt: skip
    """:func:`inpaint`, then the scrubber's payload and its slider at the result."""
    args = (model_name, source, image, mask, steps, jump_length, jump_n_sample, eta, seed, class_choice, guidance)
    outputs, (shape, T) = yield from stoppable(_inpaint(*args, progress), INPAINT_OUTPUTS + 2)
    state = outputs[-1]
    moves = state.repaint.num_moves
    yield (*outputs, inpaint_payload(state, shape, T), gr.update(maximum=moves, value=moves))
    yield (gr.skip(),) * (len(outputs) + 2)  # gradio's completion repeats the last yield: not the payload again


def inpaint_frame(state, move):
    """RePaint's x and x̂₀ at a move of the session's last run (0: x_T; the number of moves: the result), and its
    caption ("jump k of n" on the way back up)."""
    state = require_inpainting(state)
    run = state.repaint
    k = check_int("Move", move, 0, run.num_moves)
    i = run.nearest_frame(k)
    x, x0_hat = (rendering.grid_image(from_uint8(f[i])[None]) for f in (run.x_t, run.x0_hat))
    return x, x0_hat, move_caption(run, k)


def mask_pad_value(model_name, source, image, mask_choice) -> str:
    """The mask pad's value for a choice (a preset's mask, or every pixel kept for the brush) with the image under
    it, both at the model's size (page only). Its version is taken first: of two requests in flight (the page's load
    and a quick click), the pad keeps the later one's answer whichever arrives last."""
    version = time.monotonic_ns()
    pipe = check_model(model_name)
    c, h, w = pipe.sample_shape
    choice = check_choice("Mask", mask_choice, MASK_CHOICES)
    rows = json.loads(mask_json(torch.ones(h, w)) if choice == BRUSH else preset_json(choice, h, w))
    try:
        x0 = source_image(source, image, c, h)
    except gr.Error:  # no upload yet: the pad shows the mask alone
        return json.dumps({"version": version, "mask": rows, "image": ""})
    picture = "data:image/png;base64," + png_b64(rendering.image_to_uint8(x0[0]))
    return json.dumps({"version": version, "mask": rows, "image": picture})


def class_controls(name):
    """The editing tab's class dropdowns (inpainting; interpolation's two ends) and guidance sliders: shown, with
    the model's classes and recommended w, for a class-conditional model; hidden for an unconditional one."""
    choices = class_choices(check_model(name))
    if choices is None:
        hidden = gr.update(visible=False, choices=[ANY_CLASS], value=ANY_CLASS)
        return hidden, gr.update(visible=False), hidden, hidden, gr.update(visible=False)
    options, w = [ANY_CLASS, *choices[2:]], check_model(name).guidance_scale_for(None)
    pick = lambda i: gr.update(visible=True, choices=options, value=options[min(i, len(options) - 1)])
    guidance = lambda: gr.update(visible=True, value=w)  # one update per component: gradio consumes them
    return pick(0), guidance(), pick(1), pick(2), guidance()


def class_of_source(model_name, source):
    """The inpainting class follows a test image's own class (a class-conditional model that knows it)."""
    choices = class_choices(check_model(model_name))
    name = str(source).rsplit(" (test #", 1)[0]
    return gr.update(value=name) if choices is not None and name in choices[2:] else gr.update()
