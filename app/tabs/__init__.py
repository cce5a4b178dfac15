"""The app's tabs, one module each: layout and event wiring only (handlers live in app/callbacks/)."""
