"""Event handlers, one module per tab: they validate what the client sent, call pipelines/ and hand results to
rendering. Per-user data lives in gr.State, never in globals."""
