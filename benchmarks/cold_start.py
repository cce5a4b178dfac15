"""Cold start: `python app.py` to the first HTTP 200, with the bundled model.

python benchmarks/cold_start.py --repeats 5 --against b7eb873

With ``--against REV`` the same is timed on that commit's tree (``git archive``, in a temporary folder), the two
interleaved in each repeat (which goes first alternates), so both see the same load on a shared machine.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

from common import ROOT, stats, table, write_section


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_start(tree: Path) -> float:
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "app.py"], cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
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


def tree_of(rev: str, into: Path) -> Path:
    """The files of commit ``rev``, unpacked under ``into``."""
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--against", metavar="REV", help="a commit to time in the same run, interleaved")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": ROOT}
        if args.against:
            trees[f"commit {args.against}"] = tree_of(args.against, Path(tmp))
        times: dict[str, list[float]] = {name: [] for name in trees}
        for i in range(args.repeats):
            for name in list(trees)[:: 1 if i % 2 == 0 else -1]:
                times[name].append(one_start(trees[name]))
                print(f"{name}: {times[name][-1]:.2f} s", flush=True)
    base = stats(times[list(trees)[-1]])["median"]
    rows = []
    for name, samples in times.items():
        s = stats(samples)
        rows.append([name, f"{s['median']:.2f}", f"{s['min']:.2f}–{s['max']:.2f}", f"{s['median'] / base:.2f}×"])
    body = table(["`python app.py` → first HTTP 200", "median s", "range s", "vs the last"], rows)
    command = f"python benchmarks/cold_start.py --repeats {args.repeats}"
    write_section("cold_start", command + (f" --against {args.against}" if args.against else ""), body)


if __name__ == "__main__":
    main()
