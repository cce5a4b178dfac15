"""A sampling request, validated once into a plan: the model, the sampler, N, η, the batch and its classes, within
this server's work cap. Every handler that samples (reverse, race, guidance sweep, SDEdit, the loss) takes its
checks and limits from here; the reverse run's later steps take its :class:`RunPlan`, never the names again."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from app import model_defaults, models, settings
from app.model_defaults import ModelDefaults
from app.validation import UserError, WorkCapError, check_choice, check_float, check_int, check_model
from pipelines.samplers import SAMPLERS, Sampler
from pipelines.schedules import BETA_SCHEDULES
from pipelines.trajectory import frames_within

SCHEDULES = tuple(BETA_SCHEDULES)  # the β schedules users pick (forward tab, 2D lab), in the registry's order

if TYPE_CHECKING:  # diffusers is loaded by the first run, not to serve the page
    from pipelines import DDPMExplorerPipeline

SAMPLER_NAMES = {sampler.name: key for key, sampler in SAMPLERS.items()}  # what users pick → registry key
DDPM = SAMPLERS["ddpm"].name
# The app's default run: UniPC at the step count whose run at the default model's recommended guidance is nearest
# every quality target (its strictest measure, pipelines/training/targets.py) among those whose default Generate fits
# 1.5 s on a 2-core CPU (docs/LEARNED_VARIANCE.md: at one w for all classes, 10 steps 1.80, 15 steps 1.70; 20 steps
# would take about 1.7 s; with each class at its own w, 15 steps 1.06: `python -m pipelines.guidance_sweep --json
# checkpoints/fashion-mnist-32-cond/evaluation/guidance-unipc15-per-class.json --table`)
DEFAULT_SAMPLER, DEFAULT_STEPS = SAMPLERS["unipc"].name, 15
DEFAULT_BATCH = 4
# a model's own steps, batch and cap (app/model_defaults.py: the Hub models, whose UNets cost more), else these
APP_DEFAULTS = ModelDefaults(DEFAULT_STEPS, DEFAULT_BATCH)
DEFAULT_SAMPLER_NOTE = (
    "Default: UniPC, 15 steps, with the default model's recommended guidance (each class at its own w): on its "
    "sweeps the setting nearest "
    "every quality target among those that run in 1.5 s here (10 steps draw less varied sneakers; 20 steps take "
    "longer), with 7× fewer model evaluations than DDPM at 100 steps. Quality there is the Fréchet distance: how far "
    "the statistics of 1,000 samples' features are from those of real images (lower is better), class by class. "
    "See the plot under Race samplers."
)


def own_sampler(pipe) -> tuple[str, int] | None:
    """(the sampler's name as users read it, N) a checkpoint records as its own default (model_index.json's
    ``recommended_sampler``, chosen by its sampler sweep), or None."""
    key = None if pipe is None else pipe.config.get("recommended_sampler")
    return None if key is None else (SAMPLERS[key].name, int(pipe.config.recommended_num_inference_steps))


def sampler_note(name, pipe=None) -> str:
    """The sampler dropdown's help line for the sampler chosen: the default's reason (the model's own default where
    ``pipe`` records one), and for a solver that evaluates twice a step or spaces its timesteps unevenly, how (Heun:
    2N − 1 evaluations on Karras σ steps)."""
    own = own_sampler(pipe)
    if name not in SAMPLER_NAMES:
        return DEFAULT_SAMPLER_NOTE
    sampler = SAMPLERS[SAMPLER_NAMES[name]]
    notes = [DEFAULT_SAMPLER_NOTE] if name == DEFAULT_SAMPLER and own is None else []
    if own is not None and own[0] == name:
        notes.append(
            f"This model's own default, as its model_index.json records: {own[0]}, {own[1]} steps (chosen by its "
            "sampler sweep; its model card has the figures)."
        )
    if sampler.evaluations_per_step == 2:
        notes.append(
            f"{sampler.name} evaluates the model twice a step: an Euler step to the step's end, then a corrector "
            "there that averages the two slopes (the last step is Euler alone): 2N − 1 evaluations for N steps. "
            "Scrubbing shows both evaluations of each step."
        )
    if sampler.options.get("use_karras_sigmas"):
        notes.append(
            "Its timesteps are unevenly spaced on purpose: they follow Karras et al.'s σ spacing (σ = "
            "√((1−ᾱ_t)/ᾱ_t), evenly spaced in σ^(1/7)), so the steps are long at high noise, where little changes, "
            "and short near the data, where the detail forms."
        )
    if not notes and sampler.reference:
        notes.append(f"{sampler.name}: {sampler.reference}.")
    return " ".join(notes)


ANY_CLASS, ONE_OF_EACH = "any (unconditional)", "one of each"
# what the Σ_t radio shows → the scheduler's variance_type (pipelines.scheduler.VARIANCE_TYPES holds them all)
VARIANCE_CHOICES = {
    "fixed_small (β̃_t, posterior)": "fixed_small",
    "fixed_large (β_t)": "fixed_large",
    "learned Σ_θ (the model's own, between β̃_t and β_t)": "learned",  # a model with a learned Σ_θ only
}
LEARNED_CHOICE = next(k for k, v in VARIANCE_CHOICES.items() if v == "learned")


@dataclass(frozen=True)
class RunPlan:
    """A validated sampling request."""

    model: str  # the registry name, checked
    pipe: DDPMExplorerPipeline
    sampler: Sampler
    num_steps: int  # N; T runs every timestep
    eta: float | None  # DDIM's η, for DDIM only
    batch_size: int
    class_labels: list[int] | None = None  # one per image; None: unconditional
    guidance_scale: float | None = None  # classifier-free guidance w (conditional models)
    guidance_rescale: float = 0.0  # φ of guidance rescale (Lin et al. 2024); 0: off
    guidance_interval: tuple[float, float] | None = None  # (t_lo, t_hi), the paper's t, where w applies; None: all
    # per model evaluation, whether it runs both passes (2B images; pipelines' guided_evaluations)
    guided_evaluations: tuple[bool, ...] = ()
    # each class's own w (the model's recommended ones), used instead of guidance_scale; None: one w for all
    guidance_class_scales: tuple[float, ...] | None = None

    @property
    def guidance_argument(self):
        """The pipeline's ``guidance_scale``: one w, or one per class."""
        return self.guidance_class_scales or self.guidance_scale

    @property
    def nfe(self) -> int:
        return self.sampler.nfe_of(self.num_steps)

    @property
    def guided(self) -> bool:
        """Whether any step runs the UNet twice, with and without the class (classifier-free guidance at a w other
        than 0 or 1, inside the guidance interval)."""
        return any(self.guided_evaluations)

    @property
    def asks_guidance(self) -> bool:
        """Whether any image asks for guidance, a w other than 0 or 1 (its class's own, or the run's), whether or
        not the guidance interval then leaves it a step to guide."""
        if self.class_labels is None:
            return False
        if self.guidance_class_scales is None:
            return guided(self.class_labels, self.guidance_scale)
        scales = self.guidance_class_scales
        return any(scales[c] not in (0.0, 1.0) for c in self.class_labels if c < len(scales))  # ∅ asks for none

    @property
    def fully_guided(self) -> bool:
        """Whether every step runs both passes (no guidance interval leaves any out)."""
        return self.guided and all(self.guided_evaluations)

    @property
    def unet_batch(self) -> int:
        """Images per UNet call where guided: the batch, doubled by guidance."""
        return self.batch_size * (2 if self.guided else 1)

    @property
    def unet_passes(self) -> int:
        """Passes of the batch over the UNet: one per model evaluation, two where it guides."""
        return self.nfe + sum(self.guided_evaluations)

    def unet_calls(self, made: int | None = None) -> dict[int, int]:
        """{images per call: calls} of the run's first ``made`` model evaluations (all by default)."""
        flags = list(self.guided_evaluations[:made]) if self.guided_evaluations else [False] * (made or self.nfe)
        calls = {self.batch_size: flags.count(False), 2 * self.batch_size: flags.count(True)}
        return {batch: n for batch, n in calls.items() if n}


def guided(labels, w) -> bool:
    return labels is not None and w not in (None, 0.0, 1.0)


def plural(n: int, word: str, many: str | None = None) -> str:
    """ "1 step", "2 steps" (``many`` for an irregular plural)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def class_choices(pipe: DDPMExplorerPipeline) -> list[str] | None:
    """What the class dropdown offers for a class-conditional model (None for an unconditional one)."""
    if pipe.null_class_label is None:
        return None
    names = pipe.config.class_names or [f"class {c}" for c in range(pipe.null_class_label)]
    return [ANY_CLASS, ONE_OF_EACH, *names]


def conditioning(pipe, class_choice, guidance, batch_size: int) -> tuple[list[int] | None, float | None, int]:
    """(labels, w, batch size) of a request: "any" is unconditional, a class name is that class for the whole
    batch, "one of each" is a grid of every class (its size is the number of classes). An unconditional model takes
    only "any"."""
    choices = class_choices(pipe)
    if choices is None:
        if class_choice not in (None, "", ANY_CLASS):
            raise UserError("This model is unconditional: choose the class 'any', or a class-conditional model.")
        return None, None, batch_size
    choice = check_choice("Class", class_choice or ANY_CLASS, tuple(choices))
    w = check_float("Guidance w", guidance, 0.0, settings.MAX_GUIDANCE)
    if choice == ANY_CLASS:
        return None, w, batch_size
    if choice == ONE_OF_EACH:
        return list(range(pipe.null_class_label)), w, pipe.null_class_label
    return [choices.index(choice) - 2] * batch_size, w, batch_size


def check_sampler(name) -> Sampler:
    """A sampler of the registry, by the name users read."""
    return SAMPLERS[SAMPLER_NAMES[check_choice("Sampler", name, tuple(SAMPLER_NAMES))]]


def guidance_options(pipe, rescale, t_lo, t_hi) -> tuple[float, tuple[float, float] | None]:
    """(φ, interval) of a class-conditional request: φ in [0, 1] (None: 0); the guidance interval 0 ≤ t_lo ≤ t_hi ≤ T
    in the paper's t (None: 0 and T), None where it covers every step (0 … T)."""
    T = pipe.scheduler.config.num_train_timesteps
    phi = 0.0 if rescale is None else check_float("Guidance rescale φ", rescale, 0.0, 1.0)
    hi = T if t_hi is None else check_float("Guidance interval's t_hi", t_hi, 0, T)
    lo = 0 if t_lo is None else check_float("Guidance interval's t_lo", t_lo, 0, int(hi) if hi == int(hi) else hi)
    return phi, None if lo <= 0 and hi >= T else (float(lo), float(hi))


def guided_evaluations(
    pipe, sampler: Sampler, n: int, labels, w, phi, interval, class_scales=None
) -> tuple[bool, ...]:
    """Which model evaluations of the run guide (both passes), as the pipeline will run them: every one or none
    unless a guidance interval leaves some out, which the run's timesteps then tell (a solver's, built the way the
    run builds it). With ``class_scales`` (each class's w) the batch's classes tell whether any is guided."""
    if labels is None or (class_scales is None and not guided(labels, w)):
        return (False,) * sampler.nfe_of(n)
    if class_scales is None and interval is None:
        return (True,) * sampler.nfe_of(n)
    from pipelines.guidance import Guidance

    run = pipe.run_scheduler(sampler.scheduler(pipe.scheduler.config), n)
    return tuple(pipe.guided_evaluations(run, labels, Guidance(w, phi, interval, class_scales)))


def class_scales_for(pipe, per_class) -> tuple[float, ...] | None:
    """The model's own w per class where a request asks for them (``per_class`` true), else None (one w).

    Raises:
        UserError: asked of a model that records none."""
    if not per_class:
        return None
    scales = pipe.recommended_class_scales
    if scales is None:
        raise UserError("This model records no per-class w: untick 'each class at its own w' and set w.")
    return scales


def class_scales_text(pipe, scales) -> str:
    """ "w = 2.5, except T-shirt/top 3.5, Shirt 3, Sneaker 1": the w most classes share, then the others by name."""
    names = pipe.config.class_names or [f"class {c}" for c in range(len(scales))]
    common = max(sorted(set(scales)), key=list(scales).count)  # a tie: the smaller w
    others = ", ".join(f"{name} {w:g}" for name, w in zip(names, scales) if w != common)
    return f"w = {common:g}" + (f", except {others}" if others else "")


def run_plan(
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
) -> RunPlan:
    """Validate a sampling request: a model, a sampler of the registry (by the name users read), N steps (all T at
    most), DDIM's η, a batch, and for a class-conditional model the class, the guidance w, its interval t_lo … t_hi
    and its rescale φ, and whether each class takes the model's own w (the reverse tab's order), within this
    server's work cap (a guided step costs two UNet passes)."""
    pipe = check_model(model_name)
    T = pipe.scheduler.config.num_train_timesteps
    sampler = check_sampler(sampler)
    batch_size = check_int("Batch size", batch_size, 1, settings.MAX_BATCH)
    labels, w, batch_size = conditioning(pipe, class_choice, guidance, batch_size)
    phi, interval, class_scales = 0.0, None, None
    if w is not None:  # class-conditional
        phi, interval = guidance_options(pipe, guidance_rescale, guidance_t_lo, guidance_t_hi)
        class_scales = class_scales_for(pipe, guidance_per_class)
    n = check_int("Steps", steps, 1, min(T, settings.MAX_STEPS))
    eta = check_float("η", eta, 0.0, 1.0) if sampler.takes_eta else None
    flags = guided_evaluations(pipe, sampler, n, labels, w, phi, interval, class_scales)
    plan = RunPlan(model_name, pipe, sampler, n, eta, batch_size, labels, w, phi, interval, flags, class_scales)
    if plan.guided and not plan.fully_guided:
        check_work(pipe, plan.nfe, plan.batch_size, doubled_calls=sum(flags), interval=interval)
    else:
        check_work(pipe, plan.nfe, plan.unet_batch, doubled=plan.guided)
    return plan


def interval_text(interval) -> str:
    """ "t ∈ [200, 800]" of a guidance interval (the paper's t)."""
    lo, hi = interval
    return f"t ∈ [{lo:g}, {hi:g}]"


def guidance_text(plan: RunPlan) -> str:
    """What a guided run's guidance interval and rescale did, for its status: "" where no image asks for guidance
    (:attr:`RunPlan.asks_guidance`)."""
    if not plan.asks_guidance:
        return ""
    parts = []
    w = f"w = {plan.guidance_scale:g}"
    if plan.guidance_class_scales is not None:
        w = f"each class at its own w: {class_scales_text(plan.pipe, plan.guidance_class_scales)}"
        if plan.guidance_interval is None:
            parts.append(f"guided ({w})")
    if plan.guidance_interval is not None:
        guided_n = sum(plan.guided_evaluations)
        parts.append(
            f"guided ({w}) at {guided_n} of {plural(plan.nfe, 'model evaluation')}, those "
            f"in the guidance interval {interval_text(plan.guidance_interval)}"
        )
    if plan.guidance_rescale > 0:
        parts.append(f"guidance rescaled with φ = {plan.guidance_rescale:g}")
    return "; ".join(parts)


def guidance_extras_reason(class_choice, w) -> str | None:
    """Why the guidance interval and rescale do nothing for these class and w (None when they count): they act on
    guided steps only, and there are none under the class 'any' or at w = 0 or 1."""
    try:
        w = float(w)
    except (TypeError, ValueError):
        return None
    if class_choice in (None, "", ANY_CLASS):
        return "Has no effect under the class 'any' (unconditional): choose a class, or 'one of each', to set it."
    if w in (0.0, 1.0):
        what = "unconditional" if w == 0.0 else "plainly conditional"
        return f"Has no effect at w = {w:g} ({what}: one UNet pass, nothing guided): choose w ≠ 0, 1 to set it."
    return None


def defaults_for(name, pipe=None) -> ModelDefaults:
    """A model's reverse-tab steps, batch, sampler and work cap: by name for a listed (Hub) model, known without
    loading it; else by the loaded ``pipe``'s architecture (a model of 256 px or more gets the 256 px models'); else
    the app's; a checkpoint's own sampler and steps (model_index.json) over either."""
    found = model_defaults.by_name(name)
    if found is None and pipe is not None:
        found = model_defaults.for_unet(pipe.unet.config)
    own = own_sampler(pipe)
    if own is not None:  # the checkpoint's own sampler and steps (model_index.json)
        return replace(found or APP_DEFAULTS, sampler=own[0], steps=own[1])
    return found or APP_DEFAULTS


def opening_defaults() -> ModelDefaults:
    """What the reverse tab's steps and batch are built with: the default model's defaults when they are known
    without loading it (a listed model), else the app's."""
    return defaults_for(models.default_model())


def listed_request(name, sampler, steps, batch_size) -> tuple[ModelDefaults, Sampler, int, int]:
    """A request for a listed model that is not loaded yet (a Hub model), checked as far as its listing allows, without
    loading it: (its defaults, the sampler, N, the batch). Its run is checked again, whole, by :func:`run_plan`."""
    defaults = model_defaults.by_name(name)
    entry = models.registry().get(name)
    if defaults is None or entry is None:
        raise UserError(f"Unknown model {name!r}; choose one of the list.")
    reason = models.availability(entry)
    if reason:
        raise UserError(f"{name} is unavailable: {reason}")
    sampler = check_sampler(sampler)
    n = check_int("Steps", steps, 1, settings.MAX_STEPS)
    batch_size = check_int("Batch size", batch_size, 1, settings.MAX_BATCH)
    size = defaults.architecture.sample_size
    check_work_within(defaults, (size, size), sampler.nfe_of(n), batch_size)
    return defaults, sampler, n, batch_size


def check_work(
    pipe, unet_calls: int, batch_size: int, doubled: bool = False, doubled_calls: int | None = None, interval=None
) -> None:
    """Cap what one request may ask for: UNet calls × batch × pixels ≤ the model's cap (MAX_WORK, or a smaller one
    for a model that costs more per pixel: :func:`defaults_for`). ``doubled``: the UNet's batch is twice the user's
    (guidance), which the message says. ``doubled_calls``: only so many of the calls are (a guidance ``interval``
    leaves the others one pass), and ``batch_size`` is the user's."""
    _, h, w = pipe.sample_shape
    check_work_within(defaults_for(None, pipe), (h, w), unet_calls, batch_size, doubled, doubled_calls, interval)


def check_work_within(
    defaults: ModelDefaults,
    size: tuple[int, int],
    unet_calls: int,
    batch_size: int,
    doubled=False,
    doubled_calls: int | None = None,
    interval=None,
):
    """:func:`check_work` for a model known by its defaults and its size (h, w), loaded or not."""
    h, w = size
    passes = unet_calls + (doubled_calls or 0)
    work, cap = passes * batch_size * h * w, defaults.work_cap
    if work > cap:
        why = (
            f" (a batch of {batch_size // 2}, doubled: guidance runs the UNet with and without the class at every "
            "step)"
            if doubled
            else ""
        )
        fix = ", a smaller batch, or guidance w = 1 (no doubling)" if doubled else " or a smaller batch"
        asks = f"{plural(unet_calls, 'UNet call')} × {batch_size} images{why}"
        if doubled_calls:
            asks = (
                f"{plural(passes, 'UNet pass', 'UNet passes')} of {batch_size} images ({unet_calls:,} calls, "
                f"{doubled_calls:,} of them doubled: guidance runs the UNet with and without the class inside the "
                f"guidance interval {interval_text(interval)})"
            )
            fix = ", a smaller batch, a narrower guidance interval, or guidance w = 1 (no doubling)"
        limit = f"this server's limit of {cap:,}"
        if defaults.max_work is not None:  # a model's own cap: say what it allows
            limit = (
                f"this server's limit for this model of {cap:,} "
                f"({plural(cap // (h * w), 'UNet call')} of one {h}×{w} image)"
            )
        raise WorkCapError(f"That asks for {asks} × {h}×{w} px = {work:,}, over {limit}. Use fewer steps{fix}.")


def frame_budget(pipe, batch_size: int) -> int:
    """How many steps a session's trajectory may keep within its byte budget."""
    c, h, w = pipe.sample_shape
    budget = settings.TRAJECTORY_BUDGET_SMALL if max(h, w) <= 64 else settings.TRAJECTORY_BUDGET_LARGE
    return frames_within(budget, (batch_size, c, h, w))


def checked_num_timesteps(name) -> int:
    """T of a model, checked and loaded (:func:`app.models.num_timesteps` reads a local model's T from its config,
    without loading it, and knows none for a Hub model)."""
    return check_model(name).scheduler.config.num_train_timesteps
