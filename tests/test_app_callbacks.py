import gc
import json
import os

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from app import plans, rendering, settings
from app.callbacks import forward, loss, reverse, sdedit
from app.images import to_model_tensor
from app.serving.sessions import delete_session_files
from pipelines.samplers import SAMPLERS

EXAMPLE = "app/assets/fashion_tshirt.png"
FORWARD = dict(
    image=EXAMPLE, schedule="linear", num_timesteps=1000, beta_start=1e-4, beta_end=0.02, seed=0, resolution=32
)
REVERSE = dict(
    sampler=plans.DDPM,
    steps=5,
    eta=0.0,
    variance_type=next(iter(plans.VARIANCE_CHOICES)),
    clip=True,
    seed=0,
    batch_size=2,
)


def setup(**kw):
    state, x0_view, eps, slider = forward.forward_setup(**{**FORWARD, **kw})
    return state, np.asarray(x0_view), slider


def arrays(outputs):
    """Callbacks return PIL images (PNG outputs); compare them as arrays."""
    return [np.asarray(o) if isinstance(o, Image.Image) else o for o in outputs]


def result(outputs):
    """The last yield of a callback that runs as a generator (so that a cancelled request stops between steps)."""
    *_, last = outputs
    return last


def test_forward_setup_shows_the_model_input_and_sets_the_slider_range():
    state, x0_view, slider = setup(num_timesteps=500)
    assert x0_view.shape == (32, 32) and x0_view.dtype == np.uint8
    assert slider["maximum"] == 500
    assert state.trajectory.x0.shape == (1, 32, 32)


def test_forward_scrub_outputs_and_coherence():
    state, x0_view, _ = setup()
    x_t, signal, noise, plot, values = arrays(forward.forward_scrub(state, 0))
    np.testing.assert_array_equal(x_t, x0_view)
    assert noise.std() == 0  # √(1−ᾱ_0)·ε = 0 at t = 0
    assert "0 / 1000" in values and "∞" in values
    a = arrays(forward.forward_scrub(state, 400))
    b = arrays(forward.forward_scrub(state, 400))
    np.testing.assert_array_equal(a[0], b[0])  # no new noise per move
    assert len(a) == 5, "ε is not re-sent per move"
    assert plot.shape == a[3].shape and not np.array_equal(plot, a[3])  # the cursor moved
    with pytest.raises(gr.Error, match="between 0 and 1000"):
        forward.forward_scrub(state, 1001)
    with pytest.raises(gr.Error, match="Choose an image"):
        forward.forward_scrub(None, 3)


def test_cursor_plot_moves_its_cursor_over_a_palette_image():
    x = np.arange(1, 101)
    plot = rendering.cursor_plot(x, [("x²", x**2.0, "linear"), ("log x", np.log(x), "linear")])

    def cursor_columns(at):
        image = plot.at(at)
        assert image.mode == "P"  # a palette PNG: a third of the bytes, 4× faster to encode on every move
        red = np.all(np.asarray(image.convert("RGB")) == rendering.CURSOR_RGB, axis=-1)
        assert red.sum(axis=0).max() > 0.5 * image.height  # a vertical line through both panels
        return np.flatnonzero(red.sum(axis=0) > 0.5 * image.height)

    a, b = cursor_columns(20), cursor_columns(80)
    assert len(a) == len(b) == 2 and b[0] > a[0]
    expected = (80 - 20) * plot.x_to_col[0]
    assert abs((b[0] - a[0]) - expected) <= 1, "the cursor's column follows x on the data axis"
    rest = np.ones(plot.background.shape, bool)
    rest[:, [*a, *b]] = False
    np.testing.assert_array_equal(np.asarray(plot.at(20))[rest], np.asarray(plot.at(80))[rest])


def test_forward_frame_at_T_is_noise_and_at_0_is_the_input():
    x0 = np.asarray(forward.forward_frame(**FORWARD, t=0))
    expected = rendering.image_to_uint8(to_model_tensor(Image.open(EXAMPLE).convert("L"), 32, 1))
    np.testing.assert_array_equal(x0, expected)
    xT = np.asarray(forward.forward_frame(**FORWARD, t=1000)).astype(float)
    saturated = np.mean((xT == 0) | (xT == 255))  # N(0, 1) clipped to [−1, 1]: 31.7 % saturate
    assert abs(xT.mean() - 127.5) < 8 and 0.25 < saturated < 0.39
    assert abs(np.corrcoef(xT.ravel(), x0.ravel())[0, 1]) < 0.15


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(num_timesteps=0), "T must be between"),
        (dict(num_timesteps=float("nan")), "whole number"),
        (dict(num_timesteps="many"), "must be a number"),
        (dict(seed=-1), "Seed must be between"),
        (dict(resolution=100000), "Resolution must be between"),
        (dict(schedule="exotic"), "Schedule must be one of"),
        (dict(beta_start=0.03, beta_end=0.02), "below β end"),
        (dict(beta_end=float("inf")), "finite"),
        (dict(image="README.md"), "not a readable image"),
    ],
)
def test_forward_rejects_bad_values(kw, message):
    with pytest.raises(gr.Error, match=message):
        setup(**kw)


def test_markov_chain_and_compare_and_gif():
    state, _, _ = setup(num_timesteps=100, schedule="cosine")
    chain, closed, text = arrays(result(forward.forward_markov_chain(state, 50, 0)))
    assert chain.shape == closed.shape and not np.array_equal(chain, closed)
    assert "Standardized residual" in text
    gallery, fig = forward.forward_compare(state, 50)
    assert len(gallery) == len(forward.SCHEDULES) and fig is not None
    path, _, files = result(forward.forward_gif(state))
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames > 10
    assert files.paths == [path]
    delete_session_files(files)
    assert not os.path.exists(path)


def test_session_files_are_bounded_and_go_with_an_evicted_session():
    """Past state_session_capacity gradio drops the oldest session without its delete_callback: the files still go."""
    state, _, _ = setup(num_timesteps=100, schedule="cosine")
    first, _, files = result(forward.forward_gif(state))
    path, _, files = result(forward.forward_gif(state, files))
    assert not os.path.exists(first) and files.paths == [path], "a session keeps only its latest export"
    assert os.path.exists(path)
    del files
    gc.collect()
    assert not os.path.exists(path)


def test_reverse_generate_streams_then_records(app_models):
    outputs = list(reverse.reverse_generate("tiny-random", **REVERSE))
    final = outputs[-1]
    assert "scrubber" not in final, "the API's run sends no scrubber payload"
    status, state, slider, final_grid = final["status"], final["state"], final["t"], np.asarray(final["result"])
    in_page = list(reverse.reverse_generate("tiny-random", **REVERSE, in_page=True))
    payload = json.loads(in_page[-1]["scrubber"])  # the page's run also sends the whole run to the scrubber, once
    assert payload["t"] == [100, 80, 60, 40, 20] and payload["num_steps"] == 5 and payload["complete"]
    np.testing.assert_array_equal(np.asarray(in_page[-1]["x_t"]), np.asarray(final["x_t"]))
    assert "Done: DDPM (ancestral), 5 steps" in status and len(state.trajectory) == 5
    assert state.trajectory.samples.shape == (5, 2, 1, 8, 8)
    assert slider["maximum"] == 100 and slider["value"] == 0  # the paper's t: T = 100 is noise, 0 the result
    x_t, x0_hat, eps_hat, plot, caption = arrays(reverse.reverse_frame(state, 100))
    assert x_t.shape == x0_hat.shape == eps_hat.shape and "t = 100 → 80" in caption
    again = list(reverse.reverse_generate("tiny-random", **REVERSE))[-1]
    assert np.array_equal(np.asarray(again["x_t"]), final_grid), "same seed, same frames"
    other = list(reverse.reverse_generate("tiny-random", **{**REVERSE, "seed": 1}))[-1]
    assert not np.array_equal(np.asarray(other["x_t"]), final_grid)
    path, _, files = result(reverse.reverse_gif(state))
    assert Image.open(path).n_frames == 5  # one frame per recorded step
    delete_session_files(files)


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(batch_size=17), "Batch size"),
        (dict(batch_size=0), "Batch size"),
        (dict(steps=0), "Steps"),
        (dict(steps=10**9), "Steps"),
        (dict(sampler="DDIM (η), N steps", eta=1.5), "η"),
        (dict(sampler="magic"), "Sampler"),
        (dict(seed=2**40), "Seed"),
        (dict(variance_type="learned"), "Variance type"),
    ],
)
def test_reverse_rejects_bad_values(app_models, kw, message):
    with pytest.raises(gr.Error, match=message):
        list(reverse.reverse_generate("tiny-random", **{**REVERSE, **kw}))


def test_reverse_rejects_unknown_and_offline_models(app_models):
    with pytest.raises(gr.Error, match="Unknown model"):
        list(reverse.reverse_generate("../../etc", **REVERSE))
    with pytest.raises(gr.Error, match="unavailable"):
        list(reverse.reverse_generate("google/ddpm-cifar10-32 (Hugging Face Hub)", **REVERSE))


def test_work_cap(app_models, monkeypatch):
    monkeypatch.setattr(settings, "MAX_WORK", 8 * 8 * 2 * 4)
    with pytest.raises(gr.Error, match="over this server's limit"):
        list(reverse.reverse_generate("tiny-random", **REVERSE))


def test_estimate_runtime(app_models):
    estimate = reverse.estimate_runtime("tiny-random", plans.DDPM, 5, 0.0, 2)
    assert "5 steps (5 model evaluations), each on 2 images" in estimate
    # a class-conditional model: timed with the null label, and guidance doubles the batch of each evaluation
    estimate = reverse.estimate_runtime("tiny-conditional", plans.DDPM, 5, 0.0, 2, "square", 2.0)
    assert "5 steps (5 model evaluations), each on 4 images (a batch of 2, doubled: guidance" in estimate


def test_a_class_conditional_models_loss_tab_takes_the_unconditional_bound(app_models):
    fig, summary = result(loss.elbo_terms("tiny-conditional", EXAMPLE, 6, 0))
    assert "bits/dim" in summary and fig is not None


def test_sdedit_and_elbo_terms(app_models):
    *_, (x0, gallery) = sdedit.sdedit("tiny-random", EXAMPLE, 40, 5, 0)
    assert (
        np.asarray(x0["value"]).shape == (8, 8) and len(gallery) == 2 * 6
    )  # chosen t and 5 fractions of T, noised and denoised
    fig, summary = result(loss.elbo_terms("tiny-random", EXAMPLE, 6, 0))
    assert "bits/dim" in summary and fig is not None


def test_the_reverse_tab_opens_with_a_recorded_run_of_the_default_model():
    """app/assets/default_run.json: the bundled model's default run, ready to scrub before anyone presses Generate."""
    reverse.default_run.cache_clear()
    payload = json.loads(reverse.open_with_default_run())
    assert payload["model"] == settings.DEFAULT_MODEL and payload["version"] == 0  # older than any live run
    # from noise to data; the solvers start at t = 996, where the cosine schedule's λ = ½·log SNR reaches −5.1
    assert payload["T"] == 1000 and 996 <= payload["t"][0] <= 1000 and payload["t_prev"][-1] == 0
    assert payload["sampler"] == plans.DEFAULT_SAMPLER and payload["num_steps"] == plans.DEFAULT_STEPS
    assert len(json.dumps(payload)) < 1.1 * 2**20
    reverse.default_run.cache_clear()


def test_the_page_gets_the_frames_while_the_run_streams(app_models, monkeypatch):
    """Every few seconds of a run, the frames recorded so far go to the scrubber (no result at t = 0 yet)."""
    monkeypatch.setattr(settings, "STREAM_EVERY_S", 0.0)
    monkeypatch.setattr(settings, "SCRUB_STREAM_EVERY_S", 0.0)
    outputs = list(reverse.reverse_generate("tiny-random", **REVERSE, in_page=True))
    streamed = [json.loads(o["scrubber"]) for o in outputs[:-1] if "scrubber" in o]
    assert streamed and all(not p["complete"] for p in streamed)
    assert [p["t"] for p in streamed] == [[100, 80, 60, 40, 20][: len(p["t"])] for p in streamed]
    assert len(streamed[-1]["t"]) > len(streamed[0]["t"]), "each chunk holds the frames so far"
    assert json.loads(outputs[-1]["scrubber"])["complete"]


@pytest.mark.parametrize("value", [True, False])
def test_booleans_are_not_numbers(app_models, value):
    with pytest.raises(gr.Error, match="must be a number, got"):
        forward.forward_setup(**{**FORWARD, "num_timesteps": value})
    with pytest.raises(gr.Error, match="must be a number, got"):
        plans.run_plan("tiny-random", SAMPLERS["ddim"].name, 5, value, 1)


def test_a_refused_request_is_one_log_line_not_a_traceback(caplog):
    import logging

    from app.validation import UserError, check_int

    with caplog.at_level(logging.INFO, logger="ddpm_explorer"), pytest.raises(UserError) as refused:
        check_int("Seed", "abc", 0, 10)
    assert refused.value.print_exception is False  # gradio prints no traceback for it
    assert [r.getMessage() for r in caplog.records] == ["refused: Seed must be a number, got 'abc'."]
