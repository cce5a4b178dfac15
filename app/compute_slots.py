"""A bound on the model work running at once, whatever gradio's queue does.

gradio frees a cancelled generator's concurrency slot at once, while its worker thread may still be computing the
step it was in; new work then starts beside it (three UNet calls in flight with a limit of two, seen under load).
Every step of a run is computed while holding one of ``SAMPLING_CONCURRENCY`` permits, so the limit holds for the
computation itself: a cancelled run stops after its current step and never computes another.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

from app import settings

T = TypeVar("T")
_permits = threading.BoundedSemaphore(settings.SAMPLING_CONCURRENCY)


def in_compute_slots(steps: Iterable[T]) -> Iterator[T]:
    """The steps of ``steps``, each computed while holding a permit (released between steps)."""
    iterator = iter(steps)
    while True:
        with _permits:
            try:
                step = next(iterator)
            except StopIteration:
                return
        yield step
