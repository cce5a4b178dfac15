"""Importing the model side after start-up, one thread at a time.

The app serves its page before diffusers is imported (with the torch._dynamo it brings); diffusers and the modules
built on it are imported on first use, by the warm-up thread or by whichever request comes first. diffusers' lazy
modules are not safe to import from two threads at once: a module one thread is half-way through importing reaches
the other as an ImportError ("cannot import name 'UNet2DModel' from 'diffusers'"). Every such import goes through
:func:`imported`, under one lock.
"""

import importlib
import threading
from types import ModuleType

_lock = threading.RLock()


def imported(module: str) -> ModuleType:
    """``importlib.import_module(module)``, one thread at a time."""
    with _lock:
        return importlib.import_module(module)
