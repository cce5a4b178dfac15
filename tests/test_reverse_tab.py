"""The reverse tab's handlers as a person meets them (issue 23): the run on screen exports, Heun's evaluations are
named, Stop keeps the frames, the estimate follows every control and the server's speed, the Hub models offline."""

import json
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
import torch
from PIL import Image

from app import models, plans, settings
from app.callbacks import reverse
from app.reverse_session import step_label, step_of
from app.scrub_payload import reverse_payload
from app.serving.stop_requests import stop_requests

RUN = dict(eta=0.0, variance_type=next(iter(plans.VARIANCE_CHOICES)), clip=True, seed=0, batch_size=2)


def gif_frames(path) -> list[np.ndarray]:
    gif = Image.open(path)
    frames = []
    for k in range(gif.n_frames):
        gif.seek(k)
        frames.append(np.asarray(gif.convert("RGB")))
    return frames


def last(outputs):
    return list(outputs)[-1]


def test_heun_names_each_step_and_its_corrector(app_models):
    """Heun at 3 steps makes 5 evaluations (t₀, t₁, t₁, t₂, t₂): each is named by its step of 3, the second one at
    a t is Heun's corrector (never "t → t"), and the scrubber is told both, apart."""
    done = last(reverse.reverse_generate("tiny-random", "Heun", 3, **RUN, in_page=True))
    assert "3 steps (5 model evaluations)" in done["status"]
    payload = json.loads(done["scrubber"])
    assert payload["num_steps"] == 3 and payload["evaluations"] == 5
    assert payload["step"] == [1, 1, 2, 2, 3] and payload["evaluation"] == [1, 2, 3, 4, 5]
    t, t_prev = payload["t"], payload["t_prev"]
    assert t[1] == t[2] and t[3] == t[4] and t_prev[1] == t[1]  # two evaluations share each t
    assert reverse.reverse_frame(done["state"], t[1])[-1].startswith(f"**Step 1 of 3, Heun's corrector at t = {t[1]}")
    assert reverse.reverse_frame(done["state"], t[0])[-1].startswith(f"**Step 1 of 3: t = {t[0]} → {t[1]}.")
    assert [step_of(e, 10, 19) for e in range(19)] == [1 + e // 2 for e in range(19)]
    assert [step_of(e, 10, 10) for e in range(10)] == list(range(1, 11))
    assert step_label(1, 10, 19, 993, 993) == "Step 1 of 10, Heun's corrector at t = 993"
    assert "Karras" in plans.sampler_note("Heun") and "2N − 1" in plans.sampler_note("Heun")


def test_one_step_is_singular(app_models):
    done = last(reverse.reverse_generate("tiny-random", plans.DDPM, 1, **RUN))
    assert "1 step (1 model evaluation)" in done["status"]
    assert "1 step (1 model evaluation)" in reverse.estimate_runtime("tiny-random", plans.DDPM, 1, 0.0, 1)


def test_stop_ends_the_run_with_its_frames_to_scrub(app_models, monkeypatch):
    monkeypatch.setattr(settings, "STREAM_EVERY_S", 0.0)  # a yield after every step
    request = SimpleNamespace(session_hash="stop-test")
    run = reverse.reverse_generate("tiny-random", plans.DDPM, 50, **RUN, request=request, in_page=True)
    outputs = [next(run), next(run)]
    assert stop_requests.request("stop-test")
    outputs += list(run)
    stopped = outputs[-1]
    assert stopped["status"].startswith("Stopped after ") and "can be scrubbed" in stopped["status"]
    payload = json.loads(stopped["scrubber"])
    assert payload["complete"] is False and payload["stopped"] and 2 <= len(payload["t"]) < 50
    assert stopped["t"]["value"] == payload["t"][-1]  # the slider shows the last frame made
    trajectory = stopped["state"].trajectory
    assert trajectory.final is None and len(trajectory) == len(payload["t"])
    caption = reverse.reverse_frame(stopped["state"], 0)[-1]  # no result x₀: the nearest frame made
    assert f"t = {payload['t'][-1]} →" in caption
    assert not stop_requests.request("stop-test")  # the run is over: a late Stop asks nothing of the next one
    gif = last(reverse.reverse_gif(stopped["state"]))
    assert len(gif_frames(gif[0])) == len(payload["t"])


def test_export_gif_of_the_default_run_before_any_generate(app_models, tmp_path, monkeypatch):
    done = last(reverse.reverse_generate("tiny-random", plans.DDPM, 4, **RUN))
    pipe = models.get_pipeline("tiny-random")
    payload = json.loads(reverse_payload(done["state"].trajectory, pipe.scheduler.tables, num_steps=4))
    payload["model"] = "tiny-random"
    (tmp_path / "default_run.json").write_text(json.dumps(payload))
    monkeypatch.setattr(reverse, "DEFAULT_RUN", tmp_path / "default_run.json")
    reverse.default_run.cache_clear()
    try:
        view, file, _ = last(reverse.reverse_gif(None))  # no run of the session's own: the one on screen
    finally:
        reverse.default_run.cache_clear()
    shown = gif_frames(file)
    _, of_the_run, _ = last(reverse.reverse_gif(done["state"]))  # the same run, exported from its session
    made = gif_frames(of_the_run)
    assert len(shown) == len(made) == 4 and shown[-1].std() > 0
    for a, b in zip(shown, made):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(reverse, "DEFAULT_RUN", tmp_path / "none.json")
    try:
        with pytest.raises(gr.Error, match="Generate first"):
            last(reverse.reverse_gif(None))  # no default run for this model, and no run: say so
    finally:
        reverse.default_run.cache_clear()


def test_the_estimate_follows_guidance_the_cap_and_this_servers_runs(app_models, monkeypatch):
    plain = reverse.estimate_runtime("tiny-conditional", plans.DDPM, 10, 0.0, 3, "square", 1.0)
    guided = reverse.estimate_runtime("tiny-conditional", plans.DDPM, 10, 0.0, 3, "square", 3.0)
    assert "each on 3 images;" in plain and "each on 6 images (a batch of 3, doubled: guidance" in guided
    monkeypatch.setattr(settings, "MAX_WORK", 100 * 4 * 8 * 8)
    over = reverse.estimate_runtime("tiny-conditional", plans.DDPM, 100, 0.0, 3, "square", 3.0)
    assert over.startswith("**Too much for one run.**") and "a batch of 3, doubled: guidance" in over
    with pytest.raises(gr.Error, match="guidance w = 1 \\(no doubling\\)"):
        plans.run_plan("tiny-conditional", plans.DDPM, 100, 0.0, 3, "square", 3.0)
    # the server's last runs set the pace: runs that took 3× their bare UNet time triple the estimate
    monkeypatch.setattr(models, "run_speed", models.RunSpeed())
    seconds = lambda text: float(text.split("≈ ")[1].split(" s")[0])
    pipe = models.get_pipeline("tiny-random")
    bare = 10 * models.seconds_per_unet_call(pipe, 2)
    first = reverse.estimate_runtime("tiny-random", plans.DDPM, 10, 0.0, 2)
    assert "no run yet" in first
    for _ in range(3):
        models.run_speed.record("tiny-random", 10, 2, 3 * bare, pipe)
    after = reverse.estimate_runtime("tiny-random", plans.DDPM, 10, 0.0, 2)
    assert "last 3 runs" in after and seconds(after) == pytest.approx(3 * bare, abs=0.06)


def test_one_of_each_disables_the_batch_and_says_why(app_models):
    update = reverse.batch_control("tiny-conditional", plans.ONE_OF_EACH)
    assert update["interactive"] is False and "3, one image per class" in update["label"]
    update = reverse.batch_control("tiny-conditional", "square")
    assert update["interactive"] is True and update["label"] == reverse.BATCH_LABEL


def test_hub_models_are_offered_online_and_named_once_offline(app_models, monkeypatch):
    monkeypatch.setattr(models, "hub_reachable", lambda: False)
    names = [name for _, name in models.model_choices()]
    assert "tiny-random" in names and not any(n.endswith(models.HUB_SUFFIX) for n in names)
    assert "google/ddpm-cifar10-32" in models.hub_note() and "can't reach" in models.hub_note()
    monkeypatch.setattr(models, "hub_reachable", lambda: True)  # online: listed as before, and no note
    names = [name for _, name in models.model_choices()]
    assert "google/ddpm-cifar10-32" + models.HUB_SUFFIX in names and models.hub_note() is None


def test_stop_reaches_a_run_still_waiting_in_the_queue(app_models, monkeypatch):
    """Generate notes the session's run as waiting; a Stop then is kept, and the run ends after its first step when
    it starts, saying it stopped. A Stop with no run going or waiting asks nothing of the next run."""
    monkeypatch.setattr(settings, "STREAM_EVERY_S", 0.0)
    request = SimpleNamespace(session_hash="stop-queued")
    assert not stop_requests.request("stop-queued")  # nothing going or waiting
    reverse.note_waiting(request)
    reverse.request_stop(request)
    outputs = list(reverse.reverse_generate("tiny-random", plans.DDPM, 50, **RUN, request=request, in_page=True))
    assert outputs[-1]["status"].startswith("Stopped after 1 model evaluation of 50"), outputs[-1]["status"]
    assert not stop_requests.requested("stop-queued")  # the next run starts clean
    done = list(reverse.reverse_generate("tiny-random", plans.DDPM, 5, **RUN, request=request, in_page=True))
    assert done[-1]["status"].startswith("Done"), done[-1]["status"]


def unet_batches(pipe) -> tuple[list[int], object]:
    """The batch of every later call of ``pipe``'s UNet, and the hook's handle (to remove it)."""
    batches = []
    handle = pipe.unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    return batches, handle


@pytest.mark.parametrize("sampler", [plans.DDPM, "UniPC", "Heun"])
def test_a_guidance_interval_counts_the_unet_calls_the_run_makes(app_models, sampler):
    """Issue 25: outside the guidance interval a step is one pass of the batch, inside it two (one call of 2B): the
    plan counts them before the run, the estimate says so, and the run's UNet calls are exactly those."""
    guidance = dict(class_choice="square", guidance=3.0, guidance_t_lo=15, guidance_t_hi=75, guidance_rescale=0.5)
    plan = plans.run_plan("tiny-conditional", sampler, 10, 0.0, 3, **guidance)
    assert plan.guidance_interval == (15.0, 75.0) and plan.guidance_rescale == 0.5
    inside = sum(plan.guided_evaluations)
    assert len(plan.guided_evaluations) == plan.nfe and 0 < inside < plan.nfe, plan.guided_evaluations
    assert plan.unet_passes == plan.nfe + inside and plan.unet_calls() == {3: plan.nfe - inside, 6: inside}
    estimate = reverse.estimate_runtime("tiny-conditional", sampler, 10, 0.0, 3, **guidance)
    assert (
        f"({plan.nfe} model evaluations, {plan.nfe + inside} UNet passes of 3 images): {inside} inside the guidance "
        f"interval t ∈ [15, 75] on 6 images (a batch of 3, doubled: guidance runs the UNet with and without the "
        f"class), {plan.nfe - inside} outside it on 3 (conditional alone, one pass)"
    ) in estimate, estimate
    assert "rescaled with φ = 0.5" in estimate
    pipe = models.get_pipeline("tiny-conditional")
    models.bare_seconds(pipe, plan.unet_calls())  # the UNet's timing calls for the estimate, made before counting
    batches, handle = unet_batches(pipe)
    try:
        done = last(reverse.reverse_generate("tiny-conditional", sampler, 10, **{**RUN, "batch_size": 3}, **guidance))
    finally:
        handle.remove()
    assert batches == [6 if g else 3 for g in plan.guided_evaluations]  # the plan's calls, one for one
    assert f"guided (w = 3) at {inside} of {plan.nfe} model evaluations" in done["status"], done["status"]
    assert "t ∈ [15, 75]" in done["status"] and "rescaled with φ = 0.5" in done["status"]


def test_the_guidance_interval_and_rescale_reach_the_run(app_models):
    """The same seed with and without them: the interval and φ each change the samples; the whole range 0 … T and
    φ = 0 are the run without them."""
    run = lambda **kw: last(reverse.reverse_generate("tiny-conditional", plans.DDPM, 10, **RUN, **kw))["result"]
    plain = np.asarray(run(class_choice="square", guidance=4.0))
    same = np.asarray(
        run(class_choice="square", guidance=4.0, guidance_t_lo=0, guidance_t_hi=100, guidance_rescale=0.0)
    )
    np.testing.assert_array_equal(same, plain)
    interval = np.asarray(run(class_choice="square", guidance=4.0, guidance_t_lo=30, guidance_t_hi=60))
    rescaled = np.asarray(run(class_choice="square", guidance=4.0, guidance_rescale=1.0))
    assert not np.array_equal(interval, plain) and not np.array_equal(rescaled, plain)
    # no step inside the interval: plainly conditional, as w = 1
    np.testing.assert_array_equal(
        np.asarray(run(class_choice="square", guidance=4.0, guidance_t_lo=95, guidance_t_hi=99)),
        np.asarray(run(class_choice="square", guidance=1.0)),
    )


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(guidance_rescale=1.5), "Guidance rescale φ must be a finite number between 0.0 and 1.0, got 1.5."),
        (dict(guidance_rescale=-0.1), "Guidance rescale φ must be a finite number between 0.0 and 1.0, got -0.1."),
        (dict(guidance_t_hi=101), "Guidance interval's t_hi must be a finite number between 0 and 100, got 101."),
        (
            dict(guidance_t_lo=70, guidance_t_hi=60),
            "Guidance interval's t_lo must be a finite number between 0 and 60, got 70.",
        ),
        (dict(guidance_t_lo="abc"), "Guidance interval's t_lo must be a number"),
    ],
)
def test_bad_guidance_options_get_one_clear_message(app_models, options, message):
    with pytest.raises(gr.Error) as error:
        last(
            reverse.reverse_generate(
                "tiny-conditional", plans.DDPM, 4, **RUN, class_choice="square", guidance=3.0, **options
            )
        )
    assert error.value.message.startswith(message), error.value.message
    estimate = reverse.estimate_runtime("tiny-conditional", plans.DDPM, 4, 0.0, 2, "square", 3.0, **options)
    assert estimate.startswith(f"**Can't run these settings.** {message}"), estimate
    # an unconditional model has no guidance: the options are not read (as w is not)
    assert last(reverse.reverse_generate("tiny-random", plans.DDPM, 2, **RUN, **options))["status"].startswith("Done")


def test_the_interval_and_rescale_start_on_the_models_recommendation_and_say_when_they_do_nothing(app_models):
    *_, accordion, lo, hi, phi, per_class = reverse.conditioning_controls("tiny-conditional")  # none recommended
    assert accordion["visible"] and (lo["value"], hi["value"], phi["value"]) == (0, 100, 0.0) and hi["maximum"] == 100
    assert lo["interactive"] and "Kynkäänniemi" in lo["info"] and "Lin et al." in phi["info"]
    models.get_pipeline("tiny-conditional").register_to_config(
        recommended_guidance_interval=[20, 70], recommended_guidance_rescale=0.5
    )
    assert per_class == {"__type__": "update", "visible": False, "value": False}, "no w per class recorded: hidden"
    _, w, accordion, lo, hi, phi, _ = reverse.conditioning_controls("tiny-conditional")
    assert (w["value"], lo["value"], hi["value"], phi["value"]) == (2.0, 20, 70, 0.5)
    _, w, accordion, *extras = reverse.conditioning_controls("tiny-random")  # unconditional: hidden with w
    assert w["visible"] is False and accordion["visible"] is False
    for class_choice, w, why in [
        (plans.ONE_OF_EACH, 1.0, "at w = 1 (plainly conditional"),
        ("square", 0.0, "at w = 0 (unconditional"),
        (plans.ANY_CLASS, 3.0, "under the class 'any'"),
    ]:
        for update in reverse.guidance_extras_controls(class_choice, w):
            assert (
                update["interactive"] is False and why in update["info"] and "has no effect" in update["info"].lower()
            )
    assert all(u["interactive"] for u in reverse.guidance_extras_controls("square", 2.5))


def test_each_class_at_its_own_w_starts_ticked_runs_and_says_so(app_models):
    """A model that records a w per class: the box shows, ticked, naming them; Generate then draws each class with
    its own w (the images the pipeline draws with those w), the estimate and the done line say so, and unticked it
    is one w for all again. Asked of a model that records none: one clear message."""
    pipe = models.get_pipeline("tiny-conditional")
    pipe.register_to_config(recommended_guidance_class_scales=[1.0, 3.0, 1.0])
    try:
        *_, per_class = reverse.conditioning_controls("tiny-conditional")
        assert per_class["visible"] and per_class["value"] is True
        assert "w = 1, except square 3" in per_class["info"], per_class["info"]
        defaults = reverse.tab_defaults("tiny-conditional")
        assert defaults["guidance_per_class"] is True and defaults["class_choice"] == plans.ONE_OF_EACH
        asked = dict(class_choice=plans.ONE_OF_EACH, guidance=2.0, guidance_per_class=True)
        done = last(reverse.reverse_generate("tiny-conditional", plans.DDPM, 3, **RUN, **asked))
        assert "each class at its own w: w = 1, except square 3" in done["status"], done["status"]
        got = done["state"].trajectory.final
        for w, own in ((1.0, [0, 2]), (3.0, [1])):  # each image as a run at its class's w alone draws it
            alone = last(
                reverse.reverse_generate(
                    "tiny-conditional", plans.DDPM, 3, **RUN, **(asked | {"guidance": w, "guidance_per_class": False})
                )
            )
            torch.testing.assert_close(got[own], alone["state"].trajectory.final[own], atol=1e-5, rtol=1e-5)
            other = [c for c in range(3) if c not in own]
            assert not torch.allclose(got[other], alone["state"].trajectory.final[other])
        # a class whose own w is 1 (one pass a step) is counted so, and its interval controls say they do nothing
        estimate = reverse.estimate_runtime(
            "tiny-conditional", plans.DDPM, 4, 0.0, 2, "circle", 2.0, None, None, None, True
        )
        assert "each on 2 images" in estimate, estimate
        extras = reverse.guidance_extras_controls("circle", 2.0, True, "tiny-conditional")
        assert all(u["interactive"] is False and "w = 1" in u["info"] for u in extras)
        assert all(u["interactive"] for u in reverse.guidance_extras_controls("square", 2.0, True, "tiny-conditional"))
        # ticked, the w slider shows the w the run takes: a class's own, the model's w for a grid; unticked, it stays
        assert reverse.per_class_w("tiny-conditional", "square", True) == 3.0
        assert reverse.per_class_w("tiny-conditional", "circle", True) == 1.0
        assert reverse.per_class_w("tiny-conditional", plans.ONE_OF_EACH, True) == 2.0
        assert reverse.per_class_w("tiny-conditional", plans.ANY_CLASS, True) == 2.0
        for asked_w in (("tiny-conditional", "square", False), ("tiny-random", plans.ANY_CLASS, True)):
            assert isinstance(reverse.per_class_w(*asked_w), type(gr.skip())), asked_w
    finally:
        pipe.register_to_config(recommended_guidance_class_scales=None)
    with pytest.raises(gr.Error, match="records no per-class w"):
        last(reverse.reverse_generate("tiny-conditional", plans.DDPM, 3, **RUN, **asked))


def test_the_done_line_names_guidance_alike_for_one_w_and_each_class_at_its_own(app_models):
    """Whether one w or each class's own asks for guidance, the done line says the same of it: an interval that leaves
    the run no step to guide says "at 0 of N" for both; where every image's w is 1 (a class whose own w is 1) or no
    image has a class, it says nothing of guidance."""
    pipe = models.get_pipeline("tiny-conditional")
    pipe.register_to_config(recommended_guidance_class_scales=[1.0, 3.0, 1.0])
    plan = lambda choice, **kw: plans.run_plan("tiny-conditional", plans.DDPM, 10, 0.0, 3, choice, 2.0, **kw)
    try:
        nowhere = dict(guidance_t_lo=95, guidance_t_hi=96)  # the run's t: 100, 90, …, 10
        for per_class in (False, True):
            asked = plan("square", guidance_per_class=per_class, **nowhere)
            assert not asked.guided and asked.asks_guidance
            note = plans.guidance_text(asked)
            assert note.startswith("guided (") and "at 0 of 10 model evaluations" in note, note
            assert ("each class at its own w" in note) is per_class, note
        assert plans.guidance_text(plan("square", guidance_per_class=True)).startswith("guided (each class")
        for quiet in (plan("circle", guidance_per_class=True, **nowhere), plan(plans.ANY_CLASS)):
            assert not quiet.asks_guidance and plans.guidance_text(quiet) == ""
    finally:
        pipe.register_to_config(recommended_guidance_class_scales=None)
