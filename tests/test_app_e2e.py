"""Launch the app and drive every api_name through gradio_client."""

import inspect
import re

import numpy as np
import pytest
from conftest import local_client
from gradio_client import handle_file
from PIL import Image

from app import plans
from app.callbacks import forward as forward_cb
from app.callbacks import reverse as reverse_cb
from app.callbacks.forward import SCHEDULES
from app.callbacks.loss import elbo_terms
from app.callbacks.sdedit import sdedit
from app.validation import UserError

pytestmark = pytest.mark.e2e
EXAMPLE = "app/assets/fashion_tshirt.png"
VARIANCE = next(iter(plans.VARIANCE_CHOICES))
RESPACED = plans.DDPM


@pytest.fixture(scope="module")
def client(live_app):
    return local_client(live_app)


def load(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def forward(client, t, seed=0, T=1000, schedule="linear"):
    return load(client.predict(handle_file(EXAMPLE), schedule, T, 1e-4, 0.02, seed, 32, t, api_name="/forward_frame"))


def test_every_api_name_is_exposed(client):
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    expected = {
        "/forward_frame",
        "/forward_setup",
        "/forward_scrub",
        "/forward_markov_chain",
        "/forward_compare",
        "/forward_gif",
        "/reverse_generate",
        "/reverse_frame",
        "/reverse_gif",
        "/sdedit",
        "/elbo_terms",
        "/race",
        "/guidance_sweep",
        "/inpaint",
        "/inpaint_frame",
        "/interpolate",
    }
    assert expected <= names


def test_every_api_parameter_has_its_own_name(client):
    """Keyword calls can set every parameter: no two share a name, even up to case (T and t once did)."""
    for endpoint, info in client.view_api(print_info=False, return_format="dict")["named_endpoints"].items():
        names = [p["parameter_name"].lower() for p in info["parameters"]]
        assert len(names) == len(set(names)), (endpoint, names)
    by_keyword = client.predict(
        image=handle_file(EXAMPLE),
        schedule="linear",
        num_timesteps=500,
        beta_start=1e-4,
        beta_end=0.02,
        seed=0,
        resolution=32,
        t=500,
        api_name="/forward_frame",
    )
    np.testing.assert_array_equal(load(by_keyword), forward(client, 500, T=500))


def test_forward_frame(client):
    x0 = forward(client, 0)
    assert x0.shape == (32, 32)
    expected = np.asarray(Image.open(EXAMPLE).convert("L").resize((32, 32), Image.LANCZOS))
    assert np.abs(x0.astype(int) - expected.astype(int)).max() <= 1, "t = 0 returns the input"
    xT = forward(client, 1000).astype(float)
    assert abs(xT.mean() - 127.5) < 8 and 0.25 < np.mean((xT == 0) | (xT == 255)) < 0.39
    np.testing.assert_array_equal(forward(client, 300), forward(client, 300))
    assert not np.array_equal(forward(client, 300), forward(client, 300, seed=1))


def test_forward_frame_rejects_bad_values(client):
    for args in [(-1,), (1001,), ("abc",)]:
        with pytest.raises(Exception, match="t must|less than|greater than|number"):
            client.predict(handle_file(EXAMPLE), "linear", 1000, 1e-4, 0.02, 0, 32, *args, api_name="/forward_frame")


def test_reverse_generate_then_scrub_and_export(client):
    job = client.submit("tiny-random", RESPACED, 6, 0.0, VARIANCE, True, 7, 2, api_name="/reverse_generate")
    final = job.result()
    xt, x0, status, slider, final_grid = final
    assert "Done: DDPM (ancestral), 6 steps" in status and slider["maximum"] == 100
    grid = load(final_grid)
    assert grid.shape == (10, 19)  # two 8×8 samples side by side, 1 px borders
    again = client.predict("tiny-random", RESPACED, 6, 0.0, VARIANCE, True, 7, 2, api_name="/reverse_generate")
    np.testing.assert_array_equal(load(again[-1]), grid)
    frames = client.predict(100, api_name="/reverse_frame")
    assert len(frames) == 5 and "t = 100 → 83" in frames[-1]
    gif, _ = client.predict(api_name="/reverse_gif")
    assert Image.open(gif).format == "GIF"


def test_reverse_generate_rejects_bad_values(client):
    for kw in [dict(batch=100), dict(steps=-3), dict(model="/etc/passwd")]:
        args = {"model": "tiny-random", "steps": 6, "batch": 2, **kw}
        with pytest.raises(
            Exception, match="Batch|Steps|less than|greater than|Unknown model|not in the list|choices"
        ):
            client.predict(
                args["model"],
                RESPACED,
                args["steps"],
                0.0,
                VARIANCE,
                True,
                0,
                args["batch"],
                api_name="/reverse_generate",
            )


def test_reverse_generate_takes_the_guidance_interval_and_rescale(client):
    """Issue 25: the guidance interval (t_lo, t_hi) and rescale φ are optional trailing parameters: a client that
    sends the ten values of before runs as before (every step guided, φ = 0); the new ones reach the run, by position
    or by name; a bad one gets one clear message."""
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/reverse_generate"]
    trailing = [(p["parameter_name"], p["parameter_has_default"]) for p in info["parameters"][-4:]]
    names = ["guidance_t_lo", "guidance_t_hi", "guidance_rescale", "guidance_per_class"]
    assert trailing == [(name, True) for name in names], trailing
    before = ["tiny-conditional", RESPACED, 10, 0.0, VARIANCE, True, 0, 2, "square", 3.0]
    old = client.predict(*before, api_name="/reverse_generate")[2]
    assert old.startswith("Done: DDPM (ancestral), 10 steps") and "guided" not in old and "φ" not in old, old
    new = client.predict(*before, 15, 75, 0.5, api_name="/reverse_generate")[2]
    assert "guided (w = 3) at 6 of 10 model evaluations, those in the guidance interval t ∈ [15, 75]" in new, new
    assert "guidance rescaled with φ = 0.5" in new, new
    named = client.predict(*before, guidance_t_lo=15, guidance_t_hi=75, api_name="/reverse_generate")[2]
    assert "at 6 of 10 model evaluations" in named and "φ" not in named, named
    with pytest.raises(Exception, match="Guidance interval's t_lo must be a finite number between 0 and 60, got 70"):
        client.predict(*before, 70, 60, 0.0, api_name="/reverse_generate")
    with pytest.raises(Exception, match=r"Guidance rescale φ must be|greater than maximum value 1"):
        client.predict(*before, 0, 100, 1.5, api_name="/reverse_generate")


def test_forward_state_endpoints_and_sdedit_and_elbo(client):
    client.predict(handle_file(EXAMPLE), "cosine", 200, 1e-4, 0.02, 0, 32, api_name="/forward_setup")
    scrub = client.predict(100, api_name="/forward_scrub")
    assert len(scrub) == 5 and "100 / 200" in scrub[-1]
    chain = client.predict(50, 0, api_name="/forward_markov_chain")
    assert len(chain) == 3
    gallery, _ = client.predict(50, api_name="/forward_compare")
    assert len(gallery) == len(SCHEDULES)
    sd_input, sd_gallery = client.predict("tiny-random", handle_file(EXAMPLE), 40, 4, 0, api_name="/sdedit")
    assert len(sd_gallery) == 12
    _, summary = client.predict("tiny-random", handle_file(EXAMPLE), 4, 0, api_name="/elbo_terms")
    assert "bits/dim" in summary


BAD_UPLOADS = {
    "empty.png": (b"", "empty"),
    "text.png": (b"not an image at all\n" * 20, "not a readable image"),
}


def test_bad_uploads_get_clear_errors_and_the_server_keeps_serving(client, tmp_path):
    for name, (data, message) in BAD_UPLOADS.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(Exception, match=message):
            client.predict(handle_file(str(path)), "linear", 1000, 1e-4, 0.02, 0, 32, 5, api_name="/forward_frame")
    assert forward(client, 0).shape == (32, 32)


FILE_ROUTES = [
    "/file={p}",
    "/gradio_api/file={p}",
    "/gradio_api/file/{p}",
    "/static/{p}",
    "/assets/{p}",
    "/gradio_api/static/{p}",
    "/gradio_api/file={p}?download=1",
    "/favicon.ico/{p}",
]
TARGETS = [
    "/etc/passwd",
    "../../../../../../etc/passwd",
    "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "app.py",
    "pipelines/scheduler.py",
    "README.md",
    "%2Fetc%2Fpasswd",
]


def test_no_file_route_serves_files_outside_the_app(live_app):
    import httpx

    checked = 0
    with httpx.Client(base_url=live_app.rstrip("/"), follow_redirects=False, timeout=10) as http:
        for route in FILE_ROUTES:
            for target in TARGETS:
                r = http.get(route.format(p=target))
                assert r.status_code in (403, 404), (route, target, r.status_code)
                assert "root:" not in r.text and "DDPMExplorerScheduler" not in r.text
                checked += 1
    assert checked == len(FILE_ROUTES) * len(TARGETS)


def test_upload_size_is_capped(live_app):
    import httpx

    from app import settings

    limit_mb = int(settings.MAX_FILE_SIZE.rstrip("mb"))
    big = b"\x00" * ((limit_mb + 1) * 1024 * 1024)
    r = httpx.post(live_app.rstrip("/") + "/gradio_api/upload", files={"files": ("big.png", big)}, timeout=30)
    assert r.status_code == 413


def test_no_endpoint_takes_a_path_or_free_text(client):
    """String inputs are choices from the app's own lists; files come only as uploads."""
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    allowed = {"schedule", "model", "sampler", "variance_type", "dataset", "sketch", "mask"}  # JSON: strokes, 0/1 rows
    for name, spec in endpoints.items():
        for param in spec["parameters"]:
            if param["python_type"]["type"] == "str":
                assert param["parameter_name"] in allowed, (name, param["parameter_name"])


def test_gradio_is_pinned_past_the_fixed_advisories():
    import re
    from pathlib import Path

    pin = re.search(r"^gradio\s*(==|>=)\s*([\d.]+)", Path("requirements.txt").read_text(), re.M)
    assert pin and tuple(map(int, pin.group(2).split(".")[:2])) >= (6, 20)


GOOD_ARGS = {
    "/forward_frame": lambda: [handle_file(EXAMPLE), "linear", 1000, 1e-4, 0.02, 0, 32, 10],
    "/forward_setup": lambda: [handle_file(EXAMPLE), "linear", 1000, 1e-4, 0.02, 0, 32],
    "/reverse_generate": lambda: ["tiny-random", RESPACED, 4, 0.0, VARIANCE, True, 0, 2],
    "/sdedit": lambda: ["tiny-random", handle_file(EXAMPLE), 40, 4, 0],
    "/elbo_terms": lambda: ["tiny-random", handle_file(EXAMPLE), 4, 0],
}
# (endpoint, index of the argument, bad value)
BAD_VALUES = [
    # (a fractional seed is rounded by gr.Number(precision=0), like a typed one; that is not an error)
    *[("/forward_frame", i, v) for i in (2, 5, 6, 7) for v in (-1, 10**12, "abc", 2.5) if (i, v) != (5, 2.5)],
    *[("/forward_frame", i, v) for i in (3, 4) for v in (-1.0, 5.0, "abc")],
    ("/forward_frame", 1, "not-a-schedule"),
    *[("/reverse_generate", i, v) for i in (2, 6, 7) for v in (-1, 10**12, "abc", 2.5) if (i, v) != (6, 2.5)],
    ("/reverse_generate", 3, 7.0),
    ("/reverse_generate", 0, "../../etc/passwd"),
    ("/reverse_generate", 1, "magic"),
    *[("/sdedit", i, v) for i in (2, 3, 4) for v in (-1, 10**12, "abc")],
    *[("/elbo_terms", i, v) for i in (2, 3) for v in (-1, 10**12, "abc")],
]


# the app's own checks (app.validation, app.models): "<name> must be …" or "Unknown model …"
APP_MESSAGE = r"^(\S.* must be (a number|a whole number|between|a finite number between|one of)\b.*|Unknown model .*)$"


def gradio_check(index: int, value) -> str:
    """gradio's own answer to a value its component refuses before any handler runs (range, choices, type)."""
    v = re.escape(str(value))
    return (
        rf"^(Value {v} is (less than minimum|greater than maximum) value \S+\.|Value: {v} is not in the list of "
        rf"choices: .*|Could not preprocess input component at index {index} \(a `\w+` component\) .*)$"
    )


def call_handler(endpoint: str, args: list):
    """The endpoint's handler called in this process (the live app's settings), up to its first yield: what any
    caller that passes gradio's components meets."""
    handler = {
        "/forward_frame": forward_cb.forward_frame,
        "/forward_setup": forward_cb.forward_setup,
        "/reverse_generate": reverse_cb.reverse_generate,
        "/sdedit": sdedit,
        "/elbo_terms": elbo_terms,
    }[endpoint]
    result = handler(*[EXAMPLE if isinstance(a, dict) else a for a in args])  # an uploaded file is a path here
    return next(result) if inspect.isgenerator(result) else result


@pytest.mark.parametrize("endpoint, index, value", BAD_VALUES, ids=[f"{e}[{i}]={v!r}" for e, i, v in BAD_VALUES])
def test_out_of_range_and_wrong_type_values_get_clear_errors(client, endpoint, index, value):
    """The API answers with the app's own message, or with gradio's where its component refuses the value first;
    either way the app's own check stands behind it, for the same value reaching the handler."""
    args = GOOD_ARGS[endpoint]()
    args[index] = value
    if (endpoint, index) == ("/reverse_generate", 3):
        args[1] = plans.SAMPLERS["ddim"].name  # η is DDIM's: the other samplers do not read it
    with pytest.raises(UserError) as own:
        call_handler(endpoint, args)
    assert re.match(APP_MESSAGE, own.value.message, re.S), own.value.message
    with pytest.raises(Exception) as info:
        client.predict(*args, api_name=endpoint)
    message = str(info.value)
    # the same message, another of the app's own (gr.Number(precision=0) rounds T = 2.5 to 2, and then t = 10 is
    # out of range), or gradio's where its component refused the value first
    assert re.match(APP_MESSAGE, message, re.S) or re.match(gradio_check(index, value), message, re.S), message


def test_every_endpoint_still_works_after_bad_values(client):
    """The same good requests, answered in full after the refusals: an image of the working size, the finished
    run's status, SDEdit's gallery, the bound in bits/dim."""
    assert load(client.predict(*GOOD_ARGS["/forward_frame"](), api_name="/forward_frame")).shape[:2] == (32, 32)
    x0_view = client.predict(*GOOD_ARGS["/forward_setup"](), api_name="/forward_setup")[0]  # (the state stays)
    assert load(x0_view).shape[:2] == (32, 32)
    status = client.predict(*GOOD_ARGS["/reverse_generate"](), api_name="/reverse_generate")[2]
    assert status.startswith(f"Done: {RESPACED}, 4 steps"), status
    gallery = client.predict(*GOOD_ARGS["/sdedit"](), api_name="/sdedit")[1]
    assert len(gallery) >= 1, gallery
    summary = client.predict(*GOOD_ARGS["/elbo_terms"](), api_name="/elbo_terms")[1]
    assert "bits/dim" in summary, summary
