"""A byte budget on everything the app and gradio write to disk: gradio's cache (outputs and uploads) and the app's
exports.

Without it disk grew without bound: every API frame is a new PNG (gradio keeps them up to ``delete_cache``'s hour),
uploads had no quota (40 × 9 MB in one request), and every call with a file input left a 0-byte temp file behind.
Here a janitor thread, and every upload as it ends, keeps the watched folders under ``MAX_TEMP_BYTES`` and
``MAX_TEMP_FILES``: it deletes orphaned empty files, then the oldest files first until both fit, then empty
folders. Files and folders of the last ``min_age_s`` seconds are left alone (a request may be writing or reading
them), so the budget can be overshot by what is written in that time; one request's body is capped at
``MAX_REQUEST_BYTES`` (:class:`RequestSizeLimit`), and one address's uploads in an hour by
:mod:`app.serving.upload_quota`.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from starlette.responses import PlainTextResponse

from app import settings


def _files(folder: Path) -> list[tuple[float, int, Path]]:
    """(modification time, size, path) of every file under ``folder``; files that vanish meanwhile are skipped."""
    found = []
    for root, _, names in os.walk(folder):
        for name in names:
            path = Path(root, name)
            try:
                st = path.stat()
            except OSError:
                continue
            found.append((st.st_mtime, st.st_size, path))
    return found


class DiskBudget:
    """Keeps the files under some folders within ``max_bytes`` in all, deleting the oldest first."""

    def __init__(self, max_bytes: int, orphan_age_s: float = 10.0, min_age_s: float = 2.0, max_files: int = 20_000):
        self.max_bytes, self.orphan_age_s, self.min_age_s = max_bytes, orphan_age_s, min_age_s
        self.max_files = max_files  # the janitor walks every file: 100,000 tiny uploads kept it at 0.6–0.7 cores
        self.folders: set[Path] = set()
        self.evicted = 0  # files deleted to keep the budget (not counting orphans)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, folder) -> None:
        self.folders.add(Path(folder))

    def enforce(self) -> int:
        """Delete orphans and, oldest first, whatever is over the budget; returns the bytes left."""
        with self._lock:
            now = time.time()
            files = [f for folder in self.folders if folder.is_dir() for f in _files(folder)]
            total = 0
            kept = []
            for mtime, size, path in files:
                if size == 0 and now - mtime > self.orphan_age_s:  # left behind by an upload: never written again
                    path.unlink(missing_ok=True)
                else:
                    kept.append((mtime, size, path))
                    total += size
            count = len(kept)
            for mtime, size, path in sorted(kept):
                if (total <= self.max_bytes and count <= self.max_files) or now - mtime < self.min_age_s:
                    break
                path.unlink(missing_ok=True)
                total -= size
                count -= 1
                self.evicted += 1
            self._remove_empty_folders()
            return total

    def _remove_empty_folders(self) -> None:
        # the time after this pass's deletions: a folder it has just emptied has that deletion as its mtime (with
        # the pass's start time, such a folder was "made in the future", and stayed: a CI failure under load)
        now = time.time()
        for folder in self.folders:
            for root, dirs, files in os.walk(folder, topdown=False):
                if Path(root) == folder or dirs or files:
                    continue
                try:
                    if now - os.stat(root).st_mtime >= self.min_age_s:  # not one a request has just made
                        os.rmdir(root)
                except OSError:  # something was written there meanwhile
                    pass

    def start(self, every_s: float) -> None:
        """Enforce the budget every ``every_s`` seconds, in a daemon thread (once per process)."""
        if self._thread is not None:
            return

        def loop():
            while True:
                time.sleep(every_s)
                try:
                    self.enforce()
                except OSError:
                    pass

        self._thread = threading.Thread(target=loop, name="disk-budget", daemon=True)
        self._thread.start()


budget = DiskBudget(settings.MAX_TEMP_BYTES, max_files=settings.MAX_TEMP_FILES)


def use_private_temp_dir() -> str:
    """Give gradio's cache a folder of this process (unless ``GRADIO_TEMP_DIR`` names one), removed at exit. Call it
    before building the demo: gradio reads the variable as it creates its blocks."""
    if not os.environ.get("GRADIO_TEMP_DIR"):
        folder = tempfile.mkdtemp(prefix="ddpm-explorer-cache-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        os.environ["GRADIO_TEMP_DIR"] = folder
    return os.environ["GRADIO_TEMP_DIR"]


class BodyTooLarge(Exception):
    """A request body that passed ``MAX_REQUEST_BYTES`` while it arrived."""


class RequestSizeLimit:
    """ASGI middleware: refuses a request whose body is over ``MAX_REQUEST_BYTES`` (413), by its Content-Length or,
    for a body sent in chunks, as it arrives; enforces the disk budget after every upload."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        limit = settings.MAX_REQUEST_BYTES
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            response = PlainTextResponse(f"Request body over this server's limit of {limit:,} bytes.", 413)
            return await response(scope, receive, send)
        received, started = 0, False

        async def counted_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(f"Request body over this server's limit of {limit:,} bytes.")
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as e:  # a body sent in chunks, past the limit: 413, as for a declared length (was a 500)
            if started:
                raise
            await PlainTextResponse(str(e), 413)(scope, receive, send)
        finally:
            if scope["path"].endswith("/upload"):
                await asyncio.to_thread(budget.enforce)
