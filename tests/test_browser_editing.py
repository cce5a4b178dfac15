"""The editing tab in Debian's Chromium, driven as a person does: the tab, a preset, Inpaint, the slider dragged with
the mouse; then the same page on a phone's viewport. Screenshots go to TEST_ARTIFACTS (test-artifacts/)."""

import os
from pathlib import Path

import pytest
from chromium import chromium_page, require_chromium
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from app.editing_payload import move_caption, move_record
from pipelines.repaint import moves_down, repaint_timesteps

pytestmark = pytest.mark.e2e
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts"))
PAINTED = (
    "([id, before]) => { const e = document.querySelector(`#${id} [data-paints]`);"
    " return e && e.dataset.paints !== before; }"
)


@pytest.fixture(scope="module")
def page(live_app):
    require_chromium()
    with chromium_page(live_app) as page:
        page.get_by_role("tab", name="Editing").wait_for(timeout=30_000)
        yield page


def paints(page, scrubber_id: str) -> str:
    return page.evaluate(
        "(id) => { const e = document.querySelector(`#${id} [data-paints]`); return e ? e.dataset.paints : ''; }",
        scrubber_id,
    )


def drag_slider(page, slider_id: str, start: float, end: float) -> None:
    """Press on the slider's track at ``start`` (a fraction of its width) and drag to ``end``, as a hand does."""
    box = page.locator(f"#{slider_id} input[type=range]").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * start, y)
    page.mouse.down()
    for k in range(1, 11):
        page.mouse.move(box["x"] + box["width"] * (start + (end - start) * k / 10), y)
    page.mouse.up()


def test_inpainting_run_scrubbed_with_the_mouse_shows_its_jumps(page):
    ARTIFACTS.mkdir(exist_ok=True)
    page.get_by_role("tab", name="Editing").click()
    page.get_by_label("right half", exact=True).check()
    pad = page.locator("#inpaint-mask .pad-caption")
    page.wait_for_function(
        "() => document.querySelector('#inpaint-mask .pad-caption').textContent.startsWith('32 of 64')",
        timeout=15_000,
    )
    assert "to regenerate" in pad.inner_text()
    page.get_by_role("button", name="Inpaint", exact=True).click()
    page.wait_for_function("() => document.querySelector('#inpaint-scrubber [data-paints]')", timeout=60_000)
    page.get_by_text("Done: RePaint made").wait_for(timeout=10_000)
    caption = page.locator("#inpaint-scrubber .caption")
    assert "the result" in caption.inner_text(), caption.inner_text()
    before = paints(page, "inpaint-scrubber")
    drag_slider(page, "inpaint-move", 0.95, 0.3)
    page.wait_for_function(PAINTED, arg=["inpaint-scrubber", before], timeout=10_000)
    text = caption.inner_text()
    assert text.startswith("Move ") and "jump" in text, text
    move = int(page.locator("#inpaint-move input[type=range]").input_value())
    assert 0 < move < int(page.locator("#inpaint-move input[type=range]").get_attribute("max"))
    assert page.evaluate("() => document.querySelector('#inpaint-scrubber [data-paints]').dataset.t") == str(move)
    # the page's caption is the server's, word for word (the tab's defaults: T = 100, N = 50, jumps of 10, 5 times)
    timesteps, stride = repaint_timesteps(100, 50, 10, 5)
    expected = move_caption(move_record(timesteps, moves_down(timesteps), stride, 400), move)
    assert caption.locator("b").inner_text() == expected
    page.locator("#inpaint-scrubber").screenshot(path=str(ARTIFACTS / "editing-inpaint-scrubber.png"))

    slerp = page.get_by_text("slerp of x_T, sampled (DDIM η = 0)", exact=True)
    expect(slerp).to_be_hidden()  # no empty boxes before a run
    page.get_by_role("button", name="Interpolate", exact=True).click()
    page.wait_for_function("() => document.querySelector('#interp-scrubber [data-paints]')", timeout=60_000)
    page.get_by_text("Why slerp.").wait_for(timeout=10_000)
    expect(page.locator(".block").filter(has=slerp).last.locator("img")).to_be_visible()  # the strips, once made
    before = paints(page, "interp-scrubber")
    drag_slider(page, "interp-t", 0.05, 0.6)
    page.wait_for_function(PAINTED, arg=["interp-scrubber", before], timeout=10_000)
    assert page.locator("#interp-scrubber .caption").inner_text().startswith("t = ")
    page.screenshot(path=str(ARTIFACTS / "editing-1400.png"), full_page=True)


def test_the_editing_tab_on_a_phone(page):
    phone = page.context.browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        phone.goto(page.url)
        phone.get_by_role("button", name="More tabs").tap()  # the tabs past the first fold into this menu
        phone.get_by_role("button", name="Editing", exact=True).last.tap()
        phone.locator("#inpaint-mask canvas.pad").wait_for(state="visible", timeout=60_000)  # the tab is set up
        preset = phone.get_by_label("centre square", exact=True)
        assert preset.is_visible() and preset.is_enabled()
        preset.tap()
        run = phone.get_by_role("button", name="Inpaint", exact=True)
        assert run.is_visible() and run.is_enabled()
        painted = "() => document.querySelector('#inpaint-scrubber [data-paints]')"
        for attempt in range(3):  # a tap can land while the page is still busy with its load events: tap again
            run.tap()
            try:  # a run on a loaded machine can take a minute or more: wait for it, not a fixed time
                phone.wait_for_function(painted, timeout=90_000)
                break
            except PlaywrightTimeoutError:
                if attempt == 2:
                    raise
        pad = phone.locator("#inpaint-mask canvas.pad").bounding_box()
        assert pad["width"] <= 390 and pad["x"] >= 0, pad
        phone.screenshot(path=str(ARTIFACTS / "editing-phone.png"), full_page=True)
    finally:
        phone.close()


def test_a_mask_painted_with_the_mouse_is_the_one_inpainted(page):
    """The brush: a stroke across the pad marks cells to regenerate; Inpaint then uses that mask (the server's mask
    view shows them grey), and Keep all clears it."""
    page.get_by_role("tab", name="Editing").click()
    page.get_by_label("brush (paint on the mask)", exact=True).check()
    caption = page.locator("#inpaint-mask .pad-caption")
    page.wait_for_function(
        "() => document.querySelector('#inpaint-mask .pad-caption').textContent.startsWith('0 of 64')",
        timeout=15_000,
    )
    box = page.locator("#inpaint-mask canvas.pad").bounding_box()
    y = box["y"] + box["height"] * 0.5  # the middle row (of 8)
    page.mouse.move(box["x"] + 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 2, y, steps=12)
    page.mouse.up()
    painted = int(caption.inner_text().split(" of ")[0])
    assert 8 <= painted < 64, caption.inner_text()  # a band 3 cells high at most, across the pad
    before = paints(page, "inpaint-scrubber")
    page.get_by_role("button", name="Inpaint", exact=True).click()
    page.wait_for_function(PAINTED, arg=["inpaint-scrubber", before], timeout=60_000)
    mask_view = page.get_by_text("Mask (grey: new)", exact=True).locator(
        "xpath=ancestor::*[contains(concat(' ', @class, ' '), ' block ')][1]"
    )
    grey = page.evaluate(  # the server's view of the mask it used: its regenerated pixels are grey, −0.2 → 102
        "async (img) => { await img.decode(); const c = document.createElement('canvas');"
        " c.width = img.naturalWidth; c.height = img.naturalHeight; const x = c.getContext('2d');"
        " x.drawImage(img, 0, 0);"
        " const d = x.getImageData(0, 0, c.width, c.height).data; let n = 0;"
        " for (let i = 0; i < d.length; i += 4) if (d[i] === 102) n++; return n; }",
        mask_view.locator("img").first.element_handle(timeout=10_000),
    )
    assert grey >= painted, (grey, painted)
    page.locator("#inpaint-mask button.clear").click()
    assert caption.inner_text().startswith("0 of 64"), caption.inner_text()
    page.get_by_role("button", name="Inpaint", exact=True).click()
    page.get_by_text("nothing to regenerate").first.wait_for(timeout=15_000)  # an empty mask is refused
