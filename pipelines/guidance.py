"""Classifier-free guidance (Ho & Salimans 2022) as the field now applies it: a guidance interval (Kynkäänniemi et al.
2024) and guidance rescale (Lin et al. 2024, diffusers' ``guidance_rescale``).

    ε̂ = ε̂(x_t, ∅) + w·(ε̂(x_t, c) − ε̂(x_t, ∅))                     (guided)
    ε̂ ← φ·ε̂·std(ε̂(x_t, c))/std(ε̂) + (1 − φ)·ε̂                      (rescaled, per image; φ = 0 leaves it)

Inside the interval t_lo ≤ t ≤ t_hi (the paper's t) the step is guided with w; outside it is plainly conditional
(w = 1), which also saves the unconditional pass. w may differ by class (``class_scales``): guidance trades a class's
variety for how clearly it reads as that class, and classes sit at different points of that trade (on the default
model, shirts need w ≈ 3 to be told from T-shirts while sneakers lose variety from w ≈ 2 on).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def rescale_guided(guided: torch.Tensor, conditional: torch.Tensor, guidance_rescale: float) -> torch.Tensor:
    """Lin et al. 2024 eq. 15–16, as diffusers' ``rescale_noise_cfg``: scale each image's guided prediction to the
    standard deviation of its conditional one, then mix φ of that with 1 − φ of the guided one. Guidance with large w
    inflates the prediction's scale, which over-exposes; this undoes the scale and keeps the direction."""
    dims = list(range(1, guided.ndim))
    std_conditional = conditional.std(dim=dims, keepdim=True)
    std_guided = guided.std(dim=dims, keepdim=True)
    rescaled = guided * (std_conditional / std_guided)
    return guidance_rescale * rescaled + (1 - guidance_rescale) * guided


@dataclass(frozen=True)
class Guidance:
    """How a run guides: w, φ, and the interval of the paper's t where w applies (None: every step).

    Args:
        scale: w (0 unconditional, 1 plainly conditional).
        rescale: φ in [0, 1] of :func:`rescale_guided`.
        interval: (t_lo, t_hi), the paper's t (t = 0 data, t = T noise), inclusive; outside it w = 1.
        class_scales: w of each class label (index = label), instead of ``scale``, for a batch whose images ask
            for different classes; ``scale`` then only names the run (its headline w). None: ``scale`` for all.
    """

    scale: float = 1.0
    rescale: float = 0.0
    interval: tuple[float, float] | None = None
    class_scales: tuple[float, ...] | None = None

    def __post_init__(self):
        if isinstance(self.rescale, bool) or not isinstance(self.rescale, (int, float)) or not 0 <= self.rescale <= 1:
            raise ValueError(f"guidance_rescale must be a number in [0, 1], got {self.rescale!r}.")
        if self.interval is not None:
            lo, hi = self.interval
            if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and 0 <= lo <= hi):
                raise ValueError(
                    f"guidance_interval must be (t_lo, t_hi) with 0 ≤ t_lo ≤ t_hi, got {self.interval!r}."
                )
        if self.class_scales is not None:
            if not self.class_scales or any(
                isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w <= 50 for w in self.class_scales
            ):
                raise ValueError(f"class guidance scales must be numbers in [0, 50], got {self.class_scales!r}.")

    def scales_at(self, paper_t: float, class_labels: torch.Tensor) -> torch.Tensor:
        """w of each image of a batch at the step from the paper's t (diffusers' table index + 1): (B,) float, 1
        outside the interval and for the null label ∅ (any label past the classes, whose two passes are one)."""
        inside = self.interval is None or self.interval[0] <= paper_t <= self.interval[1]
        if not inside:
            return torch.ones(class_labels.shape, dtype=torch.float32)
        if self.class_scales is None:
            return torch.full(class_labels.shape, float(self.scale))
        table = torch.tensor([*self.class_scales, 1.0], dtype=torch.float32)
        return table[class_labels.cpu().clamp(max=len(self.class_scales))]

    def combine(
        self, conditional: torch.Tensor, unconditional: torch.Tensor, scale: float | torch.Tensor
    ) -> torch.Tensor:
        """The guided prediction of one step from its two passes, rescaled by φ; ``scale``: one w, or one per image
        ((B,), as :meth:`scales_at` gives them)."""
        if isinstance(scale, torch.Tensor):
            scale = scale.to(conditional).reshape(-1, *([1] * (conditional.ndim - 1)))
        guided = unconditional + scale * (conditional - unconditional)
        return rescale_guided(guided, conditional, self.rescale) if self.rescale > 0 else guided
