"""The race, the guidance sweep and the 2D lab in Debian's Chromium, driven as a person does (issue 23): the race
samples the tab's class at its w, a batch slider that "one of each" overrides is disabled with the reason, the
live views show every image whole and sharp with its caption below, the sweep's t slider moves by hand, the lab's loss
curve streams in view while the model learns, and the lab's table reaches its last column on a phone."""

import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect
from test_browser import ARTIFACTS, choose, drag_to, scrubber_state, set_number, wait_for_new_payload

from app import plans, settings
from app.callbacks.race import DEFAULT_GUIDANCE_SCALES

pytestmark = pytest.mark.e2e
CLASS = "Class (class-conditional models)"  # Generate's, which the race takes


LIVE_FACTS = """(id) => [...document.querySelectorAll(`#${id} figure`)].map((figure) => {
  figure.scrollIntoView({ block: "center" });
  const img = figure.querySelector("img"), caption = figure.querySelector("figcaption");
  const i = img.getBoundingClientRect(), c = caption.getBoundingClientRect();
  const hit = document.elementFromPoint(i.left + i.width - 2, i.top + i.height - 2);
  return { rendering: getComputedStyle(img).imageRendering, natural: [img.naturalWidth, img.naturalHeight],
           shown: [i.width, i.height], cornerSeen: hit === img, right: i.right, innerWidth: window.innerWidth,
           below: c.top >= i.bottom - 1, whole: caption.scrollWidth <= caption.clientWidth + 1
             && caption.scrollHeight <= caption.clientHeight + 1, text: caption.textContent };
})"""


def assert_whole_sharp_and_captioned(page, elem_id: str, count: int, says: str) -> None:
    """Each image of a live view: uncropped (its shape kept, its far corner on screen and on top), upscaled with
    nearest-neighbour, its caption below it, whole and saying ``says``."""
    expect(page.locator(f"#{elem_id} figure")).to_have_count(count, timeout=30_000)
    for fact in page.evaluate(LIVE_FACTS, elem_id):
        (nw, nh), (w, h) = fact["natural"], fact["shown"]
        assert fact["rendering"] == "pixelated" and w >= 2 * nw, fact
        assert abs(w / h - nw / nh) < 0.02 and fact["cornerSeen"] and fact["right"] <= fact["innerWidth"], fact
        assert fact["below"] and fact["whole"] and says in fact["text"], fact


def wait_for_run(page, scrubber_id: str, before: str) -> None:
    """A run's payload has arrived and the slider was moved to its results (t = 0)."""
    wait_for_new_payload(page, scrubber_id, before)
    page.wait_for_function(
        "(id) => document.querySelector(`#${id} [data-paints]`).dataset.t === '0'", arg=scrubber_id, timeout=30_000
    )


def click(page, name: str) -> None:
    button = page.get_by_role("button", name=name, exact=True)
    expect(button).to_be_visible()
    expect(button).to_be_enabled()
    button.click()


def test_the_race_samples_generates_class_and_w(page):
    """#14: on a class-conditional model the race samples the class and guidance w chosen for Generate, and its note,
    captions and scrubber say which; #7: under "one of each" its batch slider is disabled, saying why."""
    page.get_by_role("tab", name="Reverse process").click()
    choose(page, "Model", "tiny-conditional")
    expect(page.get_by_label(CLASS, exact=True)).to_be_visible(timeout=60_000)
    choose(page, CLASS, "square")
    guidance = page.get_by_label(re.compile("^number input for Guidance w"))
    expect(guidance).to_be_visible()
    expect(guidance).to_be_enabled()
    guidance.fill("3")
    guidance.press("Enter")
    page.get_by_text("Race samplers: the same noise, side by side").click()
    note, batch = page.locator("#race-conditioning"), page.locator("#race-batch input[type=range]")
    expect(note).to_contain_text("class square, w = 3", timeout=30_000)
    expect(batch).to_be_enabled()
    choose(page, CLASS, plans.ONE_OF_EACH)
    expect(batch).to_be_disabled(timeout=30_000)
    expect(page.locator("#race-batch")).to_contain_text("not used: “one of each” makes one image per class (3)")
    expect(note).to_contain_text("one of each class (3), w = 3")
    choose(page, CLASS, "square")
    expect(batch).to_be_enabled(timeout=30_000)
    expect(note).to_contain_text("class square, w = 3")
    set_number(page, "Steps N (each)", 4)
    before = scrubber_state(page, "race-scrubber").get("version", "")
    click(page, "Race")
    wait_for_run(page, "race-scrubber", before)
    expect(page.locator("#race-scrubber .caption")).to_contain_text("Sampling class square, w = 3.")
    expect(page.get_by_text("Sampling class square, w = 3").first).to_be_visible()  # above the table
    assert_whole_sharp_and_captioned(page, "race-live", 4, "class square, w = 3")
    drag_to(page, "race-t", "race-scrubber", 50)  # the mouse on the track, then the number typed
    titles = page.locator("#race-scrubber .race-title").all_inner_texts()
    assert len(titles) == 4 and all("NFE" in title for title in titles), titles
    page.screenshot(path=str(ARTIFACTS / "race-class.png"), full_page=True)
    # Generate's guidance interval and rescale: the race guides with them too, and its note says so
    page.get_by_text("Guidance interval and rescale").click()
    for label, value in (("Guidance interval: from t_lo", 40), ("Guidance rescale φ", 0.5)):
        number = page.get_by_label(f"number input for {label}")
        expect(number).to_be_visible()
        expect(number).to_be_enabled()
        set_number(page, label, value)
    expect(note).to_contain_text("class square, w = 3, guided only at t ∈ [40, 100], φ = 0.5", timeout=30_000)


def test_the_guidance_sweep_batch_gallery_and_slider_answer_a_hand(page):
    """#7: the sweep's batch is disabled under "one of each", saying why, and enabled for one class; #8: its four runs
    are all shown whole (the gallery cut the fourth); #1: its t slider moves with a click on the track and a key."""
    page.get_by_role("tab", name="Reverse process").click()
    choose(page, "Model", "tiny-conditional")
    section = page.get_by_text("Guidance sweep: one class at several w")
    expect(section).to_be_visible(timeout=60_000)
    section.click()
    batch = page.locator("#guidance-batch input[type=range]")
    expect(batch).to_be_disabled(timeout=30_000)  # it opens on "one of each"
    expect(page.locator("#guidance-batch")).to_contain_text("one image per class (3)")
    choose(page, "Class", "circle")
    expect(batch).to_be_enabled(timeout=30_000)
    set_number(page, "Batch (one class)", 2)
    before = scrubber_state(page, "guidance-scrubber").get("version", "")
    click(page, "Sweep w")
    wait_for_run(page, "guidance-scrubber", before)
    assert_whole_sharp_and_captioned(page, "guidance-live", len(DEFAULT_GUIDANCE_SCALES), "class circle")
    track = page.locator("#guidance-t input[type=range]")
    track.scroll_into_view_if_needed()
    expect(track).to_be_visible()
    expect(track).to_be_enabled()
    box = track.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
    painted = "([id, v]) => document.querySelector(`#${id} [data-paints]`).dataset.t !== v"
    page.wait_for_function(painted, arg=["guidance-scrubber", "0"], timeout=15_000)
    moved = scrubber_state(page, "guidance-scrubber")["t"]
    assert int(moved) > 0
    track.focus()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function(painted, arg=["guidance-scrubber", moved], timeout=15_000)
    assert int(scrubber_state(page, "guidance-scrubber")["t"]) == int(moved) - 1
    page.screenshot(path=str(ARTIFACTS / "guidance-sweep.png"), full_page=True)


LOSS_WATCH = """() => {
  const seen = (window.lossWatch = []);
  const timer = setInterval(() => {
    const plot = document.querySelector("#lab-loss"), line = plot.querySelector(".mark-line path");
    const status = document.querySelector("#lab-status").innerText;
    const r = plot.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    const tracker = plot.querySelector("[data-testid=status-tracker]");
    seen.push({ line: line ? line.getAttribute("d") : "", status,
                inView: !!hit && plot.contains(hit) && !hit.closest("[data-testid=status-tracker]")
                  && (!tracker || tracker.classList.contains("hide")) });
    if (status.includes("Sampled")) clearInterval(timer);
  }, 100);
}"""


def test_the_lab_loss_curve_streams_in_view_while_the_model_learns(page, monkeypatch):
    """#12: while the model trains the loss curve is on top (no progress overlay) and changes again and again; #7:
    "Sample again" is disabled until there is a model to sample. (3,000 steps, the curve redrawn every 0.5 s: at
    1,000 steps and every second a loaded machine drew two of the curves; at every 0.25 s none, as each new value came
    before the page had drawn the one before.)"""
    monkeypatch.setattr(settings, "LAB_STREAM_EVERY_S", 0.5)
    page.get_by_role("tab", name="2D lab").click()
    page.wait_for_function("() => document.querySelector('#lab-scrubber [data-paints]')", timeout=30_000)
    set_number(page, "Training steps (512 points each)", 3000)
    set_number(page, "Sampling steps N (each)", 10)
    page.locator("#lab-loss").scroll_into_view_if_needed()
    # "Sample again" has nothing to sample before a model is trained: disabled, saying so
    expect(page.get_by_role("button", name="Sample again (after training)", exact=True)).to_be_disabled()
    page.evaluate(LOSS_WATCH)  # reads the plot back every 100 ms; sets nothing
    status = page.locator("#lab-status")
    click(page, "Train and sample")
    try:  # the run has begun (on a loaded machine it may wait in the queue behind the page's own set-up)
        expect(status).to_contain_text(re.compile("Training: step|Trained|Sampl"), timeout=90_000)
    except AssertionError:
        page.screenshot(path=str(ARTIFACTS / "lab-training-did-not-start.png"), full_page=True)
        raise
    # training, then sampling: the status passes "Trained" in a moment, so the run's end is waited for
    try:
        expect(status).to_contain_text("Sampled 2000 points", timeout=180_000)
    except AssertionError as e:  # say what the page said (a refused run shows its reason in a toast)
        page.screenshot(path=str(ARTIFACTS / "lab-not-sampled.png"), full_page=True)
        toasts = page.locator(".toast-body").all_inner_texts()
        raise AssertionError(f"no samples after training; the page's messages: {toasts}") from e
    expect(page.get_by_role("button", name="Sample again", exact=True)).to_be_enabled(timeout=30_000)
    seen = page.evaluate("() => window.lossWatch")
    training = [s for s in seen if s["status"].startswith("Training:")]
    shown = {s["line"] for s in training if s["inView"] and s["line"]}
    assert training and all(s["inView"] for s in training), [s["status"] for s in training if not s["inView"]]
    assert len(shown) >= 3, f"the curve changed {len(shown) - 1} times in view during training"


def swipe_left(phone, box) -> None:
    """A finger's swipe from right to left across ``box`` (touch events through the browser's input, as a screen's)."""
    cdp = phone.context.new_cdp_session(phone)
    x, y = box["x"] + box["width"] * 0.8, box["y"] + box["height"] * 0.6
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for k in range(1, 11):
        cdp.send(
            "Input.dispatchTouchEvent",
            {"type": "touchMove", "touchPoints": [{"x": x - 0.06 * box["width"] * k, "y": y}]},
        )
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def test_the_labs_quality_table_reaches_its_last_column_on_a_phone(page):
    """On a 390×844 touch screen the quality table fits the screen's width, and a swipe on it brings its last column
    ("time (s)") whole into view (it was cut off, out of reach)."""
    phone = page.context.browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        phone.goto(page.url)
        phone.get_by_role("button", name="More tabs").tap()
        phone.get_by_role("button", name="2D lab", exact=True).last.tap()
        phone.wait_for_function("() => document.querySelector('#lab-scrubber [data-paints]')", timeout=60_000)
        set_number(phone, "Training steps (512 points each)", 300)
        set_number(phone, "Sampling steps N (each)", 10)
        train = phone.get_by_role("button", name="Train and sample")
        expect(train).to_be_visible()
        expect(train).to_be_enabled()
        train.tap()
        phone.get_by_text("points with each sampler, 10 steps").wait_for(timeout=180_000)
        last = phone.locator("#lab-quality th", has_text="time (s)").first
        last.wait_for(timeout=30_000)
        table = phone.locator("#lab-quality [role=grid]").first
        table.scroll_into_view_if_needed()
        box = table.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box  # the table itself fits the screen
        on_screen = (
            "(th) => { const r = th.getBoundingClientRect(); const hit = document.elementFromPoint("
            "(r.left + r.right) / 2, (r.top + r.bottom) / 2);"
            " return r.left >= 0 && r.right <= window.innerWidth && !!hit && th.contains(hit); }"
        )
        for attempt in range(4):  # a finger swipes the table leftwards until its last column is in view
            try:
                phone.wait_for_function(on_screen, arg=last.element_handle(), timeout=5_000)
                break
            except PlaywrightTimeoutError:
                if attempt == 3:
                    raise AssertionError("the table's last column is out of reach") from None
                swipe_left(phone, box)
        phone.screenshot(path=str(ARTIFACTS / "lab-phone-table.png"))
    finally:
        phone.close()
