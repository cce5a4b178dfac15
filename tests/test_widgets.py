"""The layout pieces the tabs share (app/tabs/widgets.py)."""

import gradio as gr

from app.tabs.widgets import on_model


def model_event(answer, outputs):
    with gr.Blocks() as demo:
        model = gr.Dropdown(["a", "b"], value="a")
        out = outputs()
        return on_model(demo, model, answer, model, out).fn


def test_a_model_is_answered_once_per_pick_so_a_deferred_second_call_keeps_what_a_person_chose_since():
    """The page defers a second model change until the first answers, then sends it with the model shown: the model
    already answered. Answering it again would reset the controls a person moved in between (a class picked was
    reset to 'one of each'); it skips, and answers the next model picked."""
    calls = []

    def answer(name):
        calls.append(name)
        return name.upper()

    once = model_event(answer, gr.Textbox)
    assert once(None, None, "a") == ("A", "a")  # the page loads: answered, and remembered
    skipped, last = once(None, "a", "a")  # the deferred call: nothing set again
    assert isinstance(skipped, dict) and skipped.get("__type__") == "update" and len(skipped) == 1, skipped
    assert last == "a"
    assert once(None, "a", "b") == ("B", "b")
    assert calls == ["a", "b"]


def test_a_handler_of_several_outputs_and_of_the_event_gets_them():
    """Handlers that return several outputs, or read which trigger called them (the page's load or the dropdown),
    keep doing so."""
    seen = []

    def answer(name, event: gr.EventData):
        seen.append(event)
        return name, name * 2

    once = model_event(answer, lambda: [gr.Textbox(), gr.Textbox()])
    assert once("the event", None, "b") == ("b", "bb", "b")
    assert seen == ["the event"]
    assert len(once("the event", "b", "b")) == 3  # two skips and the model


def test_no_trigger_of_the_app_has_two_listeners_that_defer(app_models):
    """gradio (6.31) answers a deferred ``always_last`` call by sending its whole trigger again, to every listener:
    two deferring listeners of one trigger re-sent each other without end under load (the class dropdown's
    listeners ran every 0.3 s for a minute and reset a class picked). Each trigger of the app has at most one; the
    others hang off it with ``.then`` (``widgets.listen``)."""
    from collections import Counter

    from app.ui import build_demo

    demo = build_demo()
    deferring = Counter(
        (block, event)
        for fn in demo.fns.values()
        if fn.trigger_mode == "always_last"
        for block, event in fn.targets
        if event != "then"
    )
    assert deferring, "the app has change listeners"
    shared = {target: n for target, n in deferring.items() if n > 1}
    assert not shared, {(type(demo.blocks.get(b)).__name__, getattr(demo.blocks.get(b), "label", None), e): n
                        for (b, e), n in shared.items()}  # fmt: skip
