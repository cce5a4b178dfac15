"""Many users at once: no cross-talk, queue limits that hold, cancellation that frees its slot, and session state
that is released so memory does not grow."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from conftest import local_client
from gradio_client import Client, handle_file
from PIL import Image

import pipelines.forward
from app import models, plans, rendering, settings
from pipelines import DDPMExplorerPipeline

pytestmark = pytest.mark.e2e
EXAMPLE = "app/assets/fashion_bag.png"
VARIANCE = next(iter(plans.VARIANCE_CHOICES))
RESPACED = plans.DDPM


@pytest.fixture(scope="module")
def app_url(live_app):
    return live_app


def wait_until(condition, timeout: float, poll: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; its last value."""
    deadline = time.time() + timeout
    while not condition() and time.time() < deadline:
        time.sleep(poll)
    return bool(condition())


def count_when_quiet(count, quiet_s: float = 2.0, timeout: float = 60) -> bool:
    """Wait until ``count()`` (steps computed so far) stays the same for ``quiet_s`` seconds; whether it did within
    ``timeout``."""
    last, deadline = -1, time.time() + timeout
    while count() != last and time.time() < deadline:
        last = count()
        time.sleep(quiet_s)
    return count() == last


class ActiveCounter:
    """Counts concurrent sampling runs by wrapping the pipeline's step loop."""

    def __init__(self):
        self.active = self.peak = self.unet_calls = 0
        self.lock = threading.Lock()

    def wrap(self, original):
        counter = self

        def iter_trajectory(pipe, *args, **kwargs):
            with counter.lock:
                counter.active += 1
                counter.peak = max(counter.peak, counter.active)
            try:
                for step in original(pipe, *args, **kwargs):
                    with counter.lock:
                        counter.unet_calls += 1
                    yield step
            finally:
                with counter.lock:
                    counter.active -= 1

        return iter_trajectory


@pytest.fixture
def counter(monkeypatch):
    c = ActiveCounter()
    monkeypatch.setattr(DDPMExplorerPipeline, "iter_trajectory", c.wrap(DDPMExplorerPipeline.iter_trajectory))
    return c


def user(url: str, seed: int) -> dict:
    client = local_client(url)
    client.predict(handle_file(EXAMPLE), "cosine", 100, 1e-4, 0.02, seed, 32, api_name="/forward_setup")
    scrub = np.asarray(Image.open(client.predict(60, api_name="/forward_scrub")[0]))
    final = client.predict("tiny-random", RESPACED, 10, 0.0, VARIANCE, True, seed, 2, api_name="/reverse_generate")[-1]
    frame = client.predict(99, api_name="/reverse_frame")
    return {"scrub": scrub, "final": np.asarray(Image.open(final)), "frame": np.asarray(Image.open(frame[0]))}


def test_eight_parallel_users_get_exactly_their_own_frames(app_url, counter):
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda s: user(app_url, s), range(8)))
    assert counter.peak <= settings.SAMPLING_CONCURRENCY, "the sampling concurrency limit holds"
    for seed, got in enumerate(results):
        expected = user(app_url, seed)  # the same seed, alone
        for key in ("scrub", "final", "frame"):
            np.testing.assert_array_equal(got[key], expected[key], err_msg=f"seed {seed}: {key}")
    finals = {r["final"].tobytes() for r in results}
    assert len(finals) == 8, "different seeds, different images"


def test_cancelling_a_generation_frees_its_slot(app_url, counter, monkeypatch):
    pipe = models.get_pipeline("tiny-random")
    slow = pipe.unet.register_forward_hook(lambda *_: time.sleep(0.05))  # 100 steps: 5 s
    try:
        client = local_client(app_url)
        args = ("tiny-random", plans.DDPM, 100, 0.0, VARIANCE, True, 0, 1)
        jobs = [client.submit(*args, api_name="/reverse_generate") for _ in range(settings.SAMPLING_CONCURRENCY)]
        both_busy = wait_until(lambda: counter.active == settings.SAMPLING_CONCURRENCY, timeout=20)
        assert both_busy, "both slots busy"
        for job in jobs:
            job.cancel()
        # A cancelled run stops at its next yield (every STREAM_EVERY_S). Wait until no UNet call comes for 2 s
        # (a run still going makes ~40 in that time); runs left alone would only go quiet after all 100 steps.
        assert count_when_quiet(lambda: counter.unet_calls, timeout=30), "cancelled runs stopped working"
        assert counter.unet_calls < 100 * len(jobs), "they stopped early, not at the end"
    finally:
        slow.remove()
    final = client.predict("tiny-random", RESPACED, 5, 0.0, VARIANCE, True, 0, 1, api_name="/reverse_generate")
    assert "Done: DDPM (ancestral), 5 steps" in final[2], "the freed slots serve the next request"


def test_cancelled_sdedit_stops_working_and_frees_its_slot(app_url, counter):
    """SDEdit used to run to the end after a cancel (six cancelled calls kept both cores busy for 153 s) while its
    slot let more work start. Now it stops within a step, and no more UNet calls than the concurrency limit are ever
    in flight at once (a cancelled run's generator may linger until collected, but it computes nothing)."""
    pipe = models.get_pipeline("tiny-random")
    in_flight = {"now": 0, "peak": 0}
    lock = threading.Lock()

    def enter(*_):
        with lock:
            in_flight["now"] += 1
            in_flight["peak"] = max(in_flight["peak"], in_flight["now"])

    def leave(*_):
        time.sleep(0.02)  # the sweep's ~250 steps: 5 s
        with lock:
            in_flight["now"] -= 1

    hooks = [pipe.unet.register_forward_pre_hook(enter), pipe.unet.register_forward_hook(leave)]
    try:
        client = local_client(app_url)
        jobs = [client.submit("tiny-random", handle_file(EXAMPLE), 90, 100, s, api_name="/sdedit") for s in range(4)]
        wait_until(lambda: counter.active > 0, timeout=20)
        for job in jobs:
            job.cancel()
        assert count_when_quiet(lambda: counter.unet_calls), "cancelled SDEdit stopped working"
        assert counter.unet_calls < 250 * len(jobs) / 2, "it stopped early, not at the end"
        assert in_flight["peak"] <= settings.SAMPLING_CONCURRENCY, "the concurrency limit held"
    finally:
        for hook in hooks:
            hook.remove()


class Probe:
    """Wraps a function that every step of some work calls: each call takes ``seconds`` longer (long enough work to
    cancel part-way), and the probe counts the calls and the most in flight at once."""

    def __init__(self, seconds: float):
        self.seconds, self.calls, self.now, self.peak = seconds, 0, 0, 0
        self.lock = threading.Lock()

    def wrap(self, function):
        def probed(*args, **kwargs):
            with self.lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
            try:
                time.sleep(self.seconds)
                return function(*args, **kwargs)
            finally:
                with self.lock:
                    self.now -= 1
                    self.calls += 1

        return probed


def forward_state_of(client: Client, num_timesteps: int = 100) -> None:
    client.predict(handle_file(EXAMPLE), "linear", num_timesteps, 1e-4, 0.02, 0, 32, api_name="/forward_setup")


def recorded_run_of(client: Client) -> None:
    client.predict("tiny-random", plans.DDPM, 100, 0.0, VARIANCE, True, 0, 1, api_name="/reverse_generate")


# endpoint: (the function each of its steps calls, as (owner, name); what its session needs first; its arguments;
# the steps one call makes)
LONG_CALLS = {
    "/elbo_terms": (
        (lambda: models.get_pipeline("tiny-random").unet, "forward"),
        None,
        ("tiny-random", handle_file(EXAMPLE), 200, 0),
        2 * 200 + 1,
    ),
    "/forward_markov_chain": (
        (lambda: pipelines.forward, "q_step"),
        lambda client: forward_state_of(client, 2000),
        (2000, 0),
        2000,
    ),
    "/forward_gif": ((lambda: rendering, "image_to_uint8"), forward_state_of, (), 60),
    "/reverse_gif": ((lambda: rendering, "side_by_side"), recorded_run_of, (), 100),  # a frame for each of 100 steps
}


@pytest.mark.parametrize("endpoint", list(LONG_CALLS))
def test_cancelled_long_calls_stop_working_within_the_concurrency_limit(app_url, endpoint, monkeypatch):
    """Only generations used to stop on a cancel: the ELBO, the Markov chain and the GIF exports ran to their end
    while gradio's freed slots let more work start. Each now runs a step at a time in compute slots: cancelled, it
    stops within a step, and no more steps than the concurrency limit ever compute at once."""
    (owner, name), prepare, args, steps_per_call = LONG_CALLS[endpoint]
    clients = [local_client(app_url, httpx_kwargs={"timeout": 120}) for _ in range(4)]  # a loaded machine
    if prepare is not None:
        for client in clients:
            prepare(client)
    probe = Probe(seconds=5.0 / steps_per_call)  # a call alone would take over 5 s
    monkeypatch.setattr(owner(), name, probe.wrap(getattr(owner(), name)))
    jobs = [client.submit(*args, api_name=endpoint) for client in clients]
    assert wait_until(lambda: probe.calls >= 3, timeout=30), "the calls started"
    for job in jobs:
        job.cancel()
    # quiet: no step for 2 s (a call still going makes 2/5 of its steps in that time)
    assert count_when_quiet(lambda: probe.calls), "the cancelled calls stopped working"
    assert probe.calls < steps_per_call * len(jobs) / 2, "they stopped early, not at their end"
    assert probe.peak <= settings.SAMPLING_CONCURRENCY, "the concurrency limit held for the computation"


def flood(url: str, session_hash: str, n: int, headers: dict | None = None) -> list[httpx.Response]:
    """``n`` generation requests queued at once under one session hash, as a script would POST them, ten at a time
    (no client waits for their results)."""
    url = url.rstrip("/")
    config = httpx.get(f"{url}/config").json()
    fn_index = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "reverse_generate")
    body = {
        "data": ["tiny-random", RESPACED, 100, 0.0, VARIANCE, True, 0, 1, plans.ANY_CLASS, 1.0, 0, 100, 0.0, False],
        "fn_index": fn_index,
        "session_hash": session_hash,
        "event_data": None,
        "trigger_id": None,
    }
    with httpx.Client(base_url=url, headers=headers, timeout=120) as http, ThreadPoolExecutor(10) as pool:
        return list(pool.map(lambda _: http.post("/gradio_api/queue/join", json=body), range(n)))


@pytest.fixture
def slow_generations(app_url):
    """While the flood is being sent, every UNet call of the tiny model takes 30 ms longer: a 100-step generation
    lasts over 3 s, so none of a flood's requests ends before the flood is in. Clear the event it yields once it is:
    the accepted runs then finish at full speed, and the other user is served sooner."""
    flooding = threading.Event()
    flooding.set()

    def slow(*_):  # a forward hook's return value, unless None, replaces the output
        if flooding.is_set():
            time.sleep(0.03)

    hook = models.get_pipeline("tiny-random").unet.register_forward_hook(slow)
    yield flooding
    flooding.clear()
    hook.remove()
    status = f"{app_url.rstrip('/')}/gradio_api/queue/status"
    wait_until(lambda: not httpx.get(status).json()["queue_size"], timeout=60, poll=0.2)  # drained for the next test


def test_one_session_cannot_fill_the_queue_for_everyone(app_url, slow_generations):
    """70 requests under one session hash used to fill gradio's queue (64): every other user got "Queue is full!"
    until they drained. Now a session may have MAX_RUNS_PER_SESSION model runs queued or running; the rest are
    refused with a message, and another session is served."""
    responses = flood(app_url, "one-flooding-session", 70)
    slow_generations.clear()
    accepted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert len(accepted) <= settings.MAX_RUNS_PER_SESSION
    assert refused and all("This session already has" in r.json()["detail"] for r in refused)
    other = local_client(app_url)
    other.predict(handle_file(EXAMPLE), "linear", 100, 1e-4, 0.02, 0, 32, api_name="/forward_setup")
    final = other.predict("tiny-random", RESPACED, 5, 0.0, VARIANCE, True, 0, 1, api_name="/reverse_generate")
    assert "Done: DDPM (ancestral), 5 steps" in final[2], "another session is served"


@pytest.mark.parametrize("behind_proxy", [True, False], ids=["behind-a-proxy", "direct"])
def test_one_address_cannot_fill_the_queue_with_many_sessions(app_url, slow_generations, monkeypatch, behind_proxy):
    """The same flood spread over many sessions from one address, each request naming a new address of its own in
    X-Forwarded-For. Behind a proxy (which appends the address it saw, here 203.0.113.7) the client is the proxy's
    entry, not the first one, which the client writes: 40 requests got 40 runs (limit 8) when the first was read.
    Direct (no header configured), uvicorn must not take the header from a loopback peer either."""
    if behind_proxy:
        monkeypatch.setattr(settings, "CLIENT_ADDRESS_HEADER", "X-Forwarded-For")
    appended = ", 203.0.113.7" if behind_proxy else ""
    with ThreadPoolExecutor(5) as pool:
        sessions = pool.map(
            lambda i: flood(app_url, f"flood-{behind_proxy}-{i}", 2, {"X-Forwarded-For": f"10.0.{i}.1{appended}"}),
            range(35),
        )
    responses = [r for session in sessions for r in session]
    slow_generations.clear()
    accepted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    assert len(accepted) <= settings.MAX_RUNS_PER_ADDRESS
    assert refused and all("Your address already has" in r.json()["detail"] for r in refused), [
        r.json()["detail"] for r in refused
    ][:3]
    if behind_proxy:
        other = local_client(app_url, headers={"X-Forwarded-For": "198.51.100.2"})
    else:  # from the same loopback address a direct client is the same address: wait for the flood's runs
        wait_until(lambda: not httpx.get(f"{app_url.rstrip('/')}/gradio_api/queue/status").json()["queue_size"], 120)
        other = local_client(app_url)
    final = other.predict("tiny-random", RESPACED, 5, 0.0, VARIANCE, True, 0, 1, api_name="/reverse_generate")
    assert "Done: DDPM (ancestral), 5 steps" in final[2], "another address is served"


@pytest.mark.parametrize(
    "header, proxies, expected",
    [
        ("10.0.0.9, 203.0.113.9", 1, "203.0.113.9"),  # the client wrote 10.0.0.9; the proxy appended the rest
        ("10.0.0.9, 203.0.113.9, 192.0.2.1", 2, "203.0.113.9"),  # two proxies: the outer one's entry
        ("203.0.113.9", 2, "127.0.0.1"),  # fewer entries than proxies: not through them all, so the TCP peer
        ("", 1, "127.0.0.1"),
    ],
)
def test_the_client_address_is_the_one_the_trusted_proxy_appended(monkeypatch, header, proxies, expected):
    from types import SimpleNamespace

    from app.serving.queue_limits import client_address

    monkeypatch.setattr(settings, "CLIENT_ADDRESS_HEADER", "X-Forwarded-For")
    monkeypatch.setattr(settings, "TRUSTED_PROXIES", proxies)
    request = SimpleNamespace(headers={"X-Forwarded-For": header}, client=SimpleNamespace(host="127.0.0.1"))
    assert client_address(request) == expected


def test_waiting_requests_are_served_round_robin_between_addresses():
    from types import SimpleNamespace

    from app.serving.queue_limits import fair_order

    def event(address, name):
        return SimpleNamespace(request=SimpleNamespace(headers={}, client=SimpleNamespace(host=address)), name=name)

    running = [event("A", "a0"), event("A", "a1")]
    waiting = [event("A", f"a{i}") for i in range(2, 8)] + [event("B", "b0"), event("C", "c0"), event("B", "b1")]
    order = [e.name for e in fair_order(waiting, iter(running))]
    assert order == ["b0", "c0", "b1", "a2", "a3", "a4", "a5", "a6", "a7"]


def test_one_addresss_backlog_does_not_hold_back_anothers_first_run(app_url, slow_generations, monkeypatch):
    """One address with its 8 runs queued (2 computing, 6 waiting) made another user's run start after all of them
    (85 s in the attack). Served round-robin, the newcomer's run is the next to start."""
    monkeypatch.setattr(settings, "CLIENT_ADDRESS_HEADER", "X-Forwarded-For")
    with ThreadPoolExecutor(4) as pool:
        sessions = pool.map(lambda i: flood(app_url, f"backlog-{i}", 2, {"X-Forwarded-For": "203.0.113.50"}), range(4))
    assert sum(r.status_code == 200 for s in sessions for r in s) == settings.MAX_RUNS_PER_ADDRESS
    status = f"{app_url.rstrip('/')}/gradio_api/queue/status"
    other = local_client(app_url, headers={"X-Forwarded-For": "198.51.100.60"})
    job = other.submit("tiny-random", RESPACED, 5, 0.0, VARIANCE, True, 0, 1, api_name="/reverse_generate")
    wait_until(job.done, timeout=120, poll=0.05)
    waiting_then = httpx.get(status).json()["queue_size"]
    slow_generations.clear()
    assert "Done: DDPM (ancestral), 5 steps" in job.result()[2]
    assert waiting_then >= 3, f"the newcomer's run finished with {waiting_then} of the backlog still waiting"


def test_a_run_whose_completion_was_sent_no_longer_counts():
    """gradio sends a run's completion before its worker lets the job go; the page's chained run (the lab's sampling
    after training) arrived in between and was refused as the session's third model run."""
    from types import SimpleNamespace

    from gradio.server_messages import ProcessCompletedMessage

    from app.serving.queue_limits import limit_jobs_per_client, running_events

    sent = []
    done, going = SimpleNamespace(name="done"), SimpleNamespace(name="going")
    queue = SimpleNamespace(active_jobs=[[done], [going], None], push=None, send_message=lambda e, m: sent.append(e))
    limit_jobs_per_client(queue)
    assert [e.name for e in running_events(queue)] == ["done", "going"]
    queue.send_message(done, ProcessCompletedMessage(output={}, success=True))
    assert sent == [done] and [e.name for e in running_events(queue)] == ["going"]
