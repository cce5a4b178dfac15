"""Shared helpers: timing statistics, Markdown tables, and writing a benchmark's section of docs/PERFORMANCE.md."""

from __future__ import annotations

import platform
import re
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DOC = ROOT / "docs" / "PERFORMANCE.md"
CHECKPOINT = ROOT / "checkpoints" / "fashion-mnist-32"


def stats(samples: list[float]) -> dict:
    s = sorted(samples)
    q = lambda p: s[min(len(s) - 1, round(p * (len(s) - 1)))]
    return {"median": statistics.median(s), "min": s[0], "max": s[-1], "p50": q(0.5), "p95": q(0.95), "n": len(s)}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rate_rows(rates: dict[str, list[float]], base: str, ratio_digits: int = 2) -> list[list[str]]:
    """One row per variant of repeated rates (images/s): its median, its range, and its median over ``base``'s."""
    base_median = stats(rates[base])["median"]
    rows = []
    for name, samples in rates.items():
        s = stats(samples)
        rows.append(
            [
                name,
                f"{s['median']:.1f}",
                f"{s['min']:.1f}–{s['max']:.1f}",
                f"{s['median'] / base_median:.{ratio_digits}f}×",
            ]
        )
    return rows


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    return (
        f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}"
    )


def write_section(name: str, command: str, body: str) -> None:
    """Replace (or append) the section between this benchmark's markers in docs/PERFORMANCE.md."""
    DOC.parent.mkdir(exist_ok=True)
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    section = (
        f"{start}\nMeasured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()} with\n"
        f"`{command}`:\n\n{body}\n{end}"
    )
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text)
    print(body)
