"""Memory: a bound on the bytes that session state holds across all sessions (the least recently used is released
first), and freed memory handed back to the system.

gradio bounds sessions by count (``SESSION_CAPACITY``, 2000) and age (``SESSION_TTL_S``, an hour), not by size: at
about 2 MB a session (a recorded run, a forward view at 256 px), one client making sessions could pin several GB. Every
state that holds a large payload is admitted here with its size; past ``MAX_SESSION_BYTES`` in all, the states used
longest ago give up their payload (``release()``), and their session gets a message asking to set the view up again.

Freed memory: glibc kept what a burst of large requests freed (decoding six large images at once left the process
300–450 MB larger for good); :func:`return_large_buffers_to_the_system` halves that (``benchmarks/memory_ratchet.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import weakref
from collections import OrderedDict
from typing import Protocol

from app import settings

M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h


class Releasable(Protocol):
    @property
    def nbytes(self) -> int: ...

    def release(self) -> None: ...


class StateLedger:
    """The large session states alive, least recently used first, with their sizes."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.released = 0  # states released to keep the bound
        self._states: OrderedDict[int, tuple[weakref.ref, int]] = OrderedDict()  # by id(state)
        self._lock = threading.Lock()

    def _prune(self) -> None:
        """Forget states that are gone (their session ended)."""
        for key in [key for key, (ref, _) in self._states.items() if ref() is None]:
            del self._states[key]

    @property
    def total_bytes(self) -> int:
        with self._lock:
            self._prune()
            return sum(nbytes for _, nbytes in self._states.values())

    def admit(self, state: Releasable) -> Releasable:
        """Count ``state`` as just used, then release the least recently used states past the bound (never the one
        just admitted)."""
        with self._lock:
            self._prune()
            self._states[id(state)] = (weakref.ref(state), state.nbytes)
            self._states.move_to_end(id(state))
            total = sum(nbytes for _, nbytes in self._states.values())
            while total > self.max_bytes and len(self._states) > 1:
                _, (ref, nbytes) = self._states.popitem(last=False)
                total -= nbytes
                oldest = ref()
                if oldest is not None:
                    oldest.release()
                    self.released += 1
        return state

    def touch(self, state: Releasable) -> None:
        """``state`` was just used: it is released last."""
        with self._lock:
            entry = self._states.get(id(state))
            if entry is not None and entry[0]() is state:
                self._states.move_to_end(id(state))


RELEASED = (
    "This view was released to keep the server's memory within its limit (many sessions were busy at once); {again}."
)
ledger = StateLedger(settings.MAX_SESSION_BYTES)


def return_large_buffers_to_the_system(threshold_bytes: int = 16 * 2**20) -> bool:
    """Allocate every buffer over ``threshold_bytes`` with its own mmap, so freeing it hands it back to the system.

    glibc raises its mmap threshold as large buffers are freed (up to 32 MB), after which decoded images come from
    the heap and stay with the process when freed: that was the ratchet. A fixed threshold
    (``mallopt(M_MMAP_THRESHOLD)``) stops it for buffers above it. 16 MiB keeps the UNet's activations (≤ 8 MiB at
    batch 16, 32 px) on the heap: at 1 MiB the ratchet was gone (+32 MB) but sampling ran 1.6–2× slower. False where
    there is no glibc (macOS, Windows).
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.mallopt(M_MMAP_THRESHOLD, threshold_bytes) == 1
    except (OSError, AttributeError):
        return False
