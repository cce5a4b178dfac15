"""When is the class decided? A classifier's probabilities for x̂₀ at every recorded step of a reverse run, and the
step from which the final class stays on top.

Early in a run x̂₀ is a blur that could become several garments; at some noise level it commits. The classifier is
any callable from (N, C, H, W) images in [−1, 1] to (N, classes) logits (the app passes the committed
Fashion-MNIST classifier).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pipelines.trajectory import Trajectory, from_uint8


@dataclass(frozen=True)
class ClassDecision:
    """Per recorded step k and image b, the class probabilities ``probs[k, b]`` of x̂₀ (and of the result, last).

    ``decided[b]`` is the first recorded step from which image b's top class is its final class at every later
    step (and in the result); ``final[b]`` is that class.
    """

    probs: torch.Tensor  # (K + 1, B, classes): the K recorded steps, then the result
    final: list[int]
    decided: list[int]


@torch.no_grad()
def class_decision(trajectory: Trajectory, classifier: Callable[[torch.Tensor], torch.Tensor]) -> ClassDecision:
    """Classify x̂₀ of every recorded step and the result in one batched pass."""
    frames = from_uint8(trajectory.pred_original)  # (K, B, C, H, W) in [−1, 1]
    k, b = frames.shape[:2]
    final = trajectory.final.clamp(-1, 1) if trajectory.final is not None else frames[-1]
    images = torch.cat([frames.reshape(k * b, *frames.shape[2:]), final.float()])
    probs = classifier(images).softmax(-1).reshape(k + 1, b, -1)
    return ClassDecision(probs, *decision_steps(probs))


def decision_steps(probs: torch.Tensor) -> tuple[list[int], list[int]]:
    """(final class, first step from which the top class is the final one for good) of each image, from (steps, B,
    classes) probabilities whose last step is the result."""
    top = probs.argmax(-1)  # (steps, B)
    final = top[-1]
    agrees = top == final  # (steps, B)
    # the first step of the last run of agreement: after the last disagreement
    disagree = (~agrees).int()
    last_wrong = torch.where(
        disagree.any(0), (disagree * torch.arange(len(top))[:, None]).max(0).values, torch.full_like(final, -1)
    )
    return final.tolist(), (last_wrong + 1).tolist()
