"""Each model's defaults and work cap (app/model_defaults.py, issue 27): the Hub models' default runs fit a free CPU
Space's 10 s by their measured figures, picking a 256 px model moves the reverse tab's steps and batch and says what
it costs before it runs, and a request over a model's own cap is refused with one message. No timing here: the
figures are benchmarks/hub_architectures.py's."""

import json

import gradio as gr
import pytest

from app import model_defaults, models, plans, settings
from app.callbacks import reverse, sdedit
from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler
from pipelines.hub_models import google_ddpm_configs
from tests.conftest import make_tiny_unet, point_app_at

HUB_NAMES = [hub_id + models.HUB_SUFFIX for hub_id in models.HUB_MODELS]
CHURCH = "google/ddpm-church-256" + models.HUB_SUFFIX


@pytest.fixture(scope="module")
def large_checkpoints(tmp_path_factory):
    """A checkpoint folder with a tiny random UNet of 256 px ('tiny-256') beside an 8 px one ('tiny-random')."""
    root = tmp_path_factory.mktemp("checkpoints-256")
    for name, size in (("tiny-256", 256), ("tiny-random", 8)):
        scheduler = DDPMExplorerScheduler(num_train_timesteps=100, beta_schedule="linear")
        DDPMExplorerPipeline(unet=make_tiny_unet(sample_size=size), scheduler=scheduler).save_pretrained(root / name)
    return root


@pytest.fixture
def large_models(large_checkpoints, monkeypatch):
    point_app_at(large_checkpoints, monkeypatch)
    monkeypatch.setattr(models, "run_speed", models.RunSpeed())
    yield large_checkpoints
    models.seconds_per_unet_call.cache_clear()


@pytest.mark.parametrize("name", HUB_NAMES, ids=models.HUB_MODELS)
def test_each_hub_models_default_run_fits_10_s_and_its_cap(name):
    """By the recorded figures (a 2-vCPU CPU), the default run (the default sampler at the model's steps and batch)
    takes under RUN_BUDGET_S with the run's overhead, within the model's cap, and the cap itself is a run of at most
    about CAP_BUDGET_S."""
    defaults = plans.defaults_for(name)
    arch = defaults.architecture
    assert arch is not None and defaults.max_work is not None
    sampler = plans.check_sampler(plans.DEFAULT_SAMPLER)
    nfe = sampler.nfe_of(defaults.steps)
    assert defaults.run_seconds(nfe, defaults.batch) <= model_defaults.RUN_BUDGET_S
    pixels = arch.sample_size**2
    assert nfe * defaults.batch * pixels <= defaults.work_cap
    plans.check_work_within(defaults, (arch.sample_size, arch.sample_size), nfe, defaults.batch)  # no error
    assert 1 <= defaults.steps <= settings.MAX_STEPS and 1 <= defaults.batch <= settings.MAX_BATCH
    # the cap: the most UNet calls of one image that take at most CAP_BUDGET_S (a call of 4 costs less per image)
    calls = defaults.work_cap // pixels
    budget = model_defaults.CAP_BUDGET_S
    assert defaults.run_seconds(calls, 1) <= budget < defaults.run_seconds(calls + 1, 1)
    assert defaults.run_seconds(defaults.work_cap // (4 * pixels), 4) <= budget
    # the app's defaults (its sampler's N, its batch), each cut only where the budget needs it
    app, over = (
        plans.APP_DEFAULTS,
        lambda calls, batch: defaults.run_seconds(calls, batch) > model_defaults.RUN_BUDGET_S,
    )
    assert defaults.steps == app.steps or over(sampler.nfe_of(defaults.steps + 1), defaults.batch)
    assert defaults.batch == app.batch or over(nfe, defaults.batch + 1)


def test_the_table_covers_the_allowlist_and_a_loaded_hub_model_gets_the_same_by_its_architecture():
    """Keyed by registry name for the Hub models; the same entry by architecture once loaded (what check_work
    reads), so the page's estimate and the server's cap agree. A 256 px model not listed gets the 256 px defaults
    without figures; the bundled 32 px models keep the app's."""
    assert set(model_defaults.BY_NAME) == set(HUB_NAMES)
    for hub_id, (unet_config, _) in google_ddpm_configs().items():
        assert model_defaults.for_unet(unet_config) is model_defaults.by_name(hub_id + models.HUB_SUFFIX)
    other_256 = make_tiny_unet(sample_size=256).config
    assert model_defaults.for_unet(other_256) is model_defaults.LARGE_DEFAULTS
    assert model_defaults.LARGE_DEFAULTS.architecture is None
    for folder in ("fashion-mnist-32", "fashion-mnist-32-cond"):
        config = json.loads((settings.ROOT / "checkpoints" / folder / "unet" / "config.json").read_text())
        assert model_defaults.for_unet(config) is None
    assert plans.defaults_for("fashion-mnist-32-cond") is plans.APP_DEFAULTS


def test_a_models_cap_scales_with_max_work(monkeypatch):
    church = plans.defaults_for(CHURCH)
    assert church.work_cap == church.max_work == model_defaults.LARGE_DEFAULTS.work_cap  # at the shipped MAX_WORK
    monkeypatch.setattr(settings, "MAX_WORK", 10 * settings.DEFAULT_MAX_WORK)  # a machine of one's own
    assert church.work_cap == 10 * church.max_work
    assert plans.APP_DEFAULTS.work_cap == settings.MAX_WORK


def test_a_measured_architecture_is_not_timed_on_the_cpu(monkeypatch):
    """The estimate's UNet time of a listed architecture on a CPU is its measured figure: no UNet call (one of the
    256 px models takes about 5 s, four of them would hold up the estimate or the run that asked)."""
    unet_config, scheduler_config = google_ddpm_configs()["google/ddpm-cifar10-32"]
    from diffusers import UNet2DModel

    pipe = DDPMExplorerPipeline(
        unet=UNet2DModel.from_config(unet_config), scheduler=DDPMExplorerScheduler.from_config(scheduler_config)
    )

    def no_call(*args, **kwargs):
        raise AssertionError("the UNet was called")

    pipe.unet.forward = no_call
    try:
        assert models.seconds_per_unet_call(pipe, 4) == model_defaults.DDPM_CIFAR10.seconds(4)
        # the estimate of the loaded model says where its figure comes from
        name = "google/ddpm-cifar10-32" + models.HUB_SUFFIX
        monkeypatch.setattr(models, "hub_reachable", lambda: True)
        monkeypatch.setattr(models, "_cache", {name: pipe})
        monkeypatch.setattr(models, "run_speed", models.RunSpeed())
        estimate = reverse.estimate_runtime(name, plans.DEFAULT_SAMPLER, 10, 0.0, 4)
        seconds = 10 * model_defaults.DDPM_CIFAR10.seconds(4)
        assert estimate.startswith(f"**≈ {seconds:.1f} s** for 10 steps (10 model evaluations), each on 4 images")
        assert "measured on a 2-vCPU CPU (no run here yet)" in estimate and "a step" not in estimate  # 32 px, fast
    finally:
        models.seconds_per_unet_call.cache_clear()


def test_picking_a_256_px_model_moves_steps_and_batch_and_names_its_cost(large_models):
    steps, batch, sampler = reverse.model_defaults_controls("tiny-256")
    large = model_defaults.LARGE_DEFAULTS
    assert (steps["value"], batch["value"]) == (large.steps, large.batch) == (1, 1)
    steps, batch, sampler = reverse.model_defaults_controls("tiny-random")  # back to a small model: the app's
    assert (steps["value"], batch["value"], sampler["value"]) == (
        plans.DEFAULT_STEPS,
        plans.DEFAULT_BATCH,
        plans.DEFAULT_SAMPLER,
    )
    # the estimate says what a step of a 256 px model costs, and what the run does
    estimate = reverse.estimate_runtime("tiny-256", plans.DEFAULT_SAMPLER, 1, 0.0, 1)
    assert "1 step (1 model evaluation), each on 1 image" in estimate and "s a step** at this batch" in estimate
    assert "s a step" not in reverse.estimate_runtime("tiny-random", plans.DEFAULT_SAMPLER, 10, 0.0, 4)
    # on opening, a slider already on the model's value is left alone (a person may have moved it since)
    assert reverse.opening_defaults_controls("tiny-random") == (gr.skip(), gr.skip(), gr.skip())


def test_a_hub_model_shows_its_defaults_and_cost_before_it_is_downloaded(large_models, monkeypatch):
    """Picking a Hub model (a download of minutes) sets its steps and batch and its estimate at once, from the
    measured figures, and says what the download is: nothing is loaded."""
    monkeypatch.setattr(models, "hub_reachable", lambda: True)

    def not_now(name):
        raise AssertionError(f"{name} was loaded")

    monkeypatch.setattr(models, "get_pipeline", not_now)
    steps, batch, estimate = reverse.listed_model_preview(CHURCH, plans.DEFAULT_SAMPLER)
    assert (steps["value"], batch["value"]) == (1, 1)
    seconds = model_defaults.DDPM_256.seconds(1) * model_defaults.RUN_OVERHEAD
    assert estimate.startswith(f"**≈ {seconds:.1f} s** for 1 step (1 model evaluation), each on 1 image")
    assert f"**≈ {reverse.seconds_text(seconds)} s a step**" in estimate and "256 px" in estimate
    assert "downloads ≈ 455 MB" in estimate
    assert reverse.estimate_runtime(CHURCH, plans.DEFAULT_SAMPLER, 1, 0.0, 1, plans.ONE_OF_EACH, 1.75) == estimate
    assert reverse.model_defaults_controls(CHURCH)[:2] == (steps, batch)
    cifar = reverse.estimate_runtime("google/ddpm-cifar10-32" + models.HUB_SUFFIX, plans.DEFAULT_SAMPLER, 10, 0.0, 4)
    assert "10 steps (10 model evaluations), each on 4 images" in cifar and "downloads ≈ 143 MB" in cifar
    cap = model_defaults.HUB_256_DEFAULTS.work_cap
    over = reverse.estimate_runtime(CHURCH, plans.DEFAULT_SAMPLER, cap // (256 * 256) + 1, 0.0, 1)
    assert over.startswith("**Too much for one run.**") and f"limit for this model of {cap:,}" in over
    # a model already loaded gets the handlers after loading it; the preview leaves the controls alone
    monkeypatch.setattr(models, "is_loaded", lambda name: True)
    assert reverse.listed_model_preview(CHURCH, plans.DEFAULT_SAMPLER) == (gr.skip(), gr.skip(), gr.skip())
    monkeypatch.setattr(models, "hub_reachable", lambda: False)  # offline: the estimate says so
    monkeypatch.setattr(models, "is_loaded", lambda name: False)
    assert "unavailable" in reverse.estimate_runtime(CHURCH, plans.DEFAULT_SAMPLER, 1, 0.0, 1)


def test_a_request_over_a_models_own_cap_is_refused_with_one_message(large_models):
    """A 256 px model's cap is a few UNet calls of one image (n): n + 1 steps are refused, at run time and in the
    estimate, in every handler that samples, with what the cap allows; n are run."""
    cap = model_defaults.LARGE_DEFAULTS.work_cap
    n = cap // (256 * 256)
    assert 1 <= n < 10
    message = (
        f"That asks for {n + 1} UNet calls × 1 images × 256×256 px = {(n + 1) * 256 * 256:,}, over this server's "
        f"limit for this model of {cap:,} ({plans.plural(n, 'UNet call')} of one 256×256 image). Use fewer steps "
        "or a smaller batch."
    )
    variance = next(iter(plans.VARIANCE_CHOICES))
    with pytest.raises(gr.Error) as refused:
        list(reverse.reverse_generate("tiny-256", plans.DDPM, n + 1, 0.0, variance, True, 0, 1))
    assert refused.value.message == message
    assert reverse.estimate_runtime("tiny-256", plans.DDPM, n + 1, 0.0, 1) == f"**Too much for one run.** {message}"
    with pytest.raises(gr.Error, match=f"limit for this model of {cap:,}"):
        plans.run_plan("tiny-256", plans.DDPM, n // 2 + 1, 0.0, 2)  # the batch counts too
    with pytest.raises(gr.Error, match=f"limit for this model of {cap:,}"):
        list(sdedit.sdedit("tiny-256", None, 100, 40, 0))  # another handler, the same cap
    assert plans.run_plan("tiny-256", plans.DDPM, n, 0.0, 1).num_steps == n
    # the small model beside it keeps the server's MAX_WORK
    assert plans.run_plan("tiny-random", plans.DDPM, 100, 0.0, 16).batch_size == 16


def test_the_reverse_tab_follows_the_model_in_one_event_for_the_load_and_a_change(app_models):
    """Wiring: what follows the model (its classes with its steps and batch, the preview of a listed model, the Σ_t
    radio) is one event each for the page's load and a change of model, run in their order: as two events they ran
    side by side, and the answer for the page's first model could land after one for a model picked since. Each
    hangs off the one page-only event of those two triggers (``widgets.listen``), deferring a second call. The class
    controls and the steps and batch come in one answer (the estimate their change triggers reads both); on a change
    the steps and batch are the model's defaults, on the load only those the page was not built with."""
    from app.tabs import reverse as tab

    with gr.Blocks() as demo:
        tab.create_tab(demo, gr.State())
    by_fn = {}
    for f in demo.fns.values():
        by_fn.setdefault(getattr(f.fn, "__name__", None), []).append(f)
    labels = lambda f: [getattr(o, "label", None) for o in f.outputs]
    for handler in ("model_controls", "listed_model_preview", "variance_controls"):
        (event,) = by_fn[handler]
        assert event.trigger_mode == "always_last" and event.trigger_after is not None, handler
        fan_out = demo.fns[event.trigger_after]
        assert sorted(name for _, name in fan_out.targets) == ["change", "load"], handler
        assert fan_out.fn is None and fan_out.js, handler  # in the page: no round trip of its own
    (controls,) = by_fn["model_controls"]
    assert labels(controls)[0] == "Class (class-conditional models)"
    assert labels(controls)[-3:] == ["Steps N (T: every timestep)", reverse.BATCH_LABEL, "Sampler"]
    model_dropdown = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == reverse.MODEL_ELEM_ID)
    changed = reverse.model_controls("tiny-conditional", gr.EventData(model_dropdown, None))
    loaded = reverse.model_controls("tiny-conditional", gr.EventData(None, None))
    assert changed[:-3] == loaded[:-3] == reverse.conditioning_controls("tiny-conditional")
    assert changed[-3:] == reverse.model_defaults_controls("tiny-conditional")
    assert loaded[-3:] == reverse.opening_defaults_controls("tiny-conditional")


def test_a_checkpoint_that_records_its_own_sampler_starts_on_it(app_models):
    """model_index.json's recommended sampler and N: picking the model moves the sampler and steps there, its help
    line says why, and a model without one goes back to the app's."""
    pipe = models.get_pipeline("tiny-conditional")
    pipe.register_to_config(recommended_sampler="ddpm", recommended_num_inference_steps=50)
    try:
        steps, batch, sampler = reverse.model_defaults_controls("tiny-conditional")
        assert (steps["value"], batch["value"], sampler["value"]) == (50, plans.DEFAULT_BATCH, plans.DDPM)
        assert f"This model's own default, as its model_index.json records: {plans.DDPM}, 50 steps" in sampler["info"]
        assert "own default" in reverse.sampler_help(plans.DDPM, "tiny-conditional")["info"]
        assert "own default" not in reverse.sampler_help(plans.DEFAULT_SAMPLER, "tiny-conditional")["info"]
        assert plans.defaults_for("tiny-conditional", pipe).steps == 50
    finally:
        pipe.register_to_config(recommended_sampler=None, recommended_num_inference_steps=None)
    steps, _, sampler = reverse.model_defaults_controls("tiny-conditional")
    assert (steps["value"], sampler["value"]) == (plans.DEFAULT_STEPS, plans.DEFAULT_SAMPLER)
    assert sampler["info"] == plans.sampler_note(plans.DEFAULT_SAMPLER)
