"""What keeps one server serving many users: a bound on work computing at once (``compute_slots``), on bytes of
session state (``session_memory``), on each client's queued jobs (``queue_limits``), on bytes written to disk
(``disk_budget``), and per-session export files (``sessions``)."""
