"""Dragging t in Chromium, as a user does: each tab's slider from its minimum to its maximum in 3 s, one input event
per animation frame, with no extra latency and with 150 ms of round trip emulated (a Space seen from another
continent). Reports the frames per second in which the tab's pictures changed during the drag, and the time from the
last input to the frame that shows it. Also the page's JS heap over 50 setups and 50 runs.

python benchmarks/drag.py                       # this tree
python benchmarks/drag.py --label before        # run it on an older checkout to fill the "before" rows

Works on either kind of page: with the in-page scrubbers (a frame changed when the scrubber repainted its panels;
on the reverse tab a run has only as many distinct pictures as recorded steps, so a repaint may show the same step)
or with server-drawn <img> panels (a frame changed when any panel's image changed).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from common import CHECKPOINT, ROOT, table, write_section

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(ROOT / "tests"))

from chromium import chromium_page

from app import models, settings

# Runs in the page: drags `#{slider} input[type=range]` over `ms` milliseconds, one input per animation frame, and
# counts the frames in which the tab's pictures changed; the last input's time and the frame that showed it.
DRAG = """
async ([slider, tab, ms]) => {
  const range = document.querySelector(`#${slider} input[type=range]`);
  const lo = Number(range.min), hi = Number(range.max);
  const root = document.querySelector(`#${tab}`);
  const signature = () => {
    const s = root && root.querySelector('[data-paints]');
    if (s) return s.dataset.paints;  // the scrubber redrew its panels
    return Array.from(document.querySelectorAll('img')).filter((i) => i.offsetParent).map((i) => i.src).join('|');
  };
  const frame = () => new Promise(requestAnimationFrame);
  let last = signature(), changedDuring = 0, lastInput = null, lastChangeAt = null;
  const start = await frame();
  for (;;) {
    const now = await frame();
    const sig = signature();
    if (sig !== last) {
      last = sig;
      if (lastInput === null) changedDuring++;
      lastChangeAt = now;
    }
    if (lastInput === null) {
      const done = now - start >= ms;
      const inputAt = performance.now();  // the user's input happens now; whatever it triggers comes after
      range.value = String(done ? hi : Math.round(lo + ((hi - lo) * (now - start)) / ms));
      range.dispatchEvent(new Event('input', { bubbles: true }));
      if (done) {
        range.dispatchEvent(new Event('change', { bubbles: true }));
        lastInput = inputAt;
      }
      continue;
    }
    // after the drag: the last change, once nothing has changed for 2 s (or 10 s have passed)
    if (now - Math.max(lastInput, lastChangeAt || 0) > 2000 || now - lastInput > 10000) break;
  }
  const lag = lastChangeAt !== null && lastChangeAt >= lastInput ? lastChangeAt - lastInput : null;
  return { changedPerS: (changedDuring * 1000) / ms, lagMs: lag };
}
"""


def emulate_latency(page, rtt_ms: int) -> None:
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": rtt_ms, "downloadThroughput": -1, "uploadThroughput": -1},
    )


def heap_mb(page) -> float:
    cdp = page.context.new_cdp_session(page)
    cdp.send("HeapProfiler.collectGarbage")
    return page.evaluate("performance.memory.usedJSHeapSize") / 2**20


def set_value(page, label: str, value) -> None:
    box = page.get_by_label(label, exact=True).first
    box.fill(str(value))
    box.press("Enter")


def wait_idle(page) -> None:
    page.wait_for_timeout(1500)  # let setup events finish before the drag


def drag(page, label_text: str, tab: str, ms: int = 3000) -> dict:
    """Drag the slider whose label contains ``label_text`` (old pages have no element ids on their sliders)."""
    page.evaluate(
        "(text) => { const r = Array.from(document.querySelectorAll('input[type=range]'))"
        ".find((r) => r.offsetParent && (r.getAttribute('aria-label') || '').includes(text));"
        " document.querySelectorAll('#bench-slider').forEach((e) => e.removeAttribute('id'));"
        " r.parentElement.id = 'bench-slider'; }",
        label_text,
    )
    return page.evaluate(DRAG, ["bench-slider", tab, ms])


def row(label: str, tab: str, size: str, rtt: int, r: dict) -> list:
    return [label, tab, size, rtt, f"{r['changedPerS']:.1f}", "never" if r["lagMs"] is None else f"{r['lagMs']:.0f}"]


def random_256_checkpoint(directory: Path) -> None:
    """A random 3-channel 256 px UNet (google/ddpm-*-256's shape, smaller), for the reverse tab at 256 px."""
    from diffusers import UNet2DModel

    from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler

    unet = UNet2DModel(
        sample_size=256,
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    )
    DDPMExplorerPipeline(unet=unet, scheduler=DDPMExplorerScheduler(beta_schedule="linear")).save_pretrained(
        directory / "random-256"
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--label", default="in-page scrubbers", help="what this tree is, for the table")
    p.add_argument("--latencies", default="0,150")
    p.add_argument("--heap-rounds", type=int, default=50)
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    for name in os.listdir(CHECKPOINT.parent):
        if (CHECKPOINT.parent / name / "model_index.json").exists():
            os.symlink(CHECKPOINT.parent / name, tmp / name)
    random_256_checkpoint(tmp)
    settings.CHECKPOINT_DIR = tmp
    settings.MAX_WORK = 10**12
    models._registry.cache_clear() if hasattr(models, "_registry") else None
    from app.ui import build_demo, launch_kwargs

    demo = build_demo()
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **launch_kwargs())
    rows, heap_rows = [], []
    try:
        for rtt in [int(x) for x in args.latencies.split(",")]:
            with chromium_page(url) as page:
                page.get_by_text("Forward process").first.wait_for(timeout=60_000)
                wait_idle(page)
                emulate_latency(page, rtt)
                for px in (64, 256):
                    page.get_by_label("Working resolution", exact=True).first.click()
                    page.get_by_role("option", name=str(px), exact=True).click()
                    wait_idle(page)
                    rows.append(
                        row(args.label, "forward", f"{px} px", rtt, drag(page, "noising steps", "forward-scrubber"))
                    )
                page.get_by_role("tab", name="Reverse process").click()
                for model, px, steps in (("fashion-mnist-32", 32, 100), ("random-256", 256, 20)):
                    page.get_by_label("Model", exact=True).first.click()
                    page.get_by_role("option", name=model, exact=True).click()
                    set_value(page, "number input for Steps N (respaced / DDIM)", steps)
                    page.get_by_role("button", name="Generate").click()
                    page.get_by_text(f"Done: {steps} steps").wait_for(timeout=600_000)
                    wait_idle(page)
                    size = f"{px} px, {steps} steps × 4"
                    rows.append(row(args.label, "reverse", size, rtt, drag(page, "nearest", "reverse-scrubber")))
        with chromium_page(url) as page:
            if not args.heap_rounds:
                return write(args, rows, heap_rows)
            page.get_by_text("Forward process").first.wait_for(timeout=60_000)
            wait_idle(page)
            before = heap_mb(page)
            for seed in range(1, args.heap_rounds + 1):
                set_value(page, "Seed (fixes ε)", seed)
                page.wait_for_timeout(300)
            wait_idle(page)
            heap_rows.append(
                [args.label, f"{args.heap_rounds} forward setups", f"{before:.1f}", f"{heap_mb(page):.1f}"]
            )
            page.get_by_role("tab", name="Reverse process").click()
            set_value(page, "number input for Steps N (respaced / DDIM)", 10)
            before = heap_mb(page)
            for seed in range(1, args.heap_rounds + 1):
                set_value(page, "Seed", seed)
                page.get_by_role("button", name="Generate").click()
                page.get_by_text("Done: 10 steps").wait_for(timeout=60_000)
                page.wait_for_timeout(200)
            wait_idle(page)
            heap_rows.append([args.label, f"{args.heap_rounds} reverse runs", f"{before:.1f}", f"{heap_mb(page):.1f}"])
    finally:
        demo.close()
    write(args, rows, heap_rows)


def write(args, rows: list, heap_rows: list) -> None:
    body = (
        "Each tab's slider dragged from its minimum to its maximum in 3 s, one `input` event per animation frame, "
        "in headless Chromium; round trip emulated with `Network.emulateNetworkConditions`. *changed/s*: frames "
        "per second in which the tab's pictures changed during the drag (the display's limit is 60); *lag*: from "
        "the last input to the frame that showed it.\n\n"
        + table(["page", "tab", "size", "RTT ms", "changed/s", "lag ms"], rows)
    )
    if heap_rows:
        body += "\n\nThe page's JS heap (after a forced GC, MB):\n\n" + table(
            ["page", "after", "heap before", "heap after"], heap_rows
        )
    write_section(
        f"drag-{args.label.replace(' ', '-')}",
        f"python benchmarks/drag.py --label '{args.label}' --heap-rounds {args.heap_rounds}",
        body,
    )


if __name__ == "__main__":
    main()
