"""The sampler choice and the race view, through the callbacks and the API, on the tiny checkpoint."""

import base64
import io
import json

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from app.callbacks import race, reverse
from pipelines.samplers import SAMPLERS

VARIANCE = next(iter(reverse.VARIANCE_TYPES))
NAMES = [SAMPLERS[k].name for k in ("ddpm", "dpmsolver++2m", "heun")]


def test_a_race_runs_every_sampler_from_the_same_noise_and_sends_aligned_frames(app_models):
    outputs = list(race.race("tiny-random", NAMES, 6, 0, 2, in_page=True))
    items, table, payload = outputs[-1]
    assert [caption.split(":")[0] for _, caption in items] == NAMES
    assert table.count("done") == 3 and "11 / 11" in table  # Heun: 2·6 − 1 evaluations
    runs = json.loads(payload)["runs"]
    assert [r["name"] for r in runs] == NAMES
    for r in runs:
        sampler = SAMPLERS[reverse.SAMPLER_NAMES[r["name"]]]
        assert r["num_evaluations"] == sampler.nfe(6) == r["nfe"][-1]
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
    _, _, status, state, *_ = last
    assert name in status and state.trajectory.num_steps == 5
    assert "9 model evaluations" in reverse.estimate_runtime("tiny-random", SAMPLERS["heun"].name, 5, 0.0, 1)
    with pytest.raises(gr.Error, match="Sampler"):
        next(reverse.reverse_generate("tiny-random", "DDPM, respaced to N steps", 5, 0.0, VARIANCE, True, 0, 2))


def test_race_api(live_app):
    client = Client(live_app, verbose=False)
    items, table = client.predict("tiny-random", NAMES[:2], 4, 0, 1, api_name="/race")
    assert len(items) == 2 and table.count("done") == 2
