"""Checks of everything a client sends (numbers, choices, images, model names), failing as clear gr.Errors."""

from __future__ import annotations

import contextlib
import logging
import math
import os

import gradio as gr
from PIL import Image

import pipelines
from app import models
from app.images import ImageLoadError, default_example, load_image
from app.serving.session_memory import RELEASED, ledger

logger = logging.getLogger("ddpm_explorer")


class UserError(gr.Error):
    """A request the app refuses, with a message for the user. The server logs it as one line, not a traceback
    (gradio prints one for every gr.Error otherwise)."""

    def __init__(self, message: str, **kwargs):
        super().__init__(message, print_exception=False, **kwargs)
        logger.info("refused: %s", message)


class WorkCapError(UserError):
    """A request over this server's work cap (app/plans.py check_work): the estimate calls it too much for one run."""


def require_session(state, first: str, again: str):
    """A session's view or recorded run (a state holding a ``trajectory``), or a message saying how to get one:
    ``first`` when there is none yet, ``again`` (what to do) when memory pressure released it."""
    if state is None:
        raise UserError(first)
    if state.trajectory is None:
        raise UserError(RELEASED.format(again=again))
    ledger.touch(state)
    return state


def as_number(name: str, value) -> float:
    """``value`` as a float, or a gr.Error. A boolean is not a number here (JSON's true would otherwise read as 1)."""
    if isinstance(value, bool):
        raise UserError(f"{name} must be a number, got {value!r}.")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be a number, got {value!r}.") from None


def check_int(name: str, value, lo: int, hi: int) -> int:
    """An integer in [lo, hi] from whatever the client sent, or a gr.Error that says what was wrong."""
    f = as_number(name, value)
    if not math.isfinite(f) or f != int(f):
        raise UserError(f"{name} must be a whole number, got {value!r}.")
    if not lo <= f <= hi:
        raise UserError(f"{name} must be between {lo} and {hi}, got {int(f)}.")
    return int(f)


def check_float(name: str, value, lo: float, hi: float) -> float:
    f = as_number(name, value)
    if not math.isfinite(f) or not lo <= f <= hi:
        raise UserError(f"{name} must be a finite number between {lo} and {hi}, got {value!r}.")
    return f


def check_choice(name: str, value, choices) -> str:
    if value not in choices:
        raise UserError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}.")
    return value


def check_model(name) -> pipelines.DDPMExplorerPipeline:
    """The loaded pipeline of a registry name, or a gr.Error saying why it can't be used."""
    try:
        return models.get_pipeline(name)
    except models.ModelUnavailable as e:
        raise UserError(str(e)) from None


def open_image(path) -> Image.Image:
    """An uploaded file through the validated loader (the default example when nothing was given)."""
    if path is None:
        path = default_example()
        if path is None:
            raise UserError("No image given, and no example images are installed.")
    if not isinstance(path, (str, os.PathLike)):
        raise UserError("Upload an image file.")
    try:
        return load_image(path)
    except ImageLoadError as e:
        raise UserError(str(e)) from None


@contextlib.contextmanager
def numerical_faults_as_errors():
    """A run whose model produced NaN or Inf stops with the pipeline's message, shown to the user."""
    try:
        yield
    except pipelines.NonFiniteSampleError as e:  # looked up only when a run raised, so pipelines.pipeline is loaded
        raise UserError(str(e)) from None
