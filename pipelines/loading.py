"""Loading pipelines from local folders or the Hub: safetensors only, with clear errors for broken checkpoints.

A Hub id is fetched file by file into huggingface_hub's cache (``HF_HUB_CACHE``, from ``HF_ENDPOINT``; see
:func:`pipelines.hub_models.hub_endpoint`), then loaded from there like a local folder. A Hub repo comes in either of
diffusers' layouts: the UNet's ``config.json`` and weights and the ``scheduler_config.json`` at the root
(google/ddpm-*), or in ``unet/`` and ``scheduler/``. Only the safetensors weights are downloaded, never a pickle
(``.bin``). The weights are one file or diffusers' shards (an index, ``…safetensors.index.json``, naming
``…-00001-of-0000N.safetensors`` files beside it), as :func:`save_checkpoint` writes them: every file under the
10 MB a Space takes without LFS.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import UNet2DModel

from pipelines.hub_models import MODEL_INDEX, PICKLE_WEIGHTS, SAFETENSORS_WEIGHTS, SCHEDULER_CONFIG, UNET_CONFIG
from pipelines.pipeline import DDPMExplorerPipeline
from pipelines.samplers import SAMPLERS
from pipelines.scheduler import LEARNED_VARIANCE_TYPES, DDPMExplorerScheduler

UNET_WEIGHTS = SAFETENSORS_WEIGHTS
SHARD_INDEX = SAFETENSORS_WEIGHTS + ".index.json"  # diffusers' sharded weights: which shard holds each tensor
SHARD_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.safetensors")  # a plain file name beside the index
MAX_SHARD_SIZE = "9MB"  # what save_checkpoint writes per weights file (diffusers' units: 9·10⁶ bytes)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
PICKLE_REFUSED = (
    "they can run arbitrary code when loaded, so only safetensors are accepted. Convert them with "
    "safetensors.torch.save_file."
)


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete, corrupt, unsafe (pickle) or the wrong shape."""


class DownloadError(CheckpointError):
    """A Hub download that could not connect, broke off part-way or met a server error: the network's fault, not the
    checkpoint's, so trying again may work (nothing partial is kept)."""


@dataclass(frozen=True)
class CheckpointFiles:
    """Where a checkpoint's parts lie on this machine."""

    unet_dir: Path  # config.json and the safetensors weights
    scheduler_config: Path
    model_index: Path | None  # None: a bare UNet and scheduler


def _check_local_checkpoint(path: Path) -> CheckpointFiles:
    if not path.is_dir():
        raise CheckpointError(f"Checkpoint folder {path} does not exist.")
    unet_dir = path / "unet"
    if not (unet_dir / "config.json").is_file():
        raise CheckpointError(f"{path} has no unet/config.json: not a diffusers pipeline folder.")
    if (unet_dir / SHARD_INDEX).is_file() and not (unet_dir / UNET_WEIGHTS).is_file():
        missing = [n for n in _shard_names(unet_dir / SHARD_INDEX, str(path)) if not (unet_dir / n).is_file()]
        if missing:
            raise CheckpointError(f"{path}: unet/{SHARD_INDEX} names {missing[0]}, which is not there.")
    elif not (unet_dir / UNET_WEIGHTS).is_file():
        pickles = [p.name for p in unet_dir.iterdir() if p.suffix in PICKLE_SUFFIXES]
        if pickles:
            raise CheckpointError(f"{path} has only pickle weights ({', '.join(pickles)}); {PICKLE_REFUSED}")
        raise CheckpointError(f"{path} has no unet/{UNET_WEIGHTS}.")
    _read_json(unet_dir / "config.json", f"{path}/unet/config.json")
    scheduler_config = path / "scheduler" / SCHEDULER_CONFIG
    if not scheduler_config.is_file():
        raise CheckpointError(f"{path} has no scheduler/{SCHEDULER_CONFIG}.")
    return CheckpointFiles(unet_dir, scheduler_config, path / MODEL_INDEX)


def _hub_layout(repo_id: str, files: set[str]) -> tuple[str, str]:
    """(the folder of the UNet's files, ``""`` for the root; the scheduler config's path) in a Hub repo's file list;
    a CheckpointError saying what is missing otherwise (only pickle weights: refused)."""
    if f"unet/{UNET_CONFIG}" in files:
        unet, scheduler = "unet/", f"scheduler/{SCHEDULER_CONFIG}"
    elif UNET_CONFIG in files:
        unet, scheduler = "", SCHEDULER_CONFIG
    else:
        raise CheckpointError(
            f"{repo_id} has neither {UNET_CONFIG} nor unet/{UNET_CONFIG}: not a diffusers UNet repository."
        )
    if unet + SAFETENSORS_WEIGHTS not in files and unet + SHARD_INDEX not in files:
        if unet + PICKLE_WEIGHTS in files:
            raise CheckpointError(f"{repo_id} has only pickle weights ({unet}{PICKLE_WEIGHTS}); {PICKLE_REFUSED}")
        raise CheckpointError(f"{repo_id} has no {unet}{SAFETENSORS_WEIGHTS}.")
    if scheduler not in files:
        raise CheckpointError(f"{repo_id} has no {scheduler}.")
    return unet, scheduler


def _hub_error(repo_id: str, what: str, error: Exception) -> CheckpointError | None:
    """A huggingface_hub or network failure as our error: the repo's problems (no such repo, revision or file) as a
    CheckpointError, the network's (no connection, a download broken off, a server error) as a DownloadError; None
    for anything else (a bug: left to propagate)."""
    import httpx2  # huggingface_hub's HTTP client
    from huggingface_hub import errors

    from pipelines.hub_models import hub_endpoint

    where = hub_endpoint()
    if isinstance(error, errors.RepositoryNotFoundError):
        return CheckpointError(f"{repo_id} is not a model repository on {where} (or it is private or gated).")
    if isinstance(error, errors.RevisionNotFoundError):
        return CheckpointError(f"{repo_id} has no such revision on {where}.")
    if isinstance(error, errors.RemoteEntryNotFoundError):
        return CheckpointError(f"{repo_id} has no {what} on {where}.")
    if isinstance(error, errors.HFValidationError):
        return CheckpointError(f"{repo_id} is not a valid Hub id: {error}")
    if isinstance(error, errors.OfflineModeIsEnabled | errors.LocalEntryNotFoundError):
        # offline without the file in the cache, or online and the Hub could not be reached for it
        return DownloadError(f"{repo_id}: {what} is not in the cache here and {where} could not be reached.")
    if (
        isinstance(error, errors.HfHubHTTPError)
        and error.response.status_code not in (408, 429)
        and (error.response.status_code < 500)
    ):
        return CheckpointError(f"{repo_id}: {where} refused {what} ({error.response.status_code}).")
    if isinstance(error, httpx2.HTTPError | OSError):  # OSError: huggingface_hub's size check of a short download
        return DownloadError(
            f"{repo_id}: downloading {what} from {where} failed ({_why(error)}). Nothing was kept; try again."
        )
    return None


def _why(error: Exception) -> str:
    """A failed download's cause, in a few words."""
    import httpx2
    from huggingface_hub import errors

    text = str(error)
    if match := re.search(r"received (\d+) bytes, expected (\d+)", text):  # httpx2: the connection closed early
        return f"the connection closed after {int(match[1]):,} of {int(match[2]):,} bytes"
    if match := re.search(r"should be of size (\d+) but has size (\d+)", text):  # huggingface_hub's size check
        return f"{int(match[2]):,} of {int(match[1]):,} bytes arrived"
    if isinstance(error, errors.HfHubHTTPError):
        return f"the server answered {error.response.status_code}"
    if isinstance(error, httpx2.TimeoutException):
        return "no answer in time"
    if isinstance(error, httpx2.ConnectError):
        return f"no connection: {text}"
    return text.split("\n")[0] or type(error).__name__


@contextmanager
def _hub_errors(repo_id: str, what: str):
    """Raise huggingface_hub's and the network's failures as :func:`_hub_error` sorts them."""
    try:
        yield
    except Exception as e:
        error = _hub_error(repo_id, what, e)
        if error is None:
            raise
        raise error from e


def _hub_files(repo_id: str, revision: str | None, cache_dir: str | Path | None, token) -> CheckpointFiles:
    """A Hub model's config, weights, scheduler config and model_index.json, in the local cache (downloaded unless
    there already; offline, from the cache alone). Asks the Hub for the repo's file list first, to find its layout
    and to refuse a pickle-only repo without downloading anything."""
    from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download

    fetch: Callable[[str], Path]
    with _hub_errors(repo_id, "its file list"):
        if constants.is_offline_mode():
            snapshot = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True))
            files = {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()}
            fetch = snapshot.joinpath
        else:
            info = HfApi(token=token).model_info(repo_id, revision=revision)
            files = {sibling.rfilename for sibling in info.siblings or []}

            def fetch(name: str) -> Path:
                return Path(hf_hub_download(repo_id, name, revision=revision, cache_dir=cache_dir, token=token))

    unet, scheduler = _hub_layout(repo_id, files)
    paths = {}
    for name in (unet + UNET_CONFIG, scheduler, MODEL_INDEX, unet + SAFETENSORS_WEIGHTS):  # the weights last
        if name not in files:
            continue  # only model_index.json is optional
        with _hub_errors(repo_id, name):
            paths[name] = fetch(name)
    if unet + SAFETENSORS_WEIGHTS not in files:  # sharded: the index, then each shard it names
        with _hub_errors(repo_id, unet + SHARD_INDEX):
            index = fetch(unet + SHARD_INDEX)
        for name in _shard_names(index, repo_id):
            if unet + name not in files:
                raise CheckpointError(f"{repo_id}: {unet}{SHARD_INDEX} names {name}, which the repo does not have.")
            with _hub_errors(repo_id, unet + name):
                fetch(unet + name)
    return CheckpointFiles(paths[unet + UNET_CONFIG].parent, paths[scheduler], paths.get(MODEL_INDEX))


def _shard_names(index_file: Path, source) -> list[str]:
    """The shard files a sharded checkpoint's index names, each a plain .safetensors name beside it (never a path
    elsewhere, never a pickle)."""
    index = _read_json(index_file, f"{source}'s {SHARD_INDEX}")
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{source}: {SHARD_INDEX} has no weight_map.")
    names = sorted({str(name) for name in weight_map.values()})
    for name in names:
        if not SHARD_NAME.fullmatch(name):
            raise CheckpointError(
                f"{source}: {SHARD_INDEX} names the shard {name!r}; a shard is a .safetensors file beside the index."
            )
    return names


def save_checkpoint(pipeline, directory: str | Path) -> None:
    """Save a pipeline as diffusers does (safetensors), its UNet's weights sharded where they would pass
    :data:`MAX_SHARD_SIZE`; weights files of an earlier save there are removed first, so one set remains."""
    unet_dir = Path(directory) / "unet"
    if unet_dir.is_dir():
        for old in unet_dir.glob("diffusion_pytorch_model*.safetensors*"):
            old.unlink()
    pipeline.save_pretrained(directory, safe_serialization=True, max_shard_size=MAX_SHARD_SIZE)


def _read_json(file: Path, what: str) -> dict:
    try:
        return json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{what} is not valid JSON: {e}") from e


def _scheduler_from(config_file: Path, source) -> DDPMExplorerScheduler:
    """Our scheduler from a checkpoint's scheduler config (ours, or diffusers' DDPMScheduler's: google/ddpm-*'s
    give fixed_large or fixed_small Σ_t, linear β, x̂₀ clipped, no thresholding, and no prediction_type, which is ε)."""
    config = _read_json(config_file, f"{source}'s scheduler config")
    try:
        return DDPMExplorerScheduler.from_config(config)
    except ValueError as e:
        raise CheckpointError(f"{source}: unusable scheduler config: {e}") from e


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _pipeline_settings(index_file: Path | None, source, num_train_timesteps: int) -> dict:
    """The checkpoint's recommended classifier-free guidance (w, w per class where it has them, its interval
    (t_lo, t_hi) in the paper's t within 0 … T, its rescale φ in [0, 1]) and its class names, from its
    model_index.json (None where it has none; a bare unet/ + scheduler/ pair has no model_index.json)."""
    try:
        index = json.loads(index_file.read_text()) if index_file is not None else {}
    except (OSError, json.JSONDecodeError):
        return {}
    w = index.get("recommended_guidance_scale")
    if w is not None and (not _is_number(w) or not 0 <= w <= 50):
        raise CheckpointError(f"{source}: recommended_guidance_scale must be a number in [0, 50], got {w!r}.")
    T = num_train_timesteps
    interval = index.get("recommended_guidance_interval")
    if interval is not None and not (
        isinstance(interval, list)
        and len(interval) == 2
        and all(_is_number(t) for t in interval)
        and 0 <= interval[0] <= interval[1] <= T
    ):
        raise CheckpointError(
            f"{source}: recommended_guidance_interval must be [t_lo, t_hi], the paper's t with "
            f"0 ≤ t_lo ≤ t_hi ≤ T = {T}, got {interval!r}."
        )
    rescale = index.get("recommended_guidance_rescale")
    if rescale is not None and (not _is_number(rescale) or not 0 <= rescale <= 1):
        raise CheckpointError(f"{source}: recommended_guidance_rescale must be a number in [0, 1], got {rescale!r}.")
    names = index.get("class_names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise CheckpointError(f"{source}: class_names must be a list of strings, got {names!r}.")
    class_scales = index.get("recommended_guidance_class_scales")
    if class_scales is not None and not (
        isinstance(class_scales, list)
        and class_scales
        and all(_is_number(w) and 0 <= w <= 50 for w in class_scales)
        and (names is None or len(class_scales) == len(names))
    ):
        raise CheckpointError(
            f"{source}: recommended_guidance_class_scales must be a list of numbers in [0, 50], one per class, "
            f"got {class_scales!r}."
        )
    sampler, steps = index.get("recommended_sampler"), index.get("recommended_num_inference_steps")
    if sampler is not None and sampler not in SAMPLERS:
        raise CheckpointError(f"{source}: recommended_sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}.")
    if (sampler is None) != (steps is None) or (
        steps is not None and not (isinstance(steps, int) and not isinstance(steps, bool) and 1 <= steps <= T)
    ):
        raise CheckpointError(
            f"{source}: recommended_sampler needs recommended_num_inference_steps, an integer N in 1 … T = {T}; "
            f"got {sampler!r} and {steps!r}."
        )
    return {
        "recommended_sampler": sampler,
        "recommended_num_inference_steps": steps,
        "recommended_guidance_class_scales": class_scales,
        "recommended_guidance_scale": w,
        "class_names": names,
        "recommended_guidance_interval": interval,
        "recommended_guidance_rescale": rescale,
    }


def load_pipeline(
    path_or_id: str | Path,
    device: str | torch.device = "cpu",
    expected_channels: int | None = None,
    expected_size: int | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    token: str | bool | None = None,
) -> DDPMExplorerPipeline:
    """A :class:`DDPMExplorerPipeline` from a local pipeline folder or a Hub id, weights in float32.

    ``revision``, ``cache_dir``, ``token``: for a Hub id, as huggingface_hub takes them.

    Raises:
        CheckpointError: the folder, repo or its config is missing, the weights are pickle-only or corrupt, or the
            model's channels/size differ from ``expected_channels``/``expected_size``.
        DownloadError: (a CheckpointError) a Hub download failed on the way (no connection, broken off, a server
            error): trying again may work.
    """
    local = Path(path_or_id).exists() or str(path_or_id).startswith((".", "/"))
    if local:
        files = _check_local_checkpoint(Path(path_or_id))
    else:
        files = _hub_files(str(path_or_id), revision, cache_dir, token)
    scheduler = _scheduler_from(files.scheduler_config, path_or_id)
    try:
        unet = UNet2DModel.from_pretrained(files.unet_dir, use_safetensors=True, torch_dtype=torch.float32)
    except (OSError, ValueError, RuntimeError, json.JSONDecodeError) as e:
        # safetensors raises its own error type on a corrupt header; keep the message, drop the traceback noise
        raise CheckpointError(f"Could not load the UNet of {path_or_id}: {e}") from e
    except Exception as e:
        if type(e).__module__.startswith("safetensors"):
            raise CheckpointError(f"Corrupt safetensors file in {path_or_id}: {e}") from e
        raise
    cfg = unet.config
    learned = scheduler.config.variance_type in LEARNED_VARIANCE_TYPES
    if cfg.out_channels != (2 if learned else 1) * cfg.in_channels:
        need = "twice as many (its prediction, then Σ_θ's)" if learned else "as many"
        raise CheckpointError(
            f"{path_or_id}: the UNet maps {cfg.in_channels} to {cfg.out_channels} channels; with variance_type "
            f"{scheduler.config.variance_type!r} it needs {need} output channels as input channels."
        )
    if expected_channels is not None and cfg.in_channels != expected_channels:
        raise CheckpointError(f"{path_or_id} has {cfg.in_channels} channels, expected {expected_channels}.")
    if expected_size is not None and cfg.sample_size != expected_size:
        raise CheckpointError(f"{path_or_id} works at {cfg.sample_size} px, expected {expected_size}.")
    try:
        pipe = DDPMExplorerPipeline(
            unet=unet.eval().to(device),
            scheduler=scheduler,
            **_pipeline_settings(files.model_index, path_or_id, scheduler.config.num_train_timesteps),
        )
    except ValueError as e:
        raise CheckpointError(f"{path_or_id}: {e}") from e
    pipe.set_progress_bar_config(leave=False)
    return pipe
