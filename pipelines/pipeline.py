"""The step-by-step DDPM pipeline: diffusers' ``DDPMPipeline`` that also shows its work."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler, DiffusionPipeline, ImagePipelineOutput, SchedulerMixin, UNet2DModel
from diffusers.utils.torch_utils import randn_tensor

from pipelines.guidance import Guidance
from pipelines.samplers import diffusers_run_scheduler, get_sampler
from pipelines.scheduler import DDPMExplorerScheduler, respaced_timesteps, x0_and_eps_from_model_output
from pipelines.trajectory import RunSchedule, Trajectory, TrajectoryRecorder

OUTPUT_TYPES = ("pil", "np", "pt")


class NonFiniteSampleError(RuntimeError):
    """The model produced NaN or Inf; the run stops instead of streaming garbage."""


@dataclass(frozen=True)
class PreparedRun:
    """A copy of a scheduler with one run's timesteps set, and the schedule read from it
    (:meth:`DDPMExplorerPipeline.prepare_run`): built once, then stepped by ``iter_trajectory``, for one run only
    (solvers keep state as they step)."""

    scheduler: SchedulerMixin
    schedule: RunSchedule


class Recording:
    """One run of :meth:`DDPMExplorerPipeline.iter_trajectory`, recorded as it goes (made by its ``record``).

    Iterating it runs the steps; each is recorded (x_t, x̂₀, ε̂ as uint8) before it is yielded. ``schedule`` (its
    model evaluations) is known before the first step; :meth:`recorded` is the frames so far, and ``trajectory``
    the whole run with its float result x₀ (``final``) once the last step is made.
    """

    def __init__(self, schedule: RunSchedule, steps: Iterator[TrajectoryStep], max_frames: int | None):
        self.schedule = schedule
        self.max_frames = max_frames
        self.final: torch.Tensor | None = None  # x₀, after the last step
        self._steps = steps
        self._recorder: TrajectoryRecorder | None = None  # made at the first step, which tells the batch's shape

    def __len__(self) -> int:
        return len(self.schedule)

    def __iter__(self) -> Recording:
        return self

    def __next__(self) -> TrajectoryStep:
        step = next(self._steps)
        if self._recorder is None:
            self._recorder = TrajectoryRecorder(self.schedule, tuple(step.sample.shape), self.max_frames)
        self._recorder.record(
            step.step_index, step.sample, step.pred_original_sample, step.pred_epsilon, step.variance_fraction
        )
        if step.step_index == step.num_steps - 1:
            self.final = step.prev_sample
        return step

    def close(self) -> None:
        """Stop the run (its generator's ``close``), as a cancelled request does."""
        self._steps.close()

    def recorded(self) -> Trajectory:
        """The steps recorded so far (views into the buffers, no copy; ``final`` is None)."""
        return self._recorder.recorded()

    @property
    def trajectory(self) -> Trajectory:
        """The recorded run, with ``final`` set once the last step is made."""
        trajectory = self._recorder.trajectory
        trajectory.final = self.final
        return trajectory


@dataclass
class TrajectoryStep:
    """What one reverse step saw and produced. Tensors are (B, C, H, W).

    A consumer of :meth:`DDPMExplorerPipeline.iter_trajectory` may replace ``prev_sample``; the loop continues from it.
    """

    step_index: int
    num_steps: int
    timestep: int  # diffusers' table index of x_t: the paper's t − 1, what the UNet is given
    prev_timestep: int  # the table index the step goes to; −1 after the last step (the sample x₀)
    alpha_prod_t: float  # ᾱ of x_t, its noise level (log SNR = log(ᾱ/(1−ᾱ)))
    sample: torch.Tensor  # x_t, in the DDPM (variance-preserving) scale
    pred_original_sample: torch.Tensor  # x̂₀
    pred_epsilon: torch.Tensor  # ε̂
    prev_sample: torch.Tensor  # x_{t'}
    # v of a learned Σ_θ per pixel (0 at β̃, 1 at β; our scheduler's ancestral step only), else None
    variance_fraction: torch.Tensor | None = None


def _step_kwargs(scheduler, generator: torch.Generator | None, eta: float | None) -> dict:
    """The keyword arguments a scheduler's ``step`` takes: its noise's generator (stochastic solvers) and η."""
    params = inspect.signature(scheduler.step).parameters
    kwargs = {"generator": generator} if "generator" in params else {}
    if eta is not None:
        if not isinstance(scheduler, DDPMExplorerScheduler):
            raise ValueError(f"eta is DDIM's η, for DDPMExplorerScheduler; {type(scheduler).__name__} takes none.")
        kwargs["eta"] = eta
    return kwargs


def _check_positive_int(name: str, value, upper: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (upper is not None and value > upper):
        bound = f" and at most {upper}" if upper is not None else ""
        raise ValueError(f"{name} must be an integer of at least 1{bound}, got {value!r}.")
    return value


class DDPMExplorerPipeline(DiffusionPipeline):
    """DDPM sampling (Ho et al. 2020) that yields x_t, x̂₀ and ε̂ at every step; unconditional, or class-conditional
    with classifier-free guidance (Ho & Salimans 2022).

    Args:
        unet: ε_θ (or x₀/v, per the scheduler's ``prediction_type``), a ``UNet2DModel``. A class-conditional UNet
            has ``num_class_embeds`` = classes + 1: its last label is the null label ∅ ("no class").
        scheduler: a :class:`~pipelines.scheduler.DDPMExplorerScheduler`, or any diffusers scheduler built from its
            config (``pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)``).
        recommended_guidance_scale: the guidance w a class-conditional checkpoint samples best with; saved in
            ``model_index.json`` and used when a call passes ``guidance_scale=None``.
        recommended_guidance_interval: (t_lo, t_hi) in the paper's t where it guides best (Kynkäänniemi et al.
            2024), saved in ``model_index.json``; None: every step. A starting value (:meth:`recommended_guidance`):
            a call guides in the interval it is given.
        recommended_guidance_rescale: φ of guidance rescale it samples best with (Lin et al. 2024); None: 0.
        recommended_guidance_class_scales: w of each class (one per label but ∅) where classes sample best at
            different w, saved in ``model_index.json``; used instead of ``recommended_guidance_scale`` (which then
            names the run) when a call passes ``guidance_scale=None``. None: that one w for every class.
        recommended_sampler: the key in :data:`~pipelines.samplers.SAMPLERS` of the sampler the checkpoint samples
            best with (its sampler sweep), and ``recommended_num_inference_steps`` its N; saved in
            ``model_index.json`` for the app to start on. None: no preference of its own.
        class_names: what the labels of a class-conditional checkpoint mean (one name per label but ∅), saved in
            ``model_index.json``.

    The registered scheduler is never mutated by sampling: every run works on a copy with its own timesteps, so one
    pipeline can serve concurrent requests.
    """

    model_cpu_offload_seq = "unet"

    def __init__(
        self,
        unet: UNet2DModel,
        scheduler: SchedulerMixin,
        recommended_guidance_scale: float | None = None,
        class_names: list[str] | None = None,
        recommended_guidance_interval: list[float] | None = None,
        recommended_guidance_rescale: float | None = None,
        recommended_guidance_class_scales: list[float] | None = None,
        recommended_sampler: str | None = None,
        recommended_num_inference_steps: int | None = None,
    ):
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)
        n = unet.config.num_class_embeds
        if class_names is not None and (not n or len(class_names) != n - 1):
            raise ValueError(
                f"class_names has {len(class_names)} names; the UNet has "
                + (f"{n - 1} classes (and the null label)." if n else "no class embedding.")
            )
        interval = None if recommended_guidance_interval is None else list(recommended_guidance_interval)
        class_scales = None
        if recommended_guidance_class_scales is not None:
            class_scales = [float(w) for w in recommended_guidance_class_scales]
            if not n or len(class_scales) != n - 1:
                raise ValueError(
                    f"recommended_guidance_class_scales has {len(class_scales)} scales; the UNet has "
                    + (f"{n - 1} classes." if n else "no class embedding.")
                )
        Guidance(  # checks
            1.0,
            recommended_guidance_rescale or 0.0,
            None if interval is None else tuple(interval),
            None if class_scales is None else tuple(class_scales),
        )
        if recommended_sampler is not None:
            get_sampler(recommended_sampler)  # checks
        if (recommended_sampler is None) != (recommended_num_inference_steps is None):
            raise ValueError("recommended_sampler and recommended_num_inference_steps come together.")
        self.register_to_config(
            recommended_sampler=recommended_sampler,
            recommended_num_inference_steps=recommended_num_inference_steps,
            recommended_guidance_class_scales=class_scales,
            recommended_guidance_scale=recommended_guidance_scale,
            class_names=class_names,
            recommended_guidance_interval=interval,
            recommended_guidance_rescale=recommended_guidance_rescale,
        )

    @property
    def null_class_label(self) -> int | None:
        """The label ∅ of a class-conditional UNet (its last), or None for an unconditional one."""
        n = self.unet.config.num_class_embeds
        return n - 1 if n else None

    def balanced_class_labels(self, n: int) -> torch.Tensor | None:
        """n labels with an equal share of every class (sample i asks for class i mod K), as the sweeps sample them;
        None for an unconditional UNet."""
        return None if self.null_class_label is None else torch.arange(n) % self.null_class_label

    def class_labels_for(self, class_labels, batch_size: int) -> torch.Tensor | None:
        """(B,) long labels for a run: ``None`` is unconditional (∅ for a conditional UNet), an int is one class for
        the whole batch, a list is one label per image (and sets B).

        Raises:
            ValueError: labels for an unconditional UNet, or a label outside [0, ∅].
        """
        null = self.null_class_label
        if null is None:
            if class_labels is not None:
                raise ValueError(
                    "This checkpoint is unconditional (its UNet has no class embedding): pass class_labels=None."
                )
            return None
        if class_labels is None:
            labels = [null] * batch_size
        elif isinstance(class_labels, int) and not isinstance(class_labels, bool):
            labels = [class_labels] * batch_size
        else:
            labels = [int(c) for c in torch.as_tensor(class_labels).reshape(-1).tolist()]
        if not labels or any(not 0 <= c <= null for c in labels):
            raise ValueError(
                f"class_labels must be integers in [0, {null}] ({null} = no class), got {class_labels!r}."
            )
        return torch.tensor(labels, dtype=torch.long, device=self.device)

    def guidance_scale_for(self, guidance_scale: float | None) -> float:
        """w of a run: the given one, else the checkpoint's recommended value, else 1.0 (plain conditional)."""
        w = self.config.recommended_guidance_scale if guidance_scale is None else guidance_scale
        w = 1.0 if w is None else w
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w <= 50.0:
            raise ValueError(f"guidance_scale must be a number in [0, 50], got {guidance_scale!r}.")
        return float(w)

    @property
    def recommended_class_scales(self) -> tuple[float, ...] | None:
        """The checkpoint's w for each class (``recommended_guidance_class_scales``), or None where one w serves
        all."""
        scales = self.config.get("recommended_guidance_class_scales")
        return None if scales is None else tuple(float(w) for w in scales)

    def class_scales_for(self, guidance_scale) -> tuple[float, ...] | None:
        """The per-class w of a run: ``None`` is the checkpoint's (if it has them), a sequence is one w per class;
        a number means one w for all, so None.

        Raises:
            ValueError: a sequence that is not one number in [0, 50] per class.
        """
        if guidance_scale is None:
            return self.recommended_class_scales
        if isinstance(guidance_scale, (int, float)):
            return None
        scales = tuple(guidance_scale)
        classes = self.null_class_label or 0
        if len(scales) != classes:
            raise ValueError(f"guidance_scale per class needs {classes} scales, one per class; got {len(scales)}.")
        Guidance(class_scales=scales)  # checks each
        return tuple(float(w) for w in scales)

    def guidance_for(self, guidance_scale=None, guidance_rescale: float = 0.0, guidance_interval=None) -> Guidance:
        """A run's :class:`Guidance` from a call's arguments: ``guidance_scale`` a number (one w), a sequence (one w
        per class, named by their median) or None (the checkpoint's recommended w, per class where it has them)."""
        class_scales = self.class_scales_for(guidance_scale)
        if class_scales is not None and guidance_scale is not None:
            headline = float(torch.tensor(class_scales).median())
        else:
            headline = self.guidance_scale_for(guidance_scale)
        return Guidance(headline, guidance_rescale, guidance_interval, class_scales)

    def recommended_guidance(self) -> Guidance:
        """The checkpoint's recommended guidance: w (:meth:`guidance_scale_for`; per class where it records them),
        its interval (None: every step) and φ (0 where it names none). What a person's controls start on."""
        interval = self.config.get("recommended_guidance_interval")
        rescale = self.config.get("recommended_guidance_rescale")
        return Guidance(
            self.guidance_scale_for(None),
            0.0 if rescale is None else float(rescale),
            None if interval is None else (float(interval[0]), float(interval[1])),
            self.recommended_class_scales,
        )

    def guides_at(self, t, class_labels: torch.Tensor | None, guidance: Guidance) -> bool:
        """Whether :meth:`predict` guides at diffusers' timestep ``t``: two UNet passes (with and without the class)
        batched into one call of 2B images. Not with no labels or only ∅, nor where w (of the interval) is 0 or 1."""
        if class_labels is None or bool((class_labels == self.null_class_label).all()):
            return False
        w = self.class_images_w(guidance.scales_at(float(t) + 1, class_labels), class_labels)
        return not (bool((w == w[0]).all()) and float(w[0]) in (0.0, 1.0))  # one pass only for one w of 0 or 1

    def class_images_w(self, scales: torch.Tensor, class_labels: torch.Tensor) -> torch.Tensor:
        """The w of the images that ask for a class (∅'s have none), from :meth:`Guidance.scales_at`'s."""
        return scales[class_labels.cpu() != self.null_class_label]

    def guided_evaluations(self, scheduler, class_labels, guidance: Guidance) -> list[bool]:
        """For each model evaluation of a run, known before it starts, whether it guides (:meth:`guides_at`: a UNet
        call of 2B images instead of B). ``scheduler``: a run scheduler with its timesteps set
        (:meth:`run_scheduler`) or a :class:`PreparedRun`; ``class_labels`` as :meth:`class_labels_for` takes them."""
        run = scheduler.scheduler if isinstance(scheduler, PreparedRun) else scheduler
        labels = self.class_labels_for(class_labels, 1)
        return [self.guides_at(t, labels, guidance) for t in run.timesteps]

    def predict(
        self, x: torch.Tensor, t, class_labels: torch.Tensor | None, guidance: Guidance | float
    ) -> torch.Tensor:
        """The network's output at (x_t, t), guided: ε̂ = ε̂(x_t, ∅) + w·(ε̂(x_t, c) − ε̂(x_t, ∅)) with w of
        ``guidance`` at this t (see :class:`~pipelines.guidance.Guidance`: interval, rescale), the conditional and
        unconditional passes batched into one UNet call (one pass where w is 0 or 1, or every label is ∅).

        A learned-variance UNet's extra channels (Σ_θ) are not guided: they come from the conditional pass, as in
        GLIDE and diffusers' DiT pipeline."""
        guidance = guidance if isinstance(guidance, Guidance) else Guidance(scale=guidance)
        if class_labels is None:
            return self.unet(x, t).sample
        null = torch.full_like(class_labels, self.null_class_label)
        scale = guidance.scales_at(float(t) + 1, class_labels)  # diffusers' table index + 1 = the paper's t
        if not self.guides_at(t, class_labels, guidance):  # one pass: unconditional (w = 0, or only ∅), or w = 1
            unconditional = bool((self.class_images_w(scale, class_labels) == 0.0).all())  # only ∅: none, so all
            return self.unet(x, t, class_labels=null if unconditional else class_labels).sample
        both = self.unet(torch.cat([x, x]), t, class_labels=torch.cat([class_labels, null])).sample
        conditional, unconditional = both.chunk(2)
        c = x.shape[1]
        guided = guidance.combine(conditional[:, :c], unconditional[:, :c], scale)
        return torch.cat([guided, conditional[:, c:]], dim=1) if both.shape[1] > c else guided

    def enable_fast_cpu(self, channels_last: bool = True, compile: bool = False, **compile_kwargs):
        """Opt-in speed-ups of the UNet: the channels_last memory format and ``torch.compile``.

        Outputs equal the eager model's up to float rounding (tested), so they are no longer bit-identical to
        diffusers' own loop; that is why this is opt-in. Returns the pipeline.
        """
        if channels_last:
            self.unet.to(memory_format=torch.channels_last)
        if compile:
            self.unet = torch.compile(self.unet, **compile_kwargs)
        return self

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one sample."""
        size = self.unet.config.sample_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return self.unet.config.in_channels, h, w

    def _check_batch(self, name: str, x: torch.Tensor) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.sample_shape:
            raise ValueError(f"{name} must be (B, {', '.join(map(str, self.sample_shape))}), got {tuple(x.shape)}.")

    def run_scheduler(
        self, scheduler=None, num_inference_steps: int | None = None, start_timestep: int | None = None
    ) -> SchedulerMixin:
        """A fresh copy of ``scheduler`` (default: the registered one) with a run's timesteps set; the original is
        never touched, so one pipeline serves concurrent runs.

        Ours runs all T steps, or N respaced ones from ``start_timestep`` (default T−1) down. Any of diffusers'
        schedulers (a solver built with ``from_config`` from this pipeline's scheduler config) runs N steps, or all,
        on the schedule cut at its config's ``lambda_min_clipped`` (see
        :func:`~pipelines.samplers.diffusers_run_scheduler`).
        """
        scheduler = self.scheduler if scheduler is None else scheduler
        T = scheduler.config.num_train_timesteps
        if isinstance(scheduler, DDPMExplorerScheduler):
            start = T - 1 if start_timestep is None else start_timestep
            if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start < T:
                raise ValueError(f"start_timestep must be an integer in [0, {T - 1}], got {start_timestep!r}.")
            n = start + 1
            if num_inference_steps is not None:
                n = _check_positive_int("num_inference_steps", num_inference_steps)
            return scheduler.with_timesteps(timesteps=respaced_timesteps(n, start))
        if start_timestep is not None:
            raise ValueError(
                f"start_timestep (SDEdit) runs with DDPMExplorerScheduler, not {type(scheduler).__name__}."
            )
        return diffusers_run_scheduler(scheduler, num_inference_steps, self.device)

    def prepare_run(
        self, scheduler=None, num_inference_steps: int | None = None, start_timestep: int | None = None
    ) -> PreparedRun:
        """:meth:`run_scheduler` and the schedule read from it, built once: :meth:`iter_trajectory` and
        :meth:`record` take it as their ``scheduler``. A run already prepared is returned as it is."""
        if isinstance(scheduler, PreparedRun):
            if num_inference_steps is not None or start_timestep is not None:
                raise ValueError("A prepared run has its timesteps: give N and start_timestep to prepare_run.")
            return scheduler
        run = self.run_scheduler(scheduler, num_inference_steps, start_timestep)
        return PreparedRun(run, RunSchedule.of(run))

    def run_schedule(
        self, scheduler=None, num_inference_steps: int | None = None, start_timestep: int | None = None
    ) -> RunSchedule:
        """The model evaluations a run will make (timesteps and noise levels), known before it starts."""
        return self.prepare_run(scheduler, num_inference_steps, start_timestep).schedule

    @torch.inference_mode()
    def iter_trajectory(
        self,
        batch_size: int = 1,
        generator: torch.Generator | None = None,
        num_inference_steps: int | None = None,
        eta: float | None = None,
        image: torch.Tensor | None = None,
        start_timestep: int | None = None,
        show_progress: bool = True,
        class_labels=None,
        guidance_scale: float | Sequence[float] | None = None,
        scheduler=None,
        latents: torch.Tensor | None = None,
        guidance_rescale: float = 0.0,
        guidance_interval: tuple[float, float] | None = None,
    ) -> Iterator[TrajectoryStep]:
        """Denoise step by step, yielding a :class:`TrajectoryStep` after each model evaluation.

        Args:
            batch_size: number of samples, B.
            generator: the only source of randomness: x_T and every step's noise. The same seed gives the same x_T
                whatever the scheduler.
            num_inference_steps: N steps; ``None`` runs all T (or all from ``start_timestep``).
            eta: ``None`` for DDPM's ancestral sampling, or DDIM's η in [0, 1] (our scheduler only).
            image: x₀ in [−1, 1], (B, C, H, W), to noise to ``start_timestep`` in closed form and denoise
                from there (SDEdit, Meng et al. 2022). ``batch_size`` is then the image's.
            start_timestep: the first timestep; default T−1.
            show_progress: wrap the loop in ``self.progress_bar`` (tqdm).
            class_labels: see :meth:`class_labels_for`; a list sets the batch size.
            guidance_scale: classifier-free guidance w (0 unconditional, 1 conditional), or one w per class (each
                image guided with its class's); ``None`` is the checkpoint's recommended value (per class where it
                records them). The recorded ε̂ and x̂₀ are the guided ones.
            guidance_rescale: φ of guidance rescale (Lin et al. 2024), 0 to 1.
            guidance_interval: (t_lo, t_hi) in the paper's t: guide only there, plainly conditional elsewhere
                (Kynkäänniemi et al. 2024); ``None`` guides every step.
            scheduler: the scheduler to run instead of the registered one, e.g. a solver of
                :data:`~pipelines.samplers.SAMPLERS`, or any diffusers scheduler built with ``from_config`` from
                ``self.scheduler.config``; or a run already prepared by :meth:`prepare_run`.
            latents: x at the first timestep, (B, C, H, W) in the DDPM scale, instead of x_T drawn from
                ``generator`` (as in diffusers' pipelines). With ``start_timestep`` it is x_t there, which resumes a
                saved run: the same x_t and generator state give the same frames as the run never stopped.

        Every step is reported in the DDPM (variance-preserving) scale whatever the solver works in: Euler-type
        solvers keep x·√(1+σ²), and their x_t is read back with the σ they used (``scale_model_input``).
        """
        prepared = self.prepare_run(scheduler, num_inference_steps, start_timestep)
        run, schedule = prepared.scheduler, prepared.schedule
        ours = isinstance(run, DDPMExplorerScheduler)
        splits_variance = isinstance(run, (DDPMExplorerScheduler, DDPMScheduler))  # their step reads Σ_θ channels
        step_kwargs = _step_kwargs(run, generator, eta)
        prediction_type = run.config.prediction_type
        if class_labels is not None and not isinstance(class_labels, int) and image is None:
            batch_size = len(torch.as_tensor(class_labels).reshape(-1))
        guidance = self.guidance_for(guidance_scale, guidance_rescale, guidance_interval)
        unet = self.unet
        if image is not None and latents is not None:
            raise ValueError("Pass image (to noise it to start_timestep) or latents (x there already), not both.")
        if latents is not None:
            self._check_batch("latents", latents)
            x = latents.to(device=self.device, dtype=unet.dtype) * run.init_noise_sigma
            batch_size = latents.shape[0]
        elif image is not None:
            self._check_batch("image", image)
            image = image.to(device=self.device, dtype=unet.dtype)
            noise = randn_tensor(image.shape, generator=generator, device=self.device, dtype=unet.dtype)
            x = run.add_noise(image, noise, torch.tensor([schedule.timesteps[0]]))
            batch_size = image.shape[0]
        else:
            batch_size = _check_positive_int("batch_size", batch_size)
            x = randn_tensor(
                (batch_size, *self.sample_shape), generator=generator, device=self.device, dtype=unet.dtype
            )
            if run.init_noise_sigma != 1.0:
                x = x * run.init_noise_sigma  # x_T in the solver's own scale

        labels = self.class_labels_for(class_labels, batch_size)
        if labels is not None and len(labels) != batch_size:
            raise ValueError(f"class_labels has {len(labels)} labels for a batch of {batch_size}.")
        steps = run.timesteps
        loop = self.progress_bar(steps) if show_progress else steps
        for i, t in enumerate(loop):
            # 1. x_t in the DDPM scale (a no-op but for Euler-type solvers), and the network's output there
            x_t = run.scale_model_input(x, t)
            model_output = self.predict(x_t, t, labels, guidance)
            if not splits_variance and model_output.shape[1] != x.shape[1]:
                # a learned-variance model under a solver that reads ε alone: its Σ_θ channels are dropped
                # (diffusers' multistep solvers cut at 3 channels themselves, which is wrong for grey models)
                model_output = model_output[:, : x.shape[1]]
            # 2. one step of the solver x_t → x_{t'}, in its own scale
            out = run.step(model_output, t, x, **step_kwargs)
            variance_fraction = None
            if ours:
                pred_x0, pred_epsilon = out.pred_original_sample, out.pred_epsilon
                variance_fraction = out.variance_fraction
            else:
                ab = schedule.alphas_cumprod[i]
                pred_x0, pred_epsilon = x0_and_eps_from_model_output(
                    prediction_type, model_output[:, : x.shape[1]], x_t, ab**0.5, (1.0 - ab) ** 0.5
                )
            if not torch.isfinite(out.prev_sample).all():
                raise NonFiniteSampleError(
                    f"The model produced NaN or Inf at timestep {int(t)} (step {i + 1} of {len(steps)}); stopped."
                )
            step = TrajectoryStep(
                step_index=i,
                num_steps=len(steps),
                timestep=schedule.timesteps[i],
                prev_timestep=schedule.prev_timesteps[i],
                alpha_prod_t=schedule.alphas_cumprod[i],
                sample=x_t,
                pred_original_sample=pred_x0,
                pred_epsilon=pred_epsilon,
                prev_sample=out.prev_sample,
                variance_fraction=variance_fraction,
            )
            yield step
            x = step.prev_sample

    def record(
        self,
        max_frames: int | None = None,
        scheduler=None,
        num_inference_steps: int | None = None,
        start_timestep: int | None = None,
        **kwargs,
    ) -> Recording:
        """A run of :meth:`iter_trajectory` (the same arguments) that records itself as it goes: iterate it for the
        steps. Its schedule is known before the first step, and its scheduler is built once.

        ``max_frames``: at most this many uint8 frames are kept, evenly spread (see :class:`TrajectoryRecorder`).
        """
        prepared = self.prepare_run(scheduler, num_inference_steps, start_timestep)
        return Recording(prepared.schedule, self.iter_trajectory(scheduler=prepared, **kwargs), max_frames)

    def sample_trajectory(self, max_frames: int | None = None, **kwargs) -> Trajectory:
        """Run :meth:`iter_trajectory` and keep its frames as uint8, at most ``max_frames`` of them (evenly spread).

        (K, B, C, H, W) uint8 frames, K ≤ ``max_frames``; ``final`` is the float sample x₀.
        """
        run = self.record(max_frames, **kwargs)
        for _ in run:
            pass
        return run.trajectory

    @torch.inference_mode()
    def __call__(
        self,
        batch_size: int = 1,
        generator: torch.Generator | None = None,
        num_inference_steps: int | None = None,
        eta: float | None = None,
        class_labels=None,
        guidance_scale: float | None = None,
        guidance_rescale: float = 0.0,
        guidance_interval: tuple[float, float] | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        callback_on_step_end: Callable[[DiffusionPipeline, int, int, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: tuple[str, ...] = ("sample",),
    ) -> ImagePipelineOutput | tuple:
        """Sample images, like diffusers' ``DDPMPipeline``.

        Args:
            batch_size, generator, num_inference_steps, eta, class_labels, guidance_scale, guidance_rescale,
                guidance_interval: see
                :meth:`iter_trajectory`
                (``num_inference_steps=None`` runs all T steps).
            output_type: ``"pil"``, ``"np"`` ((B, H, W, C) in [0, 1]) or ``"pt"`` ((B, C, H, W) in [0, 1]).
            return_dict: return an ``ImagePipelineOutput`` rather than a tuple.
            callback_on_step_end: called after every step as ``callback(pipe, step_index, timestep, kwargs)``, where
                ``kwargs`` holds the tensors named in ``callback_on_step_end_tensor_inputs`` (``sample`` is x_{t'},
                also ``pred_original_sample`` and ``pred_epsilon``); a returned ``sample`` replaces x_{t'}.
        """
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"Unknown output_type {output_type!r}; choose one of {', '.join(OUTPUT_TYPES)}.")
        allowed = {"sample", "pred_original_sample", "pred_epsilon"}
        if not set(callback_on_step_end_tensor_inputs) <= allowed:
            raise ValueError(f"callback_on_step_end_tensor_inputs must be among {sorted(allowed)}.")
        image = None
        for step in self.iter_trajectory(
            batch_size=batch_size,
            generator=generator,
            num_inference_steps=num_inference_steps,
            eta=eta,
            class_labels=class_labels,
            guidance_scale=guidance_scale,
            guidance_rescale=guidance_rescale,
            guidance_interval=guidance_interval,
        ):
            if callback_on_step_end is not None:
                tensors = {
                    "sample": step.prev_sample,
                    "pred_original_sample": step.pred_original_sample,
                    "pred_epsilon": step.pred_epsilon,
                }
                callback_kwargs = {name: tensors[name] for name in callback_on_step_end_tensor_inputs}
                callback_outputs = callback_on_step_end(self, step.step_index, step.timestep, callback_kwargs) or {}
                step.prev_sample = callback_outputs.get("sample", step.prev_sample)
            image = step.prev_sample

        image = (image / 2 + 0.5).clamp(0, 1)
        if output_type != "pt":
            image = image.cpu().permute(0, 2, 3, 1).numpy()
            if output_type == "pil":
                image = self.numpy_to_pil(image)
        if not return_dict:
            return (image,)
        return ImagePipelineOutput(images=image)
