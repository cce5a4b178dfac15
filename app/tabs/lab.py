"""Tab "2D lab": diffusion on points in the plane: a data set noised in closed form, a small MLP trained on it in
seconds, and DDPM, DDIM(η) and the probability-flow ODE sampling it, all scrubbed by one slider in the page."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from app import settings
from app.callbacks import lab as cb
from app.lab_session import LabSession
from app.rendering import LATEX_DELIMITERS
from app.tabs.drawing import drawing_pad
from app.tabs.scrubbers import lab_scrubber, timestep_slider
from app.tabs.widgets import COMPUTE_QUEUE, listen
from pipelines.lab2d.metrics import MMD_BANDWIDTHS, SLICES
from pipelines.lab2d.training import TrainingConfig

INTRO = (
    "Diffusion on points in the plane, small enough to train here in seconds. The slider noises the data in closed "
    "form, $x_t = \\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1-\\bar\\alpha_t}\\,\\epsilon$ (each point keeps its own "
    "$\\epsilon$, so points move smoothly), over the density $q(x_t)$. **Train** fits a small MLP "
    "$\\epsilon_\\theta(x_t, t)$ on $L_\\text{simple} = \\lVert \\epsilon - \\epsilon_\\theta(x_t, t) \\rVert^2$; it "
    "then samples with DDPM, DDIM(η) and the probability-flow ODE from the same $x_T$, and the slider scrubs every "
    "run beside the model's score $s_\\theta(x, t) = -\\hat\\epsilon(x, t)/\\sqrt{1-\\bar\\alpha_t}$. For the ring of "
    "8 Gaussians the true score of $q(x_t)$ is known in closed form (a mixture with means "
    "$\\sqrt{\\bar\\alpha_t}\\,\\mu_k$ and variance $\\bar\\alpha_t\\sigma^2 + 1 - \\bar\\alpha_t$): it is drawn "
    "beside the learned one, with their mean error at t."
)
QUALITY_LABEL = "Samples against fresh data of the same distribution (lower is closer)"
QUALITY_NOTE = (
    "How to read the table: **MMD** (maximum mean discrepancy) compares the two point clouds through smooth bumps "
    f"(RBF kernels) of widths {', '.join(map(str, MMD_BANDWIDTHS))}, averaged: 0 when they are spread alike. "
    f"**Sliced W₂** projects both clouds onto {SLICES} random directions and averages how far the points must move "
    "to turn one projection into the other (the Wasserstein-2 distance). **NFE**: model evaluations. Two rows frame "
    "the samplers: the start x_T (pure noise, the worst) and the floor (two draws of the data itself, the best any "
    "sampler can reach)."
)


SAMPLE_FIRST, SAMPLE_AGAIN = "Sample again (after training)", "Sample again"


@dataclass
class LabInputs:
    """What defines an experiment (data, seed, points, schedule, T), and the training and sampling settings."""

    dataset: gr.Dropdown
    sketch: gr.HTML
    seed: gr.Number
    points: gr.Slider
    schedule: gr.Dropdown
    T: gr.Number
    train_steps: gr.Slider
    steps: gr.Slider
    eta: gr.Slider

    @property
    def experiment(self) -> list:
        return [self.dataset, self.sketch, self.seed, self.points, self.schedule, self.T]


def lab_inputs() -> LabInputs:
    dataset = gr.Dropdown(list(cb.DATASET_CHOICES), value=cb.DEFAULT_DATASET, label="Data set")
    sketch = drawing_pad("lab-drawing", visible=False)
    with gr.Row():
        seed = gr.Number(0, label="Seed (data, ε, x_T)", precision=0, minimum=0, maximum=settings.MAX_SEED)
        points = gr.Slider(
            settings.LAB_MIN_POINTS, settings.LAB_MAX_POINTS, value=2000, step=100, label="Number of points"
        )
    with gr.Row():
        schedule = gr.Dropdown(list(cb.SCHEDULES), value="linear", label="β schedule")
        T = gr.Number(1000, label="T (steps)", precision=0, minimum=settings.LAB_MIN_T, maximum=settings.MAX_T)
    train_steps = gr.Slider(
        100,
        settings.LAB_MAX_TRAIN_STEPS,
        value=cb.DEFAULT_TRAIN_STEPS,
        step=100,
        label=f"Training steps ({TrainingConfig.batch_size} points each)",
    )
    steps = gr.Slider(1, settings.LAB_MAX_STEPS, value=cb.DEFAULT_STEPS, step=1, label="Sampling steps N (each)")
    eta = gr.Slider(0.0, 1.0, value=0.0, step=0.05, label="DDIM's η (0: deterministic; 1: DDPM's variance)")
    return LabInputs(dataset, sketch, seed, points, schedule, T, train_steps, steps, eta)


def create_tab(demo: gr.Blocks) -> None:
    session = gr.State(LabSession(), time_to_live=settings.SESSION_TTL_S)
    gr.Markdown(INTRO, latex_delimiters=LATEX_DELIMITERS)
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            inputs = lab_inputs()
            with gr.Row():
                train = gr.Button("Train and sample", variant="primary")
                sample = gr.Button(SAMPLE_FIRST, interactive=False)  # enabled once a model is trained
                stop = gr.Button("Stop", variant="stop")
        with gr.Column(scale=2):
            status = gr.Markdown(
                "Press **Train and sample**: the loss streams below while the model learns.", elem_id="lab-status"
            )
            loss = gr.LinePlot(
                x="step",
                y="L_simple",
                x_title="training step",
                y_title="L_simple",
                label="Training loss L_simple (each point: the mean over a window of steps)",
                elem_id="lab-loss",
            )
            table = gr.Dataframe(
                headers=cb.QUALITY_HEADERS,
                label=QUALITY_LABEL,
                interactive=False,
                # names wrap, numbers stay whole: on a phone (390 px) the table scrolls sideways
                wrap=True,
                column_widths=["150px", "64px", "56px", "76px", "86px", "70px"],
                elem_id="lab-quality",
            )
            gr.Markdown(QUALITY_NOTE)
    t = timestep_slider("lab-t", "t (0 = the data and the samples, T = noise)")
    scrubber = lab_scrubber("lab-t")

    # the API's events first: gradio names a function's later events after it, and they must not take these names
    set_up = dict(fn=cb.lab_setup, inputs=inputs.experiment, outputs=[scrubber, t])
    api_only = gr.Button(visible=False)  # /lab_setup (in the page, every change of the inputs sets the view up)
    api_only.click(**set_up, api_name="lab_setup")
    sampling_inputs, sampling_outputs = [session, inputs.steps, inputs.eta], [status, scrubber, table]
    # the progress bar covers the table (filled once sampled), never the loss curve streaming or the status above it
    in_view = dict(show_progress_on=[table])
    resampling = sample.click(
        cb.lab_sample, sampling_inputs, sampling_outputs, api_name="lab_sample", **in_view, **COMPUTE_QUEUE
    )
    training = train.click(
        cb.lab_train,
        [*inputs.experiment, inputs.train_steps, session],
        [status, loss, session],
        api_name="lab_train",
        **in_view,
        **COMPUTE_QUEUE,
    )
    after_training = training.success(
        cb.lab_sample, sampling_inputs, sampling_outputs, api_visibility="private", **in_view, **COMPUTE_QUEUE
    )
    training.success(lambda: gr.update(value=SAMPLE_AGAIN, interactive=True), None, sample, api_visibility="private")
    stop.click(None, None, None, cancels=[training, after_training, resampling], api_visibility="private")
    listen(
        inputs.dataset.change, lambda name: gr.update(visible=name == cb.DRAW_YOUR_OWN), inputs.dataset, inputs.sketch
    )
    in_page = {**set_up, "fn": cb.lab_setup_in_page}
    listen([c.change for c in inputs.experiment], **in_page, show_progress="hidden")
    demo.load(**in_page, api_visibility="private")
