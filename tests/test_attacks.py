"""Reliability, round two: attacks on gradio's own routes replayed with raw HTTP against the running app."""

import httpx
import pytest
from conftest import local_client
from gradio_client import handle_file

pytestmark = pytest.mark.e2e

EXAMPLE = "app/assets/shapes.png"


@pytest.fixture(scope="module")
def app_url(live_app):
    return live_app.rstrip("/")


def test_deep_links_are_closed(app_url):
    """gradio's deep-link routes saved a session's component values and rendered them to whoever opened the link
    (a planted toast with a foreign link, a password form and a remote image). The app uses none: both are closed."""
    client = local_client(app_url)
    client.predict(handle_file(EXAMPLE), "linear", 100, 1e-4, 0.02, 0, 32, api_name="/forward_setup")
    session = client.session_hash
    with httpx.Client(base_url=app_url, timeout=30) as http:
        saved = http.get("/gradio_api/deep_link", params={"session_hash": session})
        assert saved.status_code == 404 and "deep_link" not in saved.text.lower().replace("not found", "")
        for path in ("/", "/config"):
            opened = http.get(path, params={"deep_link": "a" * 32})
            assert opened.status_code == 404 and "Deep links are turned off" in opened.text, path
        assert http.get("/").status_code == 200  # the page itself is served
        assert http.get("/config").status_code == 200


def test_the_page_is_sent_compressed(app_url):
    """GET / sent 0.52 MB uncompressed. (Event streams are never compressed, so runs still stream: the browser and
    end-to-end tests watch them arrive step by step.)"""
    with httpx.Client(base_url=app_url, timeout=30) as http:
        plain = http.get("/", headers={"Accept-Encoding": "identity"})
        packed = http.get("/", headers={"Accept-Encoding": "gzip"})
        assert packed.headers.get("content-encoding") == "gzip"
        assert int(packed.headers["content-length"]) < len(plain.content) / 3
