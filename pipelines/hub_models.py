"""The Hugging Face Hub models the app offers (google/ddpm-*, Ho et al. 2020's checkpoints converted by diffusers):
their configs as the Hub's repos hold them, and where downloads go.

No weights here: the configs let tests serve look-alike repos with random weights, and let benchmarks build the
same architectures, without the Hub. Imports nothing heavy (no torch, no diffusers).

Sources of the configs (the Hub itself was not reachable from this project):

- the UNet configs, all five, and the scheduler configs of google/ddpm-cifar10-32 (``fixed_large``) and
  google/ddpm-cat-256 (``fixed_small``): the Hub repos' ``config.json`` and ``scheduler_config.json``, as copied into
  this project's issue 27;
- the scheduler configs of google/ddpm-celebahq-256, -church-256 and -bedroom-256 are assumed: the same as cat's,
  ``fixed_small``, because Ho et al.'s code samples its CelebA-HQ and LSUN models (church, bedroom, cat) with the
  posterior variance β̃_t (hojonathanho/diffusion, ``scripts/run_celebahq.py`` and ``scripts/run_lsun.py`` use
  ``diffusion_utils.GaussianDiffusion``, whose ``p_sample`` draws with ``posterior_log_variance_clipped``), while its
  CIFAR-10 run uses β_t (``run_cifar.py``: ``model_var_type='fixedlarge'``); and a public copy of
  google/ddpm-ema-celebahq-256's scheduler config reads ``fixed_small``. The app reads the real config at load time,
  so this assumption touches only the tests' look-alike repos and the docs.
"""

from __future__ import annotations

import copy
import os

# The two layouts of a diffusers UNet repo on the Hub: google/ddpm-* keep the UNet's and the scheduler's files at the
# root ("flat"); later repos (google/ddpm-ema-cat-256, every save_pretrained pipeline) put them in unet/ and
# scheduler/. The app reads both, and only safetensors weights.
FLAT, SUBFOLDERS = "flat", "subfolders"
UNET_CONFIG, SCHEDULER_CONFIG, MODEL_INDEX = "config.json", "scheduler_config.json", "model_index.json"
SAFETENSORS_WEIGHTS, PICKLE_WEIGHTS = "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"

_UNET_COMMON = {
    "_class_name": "UNet2DModel",
    "_diffusers_version": "0.1.1",
    "act_fn": "silu",
    "attention_head_dim": None,
    "center_input_sample": False,
    "downsample_padding": 0,
    "flip_sin_to_cos": False,
    "freq_shift": 1,
    "in_channels": 3,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-06,
    "norm_num_groups": 32,
    "out_channels": 3,
    "time_embedding_type": "positional",
}
_UNET_32 = {
    **_UNET_COMMON,
    "block_out_channels": [128, 256, 256, 256],
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    "sample_size": 32,
}
_UNET_256 = {
    **_UNET_COMMON,
    "block_out_channels": [128, 128, 256, 256, 512, 512],
    "down_block_types": [
        "DownBlock2D",
        "DownBlock2D",
        "DownBlock2D",
        "DownBlock2D",
        "AttnDownBlock2D",
        "DownBlock2D",
    ],
    "up_block_types": ["UpBlock2D", "AttnUpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D", "UpBlock2D"],
    "sample_size": 256,
}


def _scheduler(variance_type: str) -> dict:
    """A google/ddpm-* scheduler config: Ho et al.'s linear β from 1e-4 to 0.02 over T = 1000, x̂₀ clipped to [−1, 1];
    no ``prediction_type`` (ε, diffusers' default) and no thresholding keys (off)."""
    return {
        "_class_name": "DDPMScheduler",
        "_diffusers_version": "0.1.1",
        "beta_end": 0.02,
        "beta_schedule": "linear",
        "beta_start": 0.0001,
        "clip_sample": True,
        "num_train_timesteps": 1000,
        "trained_betas": None,
        "variance_type": variance_type,
    }


_CONFIGS = {
    "google/ddpm-cifar10-32": (_UNET_32, _scheduler("fixed_large")),
    "google/ddpm-celebahq-256": (_UNET_256, _scheduler("fixed_small")),  # assumed (see above)
    "google/ddpm-cat-256": (_UNET_256, _scheduler("fixed_small")),
    "google/ddpm-church-256": (_UNET_256, _scheduler("fixed_small")),  # assumed (see above)
    "google/ddpm-bedroom-256": (_UNET_256, _scheduler("fixed_small")),  # assumed (see above)
}

# google/ddpm-*'s model_index.json: written for diffusers 0.1.1's DDPMPipeline, it names the parts but their files
# lie at the root, not in the unet/ and scheduler/ folders it implies.
GOOGLE_MODEL_INDEX = {
    "_class_name": "DDPMPipeline",
    "_diffusers_version": "0.1.1",
    "scheduler": ["diffusers", "DDPMScheduler"],
    "unet": ["diffusers", "UNet2DModel"],
}


def google_ddpm_configs() -> dict[str, tuple[dict, dict]]:
    """{Hub id: (UNet2DModel config, DDPMScheduler config)} of every google/ddpm-* model the app offers, fresh copies
    (``UNet2DModel.from_config(unet)`` builds the architecture with random weights)."""
    return copy.deepcopy(_CONFIGS)


def hub_endpoint() -> str:
    """The Hub that downloads go to: ``HF_ENDPOINT`` as huggingface_hub read it when first imported (default
    https://huggingface.co). huggingface_hub reads the variable once, at import: setting it later changes nothing, so
    this asks huggingface_hub rather than the environment."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_offline() -> bool:
    """Whether the Hub is off limits: ``HF_HUB_OFFLINE`` as huggingface_hub read it at import (it then refuses every
    request), or as the environment says now."""
    from huggingface_hub import constants

    return constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
