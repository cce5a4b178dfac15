"""The forward tab, its galleries and GIF, and the ELBO tab, driven in Chromium as a person does: numbers typed and
Enter, mouse drags on a track, clicks, a file chosen. Reading the page back (DOM, styles, canvases) is all that
runs as script."""

import numpy as np
import pytest
from chromium import chromium_page, require_chromium
from PIL import Image
from playwright.sync_api import expect
from test_browser import choose

pytestmark = pytest.mark.e2e
FORWARD_T = "t: noising steps applied (0 = clean image, T = noise); ← → step 1, Shift+← → step 10"
SLOW = 60_000  # a loaded machine


@pytest.fixture(scope="module")
def page(live_app):
    require_chromium()
    with chromium_page(live_app) as page:
        page.wait_for_function(
            "document.querySelector('#forward-scrubber [data-paints]')?.dataset.version", timeout=SLOW
        )
        yield page


def painted_t(page) -> str:
    return page.evaluate("document.querySelector('#forward-scrubber [data-paints]').dataset.t")


def wait_painted(page, t: int) -> None:
    page.wait_for_function(
        "t => document.querySelector('#forward-scrubber [data-paints]')?.dataset.t === t", arg=str(t), timeout=SLOW
    )


def type_number(locator, value) -> None:
    expect(locator).to_be_visible()
    expect(locator).to_be_enabled()
    locator.fill(str(value))
    locator.press("Enter")


def open_section(page, title: str) -> None:
    header = page.get_by_text(title, exact=True)
    expect(header).to_be_visible()
    header.click()


def click(button) -> None:
    button.scroll_into_view_if_needed()
    expect(button).to_be_visible()
    expect(button).to_be_enabled()
    button.click()


def no_errors(page) -> None:
    """No red Error badge on any component and no error toast."""
    expect(page.locator(".error:visible, .toast-body.error:visible")).to_have_count(0)


def test_a_new_T_keeps_every_view_of_t_in_step_and_the_chain_runs_at_it(page):
    """Issue 23 #2: with t = 500, T = 50 moved the slider to 50, left its number box at 500, and the Markov chain
    then failed ("Value 500 is greater than maximum value 50.") with Error badges on both panels."""
    number, track = page.get_by_label(f"number input for {FORWARD_T}"), page.locator("#forward-t input[type=range]")
    type_number(number, 500)
    wait_painted(page, 500)
    type_number(page.get_by_label("T (steps)"), 50)
    wait_painted(page, 50)
    expect(number).to_have_value("50")
    expect(track).to_have_value("50")
    expect(track).to_have_attribute("max", "50")
    expect(page.locator("#forward-scrubber table.values")).to_contain_text("50 / 50")
    # a drag along the whole track stays within 0 … 50, and every view follows it
    track.scroll_into_view_if_needed()
    expect(track).to_be_enabled()
    box = track.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] - 2, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.4, y, steps=8)
    page.mouse.up()
    page.wait_for_function("() => document.querySelector('#forward-t input[type=range]').value !== '50'")
    t = int(track.input_value())
    assert 0 <= t < 50
    wait_painted(page, t)
    expect(number).to_have_value(str(t))
    expect(page.locator("#forward-scrubber table.values")).to_contain_text(f"{t} / 50")
    open_section(page, "Markov chain vs. closed form")
    click(page.get_by_role("button", name="Run the chain to the slider's t"))
    expect(page.get_by_text(f"t = {t}.", exact=False).first).to_be_visible(timeout=SLOW)
    no_errors(page)
    type_number(page.get_by_label("T (steps)"), 1000)  # back to the default for the tests below
    expect(track).to_have_attribute("max", "1000", timeout=SLOW)
    expect(number).to_have_value(str(t))  # a larger T keeps t


def test_a_number_typed_key_by_key_is_applied_whole(page):
    """A newcomer's walk: typing 0.03 into β end raised "β end must be a finite number between 1e-08 and 0.999, got
    0." from the half-typed 0 (the set-up ran at every key), and T = 50 typed under t = 250 moved t to 5 (the
    half-typed 5 came first). A typed number now applies on Enter or on leaving its box."""
    from test_browser import scrubber_state, wait_for_new_payload

    number, track = page.get_by_label(f"number input for {FORWARD_T}"), page.locator("#forward-t input[type=range]")
    type_number(number, 250)
    wait_painted(page, 250)
    for label, value in (("β end", "0.03"), ("T (steps)", "50")):
        box = page.get_by_label(label)
        expect(box).to_be_visible()
        expect(box).to_be_enabled()
        version = scrubber_state(page, "forward-scrubber")["version"]
        box.click()
        box.press("Control+a")
        box.press_sequentially(value, delay=100)
        box.press("Enter")
        wait_for_new_payload(page, "forward-scrubber", version)
        no_errors(page)
    expect(track).to_have_value("50", timeout=SLOW)  # t = 250 beyond the new T: moved to T, not to the 5 typed first
    wait_painted(page, 50)
    expect(page.locator("#forward-scrubber table.values")).to_contain_text("β_t0.03")  # β_T = β end
    type_number(page.get_by_label("T (steps)"), 1000)  # back to the defaults for the tests below
    type_number(page.get_by_label("β end"), 0.02)
    expect(track).to_have_attribute("max", "1000", timeout=SLOW)


def test_the_beta_range_is_shown_only_for_the_schedules_that_take_one(page):
    """A newcomer's walk: with the cosine schedule β start and β end stayed on screen, did nothing, and raised an
    error for a value it would not have used. They are shown for linear, quadratic and sigmoid only."""
    for schedule, shown in (("cosine", False), ("sigmoid", True), ("cosine", False), ("linear", True)):
        choose(page, "β schedule", schedule)
        for label in ("β start", "β end"):
            box = expect(page.get_by_label(label))
            box.to_be_visible(timeout=SLOW) if shown else box.to_be_hidden(timeout=SLOW)
    no_errors(page)


def test_the_curves_name_their_log_axis_and_natural_log(page):
    """Issue 23 #11: β_t was on a log axis, and log SNR a natural log, without saying so."""
    labels = page.locator("#forward-scrubber canvas.curves").get_attribute("data-labels")
    assert labels and "β_t (log axis)" in labels and "ln SNR (natural log)" in labels, labels
    expect(page.locator("#forward-scrubber table.values")).to_contain_text("ln SNR (natural log)")


def test_export_gif_shows_its_progress_and_result_under_the_button(page):
    """Issue 23 #9: the GIF went to a closed accordion further down, with nothing in view while it was written."""
    button = page.get_by_role("button", name="Export GIF (t = 0 … T)")
    click(button)
    row = page.locator("#forward-gif-row")
    expect(row).to_be_visible(timeout=SLOW)
    gif = row.locator("img").first
    expect(gif).to_be_visible(timeout=SLOW)
    assert gif.get_attribute("src").split("?")[0].endswith(".gif")
    under, above = row.bounding_box(), button.bounding_box()
    assert 0 <= under["y"] - (above["y"] + above["height"]) < 80, (above, under)  # right under the button
    expect(row.get_by_text(".gif", exact=False).first).to_be_visible()  # the download link
    no_errors(page)


def assert_whole_sharp_and_captioned(page, items, count: int, captions: tuple[str, ...]) -> None:
    """Each of ``count`` gallery thumbnails: the whole square image, pixelated, its caption under it and uncut."""
    expect(items).to_have_count(count, timeout=SLOW)
    for k in range(count):
        item = items.nth(k)
        item.scroll_into_view_if_needed()
        image, caption = item.locator("img"), item.locator(".caption-label")
        expect(image).to_be_visible(timeout=SLOW)
        expect(caption).to_be_visible()
        looks = image.evaluate("img => { const s = getComputedStyle(img); return [s.imageRendering, s.objectFit]; }")
        assert looks == ["pixelated", "contain"], looks
        pic, text = image.bounding_box(), caption.bounding_box()
        assert text["y"] >= pic["y"] + pic["height"] - 1, "the caption is under the image, not on it"
        assert abs(pic["width"] - pic["height"]) <= 2, "the whole square image"
        whole = caption.evaluate("c => c.scrollWidth <= c.clientWidth + 1 && c.scrollHeight <= c.clientHeight + 1")
        assert whole, "the caption is not cut"
        assert caption.inner_text().startswith(captions), caption.inner_text()


def test_the_compare_gallery_shows_whole_sharp_thumbnails_with_their_captions_under_them(page):
    """Issue 23 #8: the captions hid below a 220 px box, on the thumbnails, which were blurred and cropped."""
    open_section(page, "Compare schedules")
    click(page.get_by_role("button", name="Compare every schedule at the slider's t"))
    items = page.locator(".thumbnail-item")
    assert_whole_sharp_and_captioned(page, items, 4, ("linear:", "quadratic:", "cosine:", "sigmoid:"))
    wrap = page.locator(".grid-wrap").first
    assert wrap.evaluate("w => w.scrollHeight <= w.clientHeight + 1"), "no inner scroll box hides a caption"
    no_errors(page)


def test_a_non_square_upload_is_said_to_be_cropped(page, tmp_path):
    """Issue 23 #16: a 200×150 upload was silently cropped to a square."""
    path = tmp_path / "wide.png"
    Image.fromarray(np.full((150, 200, 3), 200, np.uint8)).save(path)
    upload = page.locator("input[type=file]").first
    upload.set_input_files(str(path))  # what choosing the file in the dialog does
    note = page.locator("#forward-x0-note")
    expect(note).to_contain_text("200×150 is not square", timeout=SLOW)
    expect(note).to_contain_text("25 px cut from the left and 25 px from the right")


def test_the_elbo_tab_shows_the_image_it_measures(page):
    """Issue 23 #10: "7.956 bits/dim for this image", for an image the page never showed."""
    page.get_by_role("tab", name="Loss and the ELBO").click()
    measured = page.locator("#elbo-image img")
    expect(measured).to_be_visible(timeout=SLOW)
    note = page.locator("#elbo-image-note")
    expect(note).to_contain_text("Measured:")
    expect(note).to_contain_text("costs more bits")
    points = page.get_by_label("number input for Timesteps evaluated")
    type_number(points, 4)
    click(page.get_by_role("button", name="Compute the bound's terms"))
    summary = page.locator("#elbo-summary")
    expect(summary).to_contain_text("bits/dim", timeout=SLOW)
    expect(summary).to_contain_text("for the image shown")
    expect(summary.locator(".katex").first).to_be_visible()  # L_T, L_0, Σ L_{t−1} typeset, never raw braces
    expect(page.locator("#elbo-plot img")).to_be_visible(timeout=SLOW)
    expect(page.locator("#elbo-plot label:visible")).to_have_count(0)  # no label chip over the plot's top tick
    # the same network with the other fixed Σ (the default model fixes Σ at β̃_t): both bounds, and their difference
    compare = page.get_by_label("Compare with", exact=True)
    expect(compare).to_be_visible()
    expect(compare).to_be_enabled()
    choose(page, "Compare with", "this model, Σ fixed at β_t")
    click(page.get_by_role("button", name="Compute the bound's terms"))
    expect(summary).to_contain_text("both models on the same timesteps and noise", timeout=SLOW)
    expect(summary).to_contain_text("Σ fixed at β_t − tiny-random:")
    no_errors(page)
    # another image: the last bound, which was not this image's, is cleared (a newcomer's walk saw both at once)
    page.locator("[role=tabpanel]:visible input[type=file]").first.set_input_files("app/assets/shapes.png")
    expect(summary).to_contain_text("The image or the model changed", timeout=SLOW)
    expect(summary).not_to_contain_text("bits/dim")
    expect(page.locator("#elbo-plot img")).to_have_count(0)
    expect(note).to_contain_text("Measured:")


def test_sdedit_shows_whole_sharp_images_with_whole_captions_and_the_quality_plot_has_no_chip(page):
    """Issue 23 #8 and #11: SDEdit's captions were cut ("denoised fro…") and covered the images; gradio's label chip
    covered the quality plot's title."""
    page.get_by_role("tab", name="Reverse process").click()
    open_section(page, "Race samplers: the same noise, side by side")
    expect(page.locator("#quality-plot")).to_be_attached()
    expect(page.locator("#quality-plot label:visible")).to_have_count(0)
    open_section(page, "Noise and denoise your image (SDEdit)")
    type_number(page.get_by_label("number input for Denoising steps (respaced)"), 4)
    click(page.get_by_role("button", name="Noise and denoise", exact=True))
    section = page.locator(".block").filter(has=page.get_by_text("What survives as t grows", exact=True)).last
    items = section.locator(".thumbnail-item")
    assert_whole_sharp_and_captioned(page, items, 12, ("x_t at t =", "denoised from t ="))
    expect(page.get_by_text("x₀: 256×256, resized to 8×8", exact=True)).to_be_visible()  # what became of the image
    no_errors(page)


def test_on_a_phone_the_compare_gallery_fits_the_screen(page, live_app):
    """Issue 23 #8 on a 390 px touch phone: gradio's columns were at least 100 px, and the fourth was cut off."""
    phone = page.context.browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    try:
        tab = phone.new_page()
        tab.goto(live_app)
        tab.wait_for_function(
            "document.querySelector('#forward-scrubber [data-paints]')?.dataset.version", timeout=SLOW
        )
        header = tab.get_by_text("Compare schedules", exact=True)
        expect(header).to_be_visible()
        header.tap()
        button = tab.get_by_role("button", name="Compare every schedule at the slider's t")
        button.scroll_into_view_if_needed()
        expect(button).to_be_enabled()
        button.tap()
        items = tab.locator(".thumbnail-item")
        expect(items).to_have_count(4, timeout=SLOW)
        for k in range(4):
            box = items.nth(k).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (k, box)
            caption = items.nth(k).locator(".caption-label")
            expect(caption).to_be_visible()
            assert caption.evaluate("c => c.scrollWidth <= c.clientWidth + 1"), "the caption wraps, uncut"
    finally:
        phone.close()
