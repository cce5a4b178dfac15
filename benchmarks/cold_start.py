"""Cold start: `python app.py` to the first HTTP 200, with the bundled model.

python benchmarks/cold_start.py --repeats 5 --against b7eb873 --first-run

With ``--against REV`` the same is timed on that commit's tree (``git archive``, in a temporary folder), the two
interleaved in each repeat (which goes first alternates), so both see the same load on a shared machine. With
``--first-run`` also the time to the result of the API's reverse run with the tab's defaults, asked for as soon as
the page answers: the first click, which must not wait longer for the model side loaded after the page.
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


def first_run(port: int) -> None:
    """The API's reverse run with the tab's defaults (the default model, sampler and steps, batch 4)."""
    from gradio_client import Client

    from app import plans, settings

    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    variance = next(iter(plans.VARIANCE_CHOICES))
    args = (settings.DEFAULT_MODEL, plans.DEFAULT_SAMPLER, plans.DEFAULT_STEPS, 0.0, variance, True, 0, 4)
    client.predict(*args, api_name="/reverse_generate")


def one_start(tree: Path, with_first_run: bool) -> tuple[float, float | None]:
    """Seconds from `python app.py` to the page's HTTP 200, and to the first run's result (when asked)."""
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
                        page = time.perf_counter() - start
                        if not with_first_run:
                            return page, None
                        first_run(port)
                        return page, time.perf_counter() - start
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
    p.add_argument("--first-run", action="store_true", help="also time the first reverse run's result")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": ROOT}
        if args.against:
            trees[f"commit {args.against}"] = tree_of(args.against, Path(tmp))
        pages: dict[str, list[float]] = {name: [] for name in trees}
        runs: dict[str, list[float]] = {name: [] for name in trees}
        for i in range(args.repeats):
            for name in list(trees)[:: 1 if i % 2 == 0 else -1]:
                page, run = one_start(trees[name], args.first_run)
                pages[name].append(page)
                runs[name] += [run] if run is not None else []
                print(f"{name}: page {page:.2f} s" + (f", first run {run:.2f} s" if run else ""), flush=True)
    body = measured("`python app.py` → first HTTP 200", pages)
    if args.first_run:
        body += "\n\n" + measured("→ the first reverse run's result (asked for at the HTTP 200)", runs)
    command = f"python benchmarks/cold_start.py --repeats {args.repeats}"
    command += (f" --against {args.against}" if args.against else "") + (" --first-run" if args.first_run else "")
    write_section("cold_start", command, body)


def measured(what: str, times: dict[str, list[float]]) -> str:
    """A table of each tree's median and range, and its median over the last tree's."""
    base = stats(times[list(times)[-1]])["median"]
    rows = []
    for name, samples in times.items():
        s = stats(samples)
        rows.append([name, f"{s['median']:.2f}", f"{s['min']:.2f}–{s['max']:.2f}", f"{s['median'] / base:.2f}×"])
    return table([what, "median s", "range s", "vs the last"], rows)


if __name__ == "__main__":
    main()
