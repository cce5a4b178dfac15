"""Loading pipelines from local folders or the Hub: safetensors only, with clear errors for broken checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import UNet2DModel

from pipelines.pipeline import DDPMExplorerPipeline
from pipelines.scheduler import LEARNED_VARIANCE_TYPES, DDPMExplorerScheduler

UNET_WEIGHTS = "diffusion_pytorch_model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete, corrupt, unsafe (pickle) or the wrong shape."""


def _check_local_checkpoint(path: Path) -> None:
    if not path.is_dir():
        raise CheckpointError(f"Checkpoint folder {path} does not exist.")
    unet_dir = path / "unet"
    if not (unet_dir / "config.json").is_file():
        raise CheckpointError(f"{path} has no unet/config.json: not a diffusers pipeline folder.")
    if not (unet_dir / UNET_WEIGHTS).is_file():
        pickles = [p.name for p in unet_dir.iterdir() if p.suffix in PICKLE_SUFFIXES]
        if pickles:
            raise CheckpointError(
                f"{path} has only pickle weights ({', '.join(pickles)}); they can run arbitrary code when loaded, "
                "so only safetensors are accepted. Convert them with safetensors.torch.save_file."
            )
        raise CheckpointError(f"{path} has no unet/{UNET_WEIGHTS}.")
    try:
        json.loads((unet_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}/unet/config.json is not valid JSON: {e}") from e


def _scheduler_for(path_or_id, local: bool, **hub_kwargs) -> DDPMExplorerScheduler:
    """Our scheduler from the checkpoint's scheduler config (ours or diffusers' DDPMScheduler's)."""
    if local:
        config_file = Path(path_or_id) / "scheduler" / "scheduler_config.json"
        if not config_file.is_file():
            raise CheckpointError(f"{path_or_id} has no scheduler/scheduler_config.json.")
        try:
            config = json.loads(config_file.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{config_file} is not valid JSON: {e}") from e
    else:
        config = DDPMExplorerScheduler.load_config(path_or_id, subfolder="scheduler", **hub_kwargs)
    try:
        return DDPMExplorerScheduler.from_config(config)
    except ValueError as e:
        raise CheckpointError(f"{path_or_id}: unusable scheduler config: {e}") from e


def _pipeline_settings(path_or_id, local: bool, **hub_kwargs) -> dict:
    """The checkpoint's recommended classifier-free guidance w and its class names, from its model_index.json (None
    where it has none; a bare unet/ + scheduler/ pair has no model_index.json)."""
    try:
        if local:
            index = json.loads((Path(path_or_id) / "model_index.json").read_text())
        else:
            index = DDPMExplorerPipeline.load_config(path_or_id, **hub_kwargs)
    except (OSError, json.JSONDecodeError):
        return {}
    w = index.get("recommended_guidance_scale")
    if w is not None and (isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w <= 50):
        raise CheckpointError(f"{path_or_id}: recommended_guidance_scale must be a number in [0, 50], got {w!r}.")
    names = index.get("class_names")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise CheckpointError(f"{path_or_id}: class_names must be a list of strings, got {names!r}.")
    return {"recommended_guidance_scale": w, "class_names": names}


def load_pipeline(
    path_or_id: str | Path,
    device: str | torch.device = "cpu",
    expected_channels: int | None = None,
    expected_size: int | None = None,
    **hub_kwargs,
) -> DDPMExplorerPipeline:
    """A :class:`DDPMExplorerPipeline` from a local pipeline folder or a Hub id, weights in float32.

    Raises:
        CheckpointError: the folder or its config is missing, the weights are pickle-only or corrupt, or the model's
            channels/size differ from ``expected_channels``/``expected_size``.
    """
    local = Path(path_or_id).exists() or str(path_or_id).startswith((".", "/"))
    if local:
        _check_local_checkpoint(Path(path_or_id))
    scheduler = _scheduler_for(path_or_id, local, **hub_kwargs)
    try:
        unet = UNet2DModel.from_pretrained(
            path_or_id, subfolder="unet", use_safetensors=True, torch_dtype=torch.float32, **hub_kwargs
        )
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
            unet=unet.eval().to(device), scheduler=scheduler, **_pipeline_settings(path_or_id, local, **hub_kwargs)
        )
    except ValueError as e:
        raise CheckpointError(f"{path_or_id}: {e}") from e
    pipe.set_progress_bar_config(leave=False)
    return pipe
