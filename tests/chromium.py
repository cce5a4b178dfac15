"""Debian's headless Chromium for Playwright, shared by the browser tests and the slider benchmark.

Never a downloaded browser: ``apt-get install chromium chromium-driver`` puts it at ``/usr/bin/chromium``.
"""

import os
import shutil
from contextlib import contextmanager

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1600}


def require_chromium() -> None:
    """In a browser test's fixture: skip where Debian's Chromium is missing; in CI (``CI_STRICT``) fail instead, since
    there the browser tests must run."""
    import pytest

    if shutil.which(CHROMIUM) or os.path.exists(CHROMIUM):
        return
    if os.environ.get("CI_STRICT"):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium chromium-driver")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium chromium-driver)")


@contextmanager
def chromium_page(url: str):
    """A fresh page on ``url`` in headless Chromium; the browser closes on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url)
            yield page
        finally:
            browser.close()
