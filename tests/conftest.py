import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest
import torch
from diffusers import UNet2DModel

from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler

torch.set_num_threads(2)


def make_tiny_unet(sample_size: int = 8, channels: int = 1, seed: int = 0) -> UNet2DModel:
    """A random UNet of a few thousand parameters."""
    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=(4, 8),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    ).eval()


@pytest.fixture
def tiny_unet():
    return make_tiny_unet()


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)


@pytest.fixture
def tiny_pipeline(tiny_unet):
    scheduler = DDPMExplorerScheduler(num_train_timesteps=50, beta_schedule="linear", rescale_betas=True)
    pipe = DDPMExplorerPipeline(unet=tiny_unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe
