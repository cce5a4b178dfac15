import atexit
import contextlib
import os
import shutil
import socket
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# gradio's cache, one per test process: an app deletes every file it wrote as it closes, and uploads of the same bytes
# share one path, so with the folder the xdist controller set for both workers (they inherit its environment), one
# worker's app closing deleted the upload another worker's test was about to read.
os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(
    prefix=f"ddpm-explorer-tests-gradio-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-"
)

import pytest
import torch
from diffusers import UNet2DModel

from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler

atexit.register(shutil.rmtree, os.environ["GRADIO_TEMP_DIR"], ignore_errors=True)
torch.set_num_threads(int(os.environ.get("TEST_TORCH_THREADS", "1")))  # tiny models: threads only add overhead


def make_tiny_unet(
    sample_size: int = 8,
    channels: int = 1,
    seed: int = 0,
    num_class_embeds: int | None = None,
    learned_variance: bool = False,
) -> UNet2DModel:
    """A random UNet of a few thousand parameters; class-conditional given ``num_class_embeds`` (the last one the
    null label); with ``learned_variance``, 2 output channels per image channel (ε, then Σ_θ's)."""
    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=2 * channels if learned_variance else channels,
        block_out_channels=(4, 8),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
        num_class_embeds=num_class_embeds,
    ).eval()


@pytest.fixture
def tiny_unet():
    return make_tiny_unet()


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)


@pytest.fixture
def tiny_pipeline(tiny_unet):
    scheduler = DDPMExplorerScheduler(num_train_timesteps=50, beta_schedule="linear", rescale_betas=True)
    pipe = DDPMExplorerPipeline(unet=tiny_unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """A checkpoint folder holding tiny random pipelines (8×8, 1 channel, T = 100): 'tiny-random', and
    'tiny-conditional' (classes circle, square, line; recommended w = 2)."""
    root = tmp_path_factory.mktemp("checkpoints")
    pipe = DDPMExplorerPipeline(
        unet=make_tiny_unet(sample_size=8),
        scheduler=DDPMExplorerScheduler(num_train_timesteps=100, beta_schedule="cosine"),
    )
    pipe.save_pretrained(root / "tiny-random")
    conditional = make_tiny_unet(sample_size=8, seed=1, num_class_embeds=4)  # classes 0, 1, 2 and the null label 3
    DDPMExplorerPipeline(
        unet=conditional,
        scheduler=DDPMExplorerScheduler(num_train_timesteps=100, beta_schedule="cosine"),
        recommended_guidance_scale=2.0,
        class_names=["circle", "square", "line"],
    ).save_pretrained(root / "tiny-conditional")
    return root


def point_app_at(checkpoints, monkeypatch, default_model: str = "tiny-random"):
    """Point the app's model registry at a checkpoint folder, with fresh caches (undone by ``monkeypatch``)."""
    from app import models, reverse_session, settings

    monkeypatch.setattr(settings, "CHECKPOINT_DIR", checkpoints)
    monkeypatch.setattr(settings, "DEFAULT_MODEL", default_model)
    monkeypatch.setattr(models, "_cache", {})
    monkeypatch.setattr(models, "_errors", {})
    reverse_session.model_plot.cache_clear()
    models.seconds_per_unet_call.cache_clear()
    models.data_spectrum.cache_clear()
    return checkpoints


@pytest.fixture
def app_models(tiny_checkpoints, monkeypatch):
    """Point the app's model registry at the tiny checkpoints, with a fresh cache."""
    return point_app_at(tiny_checkpoints, monkeypatch)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local_client(url: str, **kwargs):
    """A gradio_client ``Client`` of an app on this machine.

    The app is plain http on 127.0.0.1, but with ``ssl_verify`` on, httpx builds a fresh certificate store for every
    request and every file download (a few ms of CPU each): that was 43 of 117 s of CPU in the memory test's sessions.
    """
    from gradio_client import Client

    return Client(url, verbose=False, ssl_verify=False, **kwargs)


@contextlib.contextmanager
def launched_demo(checkpoints):
    """Launch the whole app on a free local port with the given checkpoint folder; yields its Blocks and URL."""
    from app import models, settings
    from app.ui import build_demo, launch_kwargs

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(settings, "CHECKPOINT_DIR", checkpoints)
        mp.setattr(settings, "DEFAULT_MODEL", "tiny-random")
        mp.setattr(models, "_cache", {})
        mp.setattr(models, "_errors", {})
        demo = build_demo()
        _, url, _ = demo.launch(
            prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True, **launch_kwargs()
        )
        try:
            yield demo, url
        finally:
            demo.close()


@contextlib.contextmanager
def launch_app(checkpoints):
    """:func:`launched_demo`'s URL."""
    with launched_demo(checkpoints) as (_, url):
        yield url


@pytest.fixture(scope="module")
def live_app(tiny_checkpoints):
    """The whole app, launched on a free local port with the tiny checkpoints; yields its URL."""
    with launch_app(tiny_checkpoints) as url:
        yield url


@pytest.fixture(scope="module")
def page(live_app):
    """A browser module's page: headless Chromium on the module's app, once its forward view has loaded."""
    from chromium import chromium_page, require_chromium

    require_chromium()
    with chromium_page(live_app) as page:
        page.get_by_text("x_t", exact=True).first.wait_for(timeout=30_000)
        yield page
