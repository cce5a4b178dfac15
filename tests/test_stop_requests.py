"""The Stop button's requests as files (app/serving/stop_requests.py): what a session id from a client can do to the
folder, and a waiting run forgotten after WAITING_FOR_S. (Stop itself: test_reverse_tab.py; across a forked ZeroGPU
worker: test_zerogpu.py.)"""

import re

from app.serving.stop_requests import StopRequests


def test_a_session_id_names_no_file_only_its_hash_does(tmp_path):
    folder = tmp_path / "stop"
    requests = StopRequests(folder)
    hostile = "../../outside/x" + "\x00" * 3 + "y" * 10_000
    requests.waiting(hostile)
    assert requests.request(hostile) and requests.requested(hostile)
    requests.started(hostile)
    assert requests.requested(hostile)  # asked while it waited: it stands
    names = sorted(p.name for p in folder.iterdir())
    assert all(re.fullmatch(r"\.lock|[0-9a-f]{40}\.(running|requested)", n) for n in names), names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stop"]  # nothing written outside the folder
    requests.finished(hostile)
    assert not requests.requested(hostile) and [p.name for p in folder.iterdir()] == [".lock"]


def test_a_run_noted_as_waiting_that_never_started_is_forgotten(tmp_path, monkeypatch):
    requests = StopRequests(tmp_path)
    requests.waiting("refused")  # Generate clicked, the queue refused it: it never starts
    assert requests.request("refused")
    monkeypatch.setattr(StopRequests, "WAITING_FOR_S", 0.0)
    monkeypatch.setattr(StopRequests, "SWEEP_EVERY_S", 0.0)
    assert not requests.request("refused")  # no run going or waiting: a Stop asks nothing
    requests.waiting("another")  # and the stale mark is removed on the next Generate
    assert not any(p.name.startswith(requests._path("refused", "waiting").name) for p in tmp_path.iterdir())


def test_invented_sessions_leave_a_bounded_number_of_waiting_marks(tmp_path, monkeypatch):
    """An attacker's 3,000 invented session hashes left 3,000 waiting marks, all read under the folder's lock by
    every Generate (24 -> 83 ms a call). Marks are swept at most every SWEEP_EVERY_S, and past MAX_WAITING the
    oldest go, the newest stay."""
    requests = StopRequests(tmp_path)
    monkeypatch.setattr(StopRequests, "MAX_WAITING", 3)
    monkeypatch.setattr(StopRequests, "SWEEP_EVERY_S", 0.0)
    for k in range(6):
        requests.waiting(f"invented-{k}")
    marks = sorted(p.name for p in tmp_path.glob("*.waiting"))
    assert len(marks) == 3 and requests._path("invented-5", "waiting").name in marks
    assert requests._path("invented-0", "waiting").name not in marks
    monkeypatch.setattr(StopRequests, "SWEEP_EVERY_S", 3600.0)  # between sweeps, no folder read per Generate
    reads = []
    monkeypatch.setattr(StopRequests, "_waited_since", lambda self, path: reads.append(path) or 0.0)
    requests.waiting("one-more")
    assert reads == []
