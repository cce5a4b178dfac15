"""The Stop button's requests, seen alike by the server and by a run going on in another process.

On a ZeroGPU Space, ``spaces.GPU`` runs each decorated handler in a forked worker process (reused from call to call)
while Stop, answered unqueued, runs in the server's: a request kept in memory would stay in the process that made
it. So they are kept as files in one private folder, made when this module is imported, before any worker is
forked: a file per session and kind, named by a hash of the session's id (ids come from clients; no name of theirs
reaches the file system), written whole and replaced, never appended. Each read or change takes a lock on the
folder (``fcntl.flock`` across processes, where the system has it, and a thread lock within one).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: one process, no ZeroGPU; the thread lock is enough there
    fcntl = None

RUNNING, WAITING, REQUESTED = "running", "waiting", "requested"


class StopRequests:
    """The Stop button's requests, by session: a run checks its session's between steps and ends itself, so it can
    still say that it stopped and hand over the frames it made (a cancelled request could say nothing). Shared by all
    sessions, keyed by each one's id; a request counts only while that session has a run going or waiting in the
    queue (Generate notes it there, unqueued): a run stopped while it waited ends after its first step."""

    WAITING_FOR_S = 600  # a run noted as waiting that never started (refused by the queue) is forgotten after this
    # Old marks are swept at most every SWEEP_EVERY_S, and past MAX_WAITING the oldest go: one client's 3,000 invented
    # session hashes left 3,000 marks, all read under the lock by every Generate (24 -> 83 ms a call)
    SWEEP_EVERY_S = 10.0
    MAX_WAITING = 4000

    def __init__(self, directory: str | Path | None = None):
        if directory is None:
            directory = tempfile.mkdtemp(prefix="ddpm-explorer-stop-")
            atexit.register(shutil.rmtree, directory, ignore_errors=True)
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._thread_lock = threading.Lock()
        self._swept = float("-inf")  # when this process last swept the waiting marks

    @contextmanager
    def _locked(self):
        with self._thread_lock, open(self._dir / ".lock", "a") as lock:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            yield

    def _path(self, session: str, kind: str) -> Path:
        return self._dir / f"{hashlib.sha256(session.encode()).hexdigest()[:40]}.{kind}"

    def _set(self, session: str, kind: str, value: float = 0.0) -> None:
        path = self._path(session, kind)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(repr(value))
        os.replace(partial, path)

    def _clear(self, session: str, kind: str) -> bool:
        """Remove the mark; whether it was there."""
        try:
            self._path(session, kind).unlink()
            return True
        except FileNotFoundError:
            return False

    def _waited_since(self, path: Path) -> float | None:
        try:
            return float(path.read_text())
        except (OSError, ValueError):
            return None

    def waiting(self, session: str) -> None:
        """The session's Generate was clicked: its run waits in the queue until :meth:`started`."""
        with self._locked():
            now = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
            if now - self._swept >= self.SWEEP_EVERY_S:
                self._sweep(now)
            if not self._path(session, RUNNING).exists():
                self._set(session, WAITING, now)

    def _sweep(self, now: float) -> None:
        """Forget the waiting marks older than ``WAITING_FOR_S``, and the oldest past ``MAX_WAITING`` (lock held)."""
        self._swept = now
        marks = [(self._waited_since(path), path) for path in self._dir.glob(f"*.{WAITING}")]
        marks = sorted(marks, key=lambda m: -1.0 if m[0] is None else m[0])  # unreadable first, then oldest
        for k, (since, path) in enumerate(marks):
            if since is None or now - since >= self.WAITING_FOR_S or len(marks) - k > self.MAX_WAITING - 1:
                path.unlink(missing_ok=True)

    def started(self, session: str) -> None:
        with self._locked():
            self._set(session, RUNNING)
            if not self._clear(session, WAITING):  # a request made while it waited stands
                self._clear(session, REQUESTED)

    def finished(self, session: str) -> None:
        with self._locked():
            for kind in (RUNNING, WAITING, REQUESTED):
                self._clear(session, kind)

    def request(self, session: str) -> bool:
        """Ask the session's run (going, or waiting to start) to stop; False when it has none."""
        with self._locked():
            since = self._waited_since(self._path(session, WAITING))
            waiting = since is not None and time.monotonic() - since < self.WAITING_FOR_S
            if not self._path(session, RUNNING).exists() and not waiting:
                return False
            self._set(session, REQUESTED)
            return True

    def requested(self, session: str) -> bool:
        return self._path(session, REQUESTED).exists()  # one stat a step; written whole, so no lock


stop_requests = StopRequests()
