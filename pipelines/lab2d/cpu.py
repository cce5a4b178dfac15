"""How the 2D lab's work runs on a CPU: on one thread.

Its tensors are small (a few thousand points, 128-wide layers): a second intra-op thread saves nothing, and beside
another busy process it costs a lot, as OpenMP's threads wait on each other for a core (a training step of 512
points: 7 ms on one thread, 310 ms on two, measured on this project's 2-core machine beside a training job).
"""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def one_thread():
    """Run the block with one intra-op thread, then restore the calling thread's setting.

    torch's setting is per thread (OpenMP's and MKL's), but it is also the default a thread takes when it first runs
    torch: enter and leave this in the same thread, around a step's computation and never across a ``yield`` (a
    generator may resume on another thread).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
