"""The 2D lab's network: a small MLP that predicts the noise ε in x_t from x_t and t."""

from __future__ import annotations

import torch
from torch import nn

from pipelines.imports import imported


class EpsilonMLP(nn.Module):
    """ε_θ(x_t, t) for points in the plane: [x_t, sinusoidal embedding of t] → ``depth`` hidden layers of ``width``
    (SiLU) → ε̂, with a skip connection around each hidden layer.

    Args:
        width: hidden units per layer.
        depth: hidden layers.
        embedding_dim: size of t's sinusoidal embedding (Vaswani et al., as the UNet's: diffusers'
            ``get_timestep_embedding``).

    ``timesteps`` are diffusers' table indices (the paper's t − 1), as the image models are given; a scalar applies
    to every point.
    """

    def __init__(self, width: int = 128, depth: int = 3, embedding_dim: int = 32):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.input = nn.Linear(2 + embedding_dim, width)
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.output = nn.Linear(width, 2)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, timesteps) -> torch.Tensor:
        """(N, 2) x_t and (N,) or scalar timesteps -> (N, 2) ε̂."""
        timesteps = torch.as_tensor(timesteps, dtype=torch.float32, device=x.device).reshape(-1).expand(len(x))
        get_timestep_embedding = imported("diffusers.models.embeddings").get_timestep_embedding  # on first use
        embedding = get_timestep_embedding(timesteps, self.embedding_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        h = self.act(self.input(torch.cat([x, embedding], 1)))
        for layer in self.hidden:
            h = h + self.act(layer(h))
        return self.output(h)
