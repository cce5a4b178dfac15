"""DDPM Explorer: `python app.py` (locally, or as a Hugging Face Space)."""

import logging

from app.ui import build_demo, launch_kwargs

demo = build_demo()

if __name__ == "__main__":
    # one line per refused request (app.validation.UserError), not a traceback
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    demo.launch(**launch_kwargs())
