"""New image or copy? After a run of a model that ships its training set, each sample beside its nearest training
image in pixels and in the model's classifier's features, with how close held-out real images come (the math:
pipelines/nearest.py)."""

from __future__ import annotations

import gradio as gr
import numpy as np

from app import models, rendering
from app.reverse_session import ReverseState
from pipelines.nearest import NearestTraining, Neighbours

NOTE = (
    "A model trained on a small data set can learn to copy it. Each sample stands beside the training image nearest "
    "to it, in pixels and in the features of a classifier trained on the same images (it sees what an image shows, "
    "not where its pixels are). The grey histograms are the yardstick: how far **real images the model never saw** "
    "lie from their own nearest training image. Under each neighbour: its name, the distance d, and the share of real "
    "images that come closer than d to a training image. A sample with 0 % is closer than any real image comes, "
    "likely a copy; one among them is as new as a fresh real image."
)
MAX_SHOWN = 16


def section_visible(model_name) -> dict:
    """The section is shown only for a model that ships its training set."""
    return gr.update(visible=models.nearest_training(model_name) is not None)


def caption(search: NearestTraining, index: int, distance: float, space: str) -> str:
    share = search.percentile(distance, space)
    return f"{space}: {search.training_set.names[index]} · d {distance:.1f} · {share:.0f} %"


def nearest_of_run(state: ReverseState | None):
    """(gallery items, distance plot, summary) for the session's last run, or a message when there is nothing to
    compare (no run, a stopped one, a model without a training set)."""
    search = models.nearest_training(state.model) if state is not None else None
    final = state.trajectory.final if state is not None and state.trajectory is not None else None
    if search is None or final is None:
        message = "Generate (to the end) to see each sample beside its nearest training image."
        return gr.update(value=None), gr.update(value=None), message
    samples = final[:MAX_SHOWN]
    found: Neighbours = search.of(samples)
    train = search.training_set.images
    items = []
    for b in range(len(samples)):
        items.append((rendering.upscale(rendering.image_to_uint8(samples[b]), 96), f"sample {b + 1}"))
        pairs = [("pixels", found.pixel_index, found.pixel_distance)]
        if found.feature_index is not None:
            pairs.append(("features", found.feature_index, found.feature_distance))
        for space, index, distance in pairs:
            i, d = int(index[b]), float(distance[b])
            items.append((rendering.upscale(rendering.uint8_to_hwc(train[i]), 96), caption(search, i, d, space)))
    reference = {"pixels": search.reference.pixel_distance.numpy(), "features": None}
    run = {"pixels": found.pixel_distance.numpy(), "features": None}
    if found.feature_distance is not None:
        reference["features"], run["features"] = (
            search.reference.feature_distance.numpy(),
            found.feature_distance.numpy(),
        )
    plot = rendering.png_output(rendering.figure_nearest_distances(reference, run))
    return items, plot, summary(search, found)


def summary(search: NearestTraining, found: Neighbours) -> str:
    """One line: how many samples sit closer to a training image than 99 % of real images do, per space."""
    parts = []
    for space, distance in (("pixels", found.pixel_distance), ("features", found.feature_distance)):
        if distance is None:
            continue
        close = int(np.sum([search.percentile(float(d), space) < 1.0 for d in distance]))
        parts.append(f"{close} of {len(distance)} in {space}")
    shown = f" (the first {MAX_SHOWN})" if len(found.pixel_distance) == MAX_SHOWN else ""
    return f"Samples{shown} closer to a training image than 99 % of real images come: " + ", ".join(parts) + "."
