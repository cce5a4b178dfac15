"""The model registry: which checkpoints the app offers, and loading each once per process.

Only names from this registry are accepted from users: no user-supplied paths, and Hub ids from an allowlist.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import torch

from app import settings
from pipelines.imports import imported

HUB_MODELS = (
    "google/ddpm-cifar10-32",
    "google/ddpm-celebahq-256",
    "google/ddpm-cat-256",
    "google/ddpm-church-256",
    "google/ddpm-bedroom-256",
)
HUB_SUFFIX = " (Hugging Face Hub)"


class ModelUnavailable(RuntimeError):
    """A model that can't be used here; the message says why, for the user."""


@dataclass(frozen=True)
class ModelEntry:
    name: str  # what the dropdown shows and the API takes
    source: str  # a local folder or a Hub id
    is_hub: bool


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def local_entries(directory: Path | None = None) -> list[ModelEntry]:
    """Every pipeline folder (with model_index.json) in the checkpoint directory, the default first."""
    directory = Path(directory or settings.CHECKPOINT_DIR)
    found = sorted(p for p in directory.glob("*/model_index.json")) if directory.is_dir() else []
    entries = [ModelEntry(p.parent.name, str(p.parent), False) for p in found]
    return sorted(entries, key=lambda e: (e.name != settings.DEFAULT_MODEL, e.name))


def registry() -> dict[str, ModelEntry]:
    """Every model the app offers, by name: the checkpoint folder's (read once per folder) and the Hub allowlist."""
    return _registry(str(settings.CHECKPOINT_DIR), settings.DEFAULT_MODEL)


@lru_cache(maxsize=4)
def _registry(directory: str, default_model: str) -> dict[str, ModelEntry]:
    entries = local_entries(Path(directory)) + [ModelEntry(h + HUB_SUFFIX, h, True) for h in HUB_MODELS]
    return {e.name: e for e in entries}


def model_choices() -> list[tuple[str, str]]:
    """(label, name) pairs for a model dropdown: the models usable here. Offline, the Hub's are left out (one line,
    :func:`hub_note`, says why): picked, each would fail in every handler that follows the dropdown."""
    return [(name, name) for name, entry in registry().items() if availability(entry) is None]


def hub_note() -> str | None:
    """One line for a model dropdown when the Hub models are left out of it (offline), else None."""
    hub = [e.source for e in registry().values() if e.is_hub]
    if not hub or hub_reachable():
        return None
    more = f" and {len(hub) - 1} more" if len(hub) > 1 else ""
    return (
        f"The Hugging Face Hub models ({hub[0]}{more}) need the Hub, which this server can't reach; they are "
        "offered when it can."
    )


def default_model() -> str | None:
    """The name the dropdowns start on: settings.DEFAULT_MODEL when present, else the first model."""
    names = list(registry())
    return names[0] if names else None


def hub_reachable() -> bool:
    """Whether the Hub can be reached: not when HF_HUB_OFFLINE is set, nor when the host of HF_ENDPOINT (by default
    huggingface.co:443) takes no connection (checked once per host)."""
    from pipelines.hub_models import hub_endpoint, hub_offline

    if hub_offline():
        return False
    endpoint = urlsplit(hub_endpoint())
    return _can_connect(endpoint.hostname or "", endpoint.port or (443 if endpoint.scheme == "https" else 80))


@lru_cache(maxsize=4)
def _can_connect(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1.5).close()
        return True
    except OSError:
        return False


def availability(entry: ModelEntry) -> str | None:
    """None when usable, else the reason."""
    if entry.is_hub and not hub_reachable():
        return "offline: the Hugging Face Hub can't be reached from this machine (or HF_HUB_OFFLINE is set)."
    return None


def num_timesteps(name: str | None) -> int | None:
    """T of a local model, read from its scheduler config without loading its weights; None when unknown."""
    entry = registry().get(name)
    if entry is None or entry.is_hub:
        return None
    try:
        config = json.loads((Path(entry.source) / "scheduler" / "scheduler_config.json").read_text())
        return int(config["num_train_timesteps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


_cache: dict[str, object] = {}
_errors: dict[str, str] = {}
_lock = threading.Lock()  # guards the dicts above and _loading
_loading: dict[str, threading.Lock] = {}  # one per model: a Hub download holds its own, never the others'


def get_pipeline(name: str):
    """The loaded pipeline for a registry name, loaded once per process and shared (read-only) by all sessions.

    A model being loaded (a Hub model downloads for minutes) holds up only the requests for it. A broken checkpoint
    is remembered; a download that failed on the way (no connection, broken off, a server error) is not: the next
    request tries again.

    Raises:
        ModelUnavailable: an unknown name, an offline Hub model, or a broken checkpoint (other models stay usable).
    """
    entry = registry().get(name)
    if entry is None:
        raise ModelUnavailable(f"Unknown model {name!r}; choose one of the list.")
    reason = availability(entry)
    if reason:
        raise ModelUnavailable(f"{name} is unavailable: {reason}")
    with _lock:
        model_lock = _loading.setdefault(name, threading.Lock())
    with model_lock:
        with _lock:
            if name in _cache:
                return _cache[name]
            if name in _errors:
                raise ModelUnavailable(_errors[name])
        loading = imported("pipelines.loading")  # diffusers, which the page does not need to be served
        try:
            pipe = loading.load_pipeline(entry.source, device=device())
        except loading.DownloadError as e:
            raise ModelUnavailable(f"{name} could not be loaded: {e}") from e
        except (loading.CheckpointError, OSError, ValueError) as e:
            with _lock:
                _errors[name] = f"{name} could not be loaded: {e}"
            raise ModelUnavailable(_errors[name]) from e
        pipe.set_progress_bar_config(leave=False)
        with _lock:
            _cache[name] = pipe
        return pipe


def is_loaded(name: str) -> bool:
    """Whether a model is loaded in this process (its first use, a Hub model's download included, is paid)."""
    return name in _cache  # one dict lookup: no lock, so it never waits on a model being loaded


def sampler_sweep_plot(name: str) -> Path | None:
    """A local model's quality-against-NFE plot (``samplers.png`` in its folder, made by ``python -m
    pipelines.sampler_sweep``), if it has one."""
    entry = registry().get(name)
    if entry is None or entry.is_hub:
        return None
    path = Path(entry.source) / "samplers.png"
    return path if path.is_file() else None


@lru_cache(maxsize=16)
def data_spectrum(name: str) -> dict | None:
    """A local model's training-data mean power spectrum (``data_spectrum.json`` in its folder, made by ``python -m
    pipelines.training.data_spectrum``), if it has one."""
    entry = registry().get(name)
    if entry is None or entry.is_hub:
        return None
    try:
        spectrum = json.loads((Path(entry.source) / "data_spectrum.json").read_text())
    except (OSError, ValueError):
        return None
    power = spectrum.get("power") if isinstance(spectrum, dict) else None
    if not isinstance(power, list) or not all(isinstance(p, (int, float)) for p in power):
        return None
    return {"power": power}


@lru_cache(maxsize=4)
def classifier_for(sample_shape: tuple[int, int, int]):
    """The committed Fashion-MNIST classifier, for a model whose samples it can read (``sample_shape`` (1, 32, 32)),
    with its class names; None for any other model, or when the classifier is not installed."""
    from pipelines.training.classifier import DEFAULT_CLASSIFIER_DIR, WEIGHTS_FILE, load_classifier
    from pipelines.training.data import FASHION_MNIST_CLASSES

    if tuple(sample_shape) != (1, 32, 32) or not (DEFAULT_CLASSIFIER_DIR / WEIGHTS_FILE).is_file():
        return None
    # channels_last: its 170 images of a default run in 0.095 s instead of 0.14 s (probabilities equal to 1e-6)
    classifier = load_classifier(DEFAULT_CLASSIFIER_DIR).eval().to(memory_format=torch.channels_last)
    return classifier, list(FASHION_MNIST_CLASSES)


NEAREST_CONFIG = "nearest.json"  # {"classifier": "<a classifier folder beside the models>"}
TRAINING_SET_FILE = "training_set.npz"  # pipelines.nearest.TRAINING_SET_FILE (read without importing it)


@lru_cache(maxsize=4)
def nearest_training(name: str):
    """A local model's nearest-training-image search (pipelines/nearest.py), for a model that ships its training set
    (``training_set.npz``), in pixels and in the features of the classifier its ``nearest.json`` names (a folder
    beside the models, e.g. ``noto-emoji-classifier``); None for any other model. Built once per model."""
    entry = registry().get(name)
    if entry is None or entry.is_hub or not (Path(entry.source) / TRAINING_SET_FILE).is_file():
        return None
    from pipelines.nearest import NearestTraining, TrainingSetError, load_training_set  # torch: not for the page
    from pipelines.training.classifier import load_classifier

    try:
        training_set = load_training_set(Path(entry.source) / TRAINING_SET_FILE)
    except TrainingSetError:
        return None
    features = None
    try:
        config = json.loads((Path(entry.source) / NEAREST_CONFIG).read_text())
        folder = str(config.get("classifier", ""))
        if folder and Path(folder).name == folder:  # a folder name beside the models, never a path
            features = load_classifier(Path(settings.CHECKPOINT_DIR) / folder).features
    except (OSError, ValueError, RuntimeError):
        features = None  # pixels only
    try:
        return NearestTraining(training_set, features)
    except RuntimeError:  # a classifier that does not take the model's images: pixels only
        return NearestTraining(training_set, None)


@lru_cache(maxsize=64)
def seconds_per_unet_call(pipe, batch_size: int) -> float:
    """Measured once per (loaded, shared) model and batch size: the time of one UNet forward, the fastest of three
    (for run-time estimates; :class:`RunSpeed` scales it to how this server's runs actually go). On a CPU, an
    architecture measured on a 2-vCPU CPU (app/model_defaults.py) is not timed: a call of the 256 px Hub models takes
    5 s or more, and the four calls here would hold up the run or the estimate that asked."""
    from app.model_defaults import measured_seconds_per_call  # which imports this module

    measured = measured_seconds_per_call(pipe.unet.config, batch_size) if pipe.device.type == "cpu" else None
    if measured is not None:
        return measured
    null_labels = imported("pipelines.objective").null_labels
    x = torch.randn((batch_size, *pipe.sample_shape), device=pipe.device)
    t = torch.tensor(pipe.scheduler.config.num_train_timesteps // 2, device=pipe.device)
    labels = null_labels(pipe.unet, batch_size, pipe.device)  # a class-conditional UNet needs labels
    timings = []
    with torch.inference_mode():
        pipe.unet(x, t, class_labels=labels)  # warm-up
        for _ in range(3):  # the fastest of three: one call can meet a burst of other work
            start = time.perf_counter()
            pipe.unet(x, t, class_labels=labels)
            timings.append(time.perf_counter() - start)
    return min(timings)


def bare_seconds(pipe, calls: dict[int, int]) -> float:
    """The bare UNet time of ``calls`` ({images per call: calls}) by :func:`seconds_per_unet_call`."""
    return sum(n * seconds_per_unet_call(pipe, batch) for batch, n in calls.items() if n)


class RunSpeed:
    """How much longer this server's recent runs took than their bare UNet calls (measured once per model and batch
    by :func:`seconds_per_unet_call`, on whatever load there was then): the scheduler's steps, recording, streaming,
    and other users' work sharing the CPU or GPU. Run-time estimates multiply by it, so they follow the machine's
    load. Shared by all sessions: it describes the server, not a user."""

    KEEP = 5  # the last runs that count

    def __init__(self):
        self._ratios: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def record(self, model: str, unet_calls: int, batch_size: int, seconds: float, pipe) -> None:
        """A finished (or stopped) run of ``unet_calls`` UNet calls of ``batch_size`` images that took ``seconds``."""
        self.record_calls(model, {batch_size: unet_calls}, seconds, pipe)

    def record_calls(self, model: str, calls: dict[int, int], seconds: float, pipe) -> None:
        """A finished (or stopped) run of ``calls`` ({images per call: calls}; a guidance interval mixes two batch
        sizes) that took ``seconds``."""
        bare = bare_seconds(pipe, calls)
        if sum(calls.values()) < 1 or bare <= 0:
            return
        with self._lock:
            ratios = self._ratios.setdefault(model, [])
            ratios.append(seconds / bare)
            del ratios[: -self.KEEP]

    def factor(self, model: str) -> tuple[float, int]:
        """(the median ratio of the model's last runs, how many runs) — (1.0, 0) before its first run."""
        with self._lock:
            ratios = sorted(self._ratios.get(model, []))
        if not ratios:
            return 1.0, 0
        return ratios[len(ratios) // 2], len(ratios)


run_speed = RunSpeed()
