"""The reverse tab's "new image or copy?" section in Debian's Chromium, used as a person does: shown only for a
model that ships its training set, and after a Generate each sample beside its nearest training image in pixels and
in features, with the distances plotted against the held-out images'. (The search itself: test_nearest.py.)"""

import pytest
from chromium import chromium_page, require_chromium
from conftest import launched_demo
from playwright.sync_api import expect
from test_nearest import copying_checkpoints

from app import models

pytestmark = pytest.mark.e2e
WAIT = 60_000  # ms, for a condition on a loaded machine
SECTION = "New image or copy? Each sample beside its nearest training image"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    require_chromium()
    root = tmp_path_factory.mktemp("nearest") / "checkpoints"
    copying_checkpoints(root)
    models.nearest_training.cache_clear()
    with launched_demo(root) as (_, url), chromium_page(url) as page:
        page.get_by_role("tab", name="Reverse process").click()
        yield page
    models.nearest_training.cache_clear()


def choose_model(page, name: str) -> None:
    box = page.locator("#reverse-model input")
    expect(box).to_be_visible(timeout=WAIT)
    expect(box).to_be_enabled()
    box.click()
    page.get_by_role("option", name=name, exact=True).click()
    expect(box).to_have_value(name, timeout=WAIT)


def test_each_sample_is_shown_beside_its_nearest_training_image_after_a_run(page):
    section = page.get_by_role("button", name=SECTION)  # the accordion's header
    choose_model(page, "plain-tiny")
    expect(section).to_be_hidden(timeout=WAIT)  # no training set shipped: nothing to compare with
    # the unconditional model's answer has landed (the page opened on emoji-tiny, whose answer looks like the one
    # awaited below: waiting only for that one, a Generate could read this one's class half-way)
    expect(page.get_by_label("number input for Batch (grid)")).to_be_enabled(timeout=WAIT)
    choose_model(page, "emoji-tiny")
    expect(section).to_be_visible(timeout=WAIT)
    expect(
        page.get_by_text("Generate (to the end) to see each sample beside its nearest training image")
    ).to_be_visible()
    # the model's class controls have landed: "one of each" of its 2 classes sets the batch (Generate before them
    # would run the previous model's class and batch)
    one_per_class = page.get_by_label("number input for Batch: 2, one image per class", exact=False)
    expect(one_per_class).to_be_disabled(timeout=WAIT)
    generate = page.get_by_role("button", name="Generate", exact=True)
    expect(generate).to_be_enabled()
    generate.click()
    expect(page.locator("#reverse-status")).to_contain_text("Done", timeout=WAIT)
    gallery = page.locator("#nearest-gallery")
    gallery.scroll_into_view_if_needed()
    # "one of each" of 2 classes: 2 samples, each followed by its neighbour in pixels and in features
    thumbnails = gallery.locator("img")
    expect(thumbnails).to_have_count(6, timeout=WAIT)
    for caption in ("sample 1", "sample 2"):
        expect(gallery.get_by_text(caption, exact=True)).to_be_visible()
    expect(gallery.get_by_text("pixels: emoji ").first).to_be_visible()
    expect(gallery.get_by_text("features: emoji ").first).to_be_visible()
    expect(page.get_by_text("in pixels,", exact=False).first).to_be_visible()
    plot = page.locator("#nearest-plot")
    plot.scroll_into_view_if_needed()
    expect(plot).to_contain_text("Distance to the nearest training image")
    image = plot.locator("img")
    expect(image).to_be_visible(timeout=WAIT)
    assert image.evaluate("img => img.complete && img.naturalWidth") > 300
    choose_model(page, "plain-tiny")  # another model: the section goes with it
    expect(section).to_be_hidden(timeout=WAIT)
