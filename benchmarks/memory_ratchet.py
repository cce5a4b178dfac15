"""Memory after bursts: the process's RSS after three bursts of six large images decoded at once (a 2500² float TIFF
and a 3000² RGB PNG, each about 25 MB decoded, through /forward_frame's callback), in a process with glibc's default
allocator settings and in one as the app sets them (app.serving.session_memory.return_large_buffers_to_the_system).

    python benchmarks/memory_ratchet.py
"""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
from common import table, write_section
from PIL import Image


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def large_images(folder: Path) -> list[str]:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.random((2500, 2500)).astype(np.float32), mode="F").save(folder / "float.tif")
    Image.fromarray(rng.integers(0, 256, (3000, 3000, 3), np.uint8)).save(folder / "rgb.png", compress_level=1)
    return [str(folder / "float.tif"), str(folder / "rgb.png")] * 3


def bursts(as_the_app: bool, count: int = 3) -> list[float]:
    """RSS (MB) after one image, then after each of ``count`` bursts."""
    from app.callbacks import forward
    from app.serving.session_memory import return_large_buffers_to_the_system

    if as_the_app:
        assert return_large_buffers_to_the_system()
    with tempfile.TemporaryDirectory() as folder:
        images = large_images(Path(folder))
        frame = lambda path: forward.forward_frame(path, "linear", 1000, 1e-4, 0.02, 0, 256, 500)
        frame(images[0])  # first use: imports, caches
        readings = [rss_mb()]
        for _ in range(count):
            with ThreadPoolExecutor(6) as pool:
                list(pool.map(frame, images))
            readings.append(rss_mb())
    return readings


def main() -> None:
    runs = {}
    for as_the_app in (False, True):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(as_the_app)], capture_output=True, text=True, check=True
        )
        runs[as_the_app] = json.loads(out.stdout.strip().splitlines()[-1])
    moments = ["after one image (baseline)", *(f"after burst {i} of 6 at once" for i in (1, 2, 3))]
    rows = [[m, f"{runs[False][i]:.0f}", f"{runs[True][i]:.0f}"] for i, m in enumerate(moments)]
    body = table(["moment", "RSS (MB), glibc defaults", "RSS (MB), as the app runs"], rows)
    print(body)
    write_section("memory-ratchet", "python benchmarks/memory_ratchet.py", body)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(bursts(sys.argv[2] == "True", *map(int, sys.argv[3:4]))))
    else:
        main()
