"""Bounds on the keys a client names for itself: gradio keeps a session's values and messages under the
``session_hash`` the client sends (in a JSON body, in the query or in a heartbeat's path), and an upload's progress
under its ``upload_id``, at whatever length they come. A 10 MB session hash kept about 10 MB for the session's life
(40 requests: +400 MB of the server's memory, still there after the unread-message janitor had run); 2,000 upload
ids of 60 kB, +96 MB. gradio's page makes 11-character hashes and gradio_client 36; a key over ``MAX_KEY_CHARS`` is
refused (400) before gradio sees the request.

The same pass bounds each string among a JSON body's input values at ``MAX_VALUE_CHARS``: gradio refuses a bad
value (a choice not in a dropdown) by logging a traceback with the value in it, so one 10 MB value wrote 10 MB of
log, outside the disk budget. The app's longest inputs, a drawing's strokes and an inpainting mask, are far shorter.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

from starlette.responses import PlainTextResponse

from app import settings

KEYS = ("session_hash", "upload_id")
HEARTBEAT = "/heartbeat/"  # gradio's GET /gradio_api/heartbeat/{session_hash}


def too_long(value) -> bool:
    return isinstance(value, str) and len(value) > settings.MAX_KEY_CHARS


def refused_in_url(path: str, query_string: bytes) -> PlainTextResponse | None:
    """The refusal of a request whose path or query names an overlong key, or None."""
    query = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    for key in KEYS:
        if any(too_long(value) for value in query.get(key, [])):
            return refusal(key)
    if HEARTBEAT in path and too_long(path.rsplit(HEARTBEAT, 1)[1]):
        return refusal("session_hash")
    return None


def longest_string(value, depth: int = 4) -> int:
    """The length of the longest string in ``value``, through lists and dicts to ``depth`` levels."""
    if isinstance(value, str):
        return len(value)
    if depth == 0:
        return 0
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return max((longest_string(v, depth - 1) for v in items), default=0)


def refused_in_body(body: bytes) -> PlainTextResponse | None:
    """The refusal of a JSON body that names an overlong key at its top level (where gradio reads them) or carries
    an overlong input value in ``data``, or None. A body that is not a JSON object is gradio's to refuse."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    key = next((key for key in KEYS if too_long(data.get(key))), None)
    if key is not None:
        return refusal(key)
    if longest_string(data.get("data")) > settings.MAX_VALUE_CHARS:
        return PlainTextResponse(
            f"An input value is over this server's limit of {settings.MAX_VALUE_CHARS:,} characters.", 400
        )
    return None


def refusal(key: str) -> PlainTextResponse:
    return PlainTextResponse(f"{key} is over this server's limit of {settings.MAX_KEY_CHARS} characters.", 400)


class LengthLimits:
    """ASGI middleware: 400 for a request whose session hash or upload id is over ``MAX_KEY_CHARS``, or whose JSON
    input values hold a string over ``MAX_VALUE_CHARS``. A JSON body is read whole (it is already capped at
    ``MAX_REQUEST_BYTES``) and handed on unchanged."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refused = refused_in_url(scope["path"], scope.get("query_string", b""))
        if refused is not None:
            return await refused(scope, receive, send)
        content_type = dict(scope["headers"]).get(b"content-type", b"")
        if scope["method"] != "POST" or not content_type.startswith(b"application/json"):
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        # a large body is parsed off the event loop (12 MB of JSON: a tenth of a second every other request waits)
        refused = await asyncio.to_thread(refused_in_body, body) if len(body) > 2**20 else refused_in_body(body)
        if refused is not None:
            return await refused(scope, receive, send)
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()  # after the body: the disconnect, when it comes
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)
