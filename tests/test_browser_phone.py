"""The app on a phone: 390×844, touch (Chromium emulating a mobile browser), driven by taps and touch drags only.

Plot text is at least 11 CSS px (plots were PNGs and canvases shrunk to the screen: about 6 px), every table can be
read to its last column, and on the forward and reverse tabs the picture being scrubbed and its slider are on the
screen together while a finger drags the slider."""

import re
from pathlib import Path

import pytest
from chromium import CHROMIUM, FLAGS, require_chromium
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

PHONE = dict(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True, device_scale_factor=1)
WAIT = 20_000  # ms, for a condition on a loaded machine
MIN_TEXT_PX = 11
STATIC = Path(__file__).resolve().parent.parent / "app" / "static"
# The smallest text the page's canvases draw (ctx.font = "11px …" in app/static/*.js), in canvas pixels, and the size
# of matplotlib's text in the app's PNG plots (its default 10 pt at rendering.py's 100 dpi), in image pixels.
CANVAS_FONT_PX = min(int(px) for f in STATIC.glob("*.js") for px in re.findall(r'font = "(\d+)px', f.read_text()))
PNG_FONT_PX = 10 * 100 / 72
PLOT_CANVASES = "canvas.curves, canvas.spectrum, canvas.classes, figure.plot canvas"
PLOT_IMAGES = ".plot img, #elbo-plot img"


@pytest.fixture(scope="module")
def phone(live_app):
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_context(**PHONE).new_page()
            page.goto(live_app)
            page.get_by_text("x_t", exact=True).first.wait_for(timeout=30_000)
            yield page
        finally:
            browser.close()


def tap(locator) -> None:
    locator.scroll_into_view_if_needed()
    expect(locator).to_be_visible()
    expect(locator).to_be_enabled()
    locator.tap()


def open_tab(page, name: str):
    """Tap the tab, or, where the narrow tab bar has folded it away, "More tabs" and then it."""
    tab = page.get_by_role("tab", name=name)
    if tab.is_visible():
        tap(tab)
    else:
        tap(page.get_by_label("More tabs"))
        tap(page.locator(".overflow-dropdown button").filter(has_text=name))
    expect(page.get_by_role("tab", name=name)).to_have_attribute("aria-selected", "true", timeout=WAIT)
    return page.locator("[role=tabpanel]:visible").first


def text_px(page, panel) -> list:
    """[what, the plot's smallest text as displayed, in CSS px] for each plot shown in the panel: its font size in
    its own pixels × displayed width / natural width."""
    return panel.evaluate(
        """(panel, [canvases, images, canvasFont, pngFont]) => {
        const out = [];
        for (const c of panel.querySelectorAll(canvases)) {
          if (c.offsetParent !== null && c.width > 16) out.push([c.className || c.dataset.panel,
                                                                canvasFont * c.clientWidth / c.width]);
        }
        for (const img of panel.querySelectorAll(images)) {  // object-fit: contain scales by the tighter side
          if (img.offsetParent === null || !img.naturalWidth) continue;
          const scale = Math.min(img.clientWidth / img.naturalWidth, img.clientHeight / img.naturalHeight);
          out.push([img.closest('.block').id || 'plot', pngFont * scale]);
        }
        return out;
      }""",
        [PLOT_CANVASES, PLOT_IMAGES, CANVAS_FONT_PX, PNG_FONT_PX],
    )


def tap_until(page, button: str, image: str, attempts: int = 3) -> None:
    """Tap the button until ``image`` shows a picture: a tap that lands while the page is busy (a loaded machine, the
    page still loading) is tapped again, as a person would."""
    for attempt in range(attempts):
        tap(page.get_by_role("button", name=button))
        try:
            page.wait_for_function(
                "(css) => [...document.querySelectorAll(css)].some((i) => i.naturalWidth > 0)",
                arg=image,
                timeout=40_000,
            )
            page.locator(image).first.scroll_into_view_if_needed()
            return
        except PlaywrightTimeoutError:
            if attempt == attempts - 1:
                raise


def test_plot_text_is_at_least_11_px(phone):
    page = phone
    measured = {}
    panel = open_tab(page, "Forward process")
    tap(page.locator("button.label-wrap").filter(has_text="Compare schedules"))
    tap_until(page, "Compare every schedule at the slider's t", ".plot img")
    measured["forward"] = text_px(page, panel)
    panel = open_tab(page, "Loss and the ELBO")
    tap_until(page, "Compute the bound's terms", "#elbo-plot img")
    measured["elbo"] = text_px(page, panel)
    panel = open_tab(page, "Reverse process")
    measured["reverse"] = text_px(page, panel)
    panel = open_tab(page, "Editing")
    measured["editing"] = text_px(page, panel)
    kinds = {what for plots in measured.values() for what, _ in plots}
    assert {"curves", "spectrum"} <= kinds and len(measured["forward"]) >= 3 and measured["elbo"], measured
    small = {tab: [(what, round(px, 1)) for what, px in plots if px < MIN_TEXT_PX] for tab, plots in measured.items()}
    assert not any(small.values()), small
    # and the page itself never scrolls sideways: what is wider scrolls inside its own box
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390


def test_every_plot_is_drawn_whole_on_the_screen(phone):
    """A newcomer's walk: drawn at their natural width and scrolled sideways in their boxes, the curves showed t to
    about 600 of 1,000 and the spectrum's legend was cut, with nothing to say there was more. Each plot is now drawn
    at the width it is shown at: whole on the screen, and at one canvas pixel a CSS pixel (its text stays 11 px)."""
    page = phone
    for tab, scrubber in (("Forward process", "#forward-scrubber"), ("Reverse process", "#reverse-scrubber")):
        open_tab(page, tab)
        if tab == "Reverse process":  # a run to draw (the tiny model has no recorded one)
            tap(page.get_by_role("button", name="Generate"))
        page.wait_for_function(f"() => document.querySelector('{scrubber} [data-paints]')", timeout=60_000)
        plots = page.evaluate(
            """([scrubber, canvases]) => [...document.querySelectorAll(`${scrubber} :is(${canvases})`)]
              .filter((c) => c.offsetParent !== null)
              .map((c) => {
                const r = c.getBoundingClientRect();
                return [c.className, c.width, r.left, r.right, r.width];
              })""",
            [scrubber, PLOT_CANVASES],
        )
        assert len(plots) >= 2, (tab, plots)
        for name, drawn, left, right, shown in plots:
            assert 0 <= left and right <= 390 and abs(drawn - shown) <= 1, (tab, name, drawn, left, right, shown)


def test_tables_can_be_read_to_their_last_column(phone):
    page = phone
    checked = []
    for tab, scrubber in (("Forward process", "forward-scrubber"), ("2D lab", "lab-scrubber")):
        panel = open_tab(page, tab)
        page.wait_for_function(f"() => document.querySelector('#{scrubber} [data-paints]')", timeout=60_000)
        for table in panel.locator("table").all():
            if not table.is_visible():
                continue
            last = table.locator("tr").first.locator("th, td").last
            last.scroll_into_view_if_needed()  # the browser scrolls the table's own box sideways if it must
            box = last.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + min(box["width"], 40) <= 390, (tab, box)
            checked.append(tab)
    assert "Forward process" in checked and "2D lab" in checked, checked


def test_formulas_wider_than_the_screen_scroll_sideways(phone):
    """The ELBO tab's displayed formulas were cut at the screen's right edge, their ends out of reach."""
    page = phone
    panel = open_tab(page, "Loss and the ELBO")
    formulas = panel.evaluate(
        "(panel) => [...panel.querySelectorAll('.katex-display')].filter((f) => f.offsetParent !== null)"
        ".map((f) => [f.scrollWidth, f.clientWidth, getComputedStyle(f).overflowX, f.getBoundingClientRect().right])"
    )
    assert len(formulas) >= 3, formulas
    for wide, shown, overflow, right in formulas:
        assert right <= 390 and (wide <= shown + 1 or overflow in ("auto", "scroll")), formulas
    assert any(wide > shown for wide, shown, _, _ in formulas), formulas  # the phone does need it


def touch_drag(page, track, to: float, during=None) -> None:
    """A finger on the slider's thumb, moved along the track to ``to`` (0 … 1) and lifted; ``during()`` is called
    while the finger is still down."""
    cdp = page.context.new_cdp_session(page)
    box = track.bounding_box()
    lo, hi = (float(track.get_attribute(a)) for a in ("min", "max"))
    now = float(track.input_value())
    y = box["y"] + box["height"] / 2
    x0 = box["x"] + 8 + (box["width"] - 16) * (now - lo) / (hi - lo)
    x1 = box["x"] + 8 + (box["width"] - 16) * to

    def touch(kind, x):
        points = [] if kind == "touchEnd" else [{"x": x, "y": y}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", x0)
    for k in range(1, 9):
        touch("touchMove", x0 + (x1 - x0) * k / 8)
    if during:
        during()
    touch("touchEnd", x1)
    cdp.detach()


@pytest.mark.parametrize(
    "tab, slider_id, scrubber_id, pictures_css, n",
    [
        ("Forward process", "forward-t", "forward-scrubber", ".panels canvas[data-panel]", 4),  # all four
        ("Reverse process", "reverse-t", "reverse-scrubber", ".panels.main canvas[data-panel]", 2),  # x_t and x̂₀
    ],
)
def test_the_scrubbed_picture_and_its_slider_are_on_screen_together(
    phone, tab, slider_id, scrubber_id, pictures_css, n
):
    """The forward tab's four panels and its slider never fitted the screen together. Now, wherever the pictures are
    scrolled to, the slider is on screen with them (it sticks to the top), and a finger drags it."""
    page = phone
    open_tab(page, tab)
    scrubber = page.locator(f"#{scrubber_id} .scrubber")
    if tab == "Reverse process":  # a run to scrub (the tiny model has no recorded one)
        tap(page.get_by_role("button", name="Generate"))
    page.wait_for_function(f"() => document.querySelector('#{scrubber_id} [data-paints]')", timeout=60_000)
    pictures = scrubber.locator(f"{pictures_css}:visible")
    track = page.locator(f"#{slider_id} input[type=range]")
    pictures.last.scroll_into_view_if_needed()  # scrolled down to the last picture

    def together():
        slider = track.bounding_box()
        assert 0 <= slider["y"] and slider["y"] + slider["height"] <= 844, slider
        shown = [pictures.nth(k).bounding_box() for k in range(pictures.count())]
        for box in shown:
            assert box["y"] >= slider["y"] + slider["height"] and box["y"] + box["height"] <= 845, (box, slider)
        return len(shown)

    assert together() == n
    expect(track).to_be_visible()
    expect(track).to_be_enabled()
    before = track.input_value()
    painted = page.evaluate(f"() => document.querySelector('#{scrubber_id} [data-paints]').dataset.paints")
    touch_drag(page, track, 0.3 if float(before) > float(track.get_attribute("max")) / 2 else 0.7, during=together)
    expect(track).not_to_have_value(before, timeout=WAIT)
    page.wait_for_function(  # the picture followed the finger
        "([id, n]) => document.querySelector(`#${id} [data-paints]`).dataset.paints !== n",
        arg=[scrubber_id, painted],
        timeout=WAIT,
    )
    together()
