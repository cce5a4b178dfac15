"""DDPM Explorer: `python app.py` (locally, or as a Hugging Face Space)."""

import logging

from app.serving.disk_budget import use_private_temp_dir
from app.ui import build_demo, launch_kwargs, warm_up_in_background

use_private_temp_dir()  # gradio's cache in a folder of this process, under the disk budget, removed at exit
demo = build_demo()

if __name__ == "__main__":
    # one line per refused request (app.validation.UserError), not a traceback
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    demo.launch(prevent_thread_lock=True, **launch_kwargs())
    warm_up_in_background()  # the page is served from here on; the model side loads behind it
    demo.block_thread()
