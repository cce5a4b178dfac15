"""Resumable training state in safetensors plus JSON: no pickle anywhere, also for our own checkpoints.

One file ``state.safetensors`` holds every tensor (model, EMA, AdamW moments, RNG); its metadata holds the JSON rest
(step, optimizer param groups, LR scheduler, EMA counters).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

STATE_FILE = "state.safetensors"


def save_training_state(directory, step: int, unet, ema, optimizer, lr_scheduler, extra: dict | None = None) -> Path:
    """Write the state atomically (to a temp file, then rename), so an interrupted write never corrupts a resume."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"unet.{k}": v.detach().contiguous() for k, v in unet.state_dict().items()}
    tensors.update({f"ema.{i}": p.detach().contiguous() for i, p in enumerate(ema.shadow_params)})
    opt_state = optimizer.state_dict()
    for idx, state in opt_state["state"].items():
        for key, value in state.items():
            tensors[f"opt.{idx}.{key}"] = torch.as_tensor(value).contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {
        "step": step,
        "param_groups": opt_state["param_groups"],
        "lr_scheduler": lr_scheduler.state_dict(),
        "ema": {"optimization_step": ema.optimization_step, "decay": ema.cur_decay_value},
        "extra": extra or {},
    }
    tmp = directory / (STATE_FILE + ".tmp")
    save_file(tensors, str(tmp), metadata={"json": json.dumps(meta)})
    os.replace(tmp, directory / STATE_FILE)
    return directory / STATE_FILE


def load_training_state(directory, unet, ema, optimizer, lr_scheduler) -> dict:
    """Restore what :func:`save_training_state` wrote into freshly built objects; returns the JSON metadata."""
    path = Path(directory) / STATE_FILE
    if not path.exists():
        raise FileNotFoundError(f"No training state to resume from at {path}.")
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["json"])
    unet.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("unet.")})
    for i, p in enumerate(ema.shadow_params):
        p.data.copy_(tensors[f"ema.{i}"])
    ema.optimization_step = meta["ema"]["optimization_step"]
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    lr_scheduler.load_state_dict(meta["lr_scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    return meta
