"""A bound on the work running at once, whatever gradio's queue does, and work that stops when its client goes.

gradio frees a cancelled request's concurrency slot at once, while its worker thread may still be computing: a plain
function runs to its end, a generator finishes the step it is in. New work then starts beside it (three UNet calls in
flight with a limit of two, seen under load; 45 cancelled SDEdit calls running at once before SDEdit was a
generator). So:

- every step of long work is computed while holding one of ``SAMPLING_CONCURRENCY`` permits, so the limit holds for
  the computation itself (:func:`in_compute_slots`, :func:`compute_slot`);
- long work runs as a generator that yields between its steps (:func:`stoppable`): gradio stops asking for the next
  step once the client cancels or disconnects, so the work stops within about a step and never computes another.

On ZeroGPU Spaces a handler that samples is wrapped in :data:`gpu`, which lends it a GPU for the call.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
import time
from collections.abc import Callable, Generator, Iterable
from contextlib import contextmanager
from typing import Any, TypeVar

import gradio as gr

from app import settings
from app.serving.session_memory import ledger
from pipelines.imports import imported

try:  # ZeroGPU Spaces: sampling runs on a GPU lent per call; the package is a no-op elsewhere
    import spaces
except ImportError:
    spaces = None

T = TypeVar("T")
R = TypeVar("R")
_permits = threading.BoundedSemaphore(settings.SAMPLING_CONCURRENCY)


def gpu(handler: Callable[..., R]) -> Callable[..., R]:
    """``spaces.GPU(handler)``: on a ZeroGPU Space, a GPU lent for each call; ``handler`` itself where the ``spaces``
    package is missing.

    A generator handler stays a generator function whatever the wrapper returns: gradio streams a handler's yields
    only when ``inspect.isgeneratorfunction`` says it is one (a plain function returning the generator would be sent
    as one output, the generator). And what it yields is admitted to this process's memory bound: spaces runs the
    call in a forked worker process, so the session states the handler admitted there (``session_memory.ledger``)
    arrive here as copies that nothing counted."""
    if spaces is None:
        return handler
    wrapped = spaces.GPU(fork_safe(handler))
    if not inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def returned(*args, **kwargs):
            return admitted_here(wrapped(*args, **kwargs))

        return returned

    @functools.wraps(handler)
    def streamed(*args, **kwargs):
        outputs = wrapped(*args, **kwargs)
        try:
            for value in outputs:
                yield admitted_here(value)
        finally:
            outputs.close()  # a cancelled request: spaces stops its worker's run where it is

    return streamed


_SERVER_PID = os.getpid()


def fork_safe(handler: Callable[..., R]) -> Callable[..., R]:
    """``handler``, which in a process forked from this one (spaces' ZeroGPU worker) first sets torch to one CPU
    thread: the OpenMP thread pool does not survive a fork, and a child whose parent ran multi-threaded CPU ops (this
    server times each UNet on the CPU for its estimates) hangs in its first one (tests/test_zerogpu.py)."""

    def one_thread_if_forked():
        if os.getpid() != _SERVER_PID:
            imported("torch").set_num_threads(1)

    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def generator(*args, **kwargs):
            one_thread_if_forked()
            return (yield from handler(*args, **kwargs))

        return generator

    @functools.wraps(handler)
    def function(*args, **kwargs):
        one_thread_if_forked()
        return handler(*args, **kwargs)

    return function


def admitted_here(value):
    """``value`` (a handler's outputs: one, a tuple or a dict by component) with every session state in it admitted
    to this process's memory bound."""
    items = value.values() if isinstance(value, dict) else value if isinstance(value, tuple) else (value,)
    for item in items:
        if callable(getattr(item, "release", None)) and isinstance(getattr(item, "nbytes", None), int):
            ledger.admit(item)
    return value


class Activity:
    """What the permits have seen: steps computing now, the most at once, and steps computed in all."""

    def __init__(self):
        self.now = self.peak = self.steps = 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        with self._lock:
            self.now -= 1
            self.steps += 1


activity = Activity()


@contextmanager
def compute_slot():
    """Hold one permit for a piece of work that cannot stop part-way (decoding an image, writing a GIF)."""
    with _permits:
        activity.enter()
        try:
            yield
        finally:
            activity.leave()


def in_compute_slots(steps: Iterable[T]) -> Generator[T, None, Any]:
    """The steps of ``steps``, each computed while holding a permit (released between steps); returns what a
    generator ``steps`` returns."""
    iterator = iter(steps)
    while True:
        with compute_slot():
            try:
                step = next(iterator)
            except StopIteration as done:
                return done.value
        yield step


def stoppable(work: Generator[Any, None, R], num_outputs: int) -> Generator[Any, None, R]:
    """Run ``work`` (a generator that computes a step per ``next`` and returns its result) in compute slots, from a
    gradio callback that is itself a generator: ``result = yield from stoppable(work, n)``.

    Every ``STREAM_EVERY_S`` it yields ``gr.skip()`` for each of the callback's ``num_outputs`` outputs (the page
    keeps what it shows): the points where gradio stops a request whose client has cancelled or gone.
    """
    skip = gr.skip() if num_outputs == 1 else tuple(gr.skip() for _ in range(num_outputs))
    steps, last_yield = in_compute_slots(work), time.perf_counter()
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
        if time.perf_counter() - last_yield > settings.STREAM_EVERY_S:
            last_yield = time.perf_counter()
            yield skip


def collected(items: Iterable[T]) -> Generator[T, None, list[T]]:
    """``items`` one at a time, returning them all: ``frames = yield from stoppable(collected(...), n)``."""
    out = []
    for item in items:
        out.append(item)
        yield item
    return out
