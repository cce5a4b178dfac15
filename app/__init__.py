"""DDPM Explorer's Gradio UI: tabs/ (layout), callbacks/ (handlers), validation, sessions, rendering, models.

ui.py builds the app; images.py is the validated image loader; settings.py holds the limits.
"""
