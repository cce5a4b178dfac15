"""Tab "Loss and the ELBO": the variational bound's terms over t for one image, and the formulas."""

from __future__ import annotations

import gradio as gr

from app import models, settings
from app.callbacks.loss import NO_COMPARISON, SAME_MODEL_FIXED, elbo_input, elbo_terms
from app.images import examples
from app.rendering import LATEX_DELIMITERS
from app.tabs.widgets import COMPUTE_QUEUE, image_panel

FORMULAS = r"""
**Forward step** (a fixed Markov chain that adds Gaussian noise):
$$q(x_t \mid x_{t-1}) = \mathcal N\big(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big),\qquad \alpha_t = 1-\beta_t,\quad \bar\alpha_t = \prod_{s=1}^{t}\alpha_s$$

**Closed form** (any t in one step):
$$q(x_t \mid x_0) = \mathcal N\big(x_t;\ \sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big),\qquad x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ \ \epsilon\sim\mathcal N(0, I)$$

**Posterior** (tractable given $x_0$):
$$q(x_{t-1} \mid x_t, x_0) = \mathcal N\big(x_{t-1};\ \tilde\mu_t,\ \tilde\beta_t I\big),\quad \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0 + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,\quad \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t$$

**Reverse model** (the network predicts $\epsilon$; $\Sigma$ is fixed at $\beta_t$ or $\tilde\beta_t$, or learned between them):
$$p_\theta(x_{t-1} \mid x_t) = \mathcal N\big(x_{t-1};\ \mu_\theta(x_t, t),\ \Sigma_\theta(x_t, t)\big),\qquad \mu_\theta = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t, t)\Big)$$

**Learned variance** (improved DDPM, Nichol & Dhariwal 2021): a second output $v$ per pixel interpolates in the log domain,
$$\Sigma_\theta(x_t, t) = \exp\big(v\,\log\beta_t + (1-v)\,\log\tilde\beta_t\big),$$
trained by $L_\text{hybrid} = L_\text{simple} + \lambda\,L_\text{vlb}$ with $\lambda = 0.001$ and $\mu_\theta$ held fixed (a stop-gradient) in $L_\text{vlb}$: the mean learns from $L_\text{simple}$, the variance from the bound.

**Objective**: the variational bound, and the simplified loss the network trains on:
$$L_{\text{vlb}} = \underbrace{D_{KL}\big(q(x_T\mid x_0)\,\|\,p(x_T)\big)}_{L_T} + \sum_{t=2}^{T} \underbrace{D_{KL}\big(q(x_{t-1}\mid x_t, x_0)\,\|\,p_\theta(x_{t-1}\mid x_t)\big)}_{L_{t-1}} \underbrace{-\log p_\theta(x_0 \mid x_1)}_{L_0},\qquad L_{\text{simple}} = \mathbb E_{t, x_0, \epsilon}\,\big\|\epsilon - \epsilon_\theta(x_t, t)\big\|^2$$
"""


STALE_BOUND = "The image or the model changed: press **Compute the bound's terms** to measure this one."


def create_tab(demo: gr.Blocks) -> None:
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            model = gr.Dropdown(models.model_choices(), value=models.default_model(), label="Model")
            compare = gr.Dropdown(
                [(NO_COMPARISON, NO_COMPARISON), *((k, k) for k in SAME_MODEL_FIXED), *models.model_choices()],
                value=NO_COMPARISON,
                label="Compare with",
                info="the same network with Σ fixed (what its Σ adds to the bound, μ_θ unchanged), or a second model "
                "of the same size and T; on the same image, timesteps and noise",
            )
            upload = gr.File(
                label="Image (none: a test image for a Fashion-MNIST model)", file_types=["image"], height=110
            )
            gr.Examples(examples(), inputs=[upload])
            points = gr.Slider(2, 200, value=40, step=1, label="Timesteps evaluated")
            seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=settings.MAX_SEED)
            button = gr.Button("Compute the bound's terms", variant="primary")
        with gr.Column(scale=2):
            with gr.Row():
                with gr.Column(scale=1, min_width=160):
                    measured = image_panel("The image measured (the model's size)", height=180, elem_id="elbo-image")
                    what = gr.Markdown(elem_id="elbo-image-note")
                with gr.Column(scale=2):
                    summary = gr.Markdown(
                        "Terms in bits/dim: $L_T$ (the prior), $L_{t-1}$ (a KL term per step) and $L_0$ (the decoder).",
                        latex_delimiters=LATEX_DELIMITERS,
                        elem_id="elbo-summary",
                    )
            gr.Markdown(
                "**Per-timestep terms of the variational bound (top) and $L_\\text{simple}$ (bottom)**; comparing "
                "two models, the difference of their terms at each t in the middle",
                latex_delimiters=LATEX_DELIMITERS,
            )
            plot = gr.Image(show_label=False, format="png", interactive=False, elem_id="elbo-plot")
    gr.Markdown(FORMULAS, latex_delimiters=LATEX_DELIMITERS)
    show_input = dict(fn=elbo_input, inputs=[model, upload], outputs=[measured, what], api_visibility="private")
    # a new image or model clears the last bound: its figures beside the new image contradicted it (a newcomer's
    # walk: "Measured: your image …" under "Variational bound for the image shown (test image #0): 1.393 bits/dim")
    for component in (model, upload):
        component.change(
            lambda name, image: (*elbo_input(name, image), STALE_BOUND, None),
            [model, upload],
            [measured, what, summary, plot],
            api_visibility="private",
            show_progress="hidden",
        )
    demo.load(**show_input)
    button.click(
        elbo_terms,
        [model, upload, points, seed, compare],
        [plot, summary],
        api_name="elbo_terms",
        **COMPUTE_QUEUE,
    )
