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


def test_forward_slider_changes_the_image(page):
    x_t = page.locator(".block").filter(has=page.get_by_text("x_t", exact=True)).first
    before = image_src(x_t)
    number = page.get_by_label("number input for t: noising steps applied (0 = clean image, T = noise)")
    number.fill("600")
    number.press("Enter")
    page.wait_for_function(
        "([el, before]) => el.querySelector('img') && el.querySelector('img').src !== before",
        arg=[x_t.element_handle(), before],
        timeout=15_000,
    )
    assert image_src(x_t) != before
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "forward.png"), full_page=True)


def test_reverse_generation_streams_frames(page):
    page.get_by_role("tab", name="Reverse process").click()
    steps = page.get_by_label("number input for Steps N (respaced / DDIM)")
    steps.fill("8")
    steps.press("Enter")
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("Done: 8 steps").wait_for(timeout=60_000)
    result = page.locator(".block").filter(has=page.get_by_text("Result x₀", exact=True)).first
    assert image_src(result).startswith(("http", "/", "data:"))
    # the recorded run is shown at once, and its slider scrubs ε̂ (and every other panel) step by step
    eps_hat = page.locator(".block").filter(has=page.get_by_text("ε̂, the predicted noise (±3σ)", exact=True)).first
    before = image_src(eps_hat)
    number = page.get_by_label("number input for t (after a run: the nearest recorded step)")
    number.fill("90")
    number.press("Enter")
    page.wait_for_function(
        "([el, before]) => el.querySelector('img') && el.querySelector('img').src !== before",
        arg=[eps_hat.element_handle(), before],
        timeout=15_000,
    )
    page.get_by_text("recorded, t = ").first.wait_for(timeout=15_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "reverse.png"), full_page=True)
