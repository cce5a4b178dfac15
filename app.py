"""DDPM Explorer: `python app.py` (locally, or as a Hugging Face Space)."""

from app.ui import build_demo, launch_kwargs

demo = build_demo()

if __name__ == "__main__":
    demo.launch(**launch_kwargs())
