"""Limits and defaults, each overridable by an environment variable of the same name."""

from __future__ import annotations

import os
from pathlib import Path


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT_DIR = Path(os.environ.get("CHECKPOINT_DIR", ROOT / "checkpoints"))
DEFAULT_MODEL = os.environ.get("DEFAULT_MODEL", "fashion-mnist-32-cond")
ASSETS_DIR = Path(__file__).resolve().parent / "assets"
DEFAULT_EXAMPLE = "grace_hopper.png"

# uploads and images
MAX_FILE_SIZE = os.environ.get("MAX_FILE_SIZE", "10mb")  # gradio's upload limit
MAX_IMAGE_PIXELS = _int("MAX_IMAGE_PIXELS", 40_000_000)  # decompression-bomb guard (PIL's own is 89 M)
# what one image may take once decoded: 40 M pixels of 8-bit grayscale, 13 M of RGB, 10 M of 32-bit float
MAX_DECODED_BYTES = _int("MAX_DECODED_BYTES", 40 * 2**20)
MIN_RESOLUTION, MAX_RESOLUTION = 8, _int("MAX_RESOLUTION", 256)
RESOLUTIONS = (32, 64, 128, 256)

# the forward process
MAX_T = _int("MAX_T", 4000)
MAX_CHAIN_STEPS = _int("MAX_CHAIN_STEPS", 4000)  # Markov-chain view iterates this many steps at most
MAX_SEED = 2**32 - 1

# the reverse process
MAX_BATCH = _int("MAX_BATCH", 16)
MAX_STEPS = _int("MAX_STEPS", 1000)
MAX_GUIDANCE = float(os.environ.get("MAX_GUIDANCE", 20.0))  # classifier-free guidance w
# UNet calls × batch × pixels one request may ask for: 1000 steps of 4 images at 32×32, about 45 s of a 2-core Space
# with the bundled models; a machine of your own can raise it. A model that costs more per pixel (the Hub's: 256 px,
# one call of one image ≈ 5 s) has a smaller cap of its own (app/model_defaults.py), which scales with this one.
DEFAULT_MAX_WORK = 1000 * 4 * 32 * 32
MAX_WORK = _int("MAX_WORK", DEFAULT_MAX_WORK)
# uint8 frames a session's trajectory may hold: small models keep every frame of a 1000-step run at batch 1
TRAJECTORY_BUDGET_SMALL = _int("TRAJECTORY_BUDGET_SMALL", 4 * 2**20)  # models of ≤ 64 px
TRAJECTORY_BUDGET_LARGE = _int("TRAJECTORY_BUDGET_LARGE", 64 * 2**20)
MAX_GIF_FRAMES = _int("MAX_GIF_FRAMES", 120)  # a GIF export shows this many frames of a run at most
STREAM_EVERY_S = float(os.environ.get("STREAM_EVERY_S", 0.25))  # how often a running generation updates the page
SCRUB_STREAM_EVERY_S = float(os.environ.get("SCRUB_STREAM_EVERY_S", 2.0))  # … and sends its frames so far

# the editing tab: frames a RePaint run (and the naive one) keeps for its scrubber, evenly spread over its moves; the
# points of an interpolation strip; and the bytes an interpolation's recorded strips may send to the page
EDIT_MAX_FRAMES = _int("EDIT_MAX_FRAMES", 400)
INTERPOLATION_POINTS = 9
INTERPOLATION_BUDGET = _int("INTERPOLATION_BUDGET", 2 * 2**20)

# disk: everything gradio and the app write (cache, uploads, exports), oldest deleted first past the budget
MAX_TEMP_BYTES = _int("MAX_TEMP_BYTES", 2 * 2**30)  # a Space's disk is 50 GB
MAX_TEMP_FILES = _int("MAX_TEMP_FILES", 20_000)  # and in number: the janitor walks them every second
MAX_REQUEST_BYTES = _int("MAX_REQUEST_BYTES", 12 * 2**20)  # one request's body: one upload of MAX_FILE_SIZE
# uploads per client address within a window: one client's junk could otherwise push everyone's files off the disk
UPLOAD_BYTES_PER_ADDRESS = _int("UPLOAD_BYTES_PER_ADDRESS", 512 * 2**20)
UPLOAD_WINDOW_S = float(os.environ.get("UPLOAD_WINDOW_S", 3600))
MAX_KEY_CHARS = _int("MAX_KEY_CHARS", 128)  # a session hash or upload id (gradio's own: 11 and 36 characters)
MAX_VALUE_CHARS = _int("MAX_VALUE_CHARS", 200_000)  # one string among a request's input values
DISK_CHECK_EVERY_S = float(os.environ.get("DISK_CHECK_EVERY_S", 1.0))

# serving
QUEUE_MAX_SIZE = _int("QUEUE_MAX_SIZE", 64)
# requests one session, or one client address over all its sessions, may have queued or running at once; and of
# them, model runs (generation, SDEdit, races, the ELBO)
MAX_REQUESTS_PER_SESSION = _int("MAX_REQUESTS_PER_SESSION", 16)
MAX_REQUESTS_PER_ADDRESS = _int("MAX_REQUESTS_PER_ADDRESS", 32)
MAX_RUNS_PER_SESSION = _int("MAX_RUNS_PER_SESSION", 2)
MAX_RUNS_PER_ADDRESS = _int("MAX_RUNS_PER_ADDRESS", 8)
# Behind TRUSTED_PROXIES reverse proxies that each append the address they received from to CLIENT_ADDRESS_HEADER
# (a Hugging Face Space: X-Forwarded-For, one proxy), a client is the TRUSTED_PROXIES-th entry from the right: the
# entries left of it are whatever the client wrote. Unset, the client is the TCP peer.
CLIENT_ADDRESS_HEADER = os.environ.get("CLIENT_ADDRESS_HEADER", "")
TRUSTED_PROXIES = max(1, _int("TRUSTED_PROXIES", 1))
# uvicorn rewrites the TCP peer from X-Forwarded-For when the peer is in FORWARDED_ALLOW_IPS (default: loopback), so
# that a local client could name itself; trust no peer, and read the header only as configured above.
os.environ.setdefault("FORWARDED_ALLOW_IPS", "")
SAMPLING_CONCURRENCY = _int("SAMPLING_CONCURRENCY", 2)
SESSION_TTL_S = _int("SESSION_TTL_S", 3600)  # a session's trajectory and exports are released after this
SESSION_CAPACITY = _int("SESSION_CAPACITY", 2000)
# gradio's own copies per session (app/serving/gradio_memory.py): its sessions' config values in all, the messages
# its clients have not read in all, and how long a message may wait unread
MAX_GRADIO_SESSION_BYTES = _int("MAX_GRADIO_SESSION_BYTES", 512 * 2**20)
MAX_UNREAD_BYTES = _int("MAX_UNREAD_BYTES", 256 * 2**20)
UNREAD_MESSAGE_TTL_S = float(os.environ.get("UNREAD_MESSAGE_TTL_S", 30.0))
GRADIO_MEMORY_CHECK_EVERY_S = float(
    os.environ.get("GRADIO_MEMORY_CHECK_EVERY_S", 1.0)
)  # sessions whose state gradio keeps at most (oldest dropped)
# bytes the sessions' recorded runs and forward views may hold in all; past it the least recently used is released
MAX_SESSION_BYTES = _int("MAX_SESSION_BYTES", 2**30)

# the 2D lab
LAB_MIN_POINTS, LAB_MAX_POINTS = 100, _int("LAB_MAX_POINTS", 5000)  # points per data set
LAB_MIN_T = 10  # T of the lab's schedules: from LAB_MIN_T to MAX_T
LAB_MAX_TRAIN_STEPS = _int("LAB_MAX_TRAIN_STEPS", 10_000)  # Adam steps of 512 points
LAB_MAX_STEPS = _int("LAB_MAX_STEPS", 1000)  # sampling steps N per sampler
LAB_MODELS_PER_SESSION = _int("LAB_MODELS_PER_SESSION", 4)  # trained models a session keeps (the oldest dropped)
LAB_SHOWN_POINTS = _int("LAB_SHOWN_POINTS", 1000)  # points sent to the page (every point is sampled and measured)
LAB_MAX_FRAMES = _int("LAB_MAX_FRAMES", 80)  # recorded frames per sampler sent to the page
LAB_FIELD_FRAMES = _int("LAB_FIELD_FRAMES", 51)  # t values of the density heat map and the score arrows
# a drawing arrives as its strokes' points (never an image): at most this many points and characters of JSON, drawn
# onto a grid of this many cells a side with a pen of this radius (cells)
LAB_SKETCH_MAX_POINTS = _int("LAB_SKETCH_MAX_POINTS", 4000)
LAB_SKETCH_MAX_CHARS = _int("LAB_SKETCH_MAX_CHARS", 80_000)
LAB_SKETCH_SIDE = 128
LAB_SKETCH_PEN = 1.5
LAB_STREAM_EVERY_S = float(os.environ.get("LAB_STREAM_EVERY_S", 1.0))  # how often training redraws its loss curve
