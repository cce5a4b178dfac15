"""Diffusion seen in frequency: noising drowns high frequencies first, so generation runs coarse to fine (Dieleman,
"Diffusion is spectral autoregression", 2024; Rissanen et al. 2023).

Natural images have a power spectrum that falls with frequency f (roughly as 1/f²); white noise's is flat. In
x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε the signal's spectrum is ᾱ_t·P_x₀(f) and the noise's (1−ᾱ_t)·P_ε(f) ≈ (1−ᾱ_t), so at
every t there is a frequency below which the image still stands out of the noise and above which it is gone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RadialSpectrum:
    """A radially averaged power spectrum: ``power[k]`` is the mean of |X(f)|² over the ring |f| ≈ ``freqs[k]``
    (cycles per pixel), with the orthonormal FFT, so white noise N(0, 1) has power 1 at every frequency."""

    freqs: torch.Tensor  # (K,) float64, 1/N … 1/2 cycles per pixel, N the image's shorter side
    power: torch.Tensor  # (K,) float64

    def scaled(self, factor: float) -> RadialSpectrum:
        """The spectrum of ``factor``·x is ``factor``²·P: pass the amplitude's square (ᾱ_t for √ᾱ_t·x₀)."""
        return RadialSpectrum(self.freqs, self.power * factor)


def radial_power_spectrum(images: torch.Tensor) -> RadialSpectrum:
    """The power spectrum of (B, C, H, W) or (H, W) images, averaged over the batch, the channels and rings of
    equal |f|. The mean (f = 0) is left out; rings go from 1 to N/2 cycles per image side (N = min(H, W)), each one
    cycle wide.

    Examples: a cosine of k cycles across the image puts all its power in ring k; white noise N(0, σ²) gives σ²
    in every ring.
    """
    x = images.double()
    if x.ndim == 2:
        x = x[None, None]
    if x.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W) or (H, W), got {tuple(images.shape)}.")
    h, w = x.shape[-2:]
    n = min(h, w)
    if n < 2:
        raise ValueError(f"images need at least 2 pixels a side, got {h}×{w}.")
    power = torch.fft.fft2(x, norm="ortho").abs().square().mean(dim=(0, 1))  # (H, W)
    fy = torch.fft.fftfreq(h, dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64)[None, :]
    ring = torch.round(torch.sqrt(fy**2 + fx**2) * n).long()  # cycles per shorter side
    rings = torch.arange(1, n // 2 + 1)
    inside = ring <= n // 2  # the corners beyond N/2 are left out: not every direction reaches them
    total = torch.zeros(n // 2 + 1, dtype=torch.float64).index_add_(0, ring[inside], power[inside])
    count = torch.zeros(n // 2 + 1, dtype=torch.float64).index_add_(0, ring[inside], torch.ones_like(power[inside]))
    return RadialSpectrum(rings.double() / n, total[1:] / count[1:])


def crossing_frequency(signal: RadialSpectrum, noise: RadialSpectrum) -> float | None:
    """The lowest frequency at which the noise's power reaches the signal's: below it the image survives, above it
    noise wins. ``None`` when the signal is above the noise at every frequency (early t); the lowest frequency when
    the noise is above it everywhere (late t)."""
    below = (noise.power >= signal.power).nonzero()
    return None if len(below) == 0 else float(signal.freqs[below[0, 0]])
