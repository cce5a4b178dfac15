"""Reverse tab handlers: sample with a trained UNet while streaming, scrub the recorded run, and export it.

Every t a user reads is the paper's: t = 0 is the data and t = T pure noise. The UNet is given diffusers' table
index t − 1; the conversion goes through pipelines.schedules' ``index_to_paper_t`` / ``paper_t_to_index``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from functools import lru_cache
from typing import TYPE_CHECKING

import gradio as gr
import torch

from app import model_defaults, models, rendering, settings
from app.plans import (
    ANY_CLASS,
    DEFAULT_SAMPLER,
    LEARNED_CHOICE,
    ONE_OF_EACH,
    VARIANCE_CHOICES,
    RunPlan,
    class_choices,
    class_scales_text,
    conditioning,
    defaults_for,
    frame_budget,
    guidance_extras_reason,
    guidance_text,
    guided,
    interval_text,
    listed_request,
    opening_defaults,
    plural,
    run_plan,
    sampler_note,
)
from app.rendering import grid_image
from app.reverse_session import (
    ReverseState,
    recorded_state,
    require_run,
    shown_position,
    step_label,
)
from app.scrub_payload import atlas_frames, reverse_payload
from app.serving.compute_slots import collected, compute_slot, gpu, in_compute_slots, stoppable
from app.serving.session_memory import ledger
from app.serving.sessions import SessionFiles, export_gif
from app.serving.stop_requests import stop_requests
from app.settings import ASSETS_DIR
from app.validation import UserError, WorkCapError, check_choice, check_int, check_model, numerical_faults_as_errors
from pipelines.class_decision import class_decision
from pipelines.schedules import index_to_paper_t
from pipelines.trajectory import Trajectory, evenly_spread, from_uint8, to_uint8

if TYPE_CHECKING:  # diffusers is loaded by the first run, not to serve the page
    from pipelines import DDPMExplorerPipeline

DEFAULT_RUN = ASSETS_DIR / "default_run.json"
BATCH_LABEL = "Batch (grid)"


def estimate_runtime(
    model_name,
    sampler,
    steps,
    eta,
    batch_size,
    class_choice=None,
    guidance=None,
    guidance_t_lo=None,
    guidance_t_hi=None,
    guidance_rescale=None,
    guidance_per_class=None,
) -> str:
    """What a run of these settings asks of the UNet and how long it should take here: the UNet's time per call,
    measured once, times how much longer this server's last runs took than their bare UNet calls (the machine's
    load, and the work around each call). A guidance interval counts its steps exactly: a guided one is a call of
    twice the batch, one outside the interval a single pass. A request over the server's limit says so here, not in a
    toast. A large model's line also says what one step costs; a listed model not loaded yet is estimated from its
    measured figures (app/model_defaults.py), without loading it."""
    if model_defaults.by_name(model_name) is not None and not models.is_loaded(model_name):
        return estimate_before_loading(model_name, sampler, steps, batch_size)
    try:
        conditioning = (class_choice, guidance, guidance_t_lo, guidance_t_hi, guidance_rescale, guidance_per_class)
        plan = run_plan(model_name, sampler, steps, eta, batch_size, *conditioning)
    except UserError as e:
        return refusal(e)
    except (gr.Error, models.ModelUnavailable) as e:
        return str(e)
    factor, runs = models.run_speed.factor(plan.model)
    seconds = models.bare_seconds(plan.pipe, plan.unet_calls()) * factor
    if runs:
        basis = f"as this server's last {plural(runs, 'run')} went"
    elif plan.pipe.device.type == "cpu" and model_defaults.measured_seconds_per_call(plan.pipe.unet.config, 1):
        basis = "from its UNet's speed measured on a 2-vCPU CPU (no run here yet)"  # models.seconds_per_unet_call
    else:
        basis = "from the UNet's speed timed here (no run yet)"
    text = f"**≈ {seconds:.1f} s** for {plural(plan.num_steps, 'step')} {evaluations_text(plan)}; {basis}."
    if plan.guided and plan.guidance_rescale > 0:
        text += f" Guided steps rescaled with φ = {plan.guidance_rescale:g} (no extra pass)."
    per_step = seconds / plan.num_steps
    if per_step >= LARGE_STEP_S or max(plan.pipe.sample_shape[1:]) >= model_defaults.LARGE_SIZE:
        text += f" **≈ {seconds_text(per_step)} s a step** at this batch."
    return text


def refusal(e: UserError) -> str:
    """The estimate's line for settings the server would refuse: over the work cap, or invalid."""
    head = "Too much for one run." if isinstance(e, WorkCapError) else "Can't run these settings."
    return f"**{head}** {e.message}"


DOUBLED = "a batch of {}, doubled: guidance runs the UNet with and without the class"


def evaluations_text(plan: RunPlan) -> str:
    """The estimate's count of model evaluations and the images each runs on: "(10 model evaluations), each on 8
    images (a batch of 4, doubled: …)"; with a guidance interval, how many run both passes and how many one."""
    evaluations, b = plural(plan.nfe, "model evaluation"), plan.batch_size
    if plan.fully_guided:
        return f"({evaluations}), each on {plural(plan.unet_batch, 'image')} ({DOUBLED.format(b)})"
    if plan.guided:
        inside = sum(plan.guided_evaluations)
        where = interval_text(plan.guidance_interval)
        return (
            f"({evaluations}, {plural(plan.unet_passes, 'UNet pass', 'UNet passes')} of {plural(b, 'image')}): "
            f"{inside:,} inside the guidance interval {where} on {2 * b} images ({DOUBLED.format(b)}), "
            f"{plan.nfe - inside:,} outside it on {b} (conditional alone, one pass)"
        )
    text = f"({evaluations}), each on {plural(b, 'image')}"
    if plan.guidance_interval is not None and guided(plan.class_labels, plan.guidance_scale):
        text += f" (no step falls inside the guidance interval {interval_text(plan.guidance_interval)}: one pass each)"
    return text


LARGE_STEP_S = 1.0  # a model whose step takes this long or longer has its time per step said in the estimate


def seconds_text(seconds: float) -> str:
    """ "9.0", "24", "0.0031": two significant figures, at least one decimal under 10."""
    return f"{seconds:.0f}" if seconds >= 10 else f"{seconds:.1f}" if seconds >= 1 else f"{seconds:.2g}"


def estimate_before_loading(model_name, sampler, steps, batch_size) -> str:
    """The estimate of a listed model before its first use (a Hub model: its download, minutes): from its
    architecture's figures measured on a 2-vCPU CPU, the cost of a step and of the run, and what the download is."""
    try:
        defaults, sampler, n, batch_size = listed_request(model_name, sampler, steps, batch_size)
    except UserError as e:
        return refusal(e)
    nfe, arch = sampler.nfe_of(n), defaults.architecture
    seconds = defaults.run_seconds(nfe, batch_size)
    return (
        f"**≈ {seconds:.1f} s** for {plural(n, 'step')} ({plural(nfe, 'model evaluation')}), each on "
        f"{plural(batch_size, 'image')}: **≈ {seconds_text(seconds / n)} s a step**, as this {arch.sample_size} px "
        f"model's UNet ({arch.parameters_m:.0f} M parameters) ran on a 2-vCPU CPU. Its first use downloads "
        f"≈ {arch.download_mb} MB."
    )


def request_scheduler(plan: RunPlan, variance_type: str, clip: bool):
    """The scheduler of this request: ours with its Σ_t and clipping options, or the sampler's solver built from the
    model's config (which carries its thresholding and λ bound). The shared pipeline's scheduler stays untouched."""
    from pipelines.scheduler import LEARNED_VARIANCE_TYPES

    variance = VARIANCE_CHOICES[check_choice("Variance type", variance_type, tuple(VARIANCE_CHOICES))]
    config = plan.pipe.scheduler.config
    if variance == "learned":
        if config.variance_type not in LEARNED_VARIANCE_TYPES:
            raise UserError("This model's Σ_t is fixed: it has no learned Σ_θ. Choose fixed_small or fixed_large.")
        variance = config.variance_type
    if plan.sampler.uses_our_scheduler:
        return plan.sampler.scheduler_class.from_config(config, variance_type=variance, clip_sample=bool(clip))
    return plan.sampler.scheduler(config)


def sample(plan: RunPlan, variance_type, clip, seed, in_page: bool, session: str | None = None) -> Iterator[dict]:
    """Denoise pure noise step by step as ``plan`` says, streaming its progress; the last yield carries the recorded
    trajectory (the session's handle for scrubbing) and the final images. ``in_page``: also the scrubber's payload,
    the frames recorded so far every SCRUB_STREAM_EVERY_S while it runs (the slider following the newest step, so
    the run paints where it will be scrubbed) and the whole run at the end. ``session``: the Stop button's key
    (:data:`stop_requests`): a stopped run ends with the frames it made, to scrub.

    Yields its outputs by name: ``x_t``, ``x0_hat``, ``status``; at the end also ``state``, ``t`` (the slider's
    update), ``result``; and ``scrubber`` (with ``t``) in the page."""
    seed = check_int("Seed", seed, 0, settings.MAX_SEED)
    pipe, batch_size = plan.pipe, plan.batch_size
    tables = pipe.scheduler.tables
    spectrum = models.data_spectrum(plan.model)
    started = last_yield = time.perf_counter()
    last_payload, payload_every, stopped, made = float("-inf"), settings.SCRUB_STREAM_EVERY_S, False, 0
    run = pipe.record(
        frame_budget(pipe, batch_size),
        batch_size=batch_size,
        generator=torch.Generator(device=pipe.device).manual_seed(seed),
        num_inference_steps=plan.num_steps,
        eta=plan.eta,
        scheduler=request_scheduler(plan, variance_type, clip),
        class_labels=plan.class_labels,
        guidance_scale=plan.guidance_argument,
        guidance_rescale=plan.guidance_rescale,
        guidance_interval=plan.guidance_interval,
        show_progress=True,
    )
    with numerical_faults_as_errors():
        for step in in_compute_slots(run):
            made = step.step_index + 1
            if session is not None and stop_requests.requested(session) and made < step.num_steps:
                stopped = True
                run.close()
                break
            if time.perf_counter() - last_yield > settings.STREAM_EVERY_S:
                last_yield = time.perf_counter()
                t, t_prev = index_to_paper_t(step.timestep), index_to_paper_t(step.prev_timestep)
                label = step_label(step.step_index, plan.num_steps, step.num_steps, t, t_prev)
                status = f"Generating… {label} ({plural(made, 'model evaluation')} of {step.num_steps})."
                if not in_page:  # the API's live images (the page paints its frames in the scrubber)
                    live = {"x_t": grid_image(step.sample), "x0_hat": grid_image(step.pred_original_sample)}
                    yield {**live, "status": status}
                    continue
                so_far, live = run.recorded(), {}
                if last_yield - last_payload > payload_every and len(so_far) > 0:
                    live["scrubber"] = reverse_payload(
                        so_far, tables, data_spectrum=spectrum, num_steps=plan.num_steps
                    )
                    live["t"] = gr.update(value=so_far.t_values[-1], interactive=True)  # the newest step is shown
                    last_payload = time.perf_counter()
                    # encoding the frames so far grows with them (seconds for hundreds, on a busy CPU): at most a
                    # third of the run's time goes to it
                    payload_every = max(settings.SCRUB_STREAM_EVERY_S, 2 * (last_payload - last_yield))
                yield {**live, "status": status}
    models.run_speed.record_calls(plan.model, plan.unet_calls(made), time.perf_counter() - started, pipe)
    if stopped:
        yield from stopped_outputs(plan, run.recorded(), made, in_page)
        return
    final, trajectory = run.final, run.trajectory
    trajectory.final = final.cpu()
    state = ledger.admit(recorded_state(plan, trajectory))
    guided_note = guidance_text(plan)
    done = (
        f"Done: {plan.sampler.name}, {plural(plan.num_steps, 'step')} "
        f"({plural(trajectory.num_steps, 'model evaluation')}), t = {trajectory.t_values[0]} → 0"
        f"{'; ' + guided_note if guided_note else ''}; {len(trajectory)} kept for scrubbing "
        f"({trajectory.nbytes / 2**20:.1f} MB). Scrub t above."
    )
    final_grid = grid_image(final)
    outputs = {"x_t": final_grid, "x0_hat": grid_image(final), "status": done, "state": state, "result": final_grid}
    outputs["t"] = gr.update(minimum=0, maximum=state.num_train_timesteps, value=0, interactive=True)
    if in_page:
        classes = decided_classes(pipe, trajectory)
        outputs["scrubber"] = reverse_payload(
            trajectory, tables, data_spectrum=spectrum, classes=classes, num_steps=plan.num_steps
        )
    yield outputs


def stopped_outputs(plan: RunPlan, trajectory: Trajectory, made: int, in_page: bool) -> Iterator[dict]:
    """A run stopped by its user: it says so, and what it made so far becomes the session's run to scrub (and
    export); there is no result x₀."""
    last = trajectory.t_values[-1] if len(trajectory) else plan.pipe.scheduler.tables.num_timesteps
    status = (
        f"Stopped after {plural(made, 'model evaluation')} of {plan.nfe}, at t = {last}: no result x₀. The frames "
        f"made so far ({len(trajectory)}) can be scrubbed above, down to t = {last}."
    )
    if len(trajectory) == 0:
        yield {"status": status}
        return
    state = ledger.admit(recorded_state(plan, trajectory))
    outputs = {"status": status, "state": state, "x_t": grid_image(from_uint8(trajectory.samples[-1]))}
    outputs["t"] = gr.update(minimum=0, maximum=state.num_train_timesteps, value=last, interactive=True)
    if in_page:
        tables = plan.pipe.scheduler.tables
        spectrum = models.data_spectrum(plan.model)
        outputs["scrubber"] = reverse_payload(
            trajectory, tables, data_spectrum=spectrum, num_steps=plan.num_steps, stopped=True
        )
    yield outputs


def request_stop(request: gr.Request):
    """The Stop button: ask this session's run to end after its current step (it then says so, with its frames); a
    run still waiting in the queue ends after its first."""
    if request is not None:
        stop_requests.request(request.session_hash)


def note_waiting(request: gr.Request):
    """Generate's unqueued twin: the session's run waits in the queue, and Stop can reach it there."""
    if request is not None:
        stop_requests.waiting(request.session_hash)


def decided_classes(pipe: DDPMExplorerPipeline, trajectory: Trajectory):
    """When each image's class was decided, by the committed classifier (for Fashion-MNIST's shape only), computed
    once per run, batched, after sampling."""
    found = models.classifier_for(pipe.sample_shape)
    if found is None:
        return None
    classifier, names = found
    return class_decision(trajectory, classifier), names


@gpu
def reverse_generate(
    model_name,
    sampler,
    steps,
    eta,
    variance_type,
    clip,
    seed,
    batch_size,
    class_choice=ANY_CLASS,
    guidance=1.0,
    guidance_t_lo=None,
    guidance_t_hi=None,
    guidance_rescale=None,
    guidance_per_class=None,
    progress=gr.Progress(track_tqdm=True),
    request: gr.Request = None,
    in_page: bool = False,
):
    """A run: :func:`sample`'s outputs by name. The API's leaves the scrubber's payload out (``in_page`` False);
    the page's streams it, and its Stop button ends it (:func:`request_stop`). ``guidance_t_lo``, ``guidance_t_hi``:
    the guidance interval in the paper's t (None: 0 and T, every step); ``guidance_rescale``: φ (None: 0);
    ``guidance_per_class``: each class at the model's own w instead of ``guidance`` (None: no); all for a
    class-conditional model, and optional, so that older clients keep working."""
    conditioning = (class_choice, guidance, guidance_t_lo, guidance_t_hi, guidance_rescale, guidance_per_class)
    plan = run_plan(model_name, sampler, steps, eta, batch_size, *conditioning)
    session = request.session_hash if in_page and request is not None else None
    if session is None:
        yield from sample(plan, variance_type, clip, seed, in_page)
        return
    stop_requests.started(session)
    try:
        yield from sample(plan, variance_type, clip, seed, in_page, session)
    finally:
        stop_requests.finished(session)


MODEL_ELEM_ID = "reverse-model"  # the tab's model dropdown


def model_controls(name, event: gr.EventData):
    """A model's controls, as the page loads (``event`` from the page) or as the model changes (from its dropdown):
    the class, w, interval and φ (:func:`conditioning_controls`), then its steps, batch and sampler
    (:func:`model_defaults_controls`; as the page loads, :func:`opening_defaults_controls`)."""
    changed = getattr(event.target, "elem_id", None) == MODEL_ELEM_ID
    steps_and_batch = model_defaults_controls(name) if changed else opening_defaults_controls(name)
    return *conditioning_controls(name), *steps_and_batch


def model_defaults_controls(name):
    """The steps and batch sliders and the sampler on a model's defaults (app/model_defaults.py: the Hub models',
    whose UNets cost more; a checkpoint's own sampler and steps where its model_index.json records them; the app's
    for the others), within the sliders' ranges. A listed model's are known without loading it; a model that can't
    be loaded leaves them (the class controls before this say why)."""
    try:
        pipe = None if model_defaults.by_name(name) is not None else check_model(name)
    except UserError:
        return gr.skip(), gr.skip(), gr.skip()
    defaults = defaults_for(name, pipe)
    steps, batch = min(defaults.steps, settings.MAX_STEPS), min(defaults.batch, settings.MAX_BATCH)
    sampler = defaults.sampler or DEFAULT_SAMPLER
    return gr.update(value=steps), gr.update(value=batch), gr.update(value=sampler, info=sampler_note(sampler, pipe))


def opening_defaults_controls(name):
    """:func:`model_defaults_controls` as the page loads, leaving alone a slider the tab was built on that value
    (:func:`app.plans.opening_defaults`): a person may have moved it since."""
    built = opening_defaults()
    steps, batch, sampler = model_defaults_controls(name)
    same_steps = steps.get("value") == min(built.steps, settings.MAX_STEPS)
    same_batch = batch.get("value") == min(built.batch, settings.MAX_BATCH)
    same_sampler = sampler.get("value") == (built.sampler or DEFAULT_SAMPLER)
    return tuple(
        gr.skip() if same else u for same, u in ((same_steps, steps), (same_batch, batch), (same_sampler, sampler))
    )


def listed_model_preview(name, sampler):
    """A listed model picked before it is loaded (a Hub model downloads for minutes): its steps and batch, and its
    estimate from the measured figures, at once; nothing for any other model (the handlers after loading it set
    them)."""
    if model_defaults.by_name(name) is None or models.is_loaded(name):
        return gr.skip(), gr.skip(), gr.skip()
    steps, batch, _ = model_defaults_controls(name)
    return steps, batch, estimate_before_loading(name, sampler, steps["value"], batch["value"])


def batch_control(model_name, class_choice):
    """The batch slider: it sets the grid's size, except under "one of each", whose grid is one image per class:
    disabled there, saying so."""
    if class_choice == ONE_OF_EACH:
        classes = check_model(model_name).null_class_label or 0
        return gr.update(
            interactive=False,
            label=f"Batch: {classes}, one image per class (choose a single class, or 'any', to set it)",
        )
    return gr.update(interactive=True, label=BATCH_LABEL)


def sampler_help(name, model_name=None):
    """The sampler dropdown's help line for the chosen sampler (app.plans.sampler_note), naming the model's own
    default sampler where it has one."""
    pipe = models.get_pipeline(model_name) if model_name is not None and models.is_loaded(model_name) else None
    return gr.update(info=sampler_note(name, pipe))


def variance_controls(name):
    """The Σ_t radio for a model, on the model's own Σ_t: its learned Σ_θ for a model that has one; otherwise the
    fixed ones, on the one its scheduler config names (google/ddpm-cifar10-32's is fixed_large)."""
    from pipelines.scheduler import LEARNED_VARIANCE_TYPES

    own = check_model(name).scheduler.config.variance_type
    if own in LEARNED_VARIANCE_TYPES:
        return gr.update(choices=list(VARIANCE_CHOICES), value=LEARNED_CHOICE)
    fixed = [k for k, v in VARIANCE_CHOICES.items() if v != "learned"]
    return gr.update(choices=fixed, value=next((k for k in fixed if VARIANCE_CHOICES[k] == own), fixed[0]))


def conditioning_controls(name):
    """The class dropdown, the guidance slider, the guidance interval and rescale and the per-class w box for a
    model: shown, with its classes and its recommended w, interval and φ, for a class-conditional model (starting on
    "one of each": a grid of every class at that w), the box ticked where the model records a w per class; hidden
    for an unconditional one. Order: class, w, the accordion, t_lo, t_hi, φ, the per-class box."""
    pipe = check_model(name)
    choices = class_choices(pipe)
    T = pipe.scheduler.config.num_train_timesteps
    if choices is None:
        hidden = gr.update(visible=False)
        interval = [gr.update(maximum=T, value=0), gr.update(maximum=T, value=T), gr.update(value=0.0)]
        per_class = gr.update(visible=False, value=False)
        return gr.update(visible=False, choices=[ANY_CLASS], value=ANY_CLASS), hidden, hidden, *interval, per_class
    recommended = pipe.recommended_guidance()
    lo, hi = recommended.interval or (0, T)
    extras = guidance_extras_controls(ONE_OF_EACH, recommended.scale)
    return (
        gr.update(visible=True, choices=choices, value=ONE_OF_EACH),
        gr.update(visible=True, value=recommended.scale),
        gr.update(visible=True),
        {**extras[0], "maximum": T, "value": lo},
        {**extras[1], "maximum": T, "value": hi},
        {**extras[2], "value": recommended.rescale},
        per_class_control(pipe),
    )


def tab_defaults(name) -> dict:
    """What the tab's run controls start on for a model, by :func:`reverse_generate`'s names: its own Σ_t
    (:func:`variance_controls`), the class, w, guidance interval, φ and per-class box
    (:func:`conditioning_controls`). The default run's asset and its benchmark run exactly these."""
    classes, guidance, _, t_lo, t_hi, rescale, per_class = conditioning_controls(name)
    return {
        "variance_type": variance_controls(name)["value"],
        "class_choice": classes["value"],
        "guidance": guidance.get("value"),
        "guidance_t_lo": t_lo.get("value"),
        "guidance_t_hi": t_hi.get("value"),
        "guidance_rescale": rescale.get("value"),
        "guidance_per_class": per_class.get("value"),
    }


PER_CLASS_LABEL = "Each class at its own w, as the model recommends"


def per_class_control(pipe):
    """The per-class w box: shown and ticked for a model that records a w per class, its values in the help line;
    hidden and unticked for any other."""
    scales = pipe.recommended_class_scales
    if scales is None:
        return gr.update(visible=False, value=False)
    info = (
        f"{class_scales_text(pipe, scales)}. Guidance buys a class's likeness with its variety, and classes differ: "
        "the model's sweep found these w nearest every quality target. w above shows the chosen class's own (for a "
        "grid, the model's w). Untick (or move w) for one w for all classes; the race and the sweep below use w."
    )
    return gr.update(visible=True, value=True, info=info)


def one_w_for_all():
    """Moving w by hand: one w for every class (the per-class box unticked)."""
    return False


def recorded_class_w(model_name, class_choice):
    """(the model's recommended guidance, the labels the request asks for: None under "any") where the model records
    a w per class; None where it records none or the request can't be read (the run says why)."""
    try:
        pipe = check_model(model_name)
        labels, _, _ = conditioning(pipe, class_choice, 1.0, 1)  # 1: any w; only the classes are read here
    except UserError:
        return None
    recommended = pipe.recommended_guidance()
    return None if recommended.class_scales is None else (recommended, labels)


def per_class_w(model_name, class_choice, per_class):
    """The w slider under the per-class box shows the w the run takes: the chosen class's own, else (a grid of every
    class, or 'any') the model's w, which names the run. Unticked, or for a model that records no w per class, the
    slider keeps what it shows (one w for every class)."""
    found = recorded_class_w(model_name, class_choice) if per_class else None
    if found is None:
        return gr.skip()
    recommended, labels = found
    if labels is not None and len(labels) == 1:
        return recommended.class_scales[labels[0]]
    return recommended.scale


def own_w(model_name, class_choice, w):
    """The w a class-conditional run takes under the per-class box: the chosen class's own; under "one of each" a
    guiding one if any class guides; ``w`` under "any" (nothing guided) and where the model records none (or the
    request can't be read: the run says why)."""
    found = recorded_class_w(model_name, class_choice)
    if found is None or found[1] is None:
        return w
    recommended, labels = found
    own = [recommended.class_scales[label] for label in labels]
    return next((s for s in own if s not in (0.0, 1.0)), own[0])


INTERVAL_LO_INFO = (
    "Guide only where t_lo ≤ t ≤ t_hi (Kynkäänniemi et al. 2024); outside it w = 1: one UNet pass, no doubling. "
    "0 … T: every step."
)
INTERVAL_HI_INFO = "The paper's t (T: noise). Guiding the noisiest steps mostly costs variety; the paper skips them."
RESCALE_INFO = (
    "Lin et al. 2024: scale each guided ε̂ back to the conditional ε̂'s spread, φ of it mixed in; it tames the "
    "over-saturation of large w. 0: off."
)


def guidance_extras_controls(class_choice, w, per_class=False, model_name=None):
    """The guidance interval (t_lo, t_hi) and rescale φ sliders: enabled with their help where guidance acts, else
    disabled, saying why (the class 'any', or w = 0 or 1: no step is guided). With ``per_class`` (each class at the
    model's own w), the w that counts is the chosen class's own."""
    if per_class and model_name is not None:
        w = own_w(model_name, class_choice, w)
    reason = guidance_extras_reason(class_choice, w)
    if reason is not None:
        return tuple(gr.update(interactive=False, info=reason) for _ in range(3))
    return tuple(gr.update(interactive=True, info=info) for info in (INTERVAL_LO_INFO, INTERVAL_HI_INFO, RESCALE_INFO))


@lru_cache(maxsize=1)
def default_run() -> str | None:
    """The recorded run the tab opens with (app/assets/default_run.json, made by app/assets/make_default_run.py),
    when it exists and was made with the model the tab starts on."""
    try:
        text = DEFAULT_RUN.read_text()
        model = json.loads(text).get("model")
    except (OSError, ValueError):
        return None
    return text if model == models.default_model() else None  # sent as stored: no re-encoding


def open_with_default_run():
    """The page's first scrubber payload: the recorded default run (nothing to do when there is none)."""
    return default_run() or gr.skip()


def reverse_frame(state: ReverseState | None, t):
    """The API's slider move over a recorded run: x_t, x̂₀ and ε̂ of the nearest recorded step, the curves' cursor
    at the same t, and a caption that names it. A pure lookup: no model, no schedule computed. (In the page, the
    scrubber draws the same from its payload.)"""
    state = require_run(state, "Generate first; then the slider scrubs the recorded run.")
    t = check_int("t", t, 0, state.num_train_timesteps)
    trajectory = state.trajectory
    k = shown_position(trajectory, t)
    if k is None:
        shown = 0
        result = to_uint8(trajectory.final)
        panels = [result, result, torch.full_like(result, 128)]  # ε̂: at t = 0 there is no noise left to predict
        caption = (
            f"**t = 0**: the result x₀, after the last step t = {trajectory.t_values[-1]} → 0; "
            "there is no noise left to predict, so ε̂ is blank (mid grey)."
        )
    else:
        shown = trajectory.t_values[k]
        panels = [trajectory.samples[k], trajectory.pred_original[k], trajectory.pred_epsilon[k]]
        v = state.values[shown]
        n = state.num_steps or trajectory.num_steps
        label = step_label(trajectory.step_indices[k], n, trajectory.num_steps, shown, trajectory.t_prev_values[k])
        caption = f"**{label}.** ᾱ_t = {v.alpha_bar:.4g}, SNR = {v.snr:.4g}, log SNR = {v.log_snr:.3f}"
    if shown != t:
        caption += f" (the recorded step nearest the slider's t = {t})"
    images = [rendering.png_output(rendering.uint8_grid(p)) for p in panels]
    return *images, rendering.png_output(state.plot.at(shown)), caption


def reverse_gif(state: ReverseState | None, session: SessionFiles | None = None):
    """The run on screen as a GIF: x_t beside x̂₀, at most ``MAX_GIF_FRAMES`` frames spread over the run (the last
    one always), in a fresh per-session file; a frame at a time, so a cancelled request stops. Before any run of
    the session's own, the run on screen is the recorded default one (:func:`default_run`)."""
    if state is None and default_run() is not None:
        pairs = default_run_frames()
    else:
        trajectory = require_run(state, "Generate first.").trajectory
        pairs = [(trajectory.samples[k], trajectory.pred_original[k]) for k in range(len(trajectory))]
        pairs = [tuple(rendering.uint8_grid(p) for p in pair) for pair in pairs]
    frames = (rendering.side_by_side(list(pairs[k])) for k in evenly_spread(len(pairs) - 1, settings.MAX_GIF_FRAMES))
    images = yield from stoppable(collected(frames), 3)
    with compute_slot():
        path, session = export_gif(images, session)
    yield path, path, session


def default_run_frames() -> list[tuple]:
    """The default run's (x_t, x̂₀) grids, frame by frame, from its atlases (lossless: the frames it was made of)."""
    payload = json.loads(default_run())
    h = payload["frame_height"]
    return list(zip(*(atlas_frames(payload["atlas"][name], h) for name in ("x_t", "x0_hat"))))
