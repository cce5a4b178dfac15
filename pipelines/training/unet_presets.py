"""Named ``UNet2DModel`` size presets, or a JSON config, for training."""

from __future__ import annotations

import json
from pathlib import Path

from diffusers import UNet2DModel

# Each preset lists the UNet's levels from the highest resolution down; attention levels use Attn* blocks.
MODEL_PRESETS = {
    # a few thousand parameters: tests
    "tiny": dict(block_out_channels=(8, 16), layers_per_block=1, attention=(False, False), norm_num_groups=4),
    # ~1.7 M parameters: the bundled CPU checkpoint
    "small": dict(
        block_out_channels=(32, 64, 128), layers_per_block=1, attention=(False, False, True), norm_num_groups=8
    ),
    # ~9 M: one GPU, minutes
    "base": dict(
        block_out_channels=(64, 128, 256), layers_per_block=2, attention=(False, True, True), norm_num_groups=32
    ),
    # ~36 M: DDPM's CIFAR-10 shape
    "large": dict(
        block_out_channels=(128, 256, 256, 256),
        layers_per_block=2,
        attention=(False, True, False, False),
        norm_num_groups=32,
    ),
}


def unet_config(preset: str, sample_size: int, channels: int) -> dict:
    """The ``UNet2DModel`` config of a preset at a resolution and channel count."""
    if preset not in MODEL_PRESETS:
        raise ValueError(f"Unknown model preset {preset!r}; choose one of {', '.join(MODEL_PRESETS)}.")
    p = MODEL_PRESETS[preset]
    levels = len(p["block_out_channels"])
    if sample_size % 2 ** (levels - 1):
        raise ValueError(f"sample_size {sample_size} must be divisible by {2 ** (levels - 1)} for preset {preset!r}.")
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in p["attention"])
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(p["attention"]))
    return dict(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=p["block_out_channels"],
        layers_per_block=p["layers_per_block"],
        down_block_types=down,
        up_block_types=up,
        norm_num_groups=p["norm_num_groups"],
        attention_head_dim=None if preset == "tiny" else 8,
    )


def build_unet(
    preset: str | None = None,
    sample_size: int = 32,
    channels: int = 1,
    config_path=None,
    num_class_embeds: int | None = None,
    learned_variance: bool = False,
) -> UNet2DModel:
    """A fresh ``UNet2DModel`` from a named preset or from a JSON config file (``UNet2DModel`` keyword arguments).

    ``num_class_embeds`` makes it class-conditional: a learned embedding per label, added to the time embedding.
    ``learned_variance`` doubles its output channels: the prediction, then Σ_θ's (Nichol & Dhariwal 2021).
    """
    if (preset is None) == (config_path is None):
        raise ValueError("Give exactly one of a model preset or a JSON config path.")
    if config_path is not None:
        config = json.loads(Path(config_path).read_text())
        config = {k: v for k, v in config.items() if not k.startswith("_")}
        config.setdefault("sample_size", sample_size)
        config.setdefault("in_channels", channels)
        config.setdefault("out_channels", channels)
    else:
        config = unet_config(preset, sample_size, channels)
    if num_class_embeds is not None:
        config["num_class_embeds"] = num_class_embeds
    if learned_variance:
        config["out_channels"] = 2 * config["in_channels"]
    return UNet2DModel(**config)
