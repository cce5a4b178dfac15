"""ZeroGPU: app/serving/compute_slots.py's ``gpu`` and every handler it decorates in app/callbacks, with the ``spaces``
package missing, present as it behaves on a ZeroGPU Space, and wrapping into plain functions. Each case reloads
compute_slots and the callback modules with a ``spaces`` of its own in sys.modules, and puts both back after."""

import ast
import functools
import importlib
import inspect
import multiprocessing
import pickle
import sys
import threading
import types

import pytest

from app import edit_inputs
from app.plans import ANY_CLASS, DDPM, VARIANCE_CHOICES
from app.serving import compute_slots

CALLBACKS = [
    "app.callbacks.editing",
    "app.callbacks.interpolation",
    "app.callbacks.loss",
    "app.callbacks.race",
    "app.callbacks.reverse",
    "app.callbacks.sdedit",
]
EXAMPLE = "app/assets/fashion_tshirt.png"
MISSING = object()


def gpu_handlers(module) -> list[str]:
    """The names of the functions ``@gpu`` decorates in a module, read from its source."""
    tree = ast.parse(inspect.getsource(module))
    decorated = lambda node: any(isinstance(d, ast.Name) and d.id == "gpu" for d in node.decorator_list)
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef) and decorated(node)]


def spaces_module(GPU) -> types.ModuleType:
    """A stand-in ``spaces`` package whose ``GPU`` decorator is ``GPU``."""
    module = types.ModuleType("spaces")
    module.GPU = GPU
    return module


def zerogpu_spaces(calls: list[str]) -> types.ModuleType:
    """A ``spaces`` that wraps as spaces 0.51 does on a ZeroGPU Space (``spaces/zero/decorator.py``, ``wrappers.py``):
    ``GPU(task)`` or ``GPU(duration=…)(task)``; a generator function becomes a generator function
    (``gradio_handler``, under ``functools.wraps``), a plain one a plain one, marked ``zerogpu``; the call runs in a
    forked worker, so its arguments and every value it yields or returns are pickled across. ``calls``: the handlers
    called."""

    def wrap(task, duration=None, size=None):
        def crossed(value):
            return pickle.loads(pickle.dumps(value))

        if inspect.isgeneratorfunction(task):

            @functools.wraps(task)
            def gradio_handler(*args, **kwargs):
                calls.append(task.__name__)
                args, kwargs = crossed((args, kwargs))
                for value in task(*args, **kwargs):
                    yield crossed(value)

        else:

            @functools.wraps(task)
            def gradio_handler(*args, **kwargs):
                calls.append(task.__name__)
                args, kwargs = crossed((args, kwargs))
                return crossed(task(*args, **kwargs))

        gradio_handler.zerogpu = None
        return gradio_handler

    def GPU(task=None, *, duration=None, size=None):
        if not callable(task):
            return functools.partial(wrap, duration=duration, size=size)
        return wrap(task, duration, size)

    return spaces_module(GPU)


def plain_spaces(calls: list[str]) -> types.ModuleType:
    """A ``spaces`` whose ``GPU`` returns a plain function that returns the handler's generator."""

    def GPU(task):
        @functools.wraps(task)
        def plain(*args, **kwargs):
            calls.append(task.__name__)
            return task(*args, **kwargs)

        plain.zerogpu = None
        return plain

    return spaces_module(GPU)


@pytest.fixture
def with_spaces():
    """``with_spaces(module)``: reload compute_slots and the callbacks with ``module`` as ``spaces`` (None: the
    import fails); afterwards, the real ``spaces`` state back and everything reloaded again."""
    before = sys.modules.get("spaces", MISSING)

    def reload(module):
        sys.modules["spaces"] = module  # None: `import spaces` raises ImportError
        importlib.reload(compute_slots)
        return {name: importlib.reload(importlib.import_module(name)) for name in CALLBACKS}

    yield reload
    if before is MISSING:
        sys.modules.pop("spaces", None)
    else:
        sys.modules["spaces"] = before
    importlib.reload(compute_slots)
    for name in CALLBACKS:
        module = importlib.reload(importlib.import_module(name))
        for handler in gpu_handlers(module):
            assert not hasattr(getattr(module, handler), "zerogpu"), f"{name}.{handler} restored"


def test_every_sampling_handler_is_decorated():
    found = {name: gpu_handlers(importlib.import_module(name)) for name in CALLBACKS}
    assert found == {
        "app.callbacks.editing": ["inpaint", "inpaint_in_page"],
        "app.callbacks.interpolation": ["interpolate", "interpolate_in_page"],
        "app.callbacks.loss": ["elbo_terms"],
        "app.callbacks.race": ["race", "guidance_sweep"],
        "app.callbacks.reverse": ["reverse_generate"],
        "app.callbacks.sdedit": ["sdedit"],
    }


def test_without_spaces_gpu_leaves_the_handlers_as_they_are(with_spaces, app_models):
    callbacks = with_spaces(None)
    assert compute_slots.spaces is None
    handler = lambda: None
    assert compute_slots.gpu(handler) is handler
    for name, module in callbacks.items():
        for handler in gpu_handlers(module):
            fn = getattr(module, handler)
            assert inspect.isgeneratorfunction(fn) and not hasattr(fn, "__wrapped__"), f"{name}.{handler}"
    run = dict(eta=0.0, variance_type=next(iter(VARIANCE_CHOICES)), clip=True, seed=0, batch_size=1)
    done = list(callbacks["app.callbacks.reverse"].reverse_generate("tiny-random", DDPM, 3, **run))[-1]
    assert done["status"].startswith("Done")


def run_every_handler(callbacks) -> dict[str, object]:
    """Each decorated handler's last yield, run on the tiny models."""
    editing, interpolation = callbacks["app.callbacks.editing"], callbacks["app.callbacks.interpolation"]
    loss, race = callbacks["app.callbacks.loss"], callbacks["app.callbacks.race"]
    reverse, sdedit = callbacks["app.callbacks.reverse"], callbacks["app.callbacks.sdedit"]
    left = edit_inputs.preset_json("left half", 8, 8)
    inpaint = ["tiny-random", edit_inputs.UPLOAD, EXAMPLE, left, 8, 2, 3, 1.0, 0, ANY_CLASS, 1.0]
    run = dict(eta=0.0, variance_type=next(iter(VARIANCE_CHOICES)), clip=True, seed=0, batch_size=1)
    runs = {
        "inpaint": lambda: editing.inpaint(*inpaint),
        "inpaint_in_page": lambda: editing.inpaint_in_page(*inpaint),
        "interpolate": lambda: interpolation.interpolate("tiny-random", 0, 1, 3, ANY_CLASS, ANY_CLASS, 1.0),
        "interpolate_in_page": lambda: interpolation.interpolate_in_page(
            "tiny-random", 0, 1, 3, ANY_CLASS, ANY_CLASS, 1.0
        ),
        "elbo_terms": lambda: loss.elbo_terms("tiny-random", EXAMPLE, 4, 0),
        "race": lambda: race.race("tiny-random", [DDPM, "UniPC"], 3, 0, 1),
        "guidance_sweep": lambda: race.guidance_sweep("tiny-conditional", "circle", [1.0, 2.0], DDPM, 3, 0, 1),
        "reverse_generate": lambda: reverse.reverse_generate("tiny-random", DDPM, 3, **run),
        "sdedit": lambda: sdedit.sdedit("tiny-random", EXAMPLE, 40, 3, 0),
    }
    return {name: list(call())[-1] for name, call in runs.items()}


@pytest.mark.parametrize("stub", [zerogpu_spaces, plain_spaces], ids=["as on ZeroGPU", "plain wrapper"])
def test_under_spaces_gpu_every_handler_is_wrapped_streams_and_works(with_spaces, app_models, stub):
    """Every ``@gpu`` handler goes through ``spaces.GPU`` and is still a generator function (what gradio checks to
    stream it), called with the tiny models: each runs through the wrapper and ends with its result."""
    calls = []
    callbacks = with_spaces(stub(calls))
    for name, module in callbacks.items():
        for handler in gpu_handlers(module):
            fn = getattr(module, handler)
            assert inspect.isgeneratorfunction(fn), f"{name}.{handler}: gradio would not stream it"
            assert inspect.signature(fn) == inspect.signature(inspect.unwrap(fn)), "gradio reads the handler's own"
    results = run_every_handler(callbacks)
    assert sorted(calls) == sorted(results), "each ran through spaces.GPU's wrapper, once"
    assert results["reverse_generate"]["status"].startswith("Done")
    for name in ("race", "guidance_sweep"):
        assert results[name]["status"].count(", done |") == 2, results[name]["status"]
    x0_view, gallery = results["sdedit"]
    assert len(gallery) == 2 * 6 and gallery[-1][1].startswith("denoised from t = ")


def forked_spaces() -> types.ModuleType:
    """A ``spaces`` whose ``GPU`` runs each call of a generator handler in a forked process, as spaces 0.51 does on
    ZeroGPU (``spaces/zero/wrappers.py``: a ``fork`` context's Process, the yields pickled back through a queue): what
    the handler changes in its process's memory stays there."""
    context = multiprocessing.get_context("fork")

    def GPU(task):
        @functools.wraps(task)
        def gradio_handler(*args, **kwargs):
            results = context.Queue()

            def work():
                try:
                    for value in task(*args, **kwargs):
                        results.put(("yield", pickle.dumps(value)))
                    results.put(("end", None))
                except BaseException as e:  # the worker reports whatever ended it
                    results.put(("error", repr(e)))

            worker = context.Process(target=work, daemon=True)
            worker.start()
            try:
                while True:
                    kind, value = results.get(timeout=120)
                    if kind == "end":
                        return
                    if kind == "error":
                        raise RuntimeError(value)
                    yield pickle.loads(value)
            finally:
                worker.join(timeout=30)

        return gradio_handler

    return spaces_module(GPU)


@pytest.fixture
def threaded_server():
    """This process has run multi-threaded CPU ops, as the server has before spaces forks its worker (its estimates
    time each UNet on the CPU): OpenMP's thread pool, which a forked child hangs on unless it goes to one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    with torch.no_grad():
        torch.nn.Conv2d(16, 16, 3)(torch.randn(8, 16, 64, 64))
    yield
    torch.set_num_threads(before)


def test_stop_reaches_a_run_going_on_in_a_forked_zerogpu_worker(with_spaces, app_models, monkeypatch, threaded_server):
    """On ZeroGPU the run goes on in a forked worker while Stop is answered in the server's process: the request
    reaches the run, which ends after its step with the frames it made (kept in memory, it would not: the run
    would go on to its last step)."""
    from app import models, settings

    callbacks = with_spaces(forked_spaces())
    reverse = callbacks["app.callbacks.reverse"]
    monkeypatch.setattr(settings, "STREAM_EVERY_S", 0.0)
    context = multiprocessing.get_context("fork")
    reached, go = context.Event(), context.Event()  # the worker's 3rd UNet call waits until Stop has been asked
    unet = models.get_pipeline("tiny-random").unet  # loaded here, so the forked worker has this one
    forward, calls = unet.forward, []

    def held_at_the_third_call(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            reached.set()
            go.wait(timeout=60)
        return forward(*args, **kwargs)

    monkeypatch.setattr(unet, "forward", held_at_the_third_call)
    request = types.SimpleNamespace(session_hash="zerogpu-stop")

    def stop_when_the_worker_is_at_its_third_step():
        if reached.wait(timeout=60):
            reverse.request_stop(request)  # the server's process, as gradio runs the unqueued Stop
        go.set()

    stopper = threading.Thread(target=stop_when_the_worker_is_at_its_third_step)
    stopper.start()
    run = dict(eta=0.0, variance_type=next(iter(VARIANCE_CHOICES)), clip=True, seed=0, batch_size=1)
    reverse.note_waiting(request)
    outputs = list(reverse.reverse_generate("tiny-random", DDPM, 50, **run, request=request, in_page=True))
    stopper.join()
    assert calls == [], "every UNet call ran in the worker, none here"
    assert outputs[-1]["status"].startswith("Stopped after 3 model evaluations of 50"), outputs[-1]["status"]
    assert not reverse.stop_requests.request("zerogpu-stop")  # the worker's run has finished, for both processes


def test_a_run_made_in_a_forked_worker_counts_in_the_servers_memory_bound(
    with_spaces, app_models, monkeypatch, threaded_server
):
    """The worker admits its run's state to its own memory bound; the copy gradio keeps for the session is the
    server's, and is admitted there: past the bound, the older session's run is released in the server too."""
    from app.serving.session_memory import ledger

    reverse = with_spaces(forked_spaces())["app.callbacks.reverse"]
    monkeypatch.setattr(ledger, "max_bytes", 1)  # room for the newest state only
    run = dict(eta=0.0, variance_type=next(iter(VARIANCE_CHOICES)), clip=True, seed=0, batch_size=1)
    first = list(reverse.reverse_generate("tiny-random", DDPM, 3, **run))[-1]["state"]
    assert first.trajectory is not None
    second = list(reverse.reverse_generate("tiny-random", DDPM, 3, **run))[-1]["state"]
    assert first.trajectory is None and second.trajectory is not None  # the older one released, here
