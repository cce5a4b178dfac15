"""The app in a real browser: Debian's Chromium driven by Playwright (never a downloaded browser)."""

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import local_client
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from app import plans
from app.callbacks import forward
from app.callbacks.forward import SCHEDULES

pytestmark = pytest.mark.e2e
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts"))


def image_src(locator) -> str:
    locator.locator("img").first.wait_for(timeout=30_000)
    return locator.locator("img").first.get_attribute("src")


def block(page, label: str):
    """The component whose label reads exactly ``label``."""
    return page.locator(".block").filter(has=page.get_by_text(label, exact=True)).first


def set_number(page, label: str, value: int, attempts: int = 4) -> None:
    """Type a value into a slider's number box, as a user would, until the slider holds it.

    On a loaded machine gradio can re-render the box just after it was filled (a section still opening), and the
    typed value is lost: a user would type it again, and so does this."""
    taken = "([label, v]) => document.querySelector(`input[aria-label='range slider for ${label}']`)?.value === v"
    for attempt in range(attempts):
        number = page.get_by_label(f"number input for {label}")
        number.fill(str(value))
        number.press("Enter")
        try:
            page.wait_for_function(taken, arg=[label, str(value)], timeout=10_000)
            return
        except PlaywrightTimeoutError:
            if attempt == attempts - 1:
                raise


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


FORWARD_T = "t: noising steps applied (0 = clean image, T = noise); ← → step 1, Shift+← → step 10"
REVERSE_T = "t (0 = the result, T = pure noise; after a run: the nearest step); ← → step 1, Shift+← → step 10"


def test_forward_slider_moves_the_scrubber(page):
    set_number(page, FORWARD_T, 600)
    page.get_by_text("600 / 1000", exact=True).wait_for(timeout=15_000)  # the numbers name the slider's t
    assert scrubber_state(page, "forward-scrubber")["t"] == "600"
    screenshot(page, "forward.png")


def test_reverse_generation_streams_frames(page):
    page.get_by_role("tab", name="Reverse process").click()
    choose(page, "Sampler", plans.DDPM)  # the default is a solver; DDPM's respaced steps are the ones below
    set_number(page, "Steps N (T: every timestep)", 8)
    page.get_by_role("button", name="Generate").click()
    page.get_by_text("Done: DDPM (ancestral), 8 steps").wait_for(timeout=60_000)
    # the run ends on its result x₀, in the scrubber (t = 0)
    page.wait_for_function("() => document.querySelector('#reverse-scrubber [data-paints]')?.dataset.t === '0'")
    # the recorded run is shown at once, and its slider scrubs ε̂ (and every other panel) step by step
    set_number(page, REVERSE_T, 88)
    # the tiny model has T = 100; 8 respaced steps visit t = 100, 88, 75, 62, 50, 38, 25, 12 and end at 0
    page.get_by_text("Step 2 of 8: t = 88 → 75.").wait_for(timeout=15_000)
    for t, caption in ((100, "Step 1 of 8: t = 100 → 88."), (50, "Step 5 of 8: t = 50 → 38."), (0, "t = 0")):
        set_number(page, REVERSE_T, t)
        page.locator("#reverse-scrubber .caption").get_by_text(caption).first.wait_for(timeout=15_000)
    page.get_by_text("the result x₀, after the last step t = 12 → 0").wait_for(timeout=15_000)
    assert "coarse" in page.locator("#reverse-scrubber .spectrum-caption").inner_text()  # the spectral view follows
    screenshot(page, "reverse.png")


def test_reverse_canvas_equals_the_servers_frame(page, live_app):
    """The page's frames of the run above (seed 0, 8 respaced steps, batch 4) equal /reverse_frame's, step by step."""
    client = local_client(live_app)
    variance = next(iter(plans.VARIANCE_CHOICES))
    client.predict("tiny-random", plans.DDPM, 8, 0.0, variance, True, 0, 4, api_name="/reverse_generate")
    for t in (100, 75, 12, 0):
        drag_to(page, "reverse-t", "reverse-scrubber", t)
        frames = client.predict(t, api_name="/reverse_frame")
        for panel, path in zip(("x_t", "x0_hat", "eps_hat"), frames[:3]):
            server = np.asarray(Image.open(path).convert("RGB"))
            np.testing.assert_array_equal(
                canvas_pixels(page, "reverse-scrubber", panel), server, err_msg=f"{panel}, t = {t}"
            )


# ---------------------------------------------------------------- the scrubbers draw in the page


def scrubber_state(page, elem_id: str) -> dict:
    return page.evaluate(
        "(id) => { const e = document.querySelector(`#${id} [data-paints]`); return e ? {...e.dataset} : {}; }",
        elem_id,
    )


def wait_for_new_payload(page, elem_id: str, old_version: str) -> None:
    page.wait_for_function(
        "([id, v]) => { const e = document.querySelector(`#${id} [data-paints]`);"
        " return e && e.dataset.version !== v; }",
        arg=[elem_id, old_version],
        timeout=30_000,
    )


def drag_to(page, slider_id: str, scrubber_id: str, t: int) -> None:
    """Set the slider to t as a person does who wants an exact value: a mouse drag along its track to about t, then
    typing t into its number box and Enter; wait until the scrubber has painted t."""
    track, number = page.locator(f"#{slider_id} input[type=range]"), page.locator(f"#{slider_id} input[type=number]")
    track.scroll_into_view_if_needed()
    assert track.is_visible() and track.is_enabled() and number.is_enabled(), slider_id
    box, top = track.bounding_box(), float(track.get_attribute("max"))
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * float(track.input_value()) / top, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * t / top, y, steps=6)
    page.mouse.up()
    number.fill(str(t))
    number.press("Enter")
    page.wait_for_function(
        "([id, t]) => document.querySelector(`#${id} [data-paints]`).dataset.t === String(t)",
        arg=[scrubber_id, t],
        timeout=15_000,
    )


def canvas_pixels(page, scrubber_id: str, panel: str) -> np.ndarray:
    """The panel's canvas as (H, W, 3) uint8."""
    h, w, data = page.evaluate(
        "([id, panel]) => { const c = document.querySelector(`#${id} canvas[data-panel='${panel}']`);"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " return [c.height, c.width, Array.from(d)]; }",
        [scrubber_id, panel],
    )
    return np.asarray(data, np.uint8).reshape(h, w, 4)[..., :3]


def choose(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).first.click()
    page.get_by_role("option", name=option, exact=True).click()


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_forward_canvas_equals_the_servers_frame(page, schedule):
    """What the page computes at t equals /forward_frame at t within one grey level, for every schedule."""
    page.get_by_role("tab", name="Forward process").click()
    version = scrubber_state(page, "forward-scrubber").get("version", "")
    choose(page, "β schedule", schedule)
    if schedule != "linear" or not version:
        wait_for_new_payload(page, "forward-scrubber", version)
    for t in (0, 1, 500, 999, 1000):
        drag_to(page, "forward-t", "forward-scrubber", t)
        painted = canvas_pixels(page, "forward-scrubber", "x_t").astype(int)
        server = np.asarray(forward.forward_frame(None, schedule, 1000, 1e-4, 0.02, 0, 64, t)).astype(int)
        assert painted.shape == server.shape
        assert np.abs(painted - server).max() <= 1, f"{schedule}, t = {t}"
    choose(page, "β schedule", "linear")


def test_a_new_seed_while_dragging_replaces_the_frames(page):
    """Change the seed during a drag: the new ε arrives and the old payload never paints over it."""
    page.get_by_role("tab", name="Forward process").click()
    version = scrubber_state(page, "forward-scrubber")["version"]
    seed = page.get_by_label("Seed (fixes ε)")
    assert seed.is_visible() and seed.is_enabled()
    seed.fill("1")
    seed.press("Enter")
    track = page.locator("#forward-t input[type=range]")  # drag back and forth while the new ε is on its way
    box = track.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 5, y)
    page.mouse.down()
    for k in range(6):
        page.mouse.move(box["x"] + box["width"] * (0.9 if k % 2 == 0 else 0.1), y, steps=10)
    page.mouse.up()
    wait_for_new_payload(page, "forward-scrubber", version)
    new_version = scrubber_state(page, "forward-scrubber")["version"]
    assert int(new_version) > int(version)
    drag_to(page, "forward-t", "forward-scrubber", 500)
    painted = canvas_pixels(page, "forward-scrubber", "x_t").astype(int)
    server = np.asarray(forward.forward_frame(None, "linear", 1000, 1e-4, 0.02, 1, 64, 500)).astype(int)
    assert np.abs(painted - server).max() <= 1
    # never an older one after it (a newer one may come: under load the seed box can send its change twice)
    assert int(scrubber_state(page, "forward-scrubber")["version"]) >= int(new_version)
    seed.fill("0")
    seed.press("Enter")
    wait_for_new_payload(page, "forward-scrubber", new_version)


def test_arrow_keys_step_t_by_one_and_shift_by_ten(page):
    page.get_by_role("tab", name="Forward process").click()
    drag_to(page, "forward-t", "forward-scrubber", 500)
    slider = page.locator("#forward-t input[type=range]")
    slider.focus()
    slider.press("ArrowRight")
    page.wait_for_function("document.querySelector('#forward-scrubber [data-paints]').dataset.t === '501'")
    slider.press("Shift+ArrowRight")
    page.wait_for_function("document.querySelector('#forward-scrubber [data-paints]').dataset.t === '511'")
    slider.press("Shift+ArrowLeft")
    slider.press("ArrowLeft")
    page.wait_for_function("document.querySelector('#forward-scrubber [data-paints]').dataset.t === '500'")


def race_canvases(page) -> list[np.ndarray]:
    """Every race row's x_t canvas, as (H, W, 3) uint8."""
    shots = page.evaluate(
        "() => [...document.querySelectorAll('#race-scrubber .race-row')].map((row) => {"
        " const c = row.querySelector('canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);"
        " return [c.height, c.width, Array.from(d.data)]; })"
    )
    return [np.asarray(d, np.uint8).reshape(h, w, 4)[..., :3] for h, w, d in shots]


def test_race_streams_then_scrubs_every_run_by_noise_level(page):
    page.get_by_role("tab", name="Reverse process").click()
    page.get_by_text("Race samplers: the same noise, side by side").click()
    set_number(page, "Steps N (each)", 6)
    before = scrubber_state(page, "race-scrubber").get("version", "")
    page.get_by_role("button", name="Race", exact=True).click()
    wait_for_new_payload(page, "race-scrubber", before)
    # the run ends by setting the slider to 0 (the results); wait for that before moving it
    page.wait_for_function(
        "() => document.querySelector('#race-scrubber [data-paints]').dataset.t === '0'", timeout=30_000
    )
    assert page.locator("#race-scrubber .race-row").count() == 4
    drag_to(page, "race-t", "race-scrubber", 100)  # t = T: every run at its first step, the same x_T
    first = race_canvases(page)
    assert all(np.abs(f.astype(int) - first[0].astype(int)).max() <= 1 for f in first)
    drag_to(page, "race-t", "race-scrubber", 50)  # 6 steps of T = 100 visit t = 100, 83, 67, 50, 33, 17
    titles = page.locator("#race-scrubber .race-title").all_inner_texts()
    assert sum("NFE 4 of 6 · its t = 50" in title for title in titles) == 4, titles
    drag_to(page, "race-t", "race-scrubber", 0)
    page.get_by_text("every run's result").wait_for(timeout=15_000)
    assert page.get_by_text("result after 6 NFE").count() == 4
    screenshot(page, "race.png")


def test_forward_spectrum_marks_the_servers_crossing(page):
    """The spectral view follows the slider: the page marks the crossing pipelines.spectral computes, and it moves
    to lower frequencies as t grows."""
    from pipelines.spectral import crossing_frequency, radial_power_spectrum

    page.get_by_role("tab", name="Forward process").click()
    version = scrubber_state(page, "forward-scrubber").get("version", "")
    current = page.get_by_label("β schedule", exact=True).first.input_value()
    choose(page, "β schedule", "linear")
    if current != "linear" or not version:  # a new setup: wait for its payload
        wait_for_new_payload(page, "forward-scrubber", version)
    state = forward.forward_state(None, "linear", 1000, 1e-4, 0.02, 0, 64)
    x0, eps = radial_power_spectrum(state.trajectory.x0[None]), radial_power_spectrum(state.trajectory.noise[None])
    seen = []
    for t in (20, 100, 300, 700):
        drag_to(page, "forward-t", "forward-scrubber", t)
        ab = float(state.trajectory.tables.alphas_cumprod[t - 1])
        expected = crossing_frequency(x0.scaled(ab), eps.scaled(1 - ab))
        crossing = scrubber_state(page, "forward-scrubber")["crossing"]
        if expected is None:  # the signal is above the noise at every frequency
            assert crossing == "", t
        else:
            assert float(crossing) == pytest.approx(expected, rel=1e-5), t
        seen.append(expected or 1.0)
    assert seen == sorted(seen, reverse=True) and seen[0] > seen[-1]
    screenshot(page, "forward-spectrum.png")


LAB_T = "t (0 = the data and the samples, T = noise); ← → step 1, Shift+← → step 10"


def test_lab_trains_samples_and_scrubs_every_run_in_the_page(page):
    """The 2D lab, two clicks from the first page: train on the ring of 8 Gaussians, sample with the three samplers,
    then scrub: each run's recorded step, the score fields and their mean error follow the slider, with no request."""
    page.get_by_role("tab", name="2D lab").click()
    page.wait_for_function("() => document.querySelector('#lab-scrubber [data-paints]')", timeout=30_000)
    set_number(page, "Training steps (512 points each)", 1000)
    set_number(page, "Sampling steps N (each)", 50)
    version = scrubber_state(page, "lab-scrubber")["version"]
    page.get_by_role("button", name="Train and sample").click()
    page.wait_for_function(
        "(v) => { const e = document.querySelector('#lab-scrubber [data-paints]');"
        " return e && e.dataset.version !== v && e.dataset.runT.split(',').length === 3; }",
        arg=version,
        timeout=180_000,
    )
    page.get_by_text("points with each sampler, 50 steps from the same x_T").wait_for(timeout=30_000)
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    # 50 steps of T = 1000 record t = 1000, 980, …, 20 and the samples at 0; the fields have t = 0, 20, …, 1000
    for t in (1000, 500, 240, 0):
        drag_to(page, "lab-t", "lab-scrubber", t)
        state = scrubber_state(page, "lab-scrubber")
        assert state["runT"] == f"{t},{t},{t}" and state["fieldT"] == str(t), state
        if t > 0:  # the learned score against the exact one, at the slider's t
            assert 0 < float(state["error"]) < 1.0, state
            page.get_by_text("Mean ‖s_θ − ∇log q_t‖").first.wait_for(timeout=5_000)
        if t == 0:
            page.get_by_text("the samples (t = 0)").first.wait_for(timeout=5_000)
    drag_to(page, "lab-t", "lab-scrubber", 120)
    assert not [url for url in requests if "/queue/join" in url or "/call/" in url], requests
    inked = page.evaluate(
        "() => Object.fromEntries([...document.querySelectorAll('#lab-scrubber canvas[data-panel]')].map((c) => {"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
        " for (let i = 0; i < d.length; i += 4) if (d[i + 2] < 200) n++;"
        " return [c.dataset.panel, n]; }))"
    )  # inked pixels per panel: points, arrows and paths (white and the blue shading have blue ≥ 200)
    assert all(inked[panel] > 100 for panel in ("forward", "learned", "exact", "ddpm", "ddim", "ode")), inked
    screenshot(page, "lab.png")


def test_a_drawing_made_with_the_mouse_becomes_the_labs_data(page):
    """The lab's own drawing pad (strokes sent as points; gradio's Sketchpad kept uploaded layers on the server
    without bound): a circle drawn with the mouse becomes the data set, and Clear empties the pad."""
    page.get_by_role("tab", name="2D lab").click()
    page.wait_for_function("() => document.querySelector('#lab-scrubber [data-paints]')", timeout=30_000)
    choose(page, "Data set", "draw your own")
    pad = page.locator("#lab-drawing canvas.pad")
    pad.wait_for(state="visible", timeout=10_000)
    assert pad.is_visible() and pad.is_enabled()
    box = pad.bounding_box()
    cx, cy, r = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box["width"] * 0.3
    page.mouse.move(cx + r, cy)
    page.mouse.down()
    for k in range(1, 61):
        angle = 2 * np.pi * k / 60
        page.mouse.move(cx + r * np.cos(angle), cy + r * np.sin(angle), steps=2)
    page.mouse.up()
    page.wait_for_function(
        "() => document.querySelector('#lab-scrubber [data-paints]').dataset.source === 'your drawing'",
        timeout=30_000,
    )
    caption = page.locator("#lab-drawing .pad-caption").inner_text()
    assert caption.startswith("1 stroke,") and int(caption.split(", ")[1].split()[0]) > 30, caption
    ink = page.evaluate(
        "() => { const c = document.querySelector('#lab-drawing canvas.pad');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
        " for (let i = 0; i < d.length; i += 4) if (d[i] < 100) n++; return n; }"
    )
    assert ink > 500, ink
    screenshot(page, "lab-drawing.png")
    clear = page.locator("#lab-drawing button.clear")
    assert clear.is_visible() and clear.is_enabled()
    clear.click()
    page.get_by_text("Draw on the pad with the mouse, a pen or a finger").first.wait_for(timeout=15_000)
    assert page.locator("#lab-drawing .pad-caption").inner_text().startswith("Draw here")
    choose(page, "Data set", "8 Gaussians (ring)")


def test_scrub_js_is_loaded_once_for_the_scrubbers(page):
    """The page's <head> carries scrub.js once (launch(head=...)); no scrubber brings its own copy."""
    in_head = page.evaluate(
        "() => [...document.head.querySelectorAll('script')]"
        ".filter((s) => s.textContent.includes('window.DDPMScrub = window.DDPMScrub ||')).length"
    )
    assert in_head >= 1 and page.evaluate("() => typeof window.DDPMScrub.mount") == "function"
    config = page.evaluate("() => window.gradio_config")
    heads = {c["props"].get("elem_id"): c["props"].get("head") for c in config["components"]}
    for scrubber in ("forward-scrubber", "reverse-scrubber", "race-scrubber", "guidance-scrubber", "lab-scrubber"):
        assert not heads.get(scrubber), scrubber


def test_a_payload_that_fails_is_written_into_the_caption(page):
    """A payload that does not parse, or an image that does not decode, says so in the widget's caption instead of
    leaving the last view (mounted here on a detached copy of a widget, so the page's own widgets are untouched)."""
    captions = page.evaluate(
        """async () => {
        const make = () => {
          const element = document.createElement("div");
          element.innerHTML = '<div class="scrubber" data-slider="forward-t"><div class="caption"></div>' +
            '<button class="play"></button><button class="pause"></button><select class="speed">' +
            '<option value="1" selected>1</option></select></div>';
          return element;
        };
        const widget = { direction: 1, load: async (p) => { await window.DDPMScrub.decodeImage(p.png); },
                         show: (t) => t };
        const broken = make(), undecodable = make();
        window.DDPMScrub.mount(broken, { value: "{not json" }, () => {}, widget);
        window.DDPMScrub.mount(undecodable, { value: '{"version": 1, "png": "AAAA"}' }, () => {}, widget);
        await new Promise((done) => setTimeout(done, 500));
        return [broken, undecodable].map((e) => [e.querySelector(".caption").textContent, e.dataset.failure || ""]);
      }"""
    )
    for caption, failure in captions:
        assert caption.startswith("This view could not be drawn: ") and failure, caption


def test_every_scrub_slider_can_be_moved_by_hand(page):
    """The lab's, the race's and the guidance sweep's t sliders were rendered disabled (only ever outputs of events):
    a mouse drag on the track, the keys and typing left t at 0. Each is enabled and answers a click on its track and
    an arrow key. (The sweep's slider is made by the race's code, `noise_level_scrubber`; its section shows only for a
    class-conditional model, and this page runs the unconditional tiny one.)"""
    places = (  # the tab, the accordion it sits in, the slider, the scrubber whose setup updates it on arrival
        ("Forward process", None, "forward-t", "forward-scrubber"),
        ("2D lab", None, "lab-t", "lab-scrubber"),
        ("Reverse process", "Race samplers: the same noise, side by side", "race-t", None),
    )
    for tab, accordion, slider_id, scrubber in places:
        page.get_by_role("tab", name=tab).click()
        if scrubber:  # its setup's update of the slider comes first
            page.wait_for_function("(id) => document.querySelector(`#${id} [data-paints]`)", arg=scrubber)
        track = page.locator(f"#{slider_id} input[type=range]")
        if accordion and not track.is_visible():
            page.get_by_text(accordion).first.click()
        track.scroll_into_view_if_needed()
        assert track.is_visible(), slider_id
        assert track.is_enabled(), slider_id
        box = track.bounding_box()
        before = track.input_value()
        page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)  # a click on the track
        try:
            page.wait_for_function(
                "([id, v]) => document.querySelector(`#${id} input[type=range]`).value !== v",
                arg=[slider_id, before],
                timeout=10_000,
            )
            moved = int(track.input_value())
            track.focus()
            page.keyboard.press("ArrowRight" if moved < int(track.get_attribute("max")) else "ArrowLeft")
            page.wait_for_function(
                "([id, v]) => document.querySelector(`#${id} input[type=range]`).value !== v",
                arg=[slider_id, str(moved)],
                timeout=10_000,
            )
        except PlaywrightTimeoutError:
            screenshot(page, f"slider-{slider_id}.png")
            raise AssertionError(f"{slider_id} did not move: {before}, disabled={track.is_disabled()}") from None
