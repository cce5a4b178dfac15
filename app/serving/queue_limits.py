"""Fair use of the queue: one session, or one client address, may have only so many requests queued or running.

gradio's queue has one bound, its total size (``QUEUE_MAX_SIZE``): 70 requests under one session hash filled it, and
for the next 37 s every other user's request got "Queue is full!". Here each new request is counted against the
requests its session and its client address already have queued or running, and refused with a clear message past
``MAX_REQUESTS_PER_SESSION`` / ``MAX_REQUESTS_PER_ADDRESS``; model runs have their own smaller limits
(``MAX_RUNS_PER_SESSION``, ``MAX_RUNS_PER_ADDRESS``). What waits is served round-robin between client addresses
(:func:`fair_order`), so a newcomer's first run waits only for runs already computing, not for another client's
backlog. (Requests whose client disconnects are dropped from the queue
by gradio itself: its event stream calls ``clean_events`` for the session.)

The address is the TCP peer's, or, behind ``TRUSTED_PROXIES`` proxies that append to it (a Hugging Face Space:
``X-Forwarded-For``, one proxy), the entry that the outermost trusted proxy appended to the header named by
``CLIENT_ADDRESS_HEADER``: the ``TRUSTED_PROXIES``-th from the right. Entries left of it are the client's own words.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

from gradio import route_utils
from gradio.queueing import Event, Queue
from gradio.server_messages import ServerMessage

from app import settings

SAMPLING = "sampling"  # the concurrency id of model work (app/tabs)
COMPLETED = "ddpm_explorer_completed"  # set on a gradio Event once its completion message is sent


def client_address(request) -> str:
    """Who sent ``request``: the address our trusted proxies saw (the ``TRUSTED_PROXIES``-th entry from the right of
    the configured header), else the TCP peer. A header with fewer entries than proxies did not pass them all: the
    TCP peer it is."""
    if settings.CLIENT_ADDRESS_HEADER and request is not None:
        header = request.headers.get(settings.CLIENT_ADDRESS_HEADER, "")
        entries = [entry.strip() for entry in header.split(",") if entry.strip()]
        if len(entries) >= settings.TRUSTED_PROXIES:
            return entries[-settings.TRUSTED_PROXIES]
    client = getattr(request, "client", None)
    return client.host if client is not None else "unknown"


def pending_events(queue: Queue) -> Iterator[Event]:
    """Every request the queue holds: waiting for a worker, and running."""
    for event_queue in list(queue.event_queue_per_concurrency_id.values()):
        yield from list(event_queue.queue)
    yield from running_events(queue)


def is_model_run(event: Event) -> bool:
    """Model work (generation, SDEdit, races, the ELBO): the requests that queue for the sampling slots."""
    return event.concurrency_id == SAMPLING


def refusal(queue: Queue, session_hash: str | None, address: str, model_run: bool) -> str | None:
    """Why a new request (``model_run`` or not) from this session and address must wait for its earlier ones, or
    None if it may queue."""
    count = Counter()
    for event in pending_events(queue):
        for key, same in (
            ("session", event.session_hash == session_hash),
            ("address", client_address(event.request) == address),
        ):
            if same:
                count[key, "requests"] += 1
                count[key, "runs"] += is_model_run(event)
    limits = {
        ("session", "runs"): settings.MAX_RUNS_PER_SESSION,
        ("session", "requests"): settings.MAX_REQUESTS_PER_SESSION,
        ("address", "runs"): settings.MAX_RUNS_PER_ADDRESS,
        ("address", "requests"): settings.MAX_REQUESTS_PER_ADDRESS,
    }
    for (who, what), limit in limits.items():
        if (what == "runs" and not model_run) or (who == "session" and session_hash is None):
            continue
        if count[who, what] >= limit:
            kind = "model runs" if what == "runs" else "requests"
            whose = "This session" if who == "session" else "Your address"
            return (
                f"{whose} already has {count[who, what]} {kind} queued or running (the limit is {limit}); wait for "
                "one to finish, or cancel one."
            )
    return None


def running_events(queue: Queue) -> Iterator[Event]:
    """The requests a worker is processing now. One whose completion was sent is not: gradio sends it before its
    worker lets the job go, and the page's chained event (the lab's sampling after its training) can arrive in
    between; counted, the finished run refused it ("already has 2 model runs")."""
    for job in list(queue.active_jobs):
        yield from (event for event in job or [] if not getattr(event, COMPLETED, False))


def fair_order(waiting: list[Event], running: Iterator[Event]) -> list[Event]:
    """The waiting requests of one concurrency id in round-robin order between client addresses: a request's rank is
    how many of its address's requests run or wait before it, and lower ranks go first (arrival order within a
    rank). A newcomer's first request waits behind no one's second, so one client's backlog delays another's first
    run by at most the runs already computing."""
    before = Counter(client_address(event.request) for event in running)
    ranked = []
    for arrival, event in enumerate(waiting):
        address = client_address(event.request)
        ranked.append((before[address], arrival, event))
        before[address] += 1
    return [event for *_, event in sorted(ranked, key=lambda r: r[:2])]


def limit_jobs_per_client(queue: Queue) -> None:
    """Make ``queue`` (a demo's, after ``demo.queue()``) refuse a request past the per-session and per-address
    limits, as it refuses one past its size (an HTTP 503 whose detail is the message), and keep what waits in
    :func:`fair_order`."""
    push, lock = queue.push, asyncio.Lock()

    async def limited_push(body, request, username):
        async with lock:  # counted and queued as one step: a burst cannot overshoot the limits
            model_run = route_utils.get_fn(queue.blocks, None, body).concurrency_id == SAMPLING
            reason = refusal(queue, body.session_hash, client_address(request), model_run)
            if reason is not None:
                return False, reason, "queue_full"
            accepted = await push(body, request, username)
            if accepted[0]:  # the queue reordered in place, with no await in between: the workers see one order
                for event_queue in queue.event_queue_per_concurrency_id.values():
                    running = (e for e in running_events(queue) if e.concurrency_id == event_queue.concurrency_id)
                    event_queue.queue[:] = fair_order(event_queue.queue, running)
            return accepted

    queue.push = limited_push
    send = queue.send_message

    def marking_send(event, message, *args, **kwargs):
        if getattr(message, "msg", None) == ServerMessage.process_completed:
            setattr(event, COMPLETED, True)  # done, though its worker still holds it for a moment
        return send(event, message, *args, **kwargs)

    queue.send_message = marking_send
