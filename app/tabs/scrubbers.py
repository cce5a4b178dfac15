"""The browser scrubbers: gr.HTML widgets whose JavaScript (app/static/) draws every slider move in the page.

The tab's gr.Slider stays the one t (server views such as the GIF export read it); the widget listens to it in the
page, so a move sends no request. Data arrives as the widget's value, a JSON payload from app/scrub_payload.py.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from app import settings

STATIC = Path(__file__).resolve().parent.parent / "static"
SPEEDS = (("¼×", 0.25), ("½×", 0.5), ("1×", 1), ("2×", 2), ("4×", 4))
KEYS = "← → step 1, Shift+← → step 10"  # the range's own arrows, and scrub.js's Shift+arrows


def timestep_slider(slider_id: str, meaning: str, T: int = settings.MAX_T, value: int = 0) -> gr.Slider:
    """The t slider (0 … T) a scrubber follows, labelled with what t means there and the keys it takes. Always
    interactive: a slider that is only ever an event's output is otherwise rendered disabled by gradio (the lab's,
    the race's and the sweep's could not be moved by hand)."""
    return gr.Slider(0, T, value=value, step=1, label=f"{meaning}; {KEYS}", elem_id=slider_id, interactive=True)


def _read(name: str) -> str:
    return (STATIC / name).read_text()


def _controls() -> str:
    options = "".join(f'<option value="{v}"{" selected" if v == 1 else ""}>{k}</option>' for k, v in SPEEDS)
    return (
        '<div class="controls"><button class="play">▶ Play</button><button class="pause">❚❚ Pause</button>'
        f'<label>speed <select class="speed">{options}</select></label></div>'
    )


def _panel(name: str, caption: str) -> str:
    canvas = f'<canvas data-panel="{name}" width="8" height="8"></canvas>'
    return f"<figure>{canvas}<figcaption>{caption}</figcaption></figure>"


def head() -> str:
    """scrub.js, the scrubbers' shared module, for the page's <head>: loaded once (``launch(head=...)``), whatever
    the number of scrubbers."""
    return f"<script>{_read('scrub.js')}</script>"


def _scrubber(slider_id: str, script: str, body: str, elem_id: str, css: str = "") -> gr.HTML:
    return gr.HTML(
        value=None,
        html_template=f'<div class="scrubber" data-slider="{slider_id}">{_controls()}{body}</div>',
        css_template=_read("scrubber.css") + (_read(css) if css else ""),
        js_on_load=_read(script),
        elem_id=elem_id,
    )


def forward_scrubber(slider_id: str) -> gr.HTML:
    """x_t, ε, √ᾱ_t·x₀ and √(1−ᾱ_t)·ε computed in the page from x₀, ε and the schedule, with the curves and numbers."""
    panels = "".join(
        _panel(name, caption)
        for name, caption in (
            ("x_t", "x_t"),
            ("eps", "ε ~ N(0, I), fixed (±3σ shown)"),
            ("signal", "signal √ᾱ_t·x₀"),
            ("noise", "noise √(1−ᾱ_t)·ε (±3σ shown)"),
        )
    )
    curves = '<canvas class="curves" width="520" height="380"></canvas>'
    spectrum = (
        '<figure class="spectral"><canvas class="spectrum" width="420" height="260"></canvas>'
        '<figcaption class="spectrum-caption"></figcaption></figure>'
    )
    body = (
        f'<div class="panels">{panels}</div><div class="bottom">{curves}<table class="values"></table></div>'
        f'<div class="bottom">{spectrum}</div>'
    )
    return _scrubber(slider_id, "forward_scrubber.js", body, "forward-scrubber")


def reverse_scrubber(slider_id: str) -> gr.HTML:
    """A recorded run's x_t and x̂₀ large, ε̂ and the curves beside, at the slider's t, with a caption, all from one
    payload; buttons step through every recorded model evaluation (Heun's two at one t included)."""
    main = "".join(
        _panel(name, caption)
        for name, caption in (("x_t", "x_t"), ("x0_hat", "x̂₀ = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t, the model's guess of x₀"))
    )
    panels = _panel("eps_hat", "ε̂, the predicted noise (±3σ shown)")
    panels += (  # shown only for a model with a learned Σ_θ
        '<figure class="variance-view" hidden><canvas data-panel="v" width="8" height="8"></canvas><figcaption>'
        "v: where the learned Σ_θ sits, per pixel, between β̃_t (black, v = 0) and β_t (white, v = 1): "
        "log Σ_θ = v·log β_t + (1−v)·log β̃_t</figcaption></figure>"
    )
    spectrum = (
        '<figure class="spectral"><canvas class="spectrum" width="420" height="260"></canvas>'
        '<figcaption class="spectrum-caption"></figcaption></figure>'
    )
    classes = (
        '<figure class="spectral classes-view" hidden><canvas class="classes" width="420" height="260"></canvas>'
        '<figcaption><label>image <select class="image"></select></label> '
        '<span class="classes-caption"></span></figcaption></figure>'
    )
    evaluations = (
        '<div class="evaluations" hidden><button class="previous">◀ previous evaluation</button>'
        '<button class="next">next evaluation ▶</button>'
        '<span class="muted">every model evaluation the run recorded, in order (Heun: two at each t)</span></div>'
    )
    body = (
        '<div class="caption">Generate a run; the slider then scrubs it here, in the page.</div>'
        f'{evaluations}<div class="panels main">{main}</div>'
        f'<div class="bottom"><div class="panels">{panels}</div>'
        '<canvas class="curves" width="420" height="330"></canvas></div>'
        f'<div class="bottom">{spectrum}{classes}</div>'
    )
    return _scrubber(slider_id, "reverse_scrubber.js", body, "reverse-scrubber", css="reverse_scrubber.css")


def race_scrubber(slider_id: str, elem_id: str = "race-scrubber", hint: str = "Race two to four samplers") -> gr.HTML:
    """The race's runs side by side, each at its recorded step nearest the slider's noise level."""
    body = (
        f'<div class="caption">{hint}; the slider then scrubs them together, by noise level.</div>'
        '<div class="runs"></div>'
    )
    return _scrubber(slider_id, "race_scrubber.js", body, elem_id)


def lab_scrubber(slider_id: str) -> gr.HTML:
    """The 2D lab: the noised cloud over its density, the score fields, and each sampler's run, at the slider's t."""
    panels = lambda items: "".join(
        f'<figure><canvas data-panel="{name}" width="400" height="400"></canvas>'
        f'<figcaption data-caption="{name}">{caption}</figcaption></figure>'
        for name, caption in items
    )
    top = panels(
        (
            ("forward", "x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, each point with its own fixed ε, over the density q(x_t)"),
            ("learned", "the learned score s_θ(x, t) = −ε̂(x, t)/√(1−ᾱ_t)"),
            ("exact", "the exact score ∇log q_t(x)"),
        )
    )
    runs = panels((("ddpm", "DDPM"), ("ddim", "DDIM"), ("ode", "probability-flow ODE")))
    body = (
        '<div class="caption">Choose a data set; the slider noises it here, in the page.</div>'
        f'<div class="lab-row">{top}</div><div class="lab-row runs-row">{runs}</div>'
    )
    return _scrubber(slider_id, "lab_scrubber.js", body, "lab-scrubber", css="lab_scrubber.css")
