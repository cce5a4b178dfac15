"""The Gradio app: its tabs in one Blocks, the queue, and the settings every launch passes."""

from __future__ import annotations

import logging
import threading

import gradio as gr
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware

from app import models, rendering, settings
from app.serving import disk_budget, gradio_memory
from app.serving.key_limits import LengthLimits
from app.serving.queue_limits import limit_jobs_per_client
from app.serving.route_guard import RouteGuard
from app.serving.session_memory import return_large_buffers_to_the_system
from app.serving.sessions import SessionFiles, delete_session_files, export_dir
from app.serving.upload_quota import UploadQuota
from app.tabs import editing, forward, lab, loss, reverse, scrubbers
from pipelines.samplers import SAMPLERS

CSS = """
.pixelated img { image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; }
/* Help text and other subdued text, readable: gradio's default grey (#bbbbc2) is 1.9:1 on white; these are 7.7:1
   (WCAG asks 4.5:1, tests/test_browser_every_control.py measures it). */
:root, .gradio-container {
  --block-info-text-color: var(--neutral-600); --body-text-color-subdued: var(--neutral-600);
}
.dark, .dark .gradio-container {
  --block-info-text-color: var(--neutral-300); --body-text-color-subdued: var(--neutral-300);
}
/* A phone (narrow and touch): */
@media (max-width: 640px) {
  /* the narrow tab bar folds the other tabs into gradio's "⋯" menu: where it shows one tab only, say that the menu
     holds the others (with two shown there is no room for the words, and the second tab says there are more) */
  .overflow-menu > button::after { content: "more tabs"; margin-left: 6px; font-size: var(--text-sm); }
  .tab-wrapper:has([role=tablist] > button:nth-of-type(2)) .overflow-menu > button::after { content: none; }
  .overflow-menu > button { display: flex; align-items: center; white-space: nowrap; }
  /* each scrub slider stays at the top of the screen while its pictures and plots scroll under it (no commas inside
     :has() or :is(): gradio splits this CSS's selectors at every comma to scope them) */
  .form:has(> #forward-t), .form:has(> #reverse-t), .form:has(> #race-t), .form:has(> #guidance-t),
  .form:has(> #lab-t), .column > #forward-t, .column > #reverse-t, .column > #race-t, .column > #guidance-t,
  .column > #lab-t {
    position: sticky; top: 0; z-index: 20; box-shadow: 0 2px 6px rgba(0, 0, 0, 0.15);
  }
  /* plots at their own size (their text stays ≥ 11 px), scrolled sideways inside their box instead of shrunk */
  .plot .image-container, .plot .image-frame, .plot button, #elbo-plot .image-container, #elbo-plot .image-frame,
  #elbo-plot button { overflow-x: auto; justify-content: flex-start; }
  .plot img, #elbo-plot img { width: auto !important; max-width: none !important; height: auto !important;
    object-fit: none; }
  .plot, #elbo-plot { height: auto !important; }
  /* the reverse tab opens on its run (Generate, the slider, the pictures) and its settings follow, as at desktop
     size the run is the tab's centre */
  #reverse-run { order: -1; }
  /* the reverse run's x_t and x̂₀ two abreast, so both fit under the slider, and its caption (a line or five as t
     moves) under them, so they stay put while a finger drags */
  #reverse-scrubber .panels.main figure { flex: 1 1 calc(50% - 7px); max-width: calc(50% - 7px); }
  #reverse-scrubber .scrubber { display: flex; flex-direction: column; }
  #reverse-scrubber .scrubber > .caption { order: 1; }
  #reverse-scrubber .scrubber > .bottom { order: 2; }
  /* Generate and Stop side by side at a button's height, the run's estimate under them (a row stretched them into
     tall blocks beside a narrow column of text) */
  .row:has(> #reverse-estimate) { flex-wrap: wrap !important; align-items: flex-start !important; }
  .row:has(> #reverse-estimate) > button { flex: 1 1 40% !important; }
  .row > #reverse-estimate { flex: 1 1 100% !important; min-width: 100% !important; }
  /* a displayed formula wider than the screen scrolls sideways (the ELBO tab's were cut at the right edge) */
  .katex-display { overflow-x: auto; overflow-y: hidden; padding-bottom: 2px; }
  /* tables scroll sideways inside their box */
  .table-wrap, .table-container { overflow-x: auto !important; max-width: 100%; }
}
"""

# For the page's <head>, outside gradio's prefixing of CSS (which scopes a media query's rules inside the page's box):
# on a phone, the page's box clips instead of hiding its overflow, so that it is no scroll container of its own and a
# slider can stick to the top of the screen.
PHONE_HEAD = "<style>@media (max-width: 640px) { .gradio-container { overflow: clip !important; } }</style>"

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
    # api_open=False: a queued event reached by POST /run/<api_name> ran beside the queue, past its limits (one
    # session ran 429 model runs in 30 s where the queue allows two at a time); only the queue serves them now
    demo.queue(
        max_size=settings.QUEUE_MAX_SIZE, default_concurrency_limit=settings.SAMPLING_CONCURRENCY, api_open=False
    )
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
        head=scrubbers.head() + PHONE_HEAD,  # the scrubbers' shared module, once for the page
        max_file_size=settings.MAX_FILE_SIZE,
        allowed_paths=[],
        share=False,
        show_error=True,
        state_session_capacity=settings.SESSION_CAPACITY,
        enable_monitoring=False,  # gradio's /monitoring: call counts to anyone, its secret key printed per request
        app_kwargs={
            "middleware": [
                Middleware(RouteGuard),
                Middleware(disk_budget.RequestSizeLimit),
                Middleware(LengthLimits),
                Middleware(UploadQuota),
                # the page (0.5 MB of config and scripts) compressed; event streams are never buffered by it
                Middleware(GZipMiddleware, minimum_size=1024),
            ]
        },
    )
