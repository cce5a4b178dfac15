"""A share of the disk per client address: what one address uploads within ``UPLOAD_WINDOW_S`` is capped at
``UPLOAD_BYTES_PER_ADDRESS``; past it an upload is refused (429) until its older uploads leave the window.

The disk budget (:mod:`app.serving.disk_budget`) deletes the oldest files past ``MAX_TEMP_BYTES``, whoever wrote
them: one client's 2.37 GB of junk in 11 s deleted another user's upload, whose next run then failed ("The uploaded
file could not be read."). The address is the one the queue's limits use (:func:`queue_limits.client_address`).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from starlette.requests import Request
from starlette.responses import PlainTextResponse

from app import settings
from app.serving.queue_limits import client_address


class UploadLedger:
    """Bytes uploaded per address, by time, over the last ``UPLOAD_WINDOW_S``."""

    def __init__(self):
        self._uploads: dict[str, deque[tuple[float, int]]] = {}
        self._lock = threading.Lock()

    def spent(self, address: str, now: float) -> int:
        """Bytes ``address`` uploaded in the window ending at ``now`` (older uploads are forgotten)."""
        with self._lock:
            uploads = self._uploads.get(address)
            if uploads is None:
                return 0
            while uploads and uploads[0][0] <= now - settings.UPLOAD_WINDOW_S:
                uploads.popleft()
            if not uploads:
                del self._uploads[address]
            return sum(size for _, size in uploads)

    def add(self, address: str, now: float, size: int) -> None:
        with self._lock:
            self._uploads.setdefault(address, deque()).append((now, size))
            if len(self._uploads) > settings.SESSION_CAPACITY:  # many addresses: forget those gone quiet
                for quiet in [a for a, u in self._uploads.items() if u[-1][0] <= now - settings.UPLOAD_WINDOW_S]:
                    del self._uploads[quiet]


ledger = UploadLedger()


class UploadQuota:
    """ASGI middleware: refuses an upload (POST …/upload) from an address whose uploads in the window, with this
    one's declared length, pass ``UPLOAD_BYTES_PER_ADDRESS``; counts the bytes each upload sends."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].rstrip("/").endswith("/upload"):
            return await self.app(scope, receive, send)
        address, now = client_address(Request(scope)), time.monotonic()
        length = dict(scope["headers"]).get(b"content-length", b"")
        spent = ledger.spent(address, now)
        if spent + (int(length) if length.isdigit() else 0) > settings.UPLOAD_BYTES_PER_ADDRESS:
            minutes = round(settings.UPLOAD_WINDOW_S / 60)
            message = (
                f"Upload refused: this address has uploaded {spent / 2**20:.0f} MB in the last {minutes} minutes, "
                f"and each address may upload {settings.UPLOAD_BYTES_PER_ADDRESS / 2**20:.0f} MB in that time."
            )
            return await PlainTextResponse(message, 429)(scope, receive, send)
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        try:
            await self.app(scope, counted_receive, send)
        finally:
            ledger.add(address, now, received)
