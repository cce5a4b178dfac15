"""Every control of every tab answers a hand: each tab is visited, each accordion opened, and every slider, dropdown,
radio, checkbox, number box and scrubber control there is visible, enabled, and moved by a mouse drag, a click or
typing, after which its value (or the view) has changed. One page for the module, the tiny checkpoints.

Nothing here writes a control's value by script: the page is driven with the mouse and the keyboard only, and read
back."""

import re

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

TABS = ("Forward process", "Reverse process", "Editing", "Loss and the ELBO", "2D lab")
WAIT = 20_000  # ms, for a condition on a loaded machine
WCAG_AA = 4.5  # the contrast ratio WCAG 2 asks of body text
# what a control disabled on purpose says in its label, help or text ("choose a single class … to set it", "Sample
# again (after training)")
REASON = re.compile(
    r"to set it|choose|only (for|with|under)|needs|under the|has no effect|not used|unused|\(after [^)]+\)", re.I
)

# Every control the visible tab shows, once per block: [kind, key, anchor, n]. Kinds: slider, dropdown, radio,
# checkbox, number, player (a scrubber's Play, Pause and speed). The key (kind, label, the how-many-th of that kind
# and label) names the control; the anchor (a CSS selector of one of its inputs, by its aria-label or value, and n,
# the how-many-th match in the panel) finds it again however the page re-renders.
CONTROLS_JS = """() => {
  const panel = [...document.querySelectorAll('[role=tabpanel]')].find((p) => p.offsetParent !== null);
  const shown = (e) => { const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden' && !e.closest('[hidden]'); };
  const seen = new Set(), count = {}, out = [];
  const anchor = (e) => {
    const scrubber = e.closest('.scrubber');
    if (scrubber) return `.scrubber[data-slider=${JSON.stringify(scrubber.dataset.slider)}] button.play`;
    const aria = e.getAttribute('aria-label');
    if (aria) return `${e.tagName.toLowerCase()}[aria-label=${JSON.stringify(aria)}]`;
    if (e.type === 'radio') return `input[type=radio][value=${JSON.stringify(e.value)}]`;
    return `input[type=${e.type}]`;
  };
  const add = (kind, e) => {
    const block = e.closest('.block');
    if (!block || seen.has(block)) return;
    seen.add(block);
    const label = block.querySelector('[data-testid=block-info], [data-testid=block-label], .scrubber');
    const name = kind + ': ' + (label ? (label.dataset.slider || label.textContent) : '').trim();
    count[name] = (count[name] || 0) + 1;
    const css = anchor(kind === 'player' ? block.querySelector('.scrubber button.play') : e);
    const first = kind === 'player' ? block.querySelector('button.play') : e;
    out.push([kind, `${name} #${count[name]}`, css, [...panel.querySelectorAll(css)].indexOf(first)]);
  };
  for (const e of panel.querySelectorAll('input, select, button')) {
    if (!shown(e)) continue;
    if (e.closest('.scrubber .controls')) add('player', e);
    else if (e.type === 'range') add('slider', e);
    else if (e.getAttribute('role') === 'combobox' || e.getAttribute('role') === 'listbox') add('dropdown', e);
    else if (e.type === 'radio') add('radio', e);
    else if (e.type === 'checkbox') add('checkbox', e);
    else if (e.type === 'number' && !e.closest('.block').querySelector('input[type=range]')) add('number', e);
  }
  return out;
}"""
# the nearest gradio block around an element
BLOCK = "xpath=ancestor::*[contains(concat(' ', normalize-space(@class), ' '), ' block ')][1]"


def open_tab(page, name: str):
    """Click the tab, open each of its accordions, and return its panel."""
    tab = page.get_by_role("tab", name=name)
    expect(tab).to_be_visible()
    tab.click()
    panel = page.locator("[role=tabpanel]:visible").first
    for _ in range(3):  # an opened accordion may hold another
        closed = [a.inner_text() for a in panel.locator("button.label-wrap:not(.open)").all() if a.is_visible()]
        for title in closed:
            accordion = panel.locator("button.label-wrap").filter(has_text=title).first
            expect(accordion).to_be_enabled()
            accordion.click()
            expect(accordion).to_have_class(re.compile(r"\bopen\b"), timeout=WAIT)
        if not closed:
            break
    return panel


def usable(locator) -> None:
    locator.scroll_into_view_if_needed()
    expect(locator).to_be_visible()
    expect(locator).to_be_enabled()


def drag_slider(page, block) -> None:
    """A mouse drag along the track moves the value, and the number box follows; typing the old value back into the
    number box (and Enter) restores it."""
    track, number = block.locator("input[type=range]"), block.locator("input[type=number]")
    usable(track)
    usable(number)
    before = track.input_value()
    lo, hi = float(track.get_attribute("min")), float(track.get_attribute("max"))
    at = (float(before) - lo) / (hi - lo) if hi > lo else 0.0
    to = 0.25 if at > 0.5 else 0.8
    box = track.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 8 + (box["width"] - 16) * at, y)
    page.mouse.down()
    page.mouse.move(box["x"] + 8 + (box["width"] - 16) * to, y, steps=5)
    page.mouse.up()
    expect(track).not_to_have_value(before, timeout=WAIT)
    expect(number).to_have_value(track.input_value(), timeout=WAIT)
    number.fill(before)
    number.press("Enter")
    expect(track).to_have_value(before, timeout=WAIT)


def pick_another(page, block) -> None:
    """Click the dropdown, pick another option (never a Hub model: offline, the tests cannot load one), see it
    chosen; then pick the first one back."""
    box = block.locator("input[role=combobox], input[role=listbox]").first
    usable(box)
    before = box.input_value()
    box.click()
    options = page.locator("ul[role=listbox] li[role=option]:visible")
    expect(options.first).to_be_visible(timeout=WAIT)
    names = [n.replace("✓", "").strip() for n in options.all_inner_texts()]  # ✓ marks the chosen one
    others = [n for n in names if n and n != before and "/" not in n]
    if not others:  # one option only: it is shown, and nothing else can be picked
        page.keyboard.press("Escape")
        return
    option(page, others[0]).click()
    expect(box).to_have_value(others[0], timeout=WAIT)
    box.click()
    expect(options.first).to_be_visible(timeout=WAIT)
    option(page, before).click()
    expect(box).to_have_value(before, timeout=WAIT)


def option(page, name: str):
    """The open dropdown's option that reads exactly ``name``."""
    exactly = re.compile(rf"^\W*{re.escape(name)}\s*$")
    return page.locator("ul[role=listbox] li[role=option]:visible").filter(has_text=exactly).first


def click_radio(block) -> None:
    radios = block.locator("input[type=radio]")
    checked = [i for i in range(radios.count()) if radios.nth(i).is_checked()]
    other = next(i for i in range(radios.count()) if i not in checked)
    usable(radios.nth(other))
    radios.nth(other).click()  # the browser clicks its centre: its label's dot
    expect(radios.nth(other)).to_be_checked(timeout=WAIT)
    if checked:
        radios.nth(checked[0]).click()
        expect(radios.nth(checked[0])).to_be_checked(timeout=WAIT)


def toggle_checkbox(block) -> None:
    box = block.locator("input[type=checkbox]").first
    usable(box)
    was = box.is_checked()
    box.click()
    expect(box).to_be_checked(checked=not was, timeout=WAIT)
    box.click()
    expect(box).to_be_checked(checked=was, timeout=WAIT)


def type_number(block) -> None:
    number = block.locator("input[type=number]").first
    usable(number)
    before = number.input_value()
    value = float(before or 0)
    other = str(int(value) + 1) if value == int(value) else f"{value * 2:g}"
    number.fill(other)
    number.press("Enter")
    expect(number).to_have_value(other, timeout=WAIT)
    number.fill(before)
    number.press("Enter")
    expect(number).to_have_value(before, timeout=WAIT)


def play_and_pause(page, block) -> None:
    """Play moves the scrubber's slider; Pause stops it; the speed select takes another speed."""
    scrubber = block.locator(".scrubber")
    slider = page.locator(f"#{scrubber.get_attribute('data-slider')} input[type=range]")
    play, pause, speed = (block.locator(s) for s in ("button.play", "button.pause", "select.speed"))
    for control in (play, pause, speed):
        usable(control)
    speed.select_option(label="4×")
    expect(speed).to_have_value("4")
    before = slider.input_value()
    play.click()
    expect(slider).not_to_have_value(before, timeout=WAIT)
    pause.click()
    expect(scrubber).to_have_attribute("data-playing", "false", timeout=WAIT)
    speed.select_option(label="1×")


ACT = {
    "slider": drag_slider,
    "dropdown": pick_another,
    "radio": lambda page, block: click_radio(block),
    "checkbox": lambda page, block: toggle_checkbox(block),
    "number": lambda page, block: type_number(block),
    "player": play_and_pause,
}


def test_every_control_of_every_tab_answers_a_hand(page):
    seen = {}
    for tab in TABS:
        panel = open_tab(page, tab)
        if tab == "Reverse process":  # a class-conditional model shows the class, guidance and sweep controls
            pick_model(page, panel, "tiny-conditional")
            expect(panel.get_by_label("Class (class-conditional models)")).to_be_visible(timeout=WAIT)
            # the model's answers settled: its recommended w (2) set, and "one of each" has disabled the batch (a
            # pick made before the class's own events land is a race with them, not a hand's test)
            expect(panel.get_by_label(re.compile("^number input for Guidance w"))).to_have_value("2", timeout=WAIT)
            one_per_class = panel.get_by_label(re.compile("^number input for Batch: 3, one image per class"))
            expect(one_per_class).to_be_disabled(timeout=WAIT)
        done = []
        while True:  # one control at a time, the page read again after each: an answer may add or move controls
            todo = [c for c in page.evaluate(CONTROLS_JS) if c[1] not in done]
            if not todo:
                break
            if tab == "Reverse process":
                # its model last: picking another and back resets the class, w and batch to the model's own when
                # that answer lands, so a class picked before it is a race with it, not a hand's test (a person
                # picks a class once the new model's classes are shown)
                todo.sort(key=lambda c: c[1].split(": ", 1)[1].rsplit(" #", 1)[0] == "Model")
            kind, key, css, n = todo[0]
            first = panel.locator(css).nth(n)
            block = first.locator(BLOCK)
            label = key.split(": ", 1)[1].rsplit(" #", 1)[0]
            try:  # the page may move under us (a section appeared or went, a label changed): read it again
                if not first.is_visible() or (
                    kind != "player" and label and label not in block.inner_text(timeout=5000)
                ):
                    continue
            except PlaywrightTimeoutError:  # the control is gone (its label changed as an answer landed)
                continue
            done.append(key)
            if kind != "player" and block.locator("input:disabled, select:disabled").count():
                # a control that has no effect now is disabled, and says why and how to make it count
                assert REASON.search(block.inner_text()), f"{tab}: {key} is disabled without saying why"
                continue
            try:
                ACT[kind](page, block)
            except (AssertionError, PlaywrightTimeoutError) as e:
                if not panel.locator(css).nth(n).count():  # gone as we used it (an answer relabelled it): read again
                    done.remove(key)
                    continue
                raise AssertionError(f"{tab}: {key} did not answer: {e}") from None
        seen[tab] = [key.split(":")[0] for key in done]
        disabled = panel.evaluate(  # every visible button is enabled, but the ↺ of a control disabled on purpose
            "(panel) => [...panel.querySelectorAll('button:disabled')].filter((b) => b.offsetParent !== null"
            " && !b.closest('.block')?.querySelector('input:disabled')).map((b) => b.textContent.trim())"
        )
        unexplained = [text for text in disabled if not REASON.search(text)]
        assert not unexplained, f"{tab}: disabled buttons that do not say why: {unexplained}"
    counts = {tab: {k: kinds.count(k) for k in ACT} for tab, kinds in seen.items()}
    # what the walk must have met, at the least: the tabs' sliders and their scrubbers' players, dropdowns, radios
    assert counts["Forward process"]["slider"] >= 1 and counts["Forward process"]["player"] >= 1, counts
    assert counts["Reverse process"]["slider"] >= 4 and counts["Reverse process"]["player"] >= 2, counts
    assert counts["Reverse process"]["radio"] >= 1 and counts["Editing"]["player"] >= 2, counts
    assert counts["2D lab"]["dropdown"] >= 2 and counts["2D lab"]["player"] == 1, counts
    assert sum(c["number"] for c in counts.values()) >= 5, counts


def pick_model(page, panel, name: str) -> None:
    box = panel.get_by_label("Model", exact=True).first
    usable(box)
    box.click()
    option(page, name).click()
    expect(box).to_have_value(name, timeout=WAIT)


def test_play_stops_at_the_end_and_plays_again_from_the_start(page):
    """Play ran from 0 to T and looped; now it stops at T (the forward tab plays towards T), and Play again restarts
    from t = 0."""
    open_tab(page, "Forward process")
    slider = page.locator("#forward-t input[type=range]")
    scrubber = page.locator("#forward-scrubber .scrubber")
    play, speed = scrubber.locator("button.play"), scrubber.locator("select.speed")
    usable(play)
    speed.select_option(label="4×")
    top = slider.get_attribute("max")
    play.click()
    expect(scrubber).to_have_attribute("data-playing", "false", timeout=30_000)
    expect(slider).to_have_value(top)
    still = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))"
    page.evaluate(still)  # two frames later it has not looped
    expect(slider).to_have_value(top)
    expect(play).to_have_attribute("aria-pressed", "false")
    play.click()  # from the end: from the start again
    page.wait_for_function(
        "(top) => Number(document.querySelector('#forward-t input[type=range]').value) < Number(top) / 2",
        arg=top,
        timeout=WAIT,
    )
    scrubber.locator("button.pause").click()
    expect(scrubber).to_have_attribute("data-playing", "false", timeout=WAIT)
    speed.select_option(label="1×")


def test_player_buttons_look_like_gradios_buttons(page):
    """Play, Pause and the speed were the browser's bare buttons; they now take gradio's secondary-button look (its
    colours, font and corners), and Play looks pressed while it plays."""
    open_tab(page, "Forward process")
    gradio = page.locator("button.secondary:visible").first
    look = {p: gradio.evaluate(f"(b) => getComputedStyle(b).{p}") for p in ("backgroundColor", "fontFamily")}
    scrubber = page.locator("#forward-scrubber .scrubber")
    for button in (scrubber.locator("button.play"), scrubber.locator("button.pause")):
        usable(button)
        expect(button).to_have_css("background-color", look["backgroundColor"], timeout=WAIT)  # after its transition
        expect(button).to_have_css("font-family", look["fontFamily"])
        assert button.evaluate("(b) => getComputedStyle(b).borderRadius") not in ("", "0px")
    expect(scrubber.locator("select.speed")).to_have_css("font-family", look["fontFamily"])
    scrubber.locator("button.play").click()
    expect(scrubber.locator("button.play")).to_have_attribute("aria-pressed", "true")
    expect(scrubber.locator("button.play")).not_to_have_css("background-color", look["backgroundColor"], timeout=WAIT)
    scrubber.locator("button.pause").click()
    expect(scrubber).to_have_attribute("data-playing", "false", timeout=WAIT)


def luminance(rgb) -> float:
    """WCAG 2's relative luminance of an sRGB colour (0 … 255 per channel)."""
    linear = [c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a, b) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


# The text's colour and the colour under it: the nearest ancestor's opaque background, semi-transparent ones blended
# over it (both as [r, g, b]).
COLOURS_JS = """(e) => {
  const rgba = (s) => { const v = s.match(/[\\d.]+/g).map(Number); return v.length === 3 ? [...v, 1] : v; };
  const layers = [];
  for (let n = e; n; n = n.parentElement) {
    const c = rgba(getComputedStyle(n).backgroundColor);
    if (c[3] > 0) layers.push(c);
    if (c[3] === 1) break;
  }
  let under = [255, 255, 255];
  for (const [r, g, b, a] of layers.reverse()) under = [r * a + under[0] * (1 - a), g * a + under[1] * (1 - a),
                                                         b * a + under[2] * (1 - a)];
  const [r, g, b, a] = rgba(getComputedStyle(e).color);
  return [[r * a + under[0] * (1 - a), g * a + under[1] * (1 - a), b * a + under[2] * (1 - a)], under];
}"""


def test_help_text_is_readable(page):
    """Gradio's help text (a component's info) was #bbbbc2 on white, 1.9:1: each one on each tab is at least 4.5:1."""
    measured = []
    for tab in TABS:
        panel = open_tab(page, tab)
        for info in panel.locator(".info-text").all():
            if info.is_visible() and info.inner_text().strip():
                text, under = info.evaluate(COLOURS_JS)
                measured.append((contrast(text, under), tab, info.inner_text()[:40]))
    assert len(measured) >= 3, measured  # the sampler's, the guidance's and others' help
    assert min(measured)[0] >= WCAG_AA, sorted(measured)[:3]
