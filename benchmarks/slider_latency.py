"""Slider latency: the forward and reverse frame callbacks server-side, through gradio_client, and in Chromium.

python benchmarks/slider_latency.py --moves 200
"""

from __future__ import annotations

import argparse
import io
import os
import random
import time

from common import CHECKPOINT, stats, table, timed, write_section

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from app import callbacks as cb
from app import settings

IMAGE = "app/assets/grace_hopper.png"


def encode_png(outputs) -> None:
    """What gradio does after the callback: every image output saved as PNG."""
    for o in outputs:
        if hasattr(o, "save"):
            o.save(io.BytesIO(), format="png", pnginfo=None)


def server_side(moves: int) -> list[list]:
    rows = []
    for res in (32, 128, 256):
        state, *_ = cb.forward_setup(IMAGE, "linear", 1000, 1e-4, 0.02, 0, res)
        ts = [random.randint(0, 1000) for _ in range(moves)]
        cb.forward_scrub(state, 1)
        callback = stats([timed(lambda t=t: cb.forward_scrub(state, t)) for t in ts])
        with_png = stats([timed(lambda t=t: encode_png(cb.forward_scrub(state, t))) for t in ts])
        rows.append(
            [
                f"forward_scrub, {res} px",
                f"{callback['p50'] * 1e3:.2f}",
                f"{callback['p95'] * 1e3:.2f}",
                f"{with_png['p50'] * 1e3:.2f}",
                f"{with_png['p95'] * 1e3:.2f}",
            ]
        )
    traj_state = list(
        cb.reverse_generate("fashion-mnist-32", cb.SAMPLERS[0], 1000, 0.0, next(iter(cb.VARIANCE_TYPES)), True, 0, 1)
    )[-1][3]
    ts = [random.randint(0, 999) for _ in range(moves)]
    callback = stats([timed(lambda t=t: cb.reverse_frame(traj_state, t)) for t in ts])
    with_png = stats([timed(lambda t=t: encode_png(cb.reverse_frame(traj_state, t))) for t in ts])
    rows.append(
        [
            "reverse_frame, 32 px, 1000-step run",
            f"{callback['p50'] * 1e3:.2f}",
            f"{callback['p95'] * 1e3:.2f}",
            f"{with_png['p50'] * 1e3:.2f}",
            f"{with_png['p95'] * 1e3:.2f}",
        ]
    )
    return rows


def through_client(url: str, moves: int) -> list[list]:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    rows = []
    for res in (32, 256):
        client.predict(handle_file(IMAGE), "linear", 1000, 1e-4, 0.02, 0, res, api_name="/forward_setup")
        ts = [random.randint(0, 1000) for _ in range(moves)]
        s = stats([timed(lambda t=t: client.predict(t, api_name="/forward_scrub")) for t in ts])
        rows.append([f"/forward_scrub via gradio_client, {res} px", f"{s['p50'] * 1e3:.1f}", f"{s['p95'] * 1e3:.1f}"])
    return rows


# One slider move in the page's own clock (performance.now and the Resource Timing entries of its two requests).
MOVE_JS = """(el, v) => {
    performance.clearResourceTimings();
    const t0 = performance.now();
    el.value = v;
    el.dispatchEvent(new Event('input', {bubbles: true}));
    return t0;
}"""
LOADED_JS = """([el, before]) => { const img = el.querySelector('img');
    return img && img.src !== before && img.complete ? performance.now() : false; }"""
ENTRIES_JS = """() => performance.getEntriesByType('resource').map(e => ({
    name: e.name, start: e.startTime, firstByte: e.responseStart, end: e.responseEnd }))"""
PHASES = {
    "input event → POST /run/predict sent (gradio front end)": lambda t0, post, get, done: post["start"] - t0,
    "POST, sent → response received (server: callback, PNG encoding, cache files)": lambda t0, post, get, done: (
        post["end"] - post["start"]
    ),
    "response → x_t image requested (front end updates 5 outputs)": lambda t0, post, get, done: (
        get["start"] - post["end"]
    ),
    "GET of the x_t PNG (one of 4 image requests per move)": lambda t0, post, get, done: get["end"] - get["start"],
    "image received → decoded and complete": lambda t0, post, get, done: done - get["end"],
    "total, in the page's clock": lambda t0, post, get, done: done - t0,
}


def in_browser(url: str, moves: int) -> tuple[list[list], list[list]]:
    """The move's end-to-end latency, and its phases from the Resource Timing of its requests (a profile of where
    the time goes)."""
    from tests.chromium import chromium_page

    with chromium_page(url) as page:
        block = page.locator(".block").filter(has=page.get_by_text("x_t", exact=True)).first
        block.locator("img").first.wait_for(timeout=60_000)
        slider = page.locator("input[type=range]").first
        samples, phases = [], {name: [] for name in PHASES}
        for i in range(moves):
            before = block.locator("img").first.get_attribute("src")
            t = (i * 37) % 1000 + 1
            start = time.perf_counter()
            t0 = slider.evaluate(MOVE_JS, t)
            done = page.wait_for_function(
                LOADED_JS, arg=[block.element_handle(), before], timeout=10_000, polling="raf"
            ).json_value()
            samples.append(time.perf_counter() - start)
            src = block.locator("img").first.get_attribute("src")
            entries = page.evaluate(ENTRIES_JS)
            post = next((e for e in entries if "/run/predict" in e["name"]), None)
            name = src.rsplit("/", 1)[-1]  # the file's own name: the src may be relative, the entry is absolute
            get = next((e for e in entries if e["name"].endswith(name)), None)
            if post and get:
                for name, phase in PHASES.items():
                    phases[name].append(phase(t0, post, get, done) / 1e3)
    s = stats(samples)
    totals = [["slider input → new x_t on screen (Chromium, timed by Playwright), 64 px", *ms(s)]]
    return totals, [[name, *ms(stats(v)), len(v)] for name, v in phases.items()]


def ms(s: dict) -> list[str]:
    return [f"{s['p50'] * 1e3:.1f}", f"{s['p95'] * 1e3:.1f}"]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--moves", type=int, default=200)
    p.add_argument("--browser-moves", type=int, default=60)
    args = p.parse_args()
    random.seed(0)
    settings.CHECKPOINT_DIR = CHECKPOINT.parent
    rows = server_side(args.moves)
    body = (
        "Server side, over random slider positions: the callback alone, and the callback plus the PNG encoding "
        "gradio then does for each image output (ms).\n\n"
        + table(["handler", "callback p50", "callback p95", "+PNG p50", "+PNG p95"], rows)
    )
    from app.ui import build_demo, launch_kwargs

    demo = build_demo()
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **launch_kwargs())
    try:
        client_rows = through_client(url, args.moves)
        browser_rows, phase_rows = in_browser(url, args.browser_moves)
    finally:
        demo.close()
    body += (
        "\n\nEnd to end (ms): a `/forward_scrub` request through `gradio_client` (queue, callback, PNG, HTTP "
        "download), and in headless Chromium from a slider `input` event to the new image loaded.\n\n"
        + table(["path", "p50", "p95"], client_rows + browser_rows)
        + "\n\nWhere a browser move's time goes, from the page's Resource Timing (ms; each phase's own p50/p95, so "
        "the phases need not add up to the total's p95):\n\n" + table(["phase", "p50", "p95", "moves"], phase_rows)
    )
    write_section(
        "slider_latency",
        f"python benchmarks/slider_latency.py --moves {args.moves} --browser-moves {args.browser_moves}",
        body,
    )


if __name__ == "__main__":
    main()
