"""The Hub models, tested without the Hub (issue 27): a look-alike of google/ddpm-cifar10-32 (its exact layout and
configs, random weights) served on this machine by tests/fake_hub.py, loaded from the app's menu, sampled with every
sampler, scrubbed and exported; downloads that break, files and repos that are missing, each one message."""

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from fake_hub import (
    API,
    FakeHub,
    Fault,
    google_repo_files,
    point_huggingface_hub_at,
    serving,
    shrunk,
)
from PIL import Image

from app import models, plans
from app.callbacks import reverse
from pipelines.hub_models import (
    PICKLE_WEIGHTS,
    SAFETENSORS_WEIGHTS,
    SCHEDULER_CONFIG,
    SUBFOLDERS,
    google_ddpm_configs,
    hub_endpoint,
)
from pipelines.loading import CheckpointError, DownloadError, load_pipeline
from pipelines.samplers import SAMPLERS
from pipelines.scheduler import DDPMExplorerScheduler

ROOT = Path(__file__).resolve().parents[1]
CIFAR = "google/ddpm-cifar10-32"
CAT = "google/ddpm-cat-256"
CIFAR_NAME, CAT_NAME = CIFAR + models.HUB_SUFFIX, CAT + models.HUB_SUFFIX
FIXED_LARGE = next(k for k, v in plans.VARIANCE_CHOICES.items() if v == "fixed_large")


@pytest.fixture(scope="module")
def cifar_small():
    """google/ddpm-cifar10-32's layout and configs, its UNet 32 channels wide (~1M parameters): (files, weights)."""
    return google_repo_files(CIFAR, shrunk(google_ddpm_configs()[CIFAR][0]))


@pytest.fixture(scope="module")
def cat_small():
    return google_repo_files(CAT, shrunk(google_ddpm_configs()[CAT][0]), seed=1)


@pytest.fixture
def hub(cifar_small, cat_small, monkeypatch, tmp_path):
    """The look-alike Hub serving google/ddpm-cifar10-32 and google/ddpm-cat-256 (flat, as on the Hub), with
    huggingface_hub pointed at it and its cache in tmp_path."""
    fake = FakeHub(repos={CIFAR: dict(cifar_small[0]), CAT: dict(cat_small[0])})
    with serving(fake):
        point_huggingface_hub_at(monkeypatch, fake.url, tmp_path / "hf-cache")
        models._can_connect.cache_clear()
        yield fake
    models._can_connect.cache_clear()


@pytest.fixture
def no_backoff(monkeypatch):
    """huggingface_hub's 1 s pauses between resumed downloads, skipped and counted."""
    import huggingface_hub.file_download as file_download

    pauses = []
    fake_time = SimpleNamespace(**{k: getattr(file_download.time, k) for k in dir(file_download.time)})
    fake_time.sleep = pauses.append
    monkeypatch.setattr(file_download, "time", fake_time)
    return pauses


def requests_for(hub: FakeHub, repo: str, name: str, method: str | None = None) -> list[str]:
    """The requests (of ``method``, or all) for a repo file: by its path, or for its blob on the CDN."""
    data = hub.repos[repo].get(name) if repo in hub.repos else None
    blob = f"/cdn/{hashlib.sha256(data).hexdigest()}" if data is not None else None
    return [p for p in hub.paths(method) if p.endswith(f"/{repo}/resolve/main/{name}") or (blob and p == blob)]


def downloads(hub: FakeHub, repo: str, name: str) -> int:
    """How many times an LFS file's bytes were asked for (its blob, GET from the CDN)."""
    return len([p for p in requests_for(hub, repo, name, "GET") if p.startswith("/cdn/")])


def hub_cache() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def assert_weights_equal(unet, state):
    loaded = unet.state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)


def last(outputs):
    return list(outputs)[-1]


# --- loading -------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_exact_cifar10_repo_loads_safetensors_only(monkeypatch, tmp_path):
    """The real config (35.7M parameters, 143 MB of weights): loaded from the flat layout, every weight as served
    (their 0.1.1 attention names renamed by diffusers), the .bin, the example script and the images never asked for."""
    unet_config, scheduler_config = google_ddpm_configs()[CIFAR]
    files, state = google_repo_files(CIFAR)
    fake = FakeHub(repos={CIFAR: files})
    with serving(fake):
        point_huggingface_hub_at(monkeypatch, fake.url, tmp_path / "hf-cache")
        pipe = load_pipeline(CIFAR)
    assert sum(p.numel() for p in pipe.unet.parameters()) == 35_746_307
    assert len(files[PICKLE_WEIGHTS]) > 140e6 and len(files[SAFETENSORS_WEIGHTS]) > 140e6
    assert_weights_equal(pipe.unet, state)
    for key, value in unet_config.items():
        if not key.startswith("_"):
            assert json.loads(json.dumps(pipe.unet.config[key])) == value, key
    assert pipe.sample_shape == (3, 32, 32)
    config = pipe.scheduler.config
    assert (config.variance_type, config.beta_schedule, config.num_train_timesteps) == ("fixed_large", "linear", 1000)
    assert config.clip_sample and not config.thresholding and config.prediction_type == "epsilon"
    assert scheduler_config["variance_type"] == "fixed_large"
    assert requests_for(fake, CIFAR, PICKLE_WEIGHTS) == []
    assert not [p for p in fake.paths() if "modeling_ddpm" in p or "/images/" in p or p.endswith("README.md")]
    assert downloads(fake, CIFAR, SAFETENSORS_WEIGHTS) == 1


def test_the_unet_subfolder_layout_loads_too(hub, tmp_path):
    """google/ddpm-ema-cat-256's layout: unet/ and scheduler/ (current attention names)."""
    config = shrunk(google_ddpm_configs()[CAT][0])
    files, state = google_repo_files(CAT, config, layout=SUBFOLDERS, seed=2, old_names=False)
    hub.repos["google/ddpm-ema-cat-256"] = files
    pipe = load_pipeline("google/ddpm-ema-cat-256")
    assert_weights_equal(pipe.unet, state)
    assert pipe.sample_shape == (3, 256, 256) and pipe.scheduler.config.variance_type == "fixed_small"
    assert requests_for(hub, "google/ddpm-ema-cat-256", "unet/" + PICKLE_WEIGHTS) == []
    assert f"/google/ddpm-ema-cat-256/resolve/main/scheduler/{SCHEDULER_CONFIG}" in hub.paths("GET")


def test_a_sharded_repo_loads_its_index_and_every_shard_and_no_other_file(hub, monkeypatch, tmp_path):
    """A repo saved as save_checkpoint saves a model over the shard size: unet/ holds an index and its shards."""
    from conftest import make_tiny_unet

    from pipelines import DDPMExplorerPipeline, loading

    monkeypatch.setattr(loading, "MAX_SHARD_SIZE", "10KB")
    torch.manual_seed(0)
    unet = make_tiny_unet(sample_size=32)
    loading.save_checkpoint(DDPMExplorerPipeline(unet=unet, scheduler=DDPMExplorerScheduler()), tmp_path / "saved")
    files = {
        p.relative_to(tmp_path / "saved").as_posix(): p.read_bytes()
        for p in (tmp_path / "saved").rglob("*")
        if p.is_file()
    }
    shards = sorted(name for name in files if "-of-" in name)
    assert len(shards) >= 3
    files["unet/" + PICKLE_WEIGHTS] = b"pickle, never fetched"
    hub.repos["someone/sharded"] = files
    assert_weights_equal(load_pipeline("someone/sharded").unet, unet.state_dict())
    for name in [*shards, "unet/" + loading.SHARD_INDEX]:
        assert requests_for(hub, "someone/sharded", name, "GET"), name
    assert requests_for(hub, "someone/sharded", "unet/" + PICKLE_WEIGHTS) == []
    del files[shards[1]]  # the index names a shard the repo does not have
    hub.repos["someone/broken"] = files
    with pytest.raises(CheckpointError, match="which the repo does not have"):
        load_pipeline("someone/broken")


def test_offline_a_downloaded_model_loads_from_the_cache_alone(hub, cifar_small, monkeypatch, tmp_path):
    from huggingface_hub import constants

    load_pipeline(CIFAR)
    seen = len(hub.requests)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert_weights_equal(load_pipeline(CIFAR).unet, cifar_small[1])
    assert len(hub.requests) == seen, "offline: not one request"
    with pytest.raises(DownloadError, match="not in the cache"):
        load_pipeline(CAT)  # never downloaded


@pytest.mark.parametrize("hub_id", list(google_ddpm_configs()))
def test_our_scheduler_equals_diffusers_on_each_hub_models_config(hub_id):
    """What the app does with google/ddpm-*'s scheduler configs: Σ_t as the config says (cifar10's fixed_large), Ho
    et al.'s linear β, x̂₀ clipped to [−1, 1], no thresholding, ε-prediction; equal to diffusers' DDPMScheduler built
    from the same config at every one of the 1,000 steps. Respaced, our runs start at t = T (trailing), where
    diffusers' default for these configs ('leading') starts 20 below at 50 steps."""
    _, config = google_ddpm_configs()[hub_id]
    ours, ref = DDPMExplorerScheduler.from_config(config), DDPMScheduler.from_config(config)
    c = ours.config
    assert (c.variance_type, c.beta_schedule) == (config["variance_type"], "linear")
    assert (c.beta_start, c.beta_end, c.num_train_timesteps) == (1e-4, 0.02, 1000)
    assert c.clip_sample and c.clip_sample_range == 1.0 and not c.thresholding and c.prediction_type == "epsilon"
    torch.testing.assert_close(ours.betas, ref.betas, rtol=0, atol=1e-7)
    assert ours.timesteps.tolist() == ref.timesteps.tolist() == list(range(999, -1, -1))
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    model = lambda x, t: 0.3 * x * (t / 1000) - 0.05  # an ε-model that pushes x̂₀ past ±1 sometimes: clipping acts
    for t in ours.timesteps.tolist():
        a = ours.step(model(x, t), t, x, generator=torch.Generator().manual_seed(t))
        b = ref.step(model(x, t), t, x, generator=torch.Generator().manual_seed(t))
        torch.testing.assert_close(a.prev_sample, b.prev_sample, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a.pred_original_sample, b.pred_original_sample, rtol=1e-5, atol=1e-6)
        x = a.prev_sample
    assert x.abs().max() <= 1.0 + 1e-6, "the last step returns the clipped x̂₀'s posterior mean"
    ours.set_timesteps(50)
    ref.set_timesteps(50)
    assert ours.timesteps[0] == 999 and ref.timesteps[0] == 980


# --- the app -------------------------------------------------------------------------------------------------------


def test_hub_reachable_probes_the_host_of_hf_endpoint(monkeypatch):
    """The menu's probe goes where downloads go: a listening socket named by HF_ENDPOINT gets the connection; with
    nothing there, or HF_HUB_OFFLINE set, the Hub models are left out of the menu with the note."""
    import socket

    from huggingface_hub import constants

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(10)
    port = listener.getsockname()[1]
    can_connect = models._can_connect  # cached per (host, port)
    can_connect.cache_clear()
    try:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
        assert hub_endpoint() == f"http://127.0.0.1:{port}"
        assert models.hub_reachable()
        listener.accept()[0].close()  # the probe's connection, to this host and port
        listener.close()
        assert models.hub_reachable(), "checked once per host"
        models._can_connect.cache_clear()
        assert not models.hub_reachable(), "nothing listens there now"
        monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")
        monkeypatch.setattr(models, "_can_connect", lambda host, port: (host, port) == ("huggingface.co", 443))
        assert models.hub_reachable(), "the default endpoint: huggingface.co:443"
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        assert not models.hub_reachable()
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as huggingface_hub read it at import
        assert not models.hub_reachable()
    finally:
        listener.close()
        can_connect.cache_clear()


def test_the_menu_offers_the_hub_models_when_hf_endpoint_answers(app_models, hub):
    names = [name for _, name in models.model_choices()]
    assert CIFAR_NAME in names and "tiny-random" in names and models.hub_note() is None
    assert reverse.variance_controls(CIFAR_NAME)["value"] == FIXED_LARGE, "the model's own Σ_t"


def test_a_hub_model_from_the_menu_samples_with_every_sampler_scrubs_and_exports(app_models, hub, cifar_small):
    pipe = models.get_pipeline(CIFAR_NAME)
    assert models.get_pipeline(CIFAR_NAME) is pipe, "downloaded once, then cached"
    assert_weights_equal(pipe.unet, cifar_small[1])
    run = dict(eta=0.0, variance_type=FIXED_LARGE, clip=True, seed=0, batch_size=2)
    done = {}
    for sampler in SAMPLERS.values():
        done[sampler.name] = last(reverse.reverse_generate(CIFAR_NAME, sampler.name, 3, **run, in_page=True))
        out = done[sampler.name]
        assert out["status"].startswith(f"Done: {sampler.name}, 3 steps"), out["status"]
        trajectory = out["state"].trajectory
        assert trajectory.samples.shape[1:] == (2, 3, 32, 32) and len(trajectory) == sampler.nfe_of(3)
        assert torch.isfinite(trajectory.final).all() and trajectory.final.std() > 0
        payload = json.loads(out["scrubber"])
        assert payload["num_steps"] == 3 and len(payload["t"]) == sampler.nfe_of(3) and payload["complete"]
    ddpm = done[plans.DDPM]
    t_values = ddpm["state"].trajectory.t_values
    x_t, x0_hat, eps_hat, curves, caption = reverse.reverse_frame(ddpm["state"], t_values[1])
    assert caption.startswith(f"**Step 2 of 3: t = {t_values[1]} →") and x_t.size == x0_hat.size == eps_hat.size
    assert np.asarray(x_t).shape[-1] == 3, "colour frames"
    _, gif, _ = last(reverse.reverse_gif(ddpm["state"]))
    frames = Image.open(gif)
    assert frames.n_frames == len(t_values)


def test_a_download_in_progress_holds_up_only_that_model(app_models, hub):
    """A Hub model downloading (the server holds its weights back) while a local model loads."""
    held = threading.Event()
    hub.faults[SAFETENSORS_WEIGHTS] = Fault(hold=held)
    loaded = {}
    downloading = threading.Thread(target=lambda: loaded.setdefault("hub", models.get_pipeline(CIFAR_NAME)))
    downloading.start()
    try:
        hub.wait_for(lambda r: r.method == "GET" and r.path.startswith("/cdn/"))
        local = threading.Thread(target=lambda: loaded.setdefault("local", models.get_pipeline("tiny-random")))
        local.start()
        local.join(timeout=60)
        assert "local" in loaded and downloading.is_alive(), "the local model loaded while the download waited"
    finally:
        held.set()
        downloading.join(timeout=60)
    assert loaded["hub"].sample_shape == (3, 32, 32)


@pytest.mark.parametrize(
    "fault, gets, why",
    [
        (dict(cut=0.5, times=6), 6, "the connection closed after {half:,} of {size:,} bytes"),
        (dict(cut=0.5, short=True, times=1), 1, "{half:,} of {size:,} bytes arrived"),
    ],
    ids=["connection closed half-way", "short body"],
)
def test_a_download_broken_off_is_one_message_and_tried_again(
    app_models, hub, no_backoff, cifar_small, fault, gets, why
):
    """The weights cut off half-way on every try (huggingface_hub resumes 5 times, 1 s apart, then gives up), or sent
    whole but short: one message, nothing kept, the other models usable, and the next request downloads again."""
    hub.faults[SAFETENSORS_WEIGHTS] = Fault(**fault)
    with pytest.raises(models.ModelUnavailable) as failed:
        models.get_pipeline(CIFAR_NAME)
    size = len(cifar_small[0][SAFETENSORS_WEIGHTS])
    assert str(failed.value) == (
        f"{CIFAR_NAME} could not be loaded: {CIFAR}: downloading {SAFETENSORS_WEIGHTS} from {hub.url} failed "
        f"({why.format(half=size // 2, size=size)}). Nothing was kept; try again."
    )
    assert downloads(hub, CIFAR, SAFETENSORS_WEIGHTS) == gets
    assert len(no_backoff) == gets - 1
    blobs = {p.name for p in (Path(hub_cache()) / "models--google--ddpm-cifar10-32" / "blobs").iterdir()}
    assert len(blobs) == 3, "the config, scheduler config and model_index.json, and nothing of the weights"
    assert hashlib.sha256(cifar_small[0][SAFETENSORS_WEIGHTS]).hexdigest() not in blobs
    assert models.get_pipeline("tiny-random").sample_shape == (1, 8, 8)
    assert models.get_pipeline(CAT_NAME).sample_shape == (3, 256, 256), "another Hub model"
    assert_weights_equal(models.get_pipeline(CIFAR_NAME).unet, cifar_small[1])  # tried again: loads


def test_a_broken_download_resumes_where_it_stopped(hub, cifar_small, no_backoff, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)  # real ones: 10 MB chunks of a 143 MB file
    hub.faults[SAFETENSORS_WEIGHTS] = Fault(cut=0.5, times=1)
    assert_weights_equal(load_pipeline(CIFAR).unet, cifar_small[1])
    gets = [r for r in hub.requests if r.method == "GET" and r.path.startswith("/cdn/")]
    assert len(gets) == 2 and "range" not in gets[0].headers
    start = int(gets[1].headers["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < start <= len(cifar_small[0][SAFETENSORS_WEIGHTS]) // 2


def test_a_server_error_is_not_remembered(app_models, hub):
    hub.faults[API] = Fault(status=503, times=1)
    with pytest.raises(models.ModelUnavailable, match=r"its file list from .* failed \(the server answered 503\)"):
        models.get_pipeline(CIFAR_NAME)
    assert models.get_pipeline(CIFAR_NAME).sample_shape == (3, 32, 32)


def only_pickle(hub):
    del hub.repos[CIFAR][SAFETENSORS_WEIGHTS]


def weights_listed_but_gone(hub):
    hub.missing.add(SAFETENSORS_WEIGHTS)


def no_scheduler_config(hub):
    del hub.repos[CIFAR][SCHEDULER_CONFIG]


@pytest.mark.parametrize(
    "breakage, message",
    [
        (only_pickle, f"has only pickle weights \\({PICKLE_WEIGHTS}\\); .* only safetensors are accepted"),
        (weights_listed_but_gone, f"has no {SAFETENSORS_WEIGHTS} on http://127.0.0.1"),
        (no_scheduler_config, f"has no {SCHEDULER_CONFIG}\\.$"),
    ],
    ids=["only the .bin", "weights 404", "no scheduler config"],
)
def test_a_missing_file_is_one_message_remembered_and_no_pickle_is_fetched(app_models, hub, breakage, message):
    breakage(hub)
    prefix = f"^{re.escape(CIFAR_NAME)} could not be loaded: {CIFAR} "
    with pytest.raises(models.ModelUnavailable, match=prefix + message):
        models.get_pipeline(CIFAR_NAME)
    seen = len(hub.requests)
    with pytest.raises(models.ModelUnavailable, match=message):
        models.get_pipeline(CIFAR_NAME)
    assert len(hub.requests) == seen, "remembered: the repo's own problem, not the network's"
    assert requests_for(hub, CIFAR, PICKLE_WEIGHTS) == []
    assert models.get_pipeline("tiny-random").sample_shape == (1, 8, 8)


def test_a_repo_the_hub_does_not_have_is_one_message(app_models, hub):
    del hub.repos[CAT]
    with pytest.raises(models.ModelUnavailable) as failed:
        models.get_pipeline(CAT_NAME)
    assert str(failed.value) == (
        f"{CAT_NAME} could not be loaded: {CAT} is not a model repository on {hub.url} (or it is private or gated)."
    )
    assert models.get_pipeline(CIFAR_NAME).sample_shape == (3, 32, 32), "another Hub model"
    assert models.get_pipeline("tiny-random").sample_shape == (1, 8, 8)


def test_a_bad_repo_id_is_a_checkpoint_error(hub):
    with pytest.raises(CheckpointError, match="not a valid Hub id"):
        load_pipeline("google/no such repo")


# --- HF_ENDPOINT set before the import, as on a machine -------------------------------------------------------------


@pytest.mark.slow
def test_hf_endpoint_set_before_the_import_is_where_the_app_goes(hub, tmp_path):
    """A fresh interpreter, HF_ENDPOINT in its environment from the start: the menu offers the Hub models and one
    loads from this server. (The other tests patch huggingface_hub.constants, which it read at import.)"""
    script = (
        "from app import models\n"
        "assert models.hub_reachable()\n"
        f"assert {CIFAR_NAME!r} in [n for _, n in models.model_choices()]\n"
        f"print(models.get_pipeline({CIFAR_NAME!r}).sample_shape)\n"
    )
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_CACHE": str(tmp_path / "fresh-cache"),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("(3, 32, 32)")
    assert f"/api/models/{CIFAR}" in hub.paths("GET") and downloads(hub, CIFAR, SAFETENSORS_WEIGHTS) == 1
