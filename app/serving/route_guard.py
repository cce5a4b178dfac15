"""Routes of gradio's server that this app does not use, closed: an ASGI middleware in front of gradio.

- Deep links (``GET /gradio_api/deep_link`` saves a session's component values under a hash; ``/?deep_link=<hash>``
  renders them into the page). The app offers no deep-link button, and a value planted in a component (the lab's
  data-set choice) was shown to whoever opened the link as a toast with a foreign link, a password form and a remote
  image. Both routes answer 404, and a page or config request carrying ``deep_link`` is refused.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.responses import PlainTextResponse

CLOSED_PATHS = ("/gradio_api/deep_link",)
CLOSED_QUERY_KEYS = ("deep_link",)


def closed(path: str, query_string: bytes) -> str | None:
    """Why a request for ``path`` with this query is refused, or None if it may pass."""
    if path.rstrip("/").endswith(CLOSED_PATHS):
        return "Not found."
    query = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    if any(key in query for key in CLOSED_QUERY_KEYS):
        return "Deep links are turned off in this app."
    return None


class RouteGuard:
    """ASGI middleware: 404 for the closed routes and query keys above, before gradio sees the request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            reason = closed(scope["path"], scope.get("query_string", b""))
            if reason is not None:
                return await PlainTextResponse(reason, 404)(scope, receive, send)
        return await self.app(scope, receive, send)
