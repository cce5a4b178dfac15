"""DDPM Explorer's Gradio UI: layout (tab_*), callbacks, rendering, images and the model registry."""
