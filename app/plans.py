"""A sampling request, validated once into a plan: the model, the sampler, N, η, the batch and its classes, within
this server's work cap. Every handler that samples (reverse, race, guidance sweep, SDEdit, the loss) takes its
checks and limits from here; the reverse run's later steps take its :class:`RunPlan`, never the names again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app import model_defaults, models, settings
from app.model_defaults import ModelDefaults
from app.validation import UserError, check_choice, check_float, check_int, check_model
from pipelines.samplers import SAMPLERS, Sampler
from pipelines.schedules import BETA_SCHEDULES
from pipelines.trajectory import frames_within

SCHEDULES = tuple(BETA_SCHEDULES)  # the β schedules users pick (forward tab, 2D lab), in the registry's order

if TYPE_CHECKING:  # diffusers is loaded by the first run, not to serve the page
    from pipelines import DDPMExplorerPipeline

SAMPLER_NAMES = {sampler.name: key for key, sampler in SAMPLERS.items()}  # what users pick → registry key
DDPM = SAMPLERS["ddpm"].name
# The app's default run: the fastest sampler whose Fréchet distance is within 10 % of 100-step DDPM's in both feature
# spaces and under 3× each real floor, on the default model's sweep (docs/SAMPLERS.md; `python -m
# pipelines.sampler_sweep --json checkpoints/fashion-mnist-32-cond/evaluation/samplers-step8546.json --fastest
# --max-fd-ratio 3`)
DEFAULT_SAMPLER, DEFAULT_STEPS = SAMPLERS["unipc"].name, 10
DEFAULT_BATCH = 4
# a model's own steps, batch and cap (app/model_defaults.py: the Hub models, whose UNets cost more), else these
APP_DEFAULTS = ModelDefaults(DEFAULT_STEPS, DEFAULT_BATCH)
DEFAULT_SAMPLER_NOTE = (
    "Default: UniPC, 10 steps, the fastest sampler within 10 % of 100-step DDPM's quality on the default model's "
    "sweep: 10× fewer model evaluations. Quality there is the Fréchet distance: how far the statistics of 1,000 "
    "samples' features are from those of real images (lower is better). See the plot under Race samplers."
)


def sampler_note(name) -> str:
    """The sampler dropdown's help line for the sampler chosen: the default's reason, and for a solver that
    evaluates twice a step or spaces its timesteps unevenly, how (Heun: 2N − 1 evaluations on Karras σ steps)."""
    if name not in SAMPLER_NAMES:
        return DEFAULT_SAMPLER_NOTE
    sampler = SAMPLERS[SAMPLER_NAMES[name]]
    notes = [DEFAULT_SAMPLER_NOTE] if name == DEFAULT_SAMPLER else []
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

    @property
    def nfe(self) -> int:
        return self.sampler.nfe_of(self.num_steps)

    @property
    def guided(self) -> bool:
        """Whether each step runs the UNet twice, with and without the class (classifier-free guidance at a w other
        than 0 or 1)."""
        return guided(self.class_labels, self.guidance_scale)

    @property
    def unet_batch(self) -> int:
        """Images per UNet call: the batch, doubled by guidance."""
        return self.batch_size * (2 if self.guided else 1)


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


def run_plan(model_name, sampler, steps, eta, batch_size, class_choice=None, guidance=None) -> RunPlan:
    """Validate a sampling request: a model, a sampler of the registry (by the name users read), N steps (all T at
    most), DDIM's η, a batch, and for a class-conditional model the class and the guidance w, within this server's
    work cap (a guided step costs two UNet passes)."""
    pipe = check_model(model_name)
    T = pipe.scheduler.config.num_train_timesteps
    sampler = check_sampler(sampler)
    batch_size = check_int("Batch size", batch_size, 1, settings.MAX_BATCH)
    labels, w, batch_size = conditioning(pipe, class_choice, guidance, batch_size)
    n = check_int("Steps", steps, 1, min(T, settings.MAX_STEPS))
    eta = check_float("η", eta, 0.0, 1.0) if sampler.takes_eta else None
    plan = RunPlan(model_name, pipe, sampler, n, eta, batch_size, labels, w)
    check_work(pipe, plan.nfe, plan.unet_batch, doubled=plan.guided)
    return plan


def defaults_for(name, pipe=None) -> ModelDefaults:
    """A model's reverse-tab steps, batch and work cap: by name for a listed (Hub) model, known without loading it;
    else by the loaded ``pipe``'s architecture (a model of 256 px or more gets the 256 px models'); else the app's."""
    found = model_defaults.by_name(name)
    if found is None and pipe is not None:
        found = model_defaults.for_unet(pipe.unet.config)
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


def check_work(pipe, unet_calls: int, batch_size: int, doubled: bool = False) -> None:
    """Cap what one request may ask for: UNet calls × batch × pixels ≤ the model's cap (MAX_WORK, or a smaller one
    for a model that costs more per pixel: :func:`defaults_for`). ``doubled``: the UNet's batch is twice the user's
    (guidance), which the message says."""
    _, h, w = pipe.sample_shape
    check_work_within(defaults_for(None, pipe), (h, w), unet_calls, batch_size, doubled)


def check_work_within(defaults: ModelDefaults, size: tuple[int, int], unet_calls: int, batch_size: int, doubled=False):
    """:func:`check_work` for a model known by its defaults and its size (h, w), loaded or not."""
    h, w = size
    work, cap = unet_calls * batch_size * h * w, defaults.work_cap
    if work > cap:
        why = (
            f" (a batch of {batch_size // 2}, doubled: guidance runs the UNet with and without the class at every "
            "step)"
            if doubled
            else ""
        )
        fix = ", a smaller batch, or guidance w = 1 (no doubling)" if doubled else " or a smaller batch"
        limit = f"this server's limit of {cap:,}"
        if defaults.max_work is not None:  # a model's own cap: say what it allows
            limit = (
                f"this server's limit for this model of {cap:,} "
                f"({plural(cap // (h * w), 'UNet call')} of one {h}×{w} image)"
            )
        raise UserError(
            f"That asks for {plural(unet_calls, 'UNet call')} × {batch_size} images{why} × {h}×{w} px = {work:,}, "
            f"over {limit}. Use fewer steps{fix}."
        )


def frame_budget(pipe, batch_size: int) -> int:
    """How many steps a session's trajectory may keep within its byte budget."""
    c, h, w = pipe.sample_shape
    budget = settings.TRAJECTORY_BUDGET_SMALL if max(h, w) <= 64 else settings.TRAJECTORY_BUDGET_LARGE
    return frames_within(budget, (batch_size, c, h, w))


def checked_num_timesteps(name) -> int:
    """T of a model, checked and loaded (:func:`app.models.num_timesteps` reads a local model's T from its config,
    without loading it, and knows none for a Hub model)."""
    return check_model(name).scheduler.config.num_train_timesteps
