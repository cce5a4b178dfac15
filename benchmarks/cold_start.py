"""Cold start: `python app.py` to the first HTTP 200, with the bundled model.

python benchmarks/cold_start.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request

from common import ROOT, stats, table, write_section


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_start() -> float:
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while time.perf_counter() - start < 120:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("no HTTP 200 within 120 s")
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    s = stats([one_start() for _ in range(args.repeats)])
    body = table(
        ["measure", "median s", "range s"],
        [["`python app.py` → first HTTP 200", f"{s['median']:.2f}", f"{s['min']:.2f}–{s['max']:.2f}"]],
    )
    write_section("cold_start", f"python benchmarks/cold_start.py --repeats {args.repeats}", body)


if __name__ == "__main__":
    main()
