"""The layout pieces the tabs share (app/tabs/widgets.py)."""


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
