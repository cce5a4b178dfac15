"""Per-session files: each session's GIF exports, in a private folder, deleted when the session ends."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from app import rendering


@dataclass
class SessionFiles:
    """Export files of one session, deleted when the session ends.

    gradio ends a session in two ways: its state expires (``delete_callback`` runs) or, past
    ``state_session_capacity``, the oldest session is evicted and simply dropped. ``__del__`` covers the second, so
    no export outlives the session that made it.
    """

    paths: list[str] = field(default_factory=list)

    def keep_only(self, path: str) -> None:
        """Record a new export and delete the session's older ones: gradio has already served them from copies in its
        own cache, so a session holds one export file however many it makes."""
        delete_session_files(self)
        self.paths.append(path)

    def __del__(self):
        delete_session_files(self)


def delete_session_files(files: SessionFiles | None) -> None:
    while files is not None and files.paths:
        try:
            os.remove(files.paths.pop())
        except OSError:
            pass


@lru_cache(maxsize=1)
def export_dir() -> str:
    """The process's folder of exports, removed at exit."""
    folder = tempfile.mkdtemp(prefix="ddpm-explorer-exports-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def export_gif(frames: list[np.ndarray], session: SessionFiles | None) -> tuple[str, SessionFiles]:
    """Frames as a GIF in a fresh, unguessable file of this session (its only export from now on)."""
    path = rendering.write_gif(frames, directory=export_dir())
    session = session or SessionFiles()
    session.keep_only(path)
    return path, session
