"""Slider latency for API users: the forward and reverse frame callbacks server-side, and through gradio_client.

python benchmarks/slider_latency.py --moves 200
"""

from __future__ import annotations

import argparse
import io
import os
import random

from common import CHECKPOINT, stats, table, timed, write_section

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from app import plans, settings
from app.callbacks import forward, reverse

VARIANCE = next(iter(plans.VARIANCE_CHOICES))

IMAGE = "app/assets/grace_hopper.png"


def encode_png(outputs) -> None:
    """What gradio does after the callback: every image output saved as PNG."""
    for o in outputs:
        if hasattr(o, "save"):
            o.save(io.BytesIO(), format="png", pnginfo=None)


def server_side(moves: int) -> list[list]:
    rows = []
    for res in (32, 128, 256):
        state, *_ = forward.forward_setup(IMAGE, "linear", 1000, 1e-4, 0.02, 0, res)
        ts = [random.randint(0, 1000) for _ in range(moves)]
        forward.forward_scrub(state, 1)
        callback = stats([timed(lambda t=t: forward.forward_scrub(state, t)) for t in ts])
        with_png = stats([timed(lambda t=t: encode_png(forward.forward_scrub(state, t))) for t in ts])
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
        reverse.reverse_generate(
            "fashion-mnist-32", plans.DDPM, 1000, 0.0, next(iter(plans.VARIANCE_CHOICES)), True, 0, 1
        )
    )[-1]["state"]
    ts = [random.randint(0, 999) for _ in range(moves)]
    callback = stats([timed(lambda t=t: reverse.reverse_frame(traj_state, t)) for t in ts])
    with_png = stats([timed(lambda t=t: encode_png(reverse.reverse_frame(traj_state, t))) for t in ts])
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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--moves", type=int, default=200)
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
    finally:
        demo.close()
    body += (
        "\n\nEnd to end (ms): a `/forward_scrub` request through `gradio_client` (queue, callback, PNG, HTTP "
        "download). These are the API's figures: in the page, a slider move sends no request at all (the scrubbers "
        "draw it; see the drag benchmark).\n\n" + table(["path", "p50", "p95"], client_rows)
    )
    write_section("slider_latency", f"python benchmarks/slider_latency.py --moves {args.moves}", body)


if __name__ == "__main__":
    main()
