"""DDPM Explorer: `python app.py` (locally, or as a Hugging Face Space)."""

import logging

from app.serving.disk_budget import use_private_temp_dir
from app.ui import build_demo, launch_kwargs

use_private_temp_dir()  # gradio's cache in a folder of this process, under the disk budget, removed at exit
demo = build_demo()

if __name__ == "__main__":
    # one line per refused request (app.validation.UserError), not a traceback
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    demo.launch(**launch_kwargs())
