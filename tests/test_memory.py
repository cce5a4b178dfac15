"""Session state is released when sessions end, so memory returns to its baseline."""

import ctypes
import gc
import os
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest
from gradio_client import Client

from app import callbacks as cb
from app import settings

pytestmark = pytest.mark.e2e
VARIANCE = next(iter(cb.VARIANCE_TYPES))


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app with a 32 px tiny model and sessions that expire after 2 s, so the test can watch them go."""
    from conftest import launch_app, make_tiny_unet

    from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler

    root = tmp_path_factory.mktemp("ckpt32")
    DDPMExplorerPipeline(
        unet=make_tiny_unet(sample_size=32), scheduler=DDPMExplorerScheduler(num_train_timesteps=100)
    ).save_pretrained(root / "tiny-random")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(settings, "SESSION_TTL_S", 2)
        mp.setattr(settings, "SESSION_CAPACITY", 50)
        with launch_app(root) as url:
            yield url


def rss_mb() -> float:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # return freed heap pages, so RSS shows what is still held
    except OSError:
        pass
    return psutil.Process().memory_info().rss / 2**20


def wait_for_release(refs, timeout_s: float = 30.0) -> tuple[int, str]:
    """Waits until every weakly referenced object is gone; returns how many are still alive and who holds one.

    gradio sweeps expired state once a second on its event loop, so on a loaded machine the last sessions can
    outlive a fixed sleep by a sweep or two. A leak never ends, so waiting for it is still a test that fails.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        gc.collect()
        held = sum(ref() is not None for ref in refs)
        if held == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    holders = ""
    survivor = next((obj for obj in (ref() for ref in refs) if obj is not None), None)
    if survivor is not None:
        holders = ", ".join(sorted({type(r).__name__ for r in gc.get_referrers(survivor)} - {"list", "frame"}))
    return held, holders


def test_200_sessions_release_their_state(app_url, monkeypatch):
    """48 warm-up sessions fill gradio's and the allocator's caches; the next 152 must not keep their trajectories."""
    clients = [Client(app_url, verbose=False) for _ in range(4)]
    alive = []  # the ReverseState objects the server keeps, watched through weak references
    exports = []  # the export files the server writes
    init, write_gif = cb.ReverseState.__init__, cb.rendering.write_gif

    def track(self, *args, **kwargs):
        init(self, *args, **kwargs)
        alive.append(weakref.ref(self))

    def record_export(*args, **kwargs):
        exports.append(write_gif(*args, **kwargs))
        return exports[-1]

    monkeypatch.setattr(cb.ReverseState, "__init__", track)
    monkeypatch.setattr(cb.rendering, "write_gif", record_export)

    def session(i):
        client = clients[i % 4]
        client.reset_session()  # a new session: what a new browser tab is to the server
        client.predict("tiny-random", cb.SAMPLERS[1], 20, 0.0, VARIANCE, True, i, 16, api_name="/reverse_generate")
        if i % 2:
            client.predict(api_name="/reverse_gif")  # a per-session export file, deleted with its session

    def run(first, last):
        for chunk in range(first, last, 4):  # four at a time, one per client
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(session, range(chunk, chunk + 4)))
        time.sleep(3)  # TTL 2 s, swept every second: trajectories and export files alike
        return wait_for_release(alive)

    run(0, 48)
    baseline = rss_mb()
    held, holders = run(48, 200)
    growth = rss_mb() - baseline
    per_session_mb = 20 * 3 * 16 * 32 * 32 / 2**20  # 20 frames of x_t, x̂₀, ε̂ at batch 16, 32×32: 0.94 MB
    print(
        f"200 sessions: {held} of {len(alive)} trajectories still held; RSS {growth:+.1f} MB over the last 152 "
        f"(their trajectories alone: {152 * per_session_mb:.0f} MB)"
    )
    assert len(alive) == 200 and held == 0, f"{held} session trajectories were not released (held by: {holders})"
    left = [path for path in exports if os.path.exists(path)]
    assert len(exports) == 100 and not left, f"{len(left)} export files outlived their sessions"
    # measured: about +38 MB (0.25 MB a session, gradio's own per-session bookkeeping); leaked trajectories add 143
    assert growth < 0.5 * 152 * per_session_mb, f"RSS grew by {growth:.0f} MB over 152 sessions"
