"""The editing tab's endpoints, called over HTTP with gradio_client on the live app (tiny checkpoints)."""

import json

import numpy as np
import pytest
from conftest import local_client
from gradio_client import handle_file
from PIL import Image

from app.edit_inputs import UPLOAD, preset_json
from app.plans import ANY_CLASS

pytestmark = pytest.mark.e2e
EXAMPLE = "app/assets/fashion_tshirt.png"


@pytest.fixture(scope="module")
def client(live_app):
    return local_client(live_app)


def test_inpaint_then_a_move_of_the_run(client):
    mask = preset_json("centre square", 8, 8)
    *images, status = client.predict(
        model_name="tiny-random",
        source=UPLOAD,
        image=handle_file(EXAMPLE),
        mask=mask,
        steps=8,
        jump_length=2,
        jump_n_sample=3,
        eta=1.0,
        seed=0,
        class_choice=ANY_CLASS,
        guidance=1.0,
        api_name="/inpaint",
    )
    assert [np.asarray(Image.open(im)).shape for im in images] == [(8, 8)] * 4
    assert status.startswith("Done: RePaint made 32 moves"), status
    x, x0_hat, caption = client.predict(move=31, api_name="/inpaint_frame")
    assert np.asarray(Image.open(x)).shape == (8, 8) and "jump 6 of 6" in caption, caption
    with pytest.raises(Exception, match="Move must be between 0 and 32"):
        client.predict(move=33, api_name="/inpaint_frame")


def test_inpaint_refuses_bad_masks_with_a_clear_message(client):
    for mask, message in [
        ("", "The mask is empty"),
        (json.dumps([[1] * 8] * 8), "nothing to regenerate"),
        (json.dumps([[0] * 4] * 4), "8 rows of 8 values"),
        (json.dumps([[0, 7] * 4] * 8), "must be binary"),
    ]:
        with pytest.raises(Exception, match=message):
            client.predict(
                "tiny-random", UPLOAD, handle_file(EXAMPLE), mask, 8, 2, 3, 1.0, 0, ANY_CLASS, 1.0, api_name="/inpaint"
            )


def test_interpolate(client):
    slerp, lerp, fade, notes = client.predict(
        model_name="tiny-random",
        seed_a=0,
        seed_b=1,
        steps=4,
        class_a=ANY_CLASS,
        class_b=ANY_CLASS,
        guidance=1.0,
        api_name="/interpolate",
    )
    assert all(np.asarray(Image.open(s)).shape == (10, 82) for s in (slerp, lerp, fade))
    assert "Why slerp" in notes
