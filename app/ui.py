"""The Gradio app: its tabs in one Blocks, the queue, and the settings every launch passes."""

from __future__ import annotations

import logging
import threading

import gradio as gr
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware

from app import models, rendering, settings
from app.serving import disk_budget, gradio_memory
from app.serving.queue_limits import limit_jobs_per_client
from app.serving.route_guard import RouteGuard
from app.serving.session_memory import return_large_buffers_to_the_system
from app.serving.sessions import SessionFiles, delete_session_files, export_dir
from app.tabs import editing, forward, lab, loss, reverse, scrubbers
from pipelines.samplers import SAMPLERS

CSS = """
.pixelated img { image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; }
"""

INTRO = """# DDPM Explorer
Watch a diffusion model work. **Forward:** any image is noised step by step under a β schedule.
**Reverse:** a trained UNet denoises pure noise into an image. A slider scrubs both, frame by frame.
"""


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="DDPM Explorer", delete_cache=(1800, 3600)) as demo:
        gr.Markdown(INTRO)
        session_files = gr.State(
            SessionFiles(), time_to_live=settings.SESSION_TTL_S, delete_callback=delete_session_files
        )
        with gr.Tab("Forward process"):
            forward.create_tab(demo, session_files)
        with gr.Tab("Reverse process"):
            reverse.create_tab(demo, session_files)
        with gr.Tab("Editing"):
            editing.create_tab(demo)
        with gr.Tab("Loss and the ELBO"):
            loss.create_tab(demo)
        with gr.Tab("2D lab"):
            lab.create_tab(demo)
    demo.queue(max_size=settings.QUEUE_MAX_SIZE, default_concurrency_limit=settings.SAMPLING_CONCURRENCY)
    limit_jobs_per_client(demo._queue)
    for folder in (demo.GRADIO_CACHE, export_dir()):
        disk_budget.budget.watch(folder)
    disk_budget.budget.start(settings.DISK_CHECK_EVERY_S)
    gradio_memory.start(demo, settings.GRADIO_MEMORY_CHECK_EVERY_S)
    return_large_buffers_to_the_system()
    return demo


def warm_up_in_background() -> threading.Thread:
    """Load the model side in a thread once the page is served: diffusers (with the torch._dynamo it imports), every
    sampler's scheduler, matplotlib and the default model, which the page's first events and clicks need. The page
    itself is built without them; a click before this ends waits on the same imports and model lock, no longer."""

    def warm():
        # what the first click needs first: the default model, then plots, then the other samplers' solvers
        name = models.default_model()
        if name is not None:
            try:
                models.get_pipeline(name)
            except models.ModelUnavailable as e:  # told again to whoever picks it
                logging.getLogger(__name__).warning("warm-up: %s", e)
        rendering.pyplot()
        for sampler in SAMPLERS.values():
            sampler.scheduler_class  # noqa: B018 (imported, not used)

    thread = threading.Thread(target=warm, name="warm-up", daemon=True)
    thread.start()
    return thread


def launch_kwargs() -> dict:
    """What every launch passes: host and port come from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (gradio reads
    them), share stays off, uploads are capped, and no extra paths are served."""
    return dict(
        css=CSS,
        head=scrubbers.head(),  # the scrubbers' shared module, once for the page
        max_file_size=settings.MAX_FILE_SIZE,
        allowed_paths=[],
        share=False,
        show_error=True,
        state_session_capacity=settings.SESSION_CAPACITY,
        app_kwargs={
            "middleware": [
                Middleware(RouteGuard),
                Middleware(disk_budget.RequestSizeLimit),
                # the page (0.5 MB of config and scripts) compressed; event streams are never buffered by it
                Middleware(GZipMiddleware, minimum_size=1024),
            ]
        },
    )
