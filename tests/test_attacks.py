"""Reliability, round two: attacks on gradio's own routes replayed with raw HTTP against the running app."""

import httpx
import pytest
from conftest import local_client
from gradio_client import handle_file

from app import edit_inputs, plans

pytestmark = pytest.mark.e2e

EXAMPLE = "app/assets/shapes.png"


@pytest.fixture(scope="module")
def app_url(live_app):
    return live_app.rstrip("/")


def test_deep_links_are_closed(app_url):
    """gradio's deep-link routes saved a session's component values and rendered them to whoever opened the link
    (a planted toast with a foreign link, a password form and a remote image). The app uses none: both are closed."""
    client = local_client(app_url)
    client.predict(handle_file(EXAMPLE), "linear", 100, 1e-4, 0.02, 0, 32, api_name="/forward_setup")
    session = client.session_hash
    with httpx.Client(base_url=app_url, timeout=30) as http:
        saved = http.get("/gradio_api/deep_link", params={"session_hash": session})
        assert saved.status_code == 404 and "deep_link" not in saved.text.lower().replace("not found", "")
        for path in ("/", "/config"):
            opened = http.get(path, params={"deep_link": "a" * 32})
            assert opened.status_code == 404 and "Deep links are turned off" in opened.text, path
        assert http.get("/").status_code == 200  # the page itself is served
        assert http.get("/config").status_code == 200


def test_the_page_is_sent_compressed(app_url):
    """GET / sent 0.52 MB uncompressed. (Event streams are never compressed, so runs still stream: the browser and
    end-to-end tests watch them arrive step by step.)"""
    with httpx.Client(base_url=app_url, timeout=30) as http:
        plain = http.get("/", headers={"Accept-Encoding": "identity"})
        packed = http.get("/", headers={"Accept-Encoding": "gzip"})
        assert packed.headers.get("content-encoding") == "gzip"
        assert int(packed.headers["content-length"]) < len(plain.content) / 3


def test_no_component_keeps_uploaded_layers_for_a_client(app_url):
    """gradio's ImageEditor/Sketchpad kept layers in a store reached by /gradio_api/component_server (fn_name
    accept_blobs): one 600-byte request with index 10⁸ pinned 763 MB for good. The lab draws on a pad of its own
    now; no component of the page answers accept_blobs (or any server function), and the server's memory stays."""
    import psutil

    config = httpx.get(f"{app_url}/config", timeout=30).json()
    ids = [c["id"] for c in config["components"]]
    assert not [c for c in config["components"] if c.get("type") in ("imageeditor", "sketchpad")]
    session = local_client(app_url).session_hash
    before = psutil.Process().memory_info().rss
    with httpx.Client(base_url=app_url, timeout=30) as http:
        for component_id in ids:
            body = {
                "session_hash": session,
                "component_id": component_id,
                "fn_name": "accept_blobs",
                "data": {"id": "x", "type": "layer", "index": 100_000_000, "file": None},
            }
            response = http.post("/gradio_api/component_server", json=body)
            assert response.status_code >= 400, (component_id, response.text[:200])
    assert psutil.Process().memory_info().rss - before < 50 * 2**20


def test_a_client_cannot_name_its_session_or_upload_with_an_overlong_key(own_app):
    """gradio keeps a session's values under the session hash the client sends, at any length: 40 requests with
    10 MB hashes held +400 MB. A session hash or upload id over MAX_KEY_CHARS is refused (400), in a JSON body, in
    the query and in a heartbeat's path, and gradio keeps nothing under it; the page's and gradio_client's own pass."""
    from app import settings

    demo, url = own_app
    long = "x" * (settings.MAX_KEY_CHARS + 1)
    with httpx.Client(base_url=url, timeout=30) as http:
        refused = [
            http.post("/gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": long}),
            http.post("/gradio_api/run/predict", json={"data": [], "fn_index": 0, "session_hash": long}),
            http.get("/gradio_api/queue/data", params={"session_hash": long}),
            http.get(f"/gradio_api/heartbeat/{long}"),
            http.post("/gradio_api/upload", params={"upload_id": long}, files={"files": ("a.png", b"x")}),
        ]
        for response in refused:
            assert response.status_code == 400 and "MAX" not in response.text, (response.request.url, response.text)
            assert "characters" in response.text
        uploaded = http.post("/gradio_api/upload", params={"upload_id": "u" * 36}, files={"files": ("a.png", b"x")})
        assert uploaded.status_code == 200
    assert long not in demo.state_holder.session_data
    client = local_client(url)  # gradio_client's 36-character hash
    assert client.predict(handle_file(EXAMPLE), "linear", 100, 1e-4, 0.02, 0, 32, api_name="/forward_setup")


def test_an_overlong_input_value_is_refused_before_gradio_logs_it(app_url, capfd):
    """gradio refuses a bad value (a choice not in a dropdown) by logging a traceback with the value in it: one
    10 MB value wrote 10 MB of log. A string over MAX_VALUE_CHARS among the input values is refused (400) before
    gradio sees it; the app's own longest inputs (a drawing, at most LAB_SKETCH_MAX_CHARS) are well within."""
    from app import settings

    assert settings.LAB_SKETCH_MAX_CHARS * 2 <= settings.MAX_VALUE_CHARS
    big = "A" * (settings.MAX_VALUE_CHARS + 1)
    with httpx.Client(base_url=app_url, timeout=30) as http:
        for path, value in (
            ("/gradio_api/queue/join", big),
            ("/gradio_api/run/predict", "A" * 2**21),
        ):  # 2 MB: off the loop
            body = {"data": [value, "", 0], "fn_index": 0, "session_hash": "overlong-value"}
            refused = http.post(path, json=body)
            assert refused.status_code == 400 and "input value is over" in refused.text, path
        nested = http.post("/gradio_api/queue/join", json={"data": [[{"x": big}]], "fn_index": 0, "session_hash": "n"})
        assert nested.status_code == 400
    assert big[:1000] not in capfd.readouterr().err  # nothing of it reached the log


def test_a_queued_event_cannot_be_run_past_the_queue(app_url):
    """POST /gradio_api/run/<api_name> ran a queued event beside the queue, past its per-session and per-address
    limits (one session ran 429 model runs in 30 s). Only the queue serves queued events now; gradio's monitoring
    routes (call counts to anyone) are off."""
    with httpx.Client(base_url=app_url, timeout=60) as http:
        data = [None, "linear", 100, 1e-4, 0.02, 0, 32]
        direct = http.post("/gradio_api/run/forward_setup", json={"data": data, "session_hash": "direct-run"})
        assert direct.status_code >= 400 and "queue" in direct.text.lower(), direct.text[:300]
        for path in ("/monitoring", "/monitoring/summary"):
            assert http.get(path).status_code in (403, 404), path
    assert local_client(app_url).predict(  # through the queue it runs
        handle_file(EXAMPLE), "linear", 100, 1e-4, 0.02, 0, 32, api_name="/forward_setup"
    )


def test_one_address_cannot_push_other_users_uploads_off_the_disk(own_app, monkeypatch):
    """The disk budget deletes the oldest files whoever wrote them: one client's 2.37 GB of junk in 11 s deleted
    another user's upload, whose next run failed. Each address may upload UPLOAD_BYTES_PER_ADDRESS an hour; past it
    its uploads are refused (429, saying why) and another address's still go through."""
    from app import settings
    from app.serving import upload_quota

    _, url = own_app
    monkeypatch.setattr(settings, "UPLOAD_BYTES_PER_ADDRESS", 200_000)
    monkeypatch.setattr(settings, "CLIENT_ADDRESS_HEADER", "X-Forwarded-For")
    monkeypatch.setattr(upload_quota, "ledger", upload_quota.UploadLedger())
    junk = b"x" * 60_000
    with httpx.Client(base_url=url, timeout=30) as http:
        upload = lambda who: http.post(
            "/gradio_api/upload", files={"files": ("junk.png", junk)}, headers={"X-Forwarded-For": who}
        )
        codes = [upload("203.0.113.7").status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429], codes
        refused = upload("203.0.113.7")
        assert "this address has uploaded" in refused.text and "MB" in refused.text
        assert upload("198.51.100.2").status_code == 200  # another user's upload goes through


# ---------------------------------------------------------------- what gradio keeps per session


@pytest.fixture
def own_app(tiny_checkpoints, monkeypatch):
    """The app launched here, with its Blocks at hand (gradio's state holder and queue are read back)."""
    from conftest import launched_demo

    from app import settings

    monkeypatch.setattr(settings, "GRADIO_MEMORY_CHECK_EVERY_S", 0.2)
    with launched_demo(tiny_checkpoints) as (demo, url):
        yield demo, url.rstrip("/")


def test_messages_nobody_reads_are_dropped(own_app, monkeypatch):
    """A client that never reads its event stream left each finished request's outputs queued for good (200
    requests: +204 MB). Now a session whose oldest message waited UNREAD_MESSAGE_TTL_S is cleared."""
    from test_sessions import flood

    from app import settings
    from app.serving.gradio_memory import approx_bytes

    demo, url = own_app
    monkeypatch.setattr(settings, "UNREAD_MESSAGE_TTL_S", 2.0)
    monkeypatch.setattr(settings, "MAX_RUNS_PER_ADDRESS", 100)
    sessions = [f"never-reads-{i}" for i in range(6)]
    for session in sessions:
        assert all(r.status_code == 200 for r in flood(url, session, 2))
    pending = lambda: sum(
        approx_bytes(list(demo._queue.pending_messages_per_session[s]._queue))
        for s in sessions
        if s in demo._queue.pending_messages_per_session
    )
    wait_until(lambda: pending() > 10_000, timeout=60)  # the runs finished; their outputs wait, unread
    wait_until(lambda: pending() == 0, timeout=30)  # … until the janitor drops them


def test_gradios_session_copies_are_bounded_in_bytes(own_app, monkeypatch):
    """gradio keeps a copy of each session's values, bounded only by a count of sessions (1,000 sessions of a 256 px
    forward view held 2.3–3.4 MB each). Past MAX_GRADIO_SESSION_BYTES the oldest sessions go."""
    from app import settings
    from app.serving.gradio_memory import session_bytes

    demo, url = own_app
    budget = 3 * 2**20
    monkeypatch.setattr(settings, "MAX_GRADIO_SESSION_BYTES", budget)
    clients = []
    for _ in range(12):
        client = local_client(url)
        client.predict(handle_file(EXAMPLE), "linear", 100, 1e-4, 0.02, 0, 128, api_name="/forward_setup")
        clients.append(client.session_hash)
    holder = demo.state_holder
    total = lambda: sum(session_bytes(state) for state in list(holder.session_data.values()))
    wait_until(lambda: total() <= budget, timeout=20)
    kept = set(holder.session_data)
    assert clients[-1] in kept and clients[0] not in kept, "the oldest went, the newest stayed"
    again = local_client(url)  # the server goes on serving
    assert again.predict(handle_file(EXAMPLE), "linear", 100, 1e-4, 0.02, 0, 32, api_name="/forward_setup")


def wait_until(condition, timeout: float, poll: float = 0.05) -> None:
    import time

    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(poll)


PAGE_RUNS = {  # a scrubber's elem_id, the API twin of the page's run, and that API's inputs on the tiny model
    "reverse": ("reverse-scrubber", "reverse_generate", lambda: [
        "tiny-random", plans.DDPM, 5, 0.0, next(iter(plans.VARIANCE_CHOICES)), True, 0, 1, plans.ANY_CLASS, 1.0,
        0, 100, 0.0, False,
    ]),
    "inpainting": ("inpaint-scrubber", "inpaint", lambda: [
        "tiny-random", next(iter(edit_inputs.test_images())), None, edit_inputs.preset_json("centre square", 8, 8),
        8, 2, 3, 1.0, 0, plans.ANY_CLASS, 1.0,
    ]),
    "interpolation": ("interp-scrubber", "interpolate", lambda: [
        "tiny-random", 0, 1, 4, plans.ANY_CLASS, plans.ANY_CLASS, 1.0
    ]),
}  # fmt: skip


@pytest.mark.parametrize("run", list(PAGE_RUNS))
def test_a_page_run_sends_its_scrubber_payload_once(app_url, run):
    """gradio's completion message repeats a generator's last yield: a page run's multi-MB payload was sent twice
    (with the last streamed update and again with the completion). The page's handlers end on a yield of skips."""
    import json
    import uuid

    scrubber_id, api_name, data = PAGE_RUNS[run]
    config = httpx.get(f"{app_url}/config").json()
    scrubber = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == scrubber_id)
    api = next(d for d in config["dependencies"] if d.get("api_name") == api_name)
    fn_index = next(  # the page's run: the API's inputs, and the scrubber among its outputs
        d["id"] for d in config["dependencies"] if scrubber in d["outputs"] and d["inputs"] == api["inputs"]
    )
    session = uuid.uuid4().hex
    body = {"data": data(), "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None}
    with httpx.Client(base_url=app_url, timeout=120) as http:
        assert http.post("/gradio_api/queue/join", json=body).status_code == 200
        sizes = {}
        with http.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                sizes.setdefault(message.get("msg"), []).append(len(line))
                if message.get("msg") == "process_completed":
                    break
    assert "process_generating" in sizes, sizes
    assert max(sizes["process_generating"]) > 5_000, "the streamed updates carry the payload (the tiny model's)"
    assert max(sizes["process_completed"]) < 2_000, "the completion does not carry it again"
