"""The sampler choice and the race view, through the callbacks and the API, on the tiny checkpoint."""

import base64
import io
import json
import re

import gradio as gr
import numpy as np
import pytest
from conftest import local_client
from PIL import Image

from app import models, plans
from app.callbacks import race, reverse
from pipelines.samplers import SAMPLERS

VARIANCE = next(iter(plans.VARIANCE_CHOICES))
NAMES = [SAMPLERS[k].name for k in ("ddpm", "dpmsolver++2m", "heun")]


def test_a_race_runs_every_sampler_from_the_same_noise_and_sends_aligned_frames(app_models):
    outputs = list(race.race("tiny-random", NAMES, 6, 0, 2, in_page=True))
    live, table, payload = outputs[-1]["live"], outputs[-1]["status"], outputs[-1]["scrubber"]
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", live)
    assert [caption.split(":")[0] for caption in captions] == NAMES and live.count('<img src="data:image/png') == 3
    assert table.count("done") == 3 and "11 / 11" in table  # Heun: 2·6 − 1 evaluations
    runs = json.loads(payload)["runs"]
    assert [r["name"] for r in runs] == NAMES
    for r in runs:
        sampler = SAMPLERS[plans.SAMPLER_NAMES[r["name"]]]
        assert r["num_evaluations"] == sampler.nfe_of(6) == r["nfe"][-1]
        assert all(a <= b for a, b in zip(r["log_snr"], r["log_snr"][1:]))  # noise falls step by step
        assert r["wall_s"] > 0
    # the same x_T: every run's first frame is the same image (to a grey level: Heun starts at σ_max·ε)
    first = [first_frame(r).astype(int) for r in runs]
    assert all(abs(f - first[0]).max() <= 1 for f in first)


def first_frame(run) -> np.ndarray:
    atlas = np.asarray(Image.open(io.BytesIO(base64.b64decode(run["atlas"]["x_t"]))))
    return atlas[: run["frame_height"]]


@pytest.mark.parametrize(
    "names, message",
    [
        (NAMES[:1], "2 to 4"),
        (NAMES + [SAMPLERS["euler"].name] * 1 + [SAMPLERS["unipc"].name], "2 to 4"),
        (["PLMS", NAMES[0]], "Unknown sampler"),
    ],
)
def test_race_refuses_bad_picks(app_models, names, message):
    with pytest.raises(gr.Error, match=message):
        next(race.race("tiny-random", names, 6, 0, 2, in_page=False))


def test_reverse_runs_any_sampler_of_the_registry(app_models):
    name = SAMPLERS["dpmsolver++2m"].name
    *_, last = reverse.reverse_generate("tiny-random", name, 5, 0.0, VARIANCE, True, 0, 2)
    status, state = last["status"], last["state"]
    assert name in status and state.trajectory.num_steps == 5
    assert "9 model evaluations" in reverse.estimate_runtime("tiny-random", SAMPLERS["heun"].name, 5, 0.0, 1)
    with pytest.raises(gr.Error, match="Sampler"):
        next(reverse.reverse_generate("tiny-random", "DDPM, respaced to N steps", 5, 0.0, VARIANCE, True, 0, 2))


def test_race_api(live_app):
    client = local_client(live_app)
    items, table = client.predict("tiny-random", NAMES[:2], 4, 0, 1, api_name="/race")
    assert len(items) == 2 and table.count("done") == 2
    items, table = client.predict("tiny-conditional", NAMES[:2], 4, 0, 1, "circle", 2.0, api_name="/race")
    assert len(items) == 2 and "class circle, w = 2" in table


def test_a_conditional_model_shows_its_classes_and_recommended_guidance(app_models):
    classes, guidance, *_ = reverse.conditioning_controls("tiny-conditional")  # then the interval and rescale
    assert classes["visible"] and classes["choices"] == [
        plans.ANY_CLASS,
        plans.ONE_OF_EACH,
        "circle",
        "square",
        "line",
    ]
    assert classes["value"] == plans.ONE_OF_EACH, "a conditional model opens on a grid of every class"
    assert guidance["visible"] and guidance["value"] == 2.0
    classes, guidance, extras, *_ = reverse.conditioning_controls("tiny-random")
    assert not classes["visible"] and not guidance["visible"] and not extras["visible"]


def test_class_choice_sets_the_labels(app_models):
    plan = plans.run_plan("tiny-conditional", plans.DDPM, 5, 0.0, 2, "square", 3.0)
    assert plan.class_labels == [1, 1] and plan.guidance_scale == 3.0
    plan = plans.run_plan("tiny-conditional", plans.DDPM, 5, 0.0, 2, plans.ONE_OF_EACH, 3.0)
    assert plan.class_labels == [0, 1, 2] and plan.batch_size == 3
    plan = plans.run_plan("tiny-conditional", plans.DDPM, 5, 0.0, 2, plans.ANY_CLASS, 3.0)
    assert plan.class_labels is None
    with pytest.raises(gr.Error, match="unconditional"):
        plans.run_plan("tiny-random", plans.DDPM, 5, 0.0, 2, "square", 3.0)
    with pytest.raises(gr.Error, match="Class"):
        plans.run_plan("tiny-conditional", plans.DDPM, 5, 0.0, 2, "dog", 3.0)
    *_, last = reverse.reverse_generate("tiny-conditional", plans.DDPM, 4, 0.0, VARIANCE, True, 0, 2, "line", 2.0)
    assert last["state"].trajectory.samples.shape[1] == 2


def test_guidance_sweep_runs_each_w_from_the_same_noise(app_models):
    *_, last = race.guidance_sweep(
        "tiny-conditional", plans.ONE_OF_EACH, [0.0, 1.0, 5.0], plans.DDPM, 4, 0, 2, in_page=True
    )
    table, payload = last["status"], last["scrubber"]
    runs = json.loads(payload)["runs"]
    assert [r["name"] for r in runs] == ["w = 0", "w = 1", "w = 5"] and table.count("done") == 3
    first = [first_frame(r).astype(int) for r in runs]
    assert all(abs(f - first[0]).max() == 0 for f in first)  # the same x_T
    results = [np.asarray(Image.open(io.BytesIO(base64.b64decode(r["result"])))) for r in runs]
    assert not np.array_equal(results[0], results[2])  # guidance changes the result
    with pytest.raises(gr.Error, match="class-conditional"):
        next(race.guidance_sweep("tiny-random", "circle", [0.0, 1.0], plans.DDPM, 4, 0, 1))
    with pytest.raises(gr.Error, match="2 to 6"):
        next(race.guidance_sweep("tiny-conditional", "circle", [1.0], plans.DDPM, 4, 0, 1))


def test_guidance_sweep_api(live_app):
    client = local_client(live_app)
    items, table = client.predict(
        "tiny-conditional", "square", [0.0, 3.0], plans.DDPM, 4, 0, 1, api_name="/guidance_sweep"
    )
    assert len(items) == 2 and table.count("done") == 2


def test_a_race_on_a_conditional_model_samples_generates_class_and_w(app_models):
    """The race takes the tab's class and guidance w as Generate does: a racer's result is Generate's result for the
    same sampler, class, w and seed; the captions and the scrubber's payload say which class and w."""
    solver = SAMPLERS["dpmsolver++2m"].name
    *_, last = race.race("tiny-conditional", [solver, NAMES[0]], 4, 0, 2, "square", 3.0, in_page=True)
    assert "class square, w = 3" in last["status"]
    assert all("class square, w = 3" in c for c in re.findall(r"<figcaption>(.*?)</figcaption>", last["live"]))
    payload = json.loads(last["scrubber"])
    assert payload["what"] == "class square, w = 3"
    raced = result_of(payload["runs"][0])
    *_, generated = reverse.reverse_generate("tiny-conditional", solver, 4, 0.0, VARIANCE, True, 0, 2, "square", 3.0)
    np.testing.assert_array_equal(raced, np.asarray(generated["result"]))
    *_, unconditional = race.race("tiny-conditional", [solver, NAMES[0]], 4, 0, 2, plans.ANY_CLASS, 3.0, in_page=True)
    assert json.loads(unconditional["scrubber"])["what"].startswith("any class (unconditional")
    assert not np.array_equal(result_of(json.loads(unconditional["scrubber"])["runs"][0]), raced)
    *_, grid = race.race("tiny-conditional", [solver, NAMES[0]], 4, 0, 2, plans.ONE_OF_EACH, 2.0, in_page=False)
    assert "one of each class (3), w = 2" in grid["status"]


def result_of(run) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(run["result"]))))


def test_a_batch_slider_that_one_of_each_overrides_is_disabled_with_the_reason(app_models):
    assert race.batch_control("tiny-conditional", plans.ONE_OF_EACH) == gr.update(
        interactive=False, info="not used: “one of each” makes one image per class (3) per run"
    )
    assert race.batch_control("tiny-conditional", "circle")["interactive"] is True
    note, batch = race.race_conditioning("tiny-conditional", plans.ONE_OF_EACH, 2.0)
    assert "one of each class (3), w = 2" in note["value"] and batch["interactive"] is False
    note, batch = race.race_conditioning("tiny-conditional", "line", 1.5)
    assert "class line, w = 1.5" in note["value"] and note["visible"] and batch["interactive"] is True
    note, batch = race.race_conditioning("tiny-random", plans.ANY_CLASS, 1.0)
    assert not note["visible"] and batch["interactive"] is True


def test_the_race_and_the_sweep_guide_in_generates_interval_with_its_rescale(app_models):
    """With a guidance interval and φ set under Generate's w, a racer's result is Generate's for the same settings
    (and not the fully guided one); the sweep's w = 3 run is too. The captions say the interval and φ."""
    solver = SAMPLERS["dpmsolver++2m"].name
    guidance = ("square", 3.0, 40, 100, 0.7)  # T = 100: guided in the noisier part of the run only
    pipe = models.get_pipeline("tiny-conditional")
    built = []
    original = pipe.run_scheduler
    pipe.run_scheduler = lambda *args, **kwargs: built.append(args) or original(*args, **kwargs)
    try:
        *_, last = race.race("tiny-conditional", [solver, NAMES[0]], 4, 0, 2, *guidance, in_page=True)
    finally:
        del pipe.run_scheduler
    assert len(built) == 2, "each racer's run is prepared once: for the work cap's count and for the run"
    what = json.loads(last["scrubber"])["what"]
    assert what == "class square, w = 3, guided only at t ∈ [40, 100], φ = 0.7" and what in last["status"]
    raced = result_of(json.loads(last["scrubber"])["runs"][0])
    *_, generated = reverse.reverse_generate("tiny-conditional", solver, 4, 0.0, VARIANCE, True, 0, 2, *guidance)
    np.testing.assert_array_equal(raced, np.asarray(generated["result"]))
    *_, everywhere = race.race("tiny-conditional", [solver, NAMES[0]], 4, 0, 2, "square", 3.0, in_page=True)
    assert not np.array_equal(result_of(json.loads(everywhere["scrubber"])["runs"][0]), raced)

    *_, swept = race.guidance_sweep(
        "tiny-conditional", "square", [1.0, 3.0], solver, 4, 0, 2, 40, 100, 0.7, in_page=True
    )
    runs = json.loads(swept["scrubber"])["runs"]
    assert "guided only at t ∈ [40, 100], φ = 0.7" in swept["status"]
    np.testing.assert_array_equal(result_of(runs[1]), raced)
    note, _ = race.race_conditioning("tiny-conditional", *guidance)
    assert "guided only at t ∈ [40, 100], φ = 0.7" in note["value"]
    note, _ = race.race_conditioning("tiny-conditional", "square", 1.0, 40, 100, 0.7)
    assert "φ" not in note["value"], "w = 1 guides no step: the interval and φ do nothing"
    with pytest.raises(gr.Error, match="t_hi"):
        next(race.race("tiny-conditional", [solver, NAMES[0]], 4, 0, 2, "square", 3.0, 40, 500, 0.0))
    with pytest.raises(gr.Error, match="rescale"):
        next(race.guidance_sweep("tiny-conditional", "square", [1.0, 3.0], solver, 4, 0, 2, None, None, 2.0))
    assert race.race_conditioning("tiny-conditional", "square", 3.0, 40, 500, 0.0) == (gr.skip(), gr.skip())
