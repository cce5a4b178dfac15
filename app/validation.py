"""Checks of everything a client sends (numbers, choices, images, model names), failing as clear gr.Errors."""

from __future__ import annotations

import contextlib
import math
import os

import gradio as gr
from PIL import Image

from app import models
from app.images import ImageLoadError, default_example, load_image
from pipelines import DDPMExplorerPipeline, NonFiniteSampleError


def check_int(name: str, value, lo: int, hi: int) -> int:
    """An integer in [lo, hi] from whatever the client sent, or a gr.Error that says what was wrong."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(f) or f != int(f):
        raise gr.Error(f"{name} must be a whole number, got {value!r}.")
    if not lo <= f <= hi:
        raise gr.Error(f"{name} must be between {lo} and {hi}, got {int(f)}.")
    return int(f)


def check_float(name: str, value, lo: float, hi: float) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(f) or not lo <= f <= hi:
        raise gr.Error(f"{name} must be a finite number between {lo} and {hi}, got {value!r}.")
    return f


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise gr.Error(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}.")
    return value


def check_model(name) -> DDPMExplorerPipeline:
    """The loaded pipeline of a registry name, or a gr.Error saying why it can't be used."""
    try:
        return models.get_pipeline(name)
    except models.ModelUnavailable as e:
        raise gr.Error(str(e)) from None


def open_image(path) -> Image.Image:
    """An uploaded file through the validated loader (the default example when nothing was given)."""
    if path is None:
        path = default_example()
        if path is None:
            raise gr.Error("No image given, and no example images are installed.")
    if not isinstance(path, (str, os.PathLike)):
        raise gr.Error("Upload an image file.")
    try:
        return load_image(path)
    except ImageLoadError as e:
        raise gr.Error(str(e)) from None


@contextlib.contextmanager
def numerical_faults_as_errors():
    """A run whose model produced NaN or Inf stops with the pipeline's message, shown to the user."""
    try:
        yield
    except NonFiniteSampleError as e:
        raise gr.Error(str(e)) from None
