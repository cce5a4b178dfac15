"""Bounds on what gradio itself keeps per session, which the app's own ledger (``session_memory``) cannot see.

- **Its copy of each session's values.** gradio's ``SessionState`` keeps a copy of the page's config per session
  (a fresh session hash costs 0.37 MB of RSS) with the last value of every input and updated output in it: a 256 px
  forward view's payload is another 0.3 MB. Its only bound is a count of sessions (``SESSION_CAPACITY``); 1,000
  fresh sessions held 2.3–3.4 MB each. Here the oldest sessions are dropped, as gradio drops them past its count,
  once all of them together are estimated over ``MAX_GRADIO_SESSION_BYTES``.
- **Messages nobody reads.** A finished request's outputs wait in its session's message queue until the client reads
  its event stream; a client that never does left 1.02 MB per request for good. A session whose oldest message has
  waited ``UNREAD_MESSAGE_TTL_S`` is not being read: its messages are dropped; and past ``MAX_UNREAD_BYTES`` in all,
  the longest-waiting sessions' go first.

A janitor thread checks the messages every ``GRADIO_MEMORY_CHECK_EVERY_S`` and the sessions every tenth time (sizing
2,000 sessions takes about 0.1 s of CPU).
"""

from __future__ import annotations

import itertools
import threading
import time

from app import settings

SESSION_BASE_BYTES = 384 * 1024  # what a fresh session hash costs gradio (0.37 MB of RSS, measured by the attack)


def approx_bytes(value, depth: int = 6) -> int:
    """About how many bytes ``value`` holds: the lengths of its strings and bytes, through dicts, lists, tuples and
    objects' attributes (pydantic models), to ``depth`` levels; 8 for anything else."""
    if isinstance(value, (str, bytes, bytearray)):
        return len(value)
    if depth == 0:
        return 8
    if isinstance(value, dict):
        return sum(approx_bytes(k, 0) + approx_bytes(v, depth - 1) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return sum(approx_bytes(v, depth - 1) for v in value)
    if hasattr(value, "__dict__"):
        return approx_bytes(vars(value), depth - 1)
    return 8


def session_bytes(session_state) -> int:
    """gradio's per-session copy: the config (a fixed cost) and the values in it."""
    values = list(session_state.config_values.values())
    return SESSION_BASE_BYTES + sum(approx_bytes(c.get("props", {}).get("value")) for c in values)


def evict_oldest_sessions(holder, max_bytes: int) -> int:
    """Drop the least recently used sessions of gradio's ``StateHolder`` until the rest are under ``max_bytes``;
    returns how many went."""
    sizes = [(sid, session_bytes(state)) for sid, state in list(holder.session_data.items())]  # oldest first
    total, dropped = sum(size for _, size in sizes), 0
    with holder.lock:
        for sid, size in sizes:
            if total <= max_bytes:
                break
            holder.session_data.pop(sid, None)
            holder.time_last_used.pop(sid, None)
            total -= size
            dropped += 1
    return dropped


class UnreadMessages:
    """Drops the messages of sessions that do not read their event stream (see the module's docstring)."""

    def __init__(self):
        self._head: dict[str, tuple[int, float]] = {}  # session → (id of its oldest message, when first seen)

    def sweep(self, queue, now: float, ttl_s: float, max_bytes: int) -> int:
        """Clear what waits too long or too much; returns the number of sessions cleared."""
        waiting = []
        for session, messages in list(queue.pending_messages_per_session.items()):
            pending = list(messages._queue)
            if not pending:
                self._head.pop(session, None)
                continue
            head = id(pending[0])
            if self._head.get(session, (None,))[0] != head:
                self._head[session] = (head, now)
            waiting.append((self._head[session][1], session, messages, approx_bytes(pending)))
        for session in set(self._head) - {w[1] for w in waiting}:
            self._head.pop(session, None)
        cleared, total = 0, sum(w[3] for w in waiting)
        for since, session, messages, size in sorted(waiting, key=lambda w: w[0]):
            if now - since >= ttl_s or total > max_bytes:
                messages._queue.clear()  # one deque operation: atomic beside the event loop's own
                self._head.pop(session, None)
                total -= size
                cleared += 1
        return cleared


def start(demo, every_s: float) -> threading.Thread:
    """Run both bounds every ``every_s`` seconds for ``demo`` (its state holder and queue exist once it launches)."""
    unread = UnreadMessages()

    def loop():
        for tick in itertools.count():
            time.sleep(every_s)
            holder, queue = getattr(demo, "state_holder", None), getattr(demo, "_queue", None)
            try:
                if holder is not None and tick % 10 == 0:
                    evict_oldest_sessions(holder, settings.MAX_GRADIO_SESSION_BYTES)
                if queue is not None:
                    unread.sweep(queue, time.monotonic(), settings.UNREAD_MESSAGE_TTL_S, settings.MAX_UNREAD_BYTES)
            except Exception:  # a sweep racing gradio's own changes tries again next round
                continue

    thread = threading.Thread(target=loop, name="gradio-memory", daemon=True)
    thread.start()
    return thread
