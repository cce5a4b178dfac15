"""One meaning of t for users, on every tab: the paper's, t = 0 the data and t = T pure noise.

At every slider position the frame, the caption, the curves' cursor and the numbers name the same t; the reverse tab
agrees with the forward tab on ᾱ_t for the same schedule.
"""

import re

import numpy as np
import pytest
from PIL import Image

from app import plans, rendering, reverse_session
from app.callbacks import forward, reverse, sdedit

EXAMPLE = "app/assets/fashion_tshirt.png"
VARIANCE = next(iter(plans.VARIANCE_CHOICES))
T = 100  # the tiny test checkpoint: cosine, T = 100


def cursor_column(image: Image.Image) -> int:
    red = np.all(np.asarray(image.convert("RGB")) == rendering.CURSOR_RGB, axis=-1)
    columns = np.flatnonzero(red.sum(axis=0) > 0.5 * image.height)
    assert len(columns) == 2, "one two-pixel cursor"
    return int(columns[0])


def expected_column(plot: rendering.CursorPlot, t: int) -> int:
    a, b = plot.x_to_col
    return min(max(round(a * t + b), 0), plot.background.shape[1] - 2)


def caption_number(caption: str, name: str) -> float:
    return float(re.search(rf"{name} = ([-0-9.e+]+)", caption).group(1))


def run(steps: int | None):
    outputs = list(reverse.reverse_generate("tiny-random", plans.DDPM, steps or T, 0.0, VARIANCE, True, 0, 1))
    return outputs[-1]["state"]


@pytest.fixture(scope="module")
def full_run(tiny_checkpoints):
    with pytest.MonkeyPatch.context() as mp:
        from app import models, settings

        mp.setattr(settings, "CHECKPOINT_DIR", tiny_checkpoints)
        mp.setattr(settings, "DEFAULT_MODEL", "tiny-random")
        mp.setattr(models, "_cache", {})
        reverse_session.model_plot.cache_clear()
        yield run(None), models.get_pipeline("tiny-random").scheduler.tables
        reverse_session.model_plot.cache_clear()


@pytest.mark.parametrize("t", [0, 1, T // 2, T - 1, T])
def test_reverse_slider_caption_cursor_and_numbers_agree(full_run, t):
    state, tables = full_run
    assert state.trajectory.t_values == list(range(T, 0, -1)), "a full run records x_t for t = T … 1"
    x_t, x0_hat, eps_hat, curves, caption = reverse.reverse_frame(state, t)
    assert cursor_column(curves) == expected_column(state.plot, t)
    assert "nearest" not in caption
    if t == 0:
        assert caption.startswith("**t = 0**") and "t = 1 → 0" in caption
        np.testing.assert_array_equal(np.asarray(x_t), np.asarray(x0_hat))  # the result, shown as both
        return
    assert f"t = {t} → {t - 1}." in caption
    assert caption_number(caption, "ᾱ_t") == pytest.approx(tables.alphas_cumprod[t - 1].item(), rel=1e-3)
    k = state.trajectory.t_values.index(t)
    np.testing.assert_array_equal(np.asarray(x_t), rendering.uint8_grid(state.trajectory.samples[k]))


def test_respaced_steps_read_t_to_t_prime(app_models):
    state = run(5)
    assert state.trajectory.t_values == [100, 80, 60, 40, 20]
    assert state.trajectory.t_prev_values == [80, 60, 40, 20, 0]
    *_, curves, caption = reverse.reverse_frame(state, 60)
    assert "Step 3 of 5: t = 60 → 40." in caption and cursor_column(curves) == expected_column(state.plot, 60)
    *_, curves, caption = reverse.reverse_frame(state, 57)  # between recorded steps: the nearest one, said so
    assert "t = 60 → 40" in caption and "nearest the slider's t = 57" in caption
    assert cursor_column(curves) == expected_column(state.plot, 60)


@pytest.mark.parametrize("t", [0, 1, T // 2, T - 1, T])
def test_forward_values_cursor_and_reverse_agree_on_alpha_bar(full_run, t):
    state, _ = forward.forward_setup(EXAMPLE, "cosine", T, 1e-4, 0.02, 0, 32)[:2]
    *_, curves, values = forward.forward_scrub(state, t)
    assert f"| t | {t} / {T} |" in values
    assert cursor_column(curves) == expected_column(forward._plot_for("cosine", T, 1e-4, 0.02), t)
    forward_alpha_bar = float(re.search(r"\| ᾱ_t \| ([0-9.e+-]+) \|", values).group(1))
    if t == 0:
        assert forward_alpha_bar == 1.0
        return
    reverse_state, _ = full_run
    reverse_caption = reverse.reverse_frame(reverse_state, t)[-1]
    assert caption_number(reverse_caption, "ᾱ_t") == pytest.approx(forward_alpha_bar, rel=1e-3)


def test_sdedit_takes_the_papers_t(app_models):
    *_, (_, gallery) = sdedit.sdedit("tiny-random", EXAMPLE, T, 5, 0)
    captions = [caption for _, caption in gallery]
    assert "x_t at t = 100 (chosen)" in captions and "x_t at t = 10" in captions
    with pytest.raises(Exception, match="between 1 and 100"):
        next(sdedit.sdedit("tiny-random", EXAMPLE, 0, 5, 0))
