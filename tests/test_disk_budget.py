"""Disk: a byte budget on everything the app and gradio write, no orphaned files, and a cap on one request's body."""

import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import launch_app, local_client
from gradio_client import handle_file
from PIL import Image

from app import rendering, settings
from app.serving import disk_budget
from app.serving.disk_budget import DiskBudget

BUDGET = 3 * 2**20


def write(path: Path, size: int, age_s: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def sizes(folders) -> list[int]:
    """The size of every file under ``folders``, skipping files deleted while we look."""
    found = []
    for folder in folders:
        for root, _, names in os.walk(folder):  # os.walk skips folders deleted while it walks
            for name in names:
                try:
                    found.append(os.stat(os.path.join(root, name)).st_size)
                except OSError:
                    pass
    return found


def disk_usage(folders) -> int:
    return sum(sizes(folders))


def test_the_budget_deletes_the_oldest_files_first_and_orphans_and_empty_folders(tmp_path):
    old = [write(tmp_path / f"cache/{i}/image.png", 1000, age_s=100 - i) for i in range(5)]  # oldest first
    orphan = write(tmp_path / "cache/tmpabc", 0, age_s=60)
    fresh_empty = write(tmp_path / "cache/tmpnew", 0, age_s=0)  # an upload just starting
    budget = DiskBudget(max_bytes=2500, orphan_age_s=10, min_age_s=0)
    budget.watch(tmp_path / "cache")
    assert budget.enforce() == 2000
    assert [p.exists() for p in old] == [False, False, False, True, True], "oldest first, until the total fits"
    assert not orphan.exists() and fresh_empty.exists()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["3", "4", "tmpnew"], "empty folders go"
    assert budget.evicted == 3


def test_the_budget_also_caps_the_number_of_files(tmp_path):
    """An attacker's uploads of 1,000 four-byte files a request left 100,000 files well under the byte budget, and
    the janitor, which walks every file each second, kept 0.6–0.7 of the 2 cores busy while the app was idle.
    Past max_files the oldest go, as past max_bytes."""
    tiny = [write(tmp_path / f"cache/{i}/f", 4, age_s=100 - i) for i in range(10)]  # oldest first
    budget = DiskBudget(max_bytes=2**30, min_age_s=0, max_files=4)
    budget.watch(tmp_path / "cache")
    assert budget.enforce() == 16
    assert [p.exists() for p in tiny] == [False] * 6 + [True] * 4 and budget.evicted == 6


def test_files_a_request_may_still_use_are_left_alone(tmp_path):
    recent = write(tmp_path / "cache/x/image.png", 5000, age_s=0)
    budget = DiskBudget(max_bytes=1000, min_age_s=2)
    budget.watch(tmp_path / "cache")
    assert budget.enforce() == 5000 and recent.exists()
    os.utime(recent, (time.time() - 3,) * 2)
    assert budget.enforce() == 0 and not recent.exists()


@pytest.mark.slow
def test_a_gif_being_encoded_is_never_taken_for_an_orphan(tmp_path):
    """A loaded CI run once lost a GIF export: the file was created empty, PIL quantized every frame before writing a
    byte, and the janitor deleted the 'orphaned' empty file meanwhile. Exports now appear with their content."""
    janitor = DiskBudget(2**30, orphan_age_s=0.2)  # empty for 0.2 s: an orphan (10 s in the app)
    janitor.watch(tmp_path)
    done = threading.Event()

    def sweep():
        while not done.is_set():
            janitor.enforce()
            time.sleep(0.005)

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(8)]  # about 0.5 s to encode
    thread = threading.Thread(target=sweep, daemon=True)
    thread.start()
    try:
        paths = [rendering.write_gif(frames, directory=str(tmp_path)) for _ in range(3)]
    finally:
        done.set()
        thread.join()
    for path in paths:
        assert os.path.getsize(path) > 0 and Image.open(path).n_frames == len(frames)


def noise_png(seed: int, size: int = 600) -> bytes:
    """An incompressible PNG of about size² bytes."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size), np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def budgeted_app(tiny_checkpoints, tmp_path, monkeypatch):
    """The app with a cache folder of its own under a 3 MB budget, checked every 0.1 s; yields (url, folders)."""
    cache = tmp_path / "gradio-cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    budget = DiskBudget(max_bytes=BUDGET, orphan_age_s=1.0, min_age_s=1.0)
    monkeypatch.setattr(disk_budget, "budget", budget)
    monkeypatch.setattr(settings, "DISK_CHECK_EVERY_S", 0.1)
    with launch_app(tiny_checkpoints) as url:
        yield url, budget.folders


@pytest.mark.slow
def test_a_burst_of_uploads_and_frames_stays_within_the_budget(budgeted_app, tmp_path):
    """40 uploads of 360 KB and their frames (29 MB written in all) against a 3 MB budget: the disk never holds more
    than the budget plus what recent requests wrote (files of the last second are left alone), ends within it, and
    keeps no empty files; every request is served."""
    url, folders = budgeted_app
    images = []
    for i in range(40):
        path = tmp_path / f"upload-{i}.png"
        path.write_bytes(noise_png(i))
        images.append(path)
    peak, done = [0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], disk_usage(folders))
            time.sleep(0.02)

    def frame(path):
        client = local_client(url)
        args = (handle_file(str(path)), "linear", 100, 1e-4, 0.02, 0, 256, 50)
        return client.predict(*args, api_name="/forward_frame")

    watcher = threading.Thread(target=watch)
    watcher.start()
    workers = 4
    try:
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(frame, images))
    finally:
        done.set()
        watcher.join()
    assert len(results) == len(images)
    written = sum(p.stat().st_size for p in images) * 2  # each upload, and gradio's copy of its frame and input
    assert written > 4 * BUDGET
    in_flight = workers * (settings.MAX_REQUEST_BYTES // 4)  # recent uploads and frames, with room
    assert peak[0] <= BUDGET + in_flight, f"peak {peak[0]:,} bytes"
    deadline = time.time() + 30
    while time.time() < deadline and (disk_usage(folders) > BUDGET or 0 in sizes(folders)):
        time.sleep(0.1)
    assert disk_usage(folders) <= BUDGET
    assert 0 not in sizes(folders), "no orphaned empty files"


def test_one_request_cannot_upload_more_than_the_request_limit(live_app):
    """Before, 40 files of 9 MB went up in one request (360 MB in 3 s); each file was under the per-file limit."""
    nine_mb = b"\x00" * (9 * 2**20)
    files = [("files", (f"{i}.png", nine_mb)) for i in range(2)]
    r = httpx.post(live_app.rstrip("/") + "/gradio_api/upload", files=files, timeout=60)
    assert r.status_code == 413 and "limit" in r.text
    one = httpx.post(live_app.rstrip("/") + "/gradio_api/upload", files=files[:1], timeout=60)
    assert one.status_code == 200, "one file under the per-file limit still goes up"


def test_a_body_sent_in_chunks_past_the_limit_is_refused_with_413(live_app):
    """Three 7 MB files sent in chunks, with no Content-Length, got a 500 and a traceback (the limit raised inside
    gradio's parser); it is the same 413 as for a declared length now."""
    seven_mb = b"\x00" * (7 * 2**20)
    boundary = "b0undary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{i}.png"\r\n\r\n'.encode()
        + seven_mb
        + b"\r\n"
        for i in range(3)
    ]

    def chunks():
        for part in parts:
            yield from (part[k : k + 2**20] for k in range(0, len(part), 2**20))
        yield f"--{boundary}--\r\n".encode()

    r = httpx.post(
        live_app.rstrip("/") + "/gradio_api/upload",
        content=chunks(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=60,
    )
    assert r.status_code == 413 and "limit" in r.text, (r.status_code, r.text[:200])


def test_each_test_process_has_a_gradio_cache_of_its_own():
    """An app deletes every file it wrote as it closes, and uploads of the same bytes share one path: when both xdist
    workers inherited the controller's cache folder, one worker's app closing deleted the example image another
    worker had just uploaded ("The uploaded file could not be read.", CI of 0935f62)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    cache = Path(os.environ["GRADIO_TEMP_DIR"])
    assert cache.name.startswith(f"ddpm-explorer-tests-gradio-{worker}-") and cache.is_dir()
