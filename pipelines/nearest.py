"""New image or copy? Each sample's nearest training image, in pixels and in a classifier's features, beside how far
held-out real images lie from their own nearest training image.

A model trained on a small data set can learn to reproduce its training images. Its samples then sit much closer to
a training image than real images the model never saw do: the held-out images' distances are the yardstick. The
distance is L2, over the flattened pixels in [−1, 1] or over the classifier's penultimate features, as in
``python -m pipelines.training.quality_report`` (the model cards' figures).

A model folder that ships its training set for this holds ``training_set.npz`` (:func:`save_training_set`): the
training images and their names as uint8 arrays, and the held-out images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipelines.training.metrics import nearest_neighbours

TRAINING_SET_FILE = "training_set.npz"
MAX_IMAGES = 20_000  # what a shipped training set may hold (a 32 px RGB set of this size is 60 MB in memory)


class TrainingSetError(ValueError):
    """A training_set.npz that is missing a field, has the wrong types or shapes, or is too large."""


@dataclass(frozen=True)
class TrainingSet:
    images: torch.Tensor  # (N, C, H, W) uint8: what the model was trained on
    labels: torch.Tensor  # (N,) int64 class labels
    names: list[str]  # what each image is ("cat face")
    held_out: torch.Tensor  # (M, C, H, W) uint8: real images of the same source, never trained on


def save_training_set(path: str | Path, images, labels, names, held_out) -> None:
    """Write a training set for :func:`load_training_set` (compressed; no pickled objects)."""
    np.savez_compressed(
        path,
        images=np.asarray(images, dtype=np.uint8),
        labels=np.asarray(labels, dtype=np.int64),
        names=np.asarray(names, dtype=np.str_),
        held_out=np.asarray(held_out, dtype=np.uint8),
    )


def load_training_set(path: str | Path) -> TrainingSet:
    """A shipped training set, checked (pickled arrays are refused).

    Raises:
        TrainingSetError: a field missing, of the wrong type or shape, or more than ``MAX_IMAGES`` images.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            fields = {key: f[key] for key in ("images", "labels", "names", "held_out")}
    except KeyError as e:
        raise TrainingSetError(f"{path} has no {e} array.") from e
    except (OSError, ValueError) as e:
        raise TrainingSetError(f"{path} is not a readable .npz: {e}") from e
    images, held_out, labels, names = fields["images"], fields["held_out"], fields["labels"], fields["names"]
    if (
        images.dtype != np.uint8
        or held_out.dtype != np.uint8
        or images.ndim != 4
        or held_out.shape[1:] != images.shape[1:]
    ):
        raise TrainingSetError(f"{path}: images and held_out must be uint8 (N, C, H, W) arrays of one image shape.")
    if not 0 < len(images) <= MAX_IMAGES or len(held_out) < 2:
        raise TrainingSetError(f"{path}: 1 to {MAX_IMAGES:,} training images and at least 2 held-out ones.")
    if labels.shape != (len(images),) or names.shape != (len(images),) or names.dtype.kind != "U":
        raise TrainingSetError(f"{path}: labels and names must have one entry per training image.")
    return TrainingSet(
        torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64)), names.tolist(), torch.from_numpy(held_out)
    )


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    return images.float().div(127.5).sub(1.0)


@dataclass(frozen=True)
class Neighbours:
    """For each of B queries: the nearest training image's index and distance, in pixels and (where a classifier is
    given) in its features."""

    pixel_index: torch.Tensor
    pixel_distance: torch.Tensor
    feature_index: torch.Tensor | None
    feature_distance: torch.Tensor | None


class NearestTraining:
    """Nearest-training-image search over one model's training set, and the held-out images' own distances (the
    reference): built once per model, queried per run.

    Args:
        training_set: the model's :class:`TrainingSet`.
        features: a function from images in [−1, 1] to (B, D) features (a classifier's penultimate layer), or None
            for pixels only.
    """

    def __init__(self, training_set: TrainingSet, features: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.training_set = training_set
        self.features = features
        self._train = to_model_range(training_set.images)
        with torch.inference_mode():
            self._train_features = features(self._train) if features else None
            self.reference = self.of(to_model_range(training_set.held_out))

    @torch.inference_mode()
    def of(self, images: torch.Tensor) -> Neighbours:
        """The nearest training image of each of ``images`` ((B, C, H, W) in [−1, 1], the training images' shape)."""
        if images.shape[1:] != self._train.shape[1:]:
            raise ValueError(
                f"images of shape {tuple(images.shape[1:])}, the training set's are {tuple(self._train.shape[1:])}"
            )
        images = images.float().clamp(-1, 1)
        d_pixels, i_pixels = nearest_neighbours(images, self._train)
        if self._train_features is None:
            return Neighbours(i_pixels, d_pixels, None, None)
        d_features, i_features = nearest_neighbours(self.features(images), self._train_features)
        return Neighbours(i_pixels, d_pixels, i_features, d_features)

    def percentile(self, distance: float, space: str) -> float:
        """The share (0 to 100) of held-out real images that lie closer to a training image than ``distance``, in
        ``space`` ("pixels" or "features"): near 0 is closer than real data gets, a sign of copying."""
        ref = self.reference.pixel_distance if space == "pixels" else self.reference.feature_distance
        return 100.0 * (ref < distance).float().mean().item()
