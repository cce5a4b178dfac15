"""The 2D lab through its handlers and over the API: setup, training (cached per session), sampling, the payload the
page draws from, and clear errors for bad inputs."""

import base64
import json

import gradio as gr
import numpy as np
import pytest
from conftest import local_client

from app import settings
from app.callbacks import lab
from app.lab_payload import ARROW_GRID, DENSITY_GRID, HIGHLIGHTED
from app.lab_session import LabSession
from app.serving.session_memory import ledger
from pipelines.lab2d.datasets import RING, get_dataset
from pipelines.lab2d.experiment import Experiment

SETUP = dict(dataset=RING, sketch=None, seed=0, num_points=600, schedule="linear", num_timesteps=200)


def decode(b64: str, dtype: str, shape) -> np.ndarray:
    return np.frombuffer(base64.b64decode(b64), dtype).reshape(shape).astype(np.float32)


def train(session=None, training_steps=150, **kw):
    outputs = list(lab.lab_train(**{**SETUP, **kw}, training_steps=training_steps, session=session))
    return outputs, outputs[-1][2]


def test_setup_sends_the_forward_view_and_the_mixtures_exact_score():
    payload, slider = lab.lab_setup(**SETUP)
    assert slider["maximum"] == 200
    p = json.loads(payload)
    assert p["T"] == 200 and p["points"] == 600 and p["highlighted"] == HIGHLIGHTED and p["runs"] == []
    K = len(p["field_t"])
    assert p["field_t"][0] == 0 and p["field_t"][-1] == 200 and K == settings.LAB_FIELD_FRAMES
    assert len(base64.b64decode(p["density"]["frames"])) == K * DENSITY_GRID**2 and p["density"]["what"] == "exact"
    assert p["fields"]["learned"] is None and p["fields"]["error"] is None
    exact = decode(p["fields"]["exact"], "<f2", (K, ARROW_GRID**2, 2))
    assert np.all(exact[0] == 0) and np.abs(exact[1:]).max() > 0  # no score at t = 0
    # the page computes x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε from these arrays: the scheduler's closed form, to float16
    experiment = Experiment(get_dataset(RING), 600, 0, "linear", 200)
    x0, eps = decode(p["x0"], "<f2", (600, 2)), decode(p["eps"], "<f2", (600, 2))
    a = decode(p["sqrt_alpha_bar"], "<f4", (201,))
    b = decode(p["sqrt_one_minus_alpha_bar"], "<f4", (201,))
    for t in (0, 1, 100, 200):
        server = experiment.data if t == 0 else experiment.scheduler.q_sample(experiment.data, t - 1, experiment.noise)
        np.testing.assert_allclose(a[t] * x0 + b[t] * eps, server.numpy(), atol=4e-3)
    # other data: a kernel density estimate, and no exact score
    p = json.loads(lab.lab_setup(**{**SETUP, "dataset": "two moons"})[0])
    assert p["density"]["what"] == "kde" and p["fields"] is None


def test_training_streams_its_loss_and_is_kept_per_session():
    outputs, session = train(training_steps=300)
    status, plot, _ = outputs[-1]
    assert status.startswith("**Trained**: 300 steps") and isinstance(session, LabSession)
    curve = plot["value"]
    assert all(o[1]["x_lim"] == [0, 300] for o in outputs), "the x-axis is every step from the start"
    assert list(curve.columns) == ["step", "L_simple"] and curve["step"].iloc[-1] == 300
    assert curve["L_simple"].iloc[-1] < curve["L_simple"].iloc[0]
    assert not any(isinstance(o[2], LabSession) for o in outputs[:-1]), "the session comes with the last"
    trained = session.get(session.current)
    assert len(trained.losses) == 300 and not trained.model.training
    # the same setup again: reused at once, the same model
    again, session = train(session, training_steps=300)
    assert len(again) == 1 and again[0][0].startswith("**Reusing this session's model**")
    assert session.get(session.current) is trained


def test_a_session_keeps_its_most_recent_models(monkeypatch):
    monkeypatch.setattr(settings, "LAB_MODELS_PER_SESSION", 2)
    session = None
    for seed in (0, 1, 2):
        _, session = train(session, training_steps=5, seed=seed)
    assert [key.seed for key in session.models] == [1, 2]
    _, session = train(session, training_steps=5, seed=1)  # used again: now the most recent
    assert [key.seed for key in session.models] == [2, 1] and session.current.seed == 1


def test_trained_models_count_in_the_sessions_memory_bound_and_a_released_one_says_so(monkeypatch):
    _, first = train(training_steps=5, seed=0)
    weights = sum(p.numel() * 4 for p in first.get(first.current).model.parameters())
    assert first.nbytes > weights > 100_000, "the weights, points and losses are counted"
    monkeypatch.setattr(ledger, "max_bytes", first.nbytes)  # room for one session's model
    _, second = train(training_steps=5, seed=1)
    assert first.released and not first.models, "the session used longest ago gave up its models"
    with pytest.raises(gr.Error, match="press Train again"):
        list(lab.lab_sample(first, 5, 0.0))
    assert len(list(lab.lab_sample(second, 5, 0.0))[-1]) == 3, "the recent session samples as before"
    _, first = train(first, training_steps=5, seed=0)  # trained again: usable, and the other one gives way
    assert not first.released and first.get(first.current) is not None and second.released


def test_sampling_runs_every_sampler_from_the_same_noise_and_measures_them():
    _, session = train(training_steps=200)
    outputs = list(lab.lab_sample(session, 10, 0.5))
    status, payload, table = outputs[-1]
    assert status.startswith("**Sampled** 600 points")
    assert list(table["samples"]) == [
        "DDPM (ancestral)",
        "DDIM (η = 0.5)",
        "probability-flow ODE (Heun)",
        "noise x_T (the start)",
        "data vs fresh data (the floor)",
    ]
    assert list(table["NFE"][:3]) == [10, 10, 19] and list(table["steps N"][:3]) == [10, 10, 10]
    assert (table["MMD"] >= 0).all() and (table["sliced W₂"] > 0).all()
    p = json.loads(payload)
    K = len(p["field_t"])
    assert decode(p["fields"]["learned"], "<f2", (K, ARROW_GRID**2, 2)).shape == (K, ARROW_GRID**2, 2)
    assert p["fields"]["error"][0] is None and all(e > 0 for e in p["fields"]["error"][1:])
    starts = []
    for run in p["runs"]:
        assert run["t"] == [200, 180, 160, 140, 120, 100, 80, 60, 40, 20, 0], run["key"]
        frames = decode(run["frames"], "<f2", (len(run["t"]), 600, 2))
        starts.append(frames[0])
    assert all(np.array_equal(s, starts[0]) for s in starts), "every sampler starts from the same x_T"


def test_sampling_needs_a_trained_model_and_valid_settings():
    with pytest.raises(gr.Error, match="Train a model first"):
        list(lab.lab_sample(LabSession(), 10, 0.0))
    _, session = train(training_steps=5)
    with pytest.raises(gr.Error, match="Steps must be between 1 and 200"):
        list(lab.lab_sample(session, 201, 0.0))
    with pytest.raises(gr.Error, match="η must be a finite number between 0.0 and 1.0"):
        list(lab.lab_sample(session, 10, 1.5))


BAD_SETUPS = [
    ("dataset", "three moons", "Data set must be one of"),
    ("seed", -1, "Seed must be between"),
    ("seed", True, "Seed must be a number"),
    ("num_points", settings.LAB_MAX_POINTS + 1, "Number of points must be between"),
    ("num_points", 2.5, "whole number"),
    ("schedule", "custom", "Schedule must be one of"),
    ("num_timesteps", settings.LAB_MIN_T - 1, "T must be between"),
    ("num_timesteps", "abc", "T must be a number"),
]


@pytest.mark.parametrize("name, value, message", BAD_SETUPS, ids=[f"{n}={v!r}" for n, v, _ in BAD_SETUPS])
def test_bad_inputs_get_clear_errors(name, value, message):
    with pytest.raises(gr.Error, match=message):
        lab.lab_setup(**{**SETUP, name: value})
    with pytest.raises(gr.Error, match=message):
        list(lab.lab_train(**{**SETUP, name: value}, training_steps=5, session=None))


def test_training_steps_are_bounded():
    for steps in (0, settings.LAB_MAX_TRAIN_STEPS + 1):
        with pytest.raises(gr.Error, match="Training steps must be between 1 and"):
            list(lab.lab_train(**SETUP, training_steps=steps, session=None))


def circle_strokes(radius=0.3, n=200) -> str:
    """The drawing pad's value for a circle drawn in one stroke."""
    angles = np.linspace(0, 2 * np.pi, n)
    return json.dumps({"strokes": [[[0.5 + radius * np.cos(a), 0.5 + radius * np.sin(a)] for a in angles]]})


def test_a_drawing_becomes_the_data():
    sketch = circle_strokes()
    payload, _ = lab.lab_setup(**{**SETUP, "dataset": lab.DRAW_YOUR_OWN, "sketch": sketch})
    p = json.loads(payload)
    assert p["dataset"] == "your drawing"
    radius = np.hypot(*decode(p["x0"], "<f2", (600, 2)).T)
    assert radius.std() < 0.1 * radius.mean(), "the points lie on the drawn circle"
    _, session = train(dataset=lab.DRAW_YOUR_OWN, sketch=sketch, training_steps=5)
    assert session.current.sketch and session.current.dataset == lab.DRAW_YOUR_OWN
    for nothing in (None, "", json.dumps({"strokes": []})):
        with pytest.raises(gr.Error, match="Draw on the drawing pad first"):
            lab.lab_setup(**{**SETUP, "dataset": lab.DRAW_YOUR_OWN, "sketch": nothing})
    tiny = json.dumps({"strokes": [[[0.5, 0.5]]]})
    with pytest.raises(gr.Error, match="draw something"):
        lab.lab_setup(**{**SETUP, "dataset": lab.DRAW_YOUR_OWN, "sketch": tiny})


@pytest.mark.parametrize(
    "sketch, message",
    [
        ("not json", "is JSON"),
        (json.dumps({"strokes": [[[0.5, 1.5]]]}), "in \\[0, 1\\]"),
        (json.dumps({"strokes": [[["a", "b"]]]}), "is JSON"),
        (json.dumps({"strokes": [[[0.5, 0.5, 0.5]]]}), "is JSON"),
        (json.dumps({"points": []}), "is JSON"),
        (json.dumps({"strokes": [[[0.5, float("nan")]]]}), "in \\[0, 1\\]"),
        (json.dumps({"strokes": [[[0.1, 0.1]] * 5000]}), "at most 4,000"),
        ("x" * 100_000, "over 80,000 characters"),
    ],
)
def test_bad_drawings_are_refused_before_any_work(sketch, message):
    """A drawing arrives as points: nothing is decoded, and every bound is checked first."""
    with pytest.raises(gr.Error, match=message):
        lab.lab_setup(**{**SETUP, "dataset": lab.DRAW_YOUR_OWN, "sketch": sketch})


# ---------------------------------------------------------------- over the API


@pytest.fixture(scope="module")
def client(live_app):
    return local_client(live_app)


@pytest.mark.e2e
def test_the_lab_over_the_api(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/lab_setup", "/lab_train", "/lab_sample"} <= names
    payload, _ = client.predict(RING, None, 0, 600, "cosine", 200, api_name="/lab_setup")
    assert json.loads(payload)["T"] == 200
    status, _ = client.predict(RING, None, 0, 600, "cosine", 200, 200, api_name="/lab_train")
    assert status.startswith("**Trained**: 200 steps")
    status, payload, table = client.predict(20, 0.0, api_name="/lab_sample")
    assert status.startswith("**Sampled**")
    assert [row[0] for row in table["data"]][:3] == ["DDPM (ancestral)", "DDIM (η = 0)", "probability-flow ODE (Heun)"]
    assert [run["t"][-1] for run in json.loads(payload)["runs"]] == [0, 0, 0]


@pytest.mark.e2e
@pytest.mark.parametrize(
    "args, message",
    [
        ((RING, None, -1, 600, "linear", 200), "Seed must be between|-1 is less than minimum value 0"),
        ((RING, None, 0, 10**6, "linear", 200), "Number of points must be between|greater than maximum"),
        (("nine moons", None, 0, 600, "linear", 200), "Data set must be one of|not in the list of choices"),
        ((RING, None, 0, 600, "custom", 200), "Schedule must be one of|not in the list of choices"),
        ((RING, None, 0, 600, "linear", 10**9), "T must be between|greater than maximum"),
        ((RING, None, 0, 600, "linear", True), "T must be a number|less than minimum value"),
    ],
)
def test_the_api_refuses_bad_inputs_clearly(client, args, message):
    with pytest.raises(Exception, match=message):
        client.predict(*args, api_name="/lab_setup")
    with pytest.raises(Exception, match=message):
        client.predict(*args, 50, api_name="/lab_train")


def test_choosing_draw_your_own_in_the_page_hints_before_anything_is_drawn(monkeypatch):
    hints = []
    monkeypatch.setattr(gr, "Info", hints.append)
    assert lab.lab_setup_in_page(lab.DRAW_YOUR_OWN, None, 0, 600, "linear", 200) == (gr.skip(), gr.skip())
    assert hints and "Draw on the pad" in hints[0]
    payload, _ = lab.lab_setup_in_page(RING, None, 0, 600, "linear", 200)
    assert json.loads(payload)["dataset"] == RING


def test_a_lab_model_holds_about_what_the_ledger_counts():
    """A 2D-lab model at T = 4000 with a drawing cost 4.25–13 MB of RSS while the ledger counted 217 KB (about
    4,800 models before any was released). Now the scheduler computes a step's coefficients when it is taken (it kept
    all T as Python objects), a trained model keeps no gradients, and the ledger counts the scheduler and the
    drawing: the RSS of ten more models stays within 1.5× what is counted."""
    import gc

    import psutil

    def make(seed):
        return list(lab.lab_train(lab.DRAW_YOUR_OWN, circle_strokes(), seed, 2000, "linear", 4000, 5, None))[-1][-1]

    process = psutil.Process()
    warm = [make(100), make(101)]  # the allocator's and torch's first-use growth
    gc.collect()
    before = process.memory_info().rss
    sessions = [make(seed) for seed in range(10)]
    gc.collect()
    grown, counted = process.memory_info().rss - before, sum(s.nbytes for s in sessions)
    assert counted > 10 * 500_000, "the scheduler's tables and the weights are counted"
    assert grown < 1.5 * counted + 2 * 2**20, f"RSS grew {grown / 1e6:.1f} MB for {counted / 1e6:.1f} MB counted"
    assert warm
