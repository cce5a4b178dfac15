"""The forward tab's t across a change of T, what the page says about a cropped upload, the ELBO tab's measured
image, and the plots' axis names and legends (read on the figure objects, before they become pixels)."""

import numpy as np
import pytest
from PIL import Image

from app import rendering
from app.callbacks import forward, loss, sdedit
from app.images import crop_note
from pipelines import make_schedule

FORWARD = dict(
    image=None, schedule="linear", num_timesteps=1000, beta_start=1e-4, beta_end=0.02, seed=0, resolution=32
)


def in_page(t, **kw):
    return forward.forward_setup_in_page(**{**FORWARD, **kw}, t=t)


@pytest.mark.parametrize("T, t, shown", [(50, 500, 50), (50, None, 0), (50, 30, None), (1000, 500, None)])
def test_a_new_T_below_t_moves_the_sliders_value_with_its_range(T, t, shown):
    """T = 50 with t at 500 left the number box at 500, and the next event was refused: a range that no longer
    holds t moves the value with it, so no stale t reaches a handler. A t within it is left alone (the user may
    have moved the slider while the setup ran: it must not snap back)."""
    state, _, _, _, slider = in_page(t, num_timesteps=T)
    assert slider["maximum"] == T and slider["interactive"] is True
    assert slider.get("value") == shown
    assert state.trajectory.num_timesteps == T


def test_a_t_past_T_is_refused_with_a_message_that_says_what_to_do():
    state, *_ = in_page(50, num_timesteps=50)
    for handler in (
        lambda: next(forward.forward_markov_chain(state, 500, 0)),
        lambda: forward.forward_compare(state, 500),
        lambda: forward.forward_scrub(state, 500),
    ):
        with pytest.raises(
            Exception, match=r"t must be between 0 and 50, got 500: past this schedule's T = 50. Move the slider back"
        ):
            handler()


def test_an_upload_with_transparency_is_said_to_be_laid_on_white(tmp_path):
    """A newcomer's walk: a transparent PNG's clear part became white with nothing said. An opaque RGBA says nothing
    of it (its alpha hides nothing)."""
    clear, opaque = tmp_path / "clear.png", tmp_path / "opaque.png"
    rgba = np.full((40, 40, 4), 255, np.uint8)
    Image.fromarray(rgba).save(opaque)
    rgba[:20, :, 3] = 0
    Image.fromarray(rgba).save(clear)
    _, _, note, _, _ = in_page(0, image=str(clear), resolution=32)
    assert "its transparent parts laid on white" in note and "resized to 32×32" in note
    _, _, note, _, _ = in_page(0, image=str(opaque), resolution=32)
    assert "transparent" not in note


def test_a_non_square_upload_is_said_to_be_cropped(tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(np.full((150, 200, 3), 128, np.uint8)).save(path)
    note = crop_note((200, 150), 64)
    assert (
        "200×150 is not square" in note
        and "centre 150×150" in note
        and "25 px cut from the left and 25 px from the right" in note
    )
    assert "resized to 64×64" in note
    assert "25 px cut from the top and 26 px from the bottom" in crop_note((150, 201), 32)
    assert "not square" not in crop_note((64, 64), 32)
    _, _, page_note, _, _ = in_page(0, image=str(path), resolution=32)
    assert "not square" in page_note and "resized to 32×32" in page_note


def test_sdedit_labels_its_x0_with_what_became_of_the_upload(app_models, tmp_path):
    path = tmp_path / "tall.png"
    Image.fromarray(np.full((200, 150), 90, np.uint8)).save(path)
    *_, (x0, gallery) = sdedit.sdedit("tiny-random", str(path), 40, 2, 0)
    assert "150×200 is not square" in x0["label"] and np.asarray(x0["value"]).shape == (8, 8)
    assert all(isinstance(caption, str) and caption for _, caption in gallery)


def test_the_elbo_tab_measures_a_test_image_of_a_fashion_mnist_model_and_shows_it(app_models):
    x0, what = loss.measured_image(None, (1, 32, 32))
    if "Fashion-MNIST test image" in what:  # Debian's dataset-fashion-mnist is installed
        assert x0.shape == (1, 1, 32, 32) and (x0[..., :2, :] == -1).all(), "28 → 32 with a black border"
    x0, what = loss.measured_image("app/assets/grace_hopper.png", (3, 16, 16))
    assert x0.shape == (1, 3, 16, 16) and what.startswith("your image")
    view, caption = loss.elbo_input("tiny-random", None)
    assert np.asarray(view).ndim in (2, 3) and caption.startswith("**Measured:**")
    assert "a photo" in caption and "costs more bits" in caption
    _, caption = loss.elbo_input("no-such-model", None)
    assert caption.startswith("No image to measure yet")


def texts(artists) -> list[str]:
    return [a.get_text() for a in artists]


def plain_underscores(label: str) -> bool:
    """An underscore outside $…$ shows literally in matplotlib ("ᾱ_t")."""
    return "_" in "".join(label.split("$")[::2])


@pytest.fixture
def mpl():
    with rendering._MPL_LOCK:
        yield rendering.pyplot()


def legend_beside(fig, ax) -> bool:
    renderer = fig.canvas.get_renderer()
    return ax.get_legend().get_window_extent(renderer).x0 >= ax.get_window_extent(renderer).x1


def test_the_schedule_plot_names_its_log_axis_and_its_natural_log(mpl):
    tables = make_schedule("linear", 100)
    paper = tables.by_paper_t
    fig = rendering.cursor_figure(
        np.arange(101),
        [
            (rendering.BETA, paper.betas.numpy(), "log"),
            (rendering.ALPHA_BAR, paper.alphas_cumprod.numpy(), "linear"),
            (rendering.LN_SNR, paper.log_snr.numpy(), "linear"),
        ],
    )
    labels = [ax.get_ylabel() for ax in fig.axes]
    mpl.close(fig)
    assert labels[0] == "$\\beta_t$\n(log axis)" and fig.axes[0].get_yscale() == "log"
    assert labels[1] == "$\\bar\\alpha_t$" and "natural log" in labels[2]
    assert not any(plain_underscores(label) for label in labels)


def test_the_compare_plot_uses_mathtext_and_keeps_its_legend_off_the_curves(mpl):
    curves = {name: make_schedule(name, 100).alphas_cumprod.numpy() for name in ("linear", "cosine")}
    fig = rendering.compare_alpha_bar_figure(curves, 40)
    ax = fig.axes[0]
    fig.canvas.draw()
    assert ax.get_ylabel() == "$\\bar\\alpha_t$" and ax.get_xlabel() == "t"
    assert texts(ax.get_legend().get_texts()) == ["linear", "cosine", "t = 40"]
    assert legend_beside(fig, ax)
    mpl.close(fig)


def test_no_schedule_in_the_compare_plot_is_drawn_in_the_markers_red(mpl):
    """A newcomer's walk: the caption says "red: the slider's t", and the fourth schedule (sigmoid) was red too."""
    from matplotlib.colors import to_rgb

    names = ("linear", "quadratic", "cosine", "sigmoid")
    fig = rendering.compare_alpha_bar_figure({n: make_schedule(n, 100).alphas_cumprod.numpy() for n in names}, 40)
    *schedules, marker = fig.axes[0].get_lines()
    red = np.array(to_rgb(marker.get_color()))
    assert len(schedules) == 4 and marker.get_label() == "t = 40"
    for line in schedules:  # every schedule's colour far from the marker's red
        assert np.abs(np.array(to_rgb(line.get_color())) - red).sum() > 0.4, (line.get_label(), line.get_color())
    mpl.close(fig)


def test_the_elbo_plot_writes_L_t_minus_1_in_mathtext_and_keeps_its_legends_off_the_curves(mpl):
    terms = dict(timesteps=[0, 10, 50, 99], vb=[0.5, 0.1, 0.01, 0.001], prior=1e-5, mse=[1.0, 0.5, 0.1, 0.01])
    fig = rendering.elbo_terms_figure(terms)
    fig.canvas.draw()
    top, bottom = fig.axes
    legend = texts(top.get_legend().get_texts())
    assert legend[0] == "$L_{t-1}$ (KL terms)" and legend[1] == "$L_0$ (decoder NLL)" and legend[2].startswith("$L_T$")
    assert not any(plain_underscores(text) for text in [*legend, top.get_ylabel(), bottom.get_ylabel()])
    assert "log axis" in top.get_ylabel() and "log axis" in bottom.get_ylabel()
    assert legend_beside(fig, top) and legend_beside(fig, bottom)
    mpl.close(fig)


def test_the_elbo_comparison_plot_names_both_models_and_their_difference_per_t(mpl):
    fixed = dict(timesteps=[0, 10, 50, 99], vb=[0.5, 0.1, 0.01, 0.001], prior=1e-5, mse=[1.0, 0.5, 0.1, 0.01])
    learned = dict(fixed, vb=[0.45, 0.1, 0.012, 0.001])
    fig = rendering.elbo_comparison_figure([("fixed", fixed), ("learned", learned)])
    fig.canvas.draw()
    terms, difference, simple = fig.axes
    assert texts(terms.get_legend().get_texts()) == [
        "fixed: $L_{t-1}$",
        "fixed: $L_0$",
        "learned: $L_{t-1}$",
        "learned: $L_0$",
    ]
    assert texts(difference.get_legend().get_texts()) == ["learned − fixed"]
    assert texts(simple.get_legend().get_texts()) == ["fixed", "learned"]
    # the difference panel plots learned − fixed at each t (t = 1 is L_0: table index 0)
    x, y = difference.get_lines()[-1].get_data()
    np.testing.assert_allclose(x, [1, 11, 51, 100])
    np.testing.assert_allclose(y, [-0.05, 0.0, 0.002, 0.0], atol=1e-12)
    assert simple.get_xlabel().startswith("t") and "bits/dim" in difference.get_ylabel()
    assert all(legend_beside(fig, axes) for axes in fig.axes)
    mpl.close(fig)
