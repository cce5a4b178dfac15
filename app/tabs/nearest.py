"""The reverse tab's "new image or copy?" section: each sample of the last run beside its nearest training image,
for a model that ships its training set (app/callbacks/nearest.py)."""

from __future__ import annotations

import gradio as gr

from app import models
from app.callbacks import nearest as cb
from app.tabs.widgets import on_model


class NearestSection:
    """Where it is created, the section; :meth:`follow` fills it when a run ends."""

    def __init__(self, gallery: gr.Gallery, plot: gr.Image, summary: gr.Markdown):
        self.gallery, self.plot, self.summary = gallery, plot, summary

    def follow(self, state: gr.State, run) -> None:
        """Fill the section when ``run`` (Generate's event) ends, from the session's recorded run."""
        outputs = [self.gallery, self.plot, self.summary]
        run.then(cb.nearest_of_run, state, outputs, api_visibility="private", show_progress="hidden")


def create_section(demo: gr.Blocks, model: gr.Dropdown) -> NearestSection:
    """The section, shown for a model with a training set (the page's model, as it changes)."""
    with gr.Accordion(
        "New image or copy? Each sample beside its nearest training image",
        open=True,
        visible=models.nearest_training(models.default_model()) is not None,
    ) as section:
        gr.Markdown(cb.NOTE)
        summary = gr.Markdown("Generate (to the end) to see each sample beside its nearest training image.")
        gallery = gr.Gallery(
            label="Sample | its nearest training image in pixels | in the classifier's features",
            columns=6,
            height="auto",
            object_fit="contain",
            format="png",
            elem_id="nearest-gallery",
        )
        plot = gr.Image(
            label="Distance to the nearest training image: held-out real images (histogram), this run (lines)",
            format="png",
            interactive=False,
            height=630,  # the 590 px figure and its label; without a height the block folds to 2 px
            elem_id="nearest-plot",
        )
    on_model(demo, model, cb.section_visible, model, section, show_progress="hidden")
    return NearestSection(gallery, plot, summary)
