"""Event handlers, one module per tab or section (forward, reverse, race, sdedit, loss, lab, editing): they validate
what the client sent (app/validation.py, app/plans.py), call pipelines/ and hand results to app/rendering.py and the
scrubbers' payloads. A handler that streams yields its outputs by name (app/tabs/widgets.by_name orders them for the
tab). Per-user data lives in gr.State, never in globals."""
