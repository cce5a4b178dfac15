"""Layout pieces more than one tab uses: image panels, the GIF export box, a t slider that follows the model's T, and
the queue that model work shares."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from weakref import WeakKeyDictionary

import gradio as gr
from gradio.context import Context

from app import settings
from app.plans import checked_num_timesteps
from app.serving.queue_limits import SAMPLING

# Every event that runs a model (or any work longer than a fraction of a second) joins this one queue: at most
# SAMPLING_CONCURRENCY of them compute at once, across all sessions and tabs.
COMPUTE_QUEUE = dict(concurrency_limit=settings.SAMPLING_CONCURRENCY, concurrency_id=SAMPLING)


def by_name(handler: Callable[..., Iterator[dict]], outputs: dict[str, gr.Component], **bound) -> dict:
    """An event's ``fn`` and ``outputs`` from a generator handler that yields its outputs by name: each yield becomes
    a tuple in the order of ``outputs`` (a name it leaves out: ``gr.skip()``; a name it yields that this event does
    not show: dropped). ``bound`` keywords (e.g. ``in_page=True``) are passed to every call and left out of the
    signature gradio reads, so the API's parameter names are the handler's own. The function is named after the
    handler and its bound flags that are true (``race_in_page``): the page's twin never takes the API's name. In the
    page (``in_page=True``) a last yield of skips keeps gradio's completion from sending the outputs again."""

    @functools.wraps(handler)
    def fn(*args, **kwargs):
        values = ()
        for named in handler(*args, **kwargs, **bound):
            values = tuple(named.get(name, gr.skip()) for name in outputs)
            yield values[0] if len(values) == 1 else values
        if bound.get("in_page") and values:
            # gradio's completion message repeats the last yield: in the page, let it repeat nothing (a run's
            # multi-MB scrubber payload was sent twice). The API's last yield is its result, so it stays.
            skips = tuple(gr.skip() for _ in outputs)
            yield skips[0] if len(skips) == 1 else skips

    signature = inspect.signature(handler)
    fn.__signature__ = signature.replace(parameters=[p for p in signature.parameters.values() if p.name not in bound])
    fn.__name__ = fn.__qualname__ = "_".join([handler.__name__, *(k for k, v in bound.items() if v is True)])
    return {"fn": fn, "outputs": list(outputs.values())}


def image_panel(label: str, height: int = 220, **kwargs) -> gr.Image:
    """A read-only PNG panel, upscaled without smoothing (pixels stay sharp)."""
    return gr.Image(
        label=label,
        format="png",
        elem_classes="pixelated",
        interactive=False,
        buttons=["download"],
        height=height,
        **kwargs,
    )


@dataclass
class GifExport:
    """A closed accordion that opens on export and shows the GIF and a download link."""

    box: gr.Accordion
    view: gr.Image
    file: gr.File

    @classmethod
    def create(cls, label: str, height: int = 220) -> GifExport:
        with gr.Accordion("Export (GIF)", open=False) as box, gr.Row():
            view = gr.Image(label=label, format="gif", interactive=False, height=height)
            file = gr.File(label="Download the GIF")
        return cls(box, view, file)

    def wire(self, button: gr.Button, export, state: gr.State, session_files: gr.State, api_name: str) -> None:
        """``button`` opens the box, then ``export(state, session_files)`` writes the session's GIF."""
        button.click(lambda: gr.Accordion(open=True), None, self.box, api_visibility="private").then(
            export, [state, session_files], [self.view, self.file, session_files], api_name=api_name
        )


_FAN_OUTS: WeakKeyDictionary = WeakKeyDictionary()  # a Blocks → its page-only event for each set of triggers


def listen(triggers, fn: Callable, inputs=None, outputs=None, **kwargs):
    """``fn`` on ``triggers`` (``model.change``, or a list such as ``[demo.load, model.change]``), at most one call
    of it pending a session (``always_last``: a change while it runs is answered once, after it, with the values
    then). Every listener of the same triggers hangs off one page-only event (no round trip) as a ``.then``: gradio
    (6.31) re-sends a deferred ``always_last`` call as the whole trigger, to every listener of it, and two such
    listeners of one trigger re-sent each other without end under load (the class dropdown's five listeners ran
    every 0.3 s for a minute; a class picked was reset). A ``.then`` re-sends itself alone. Returns the event."""
    triggers = list(triggers) if isinstance(triggers, list | tuple) else [triggers]
    key = tuple((trigger.__self__._id, trigger.event_name) for trigger in triggers)
    fan_outs = _FAN_OUTS.setdefault(Context.root_block, {})
    if key not in fan_outs:
        fan_outs[key] = gr.on(
            triggers, None, None, None, js="() => []", trigger_mode="multiple", api_visibility="private", queue=False
        )
    kwargs = {"trigger_mode": "always_last", "api_visibility": "private", **kwargs}
    return fan_outs[key].then(fn, inputs, outputs, **kwargs)


def on_model(demo: gr.Blocks, model: gr.Dropdown, fn: Callable, inputs, outputs, **kwargs):
    """``fn`` as the page loads and as ``model`` changes, one event for both: the page defers a second call until the
    first answers (``always_last``, :func:`listen`), so the answer for the model the page opened on never lands
    after one for a model picked since (as two events they ran side by side). Returns the event, for ``.then``."""
    return listen([demo.load, model.change], fn, inputs, outputs, **kwargs)


def follow_model_T(model: gr.Dropdown, slider: gr.Slider) -> None:
    """The slider's range 0 … T follows the chosen model's T."""
    follow = lambda name: gr.update(maximum=checked_num_timesteps(name), interactive=True)  # an update resets it
    listen(model.change, follow, model, slider)
