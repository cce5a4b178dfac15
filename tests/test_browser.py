"""The app in a real browser: Debian's Chromium driven by Playwright (never a downloaded browser)."""

import os
import shutil
from pathlib import Path

import pytest
from chromium import CHROMIUM, chromium_page

pytestmark = pytest.mark.e2e
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts"))


@pytest.fixture(scope="module")
def page(live_app):
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        if os.environ.get("CI_STRICT"):
            pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium chromium-driver")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium chromium-driver)")
    with chromium_page(live_app) as page:
        page.get_by_text("x_t", exact=True).first.wait_for(timeout=30_000)
        yield page


def image_src(locator) -> str:
    locator.locator("img").first.wait_for(timeout=30_000)
    return locator.locator("img").first.get_attribute("src")


def block(page, label: str):
    """The component whose label reads exactly ``label``."""
    return page.locator(".block").filter(has=page.get_by_text(label, exact=True)).first


def set_number(page, label: str, value: int) -> None:
    """Type a value into a slider's number box, as a user would."""
    number = page.get_by_label(f"number input for {label}")
    number.fill(str(value))
    number.press("Enter")


def slider_changes_image(page, slider_label: str, value: int, image) -> None:
    """Move a slider and wait until ``image`` shows a different picture."""
    before = image_src(image)
    set_number(page, slider_label, value)
    page.wait_for_function(
        "([el, before]) => el.querySelector('img') && el.querySelector('img').src !== before",
        arg=[image.element_handle(), before],
        timeout=15_000,
    )
    assert image_src(image) != before


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_forward_slider_changes_the_image(page):
    slider_changes_image(page, "t: noising steps applied (0 = clean image, T = noise)", 600, block(page, "x_t"))
    screenshot(page, "forward.png")


def test_reverse_generation_streams_frames(page):
    page.get_by_role("tab", name="Reverse process").click()
    set_number(page, "Steps N (respaced / DDIM)", 8)
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("Done: 8 steps").wait_for(timeout=60_000)
    assert image_src(block(page, "Result x₀")).startswith(("http", "/", "data:"))
    # the recorded run is shown at once, and its slider scrubs ε̂ (and every other panel) step by step
    eps_hat = block(page, "ε̂, the predicted noise (±3σ)")
    slider_changes_image(page, "t (after a run: the nearest recorded step)", 90, eps_hat)
    page.get_by_text("recorded, t = ").first.wait_for(timeout=15_000)
    screenshot(page, "reverse.png")
