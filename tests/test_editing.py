"""The editing tab's handlers: inpainting (RePaint beside the naive method) and interpolation, on tiny checkpoints."""

import json
import threading

import gradio as gr
import numpy as np
import pytest
import torch

from app import edit_inputs, settings
from app.callbacks import editing, interpolation
from app.editing_payload import move_caption
from app.plans import ANY_CLASS
from app.serving.session_memory import StateLedger
from pipelines.interpolation import mixed_class_embeddings
from pipelines.repaint import moves_down, preset_mask, repaint_timesteps

EXAMPLE = "app/assets/fashion_tshirt.png"
LEFT = edit_inputs.preset_json("left half", 8, 8)
# model, source, image, mask, steps, jump_length, jump_n_sample, eta, seed, class, guidance
INPAINT = ["tiny-random", edit_inputs.UPLOAD, EXAMPLE, LEFT, 8, 2, 3, 1.0, 0, ANY_CLASS, 1.0]


def last(generator):
    """A handler's last yield."""
    *_, out = generator
    return out


def page_result(generator):
    """A page run's result: its last yield but one. The last is all skips, asserted here: gradio's completion message
    repeats the last yield, and it must not carry the scrubber's payload again."""
    *_, out, ending = generator
    assert ending == (gr.skip(),) * len(ending)
    return out


def test_a_mask_is_parsed_and_bad_ones_are_refused():
    keep = edit_inputs.parse_mask(LEFT, 8, 8)
    assert torch.equal(keep, preset_mask("left half", 8, 8))
    assert torch.equal(edit_inputs.parse_mask(json.dumps({"mask": keep[0, 0].int().tolist()}), 8, 8), keep)
    ones, half = [[1] * 8] * 8, [[0.5] * 8] * 8
    for bad, message in [
        ("", "empty"),
        ("not json", "must be JSON"),
        (json.dumps([[0] * 4] * 4), "8 rows of 8 values"),
        (json.dumps([[0, 2] * 4] * 8), "binary"),
        (json.dumps(half), "binary"),
        (json.dumps([[True] * 8] * 8), "binary"),
        (json.dumps(ones), "nothing to regenerate"),
        (None, "empty"),
        ("[" * 300_000, "too long"),
    ]:
        with pytest.raises(gr.Error, match=message):
            edit_inputs.parse_mask(bad, 8, 8)


def test_a_test_image_comes_in_the_models_size_and_channels():
    choices = edit_inputs.source_choices()
    assert choices[-1] == edit_inputs.UPLOAD
    if len(choices) > 1:  # Debian's dataset-fashion-mnist is installed
        x = edit_inputs.source_image(choices[0], None, 1, 32)
        assert x.shape == (1, 1, 32, 32) and x[..., :2, :].max() == -1  # 28 → 32 with a black border
        assert edit_inputs.source_image(choices[0], None, 3, 8).shape == (1, 3, 8, 8)
    with pytest.raises(gr.Error, match="Upload an image first"):
        edit_inputs.source_image(edit_inputs.UPLOAD, None, 1, 8)


def test_inpainting_records_every_move_of_repaint_and_the_naive_run(app_models, monkeypatch):
    ledger = StateLedger(2**30)
    monkeypatch.setattr("app.editing_payload.ledger", ledger)
    *images, status, state = last(editing.inpaint(*INPAINT))
    assert all(np.asarray(im).shape == (8, 8) for im in images) and "Done: RePaint made" in status
    timesteps, stride = repaint_timesteps(100, 8, 2, 3)
    repaint, naive = state.repaint, state.naive
    assert repaint.num_moves == len(timesteps) and naive.num_moves == 8 and naive.num_jumps == 0
    assert repaint.t[0] == 7 * stride + 1 and repaint.t[-1] == 0
    # every move is one stride, up or down (the t the model is asked at next), but the steps to and from x₀ (t = 0)
    pairs = list(zip(repaint.t, repaint.t[1:]))
    assert all(abs(b - a) == stride for a, b in pairs if 0 not in (a, b)), pairs
    assert all(abs(b - a) == 1 for a, b in pairs if 0 in (a, b)), pairs
    assert any(b > a for a, b in pairs), "the run goes back up on its jumps"
    assert repaint.down == moves_down(timesteps) and repaint.num_jumps == 3 * 2
    climbing = repaint.down.index(False)
    caption = move_caption(repaint, climbing + 1)  # x after the first move back up
    assert caption.startswith(f"Move {climbing + 1} of {repaint.num_moves}: jump 1 of 6") and "noise added" in caption
    assert "→ 0, the result" in move_caption(repaint, repaint.num_moves)
    assert move_caption(repaint, 0).startswith(f"x_T, the start (t = {repaint.t[0]})")
    assert len(repaint.x_t) == repaint.num_moves + 1 and ledger.total_bytes == state.nbytes > 0
    # the kept pixels of RePaint's result are the image's (the known part at t = 0 is x₀ itself)
    original, result = np.asarray(images[0]).astype(int), np.asarray(images[2]).astype(int)
    assert np.abs(original[:, 4:] - result[:, 4:]).max() <= 1
    x, x0_hat, caption = editing.inpaint_frame(state, climbing + 1)
    assert np.asarray(x).shape == (8, 8) and "jump 1 of 6" in caption
    state.release()
    with pytest.raises(gr.Error, match="released"):
        editing.inpaint_frame(state, 0)
    with pytest.raises(gr.Error, match="Run the inpainting first"):
        editing.inpaint_frame(None, 0)


def test_the_page_gets_the_runs_payload_and_the_slider_goes_to_the_result(app_models):
    *_, payload, slider = page_result(editing.inpaint_in_page(*INPAINT))
    p = json.loads(payload)
    moves = len(p["repaint"]["down"])
    assert slider == {"__type__": "update", "maximum": moves, "value": moves}
    assert len(p["repaint"]["t"]) == moves + 1 and len(p["naive"]["t"]) == 9
    assert len(p["repaint"]["x_t"]) > 0 and p["repaint"]["num_jumps"] == 6


def test_inpainting_reports_its_moves_as_it_goes(app_models):
    """A newcomer's walk: RePaint ran 75 s (a loaded machine) with nothing to say how far it was. Each move of both
    runs is reported to gradio's progress: RePaint's, then the naive run's, counting to their sum."""
    reports = []
    *_, state = last(editing.inpaint(*INPAINT, progress=lambda done, desc, unit: reports.append((*done, desc, unit))))
    total = state.repaint.num_moves + state.naive.num_moves
    assert [r[0] for r in reports] == list(range(1, total + 1)) and {r[1] for r in reports} == {total}
    assert reports[0][2:] == ("RePaint", "moves") and reports[-1][2] == "the naive method"


def test_frames_are_thinned_to_the_cap(app_models, monkeypatch):
    monkeypatch.setattr(settings, "EDIT_MAX_FRAMES", 5)
    *_, state = last(editing.inpaint(*INPAINT))
    assert len(state.repaint.x_t) == len(state.repaint.keep) == 5
    assert state.repaint.keep[0] == 0 and state.repaint.keep[-1] == state.repaint.num_moves


@pytest.mark.parametrize(
    "index, value, message",
    [
        (3, "", "empty"),
        (3, json.dumps([[1] * 8] * 8), "nothing to regenerate"),
        (3, json.dumps([[0] * 32] * 32), "8 rows of 8"),
        (4, 0, "Steps must be between"),
        (5, 8, "Jump length must be between"),
        (6, 50, "Resamplings"),
        (7, 1.5, "η must be"),
        (9, "circle", "unconditional"),
    ],
)
def test_inpainting_refuses_bad_values(app_models, index, value, message):
    args = list(INPAINT)
    args[index] = value
    with pytest.raises(gr.Error, match=message):
        last(editing.inpaint(*args))


def test_inpainting_respects_the_work_cap(app_models, monkeypatch):
    monkeypatch.setattr(settings, "MAX_WORK", 20 * 8 * 8)
    with pytest.raises(gr.Error, match="over this server's limit"):
        last(editing.inpaint(*INPAINT))


def test_a_conditional_model_inpaints_a_class_with_guidance(app_models):
    args = ["tiny-conditional", *INPAINT[1:9], "square", 2.0]
    *_, state = last(editing.inpaint(*args))
    assert state.repaint.num_moves > 8


def test_a_cancelled_inpainting_stops_within_a_move(app_models, monkeypatch):
    monkeypatch.setattr(settings, "STREAM_EVERY_S", 0.0)
    run = editing.inpaint(*INPAINT[:4], 50, 5, 5, 1.0, 0, ANY_CLASS, 1.0)
    assert next(run) == tuple(gr.skip() for _ in range(editing.INPAINT_OUTPUTS))
    run.close()  # what gradio does when the client goes


def test_interpolation_strips_and_norms(app_models):
    slerp, lerp, fade, notes = last(interpolation.interpolate("tiny-random", 0, 1, 5, ANY_CLASS, ANY_CLASS, 1.0))
    assert all(np.asarray(im).shape == (10, 9 * 9 + 1) for im in (slerp, lerp, fade))  # 1 px borders
    ends = lambda im: (np.asarray(im)[1:9, 1:9], np.asarray(im)[1:9, -9:-1])
    for a, b in zip(ends(slerp), ends(lerp)):  # the same end points: x_T of seed A and of seed B
        np.testing.assert_array_equal(a, b)
    assert "Why slerp" in notes and "√d = 8.0" in notes
    *_, payload, slider = page_result(
        interpolation.interpolate_in_page("tiny-random", 0, 1, 5, ANY_CLASS, ANY_CLASS, 1.0)
    )
    p = json.loads(payload)
    assert p["t"] == [100, 80, 60, 40, 20, 0] and set(p["strips"]) == {"slerp", "lerp"} and slider["value"] == 0


def test_interpolation_between_two_classes_mixes_their_embeddings(app_models):
    from app import models

    slerp, *_ = last(interpolation.interpolate("tiny-conditional", 0, 1, 4, "circle", "square", 2.0))
    same, *_ = last(interpolation.interpolate("tiny-conditional", 0, 1, 4, "circle", "circle", 2.0))
    a, b = np.asarray(slerp), np.asarray(same)
    np.testing.assert_array_equal(a[1:9, 1:9], b[1:9, 1:9])  # weight 0: class a alone
    assert not np.array_equal(a[1:9, -9:-1], b[1:9, -9:-1])  # weight 1: class b
    assert not models.get_pipeline("tiny-conditional").unet.class_embedding._forward_hooks, "the hook is removed"
    with pytest.raises(gr.Error, match="at both"):
        last(interpolation.interpolate("tiny-conditional", 0, 1, 4, "circle", ANY_CLASS, 2.0))


def test_interpolation_respects_the_work_cap(app_models, monkeypatch):
    monkeypatch.setattr(settings, "MAX_WORK", 5 * 18 * 8 * 8 - 1)
    with pytest.raises(gr.Error, match="over this server's limit"):
        last(interpolation.interpolate("tiny-random", 0, 1, 5, ANY_CLASS, ANY_CLASS, 1.0))


def test_mixing_leaves_other_threads_calls_alone(tiny_checkpoints):
    from tests.conftest import make_tiny_unet

    unet = make_tiny_unet(num_class_embeds=4)
    labels = torch.tensor([0, 0])
    plain = unet.class_embedding(labels)
    seen = {}
    with torch.no_grad(), mixed_class_embeddings(unet, 0, 2, [0.0, 1.0], null_label=3):
        mixed = unet.class_embedding(labels)
        other = threading.Thread(target=lambda: seen.setdefault("x", unet.class_embedding(labels)))
        other.start()
        other.join()
    assert torch.equal(mixed[1], unet.class_embedding.weight[2]) and torch.equal(seen["x"], plain)
