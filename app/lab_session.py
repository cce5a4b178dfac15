"""One user's 2D-lab models: each trained model kept per session (gr.State), keyed by everything that defines it, so
going back to an earlier setup reuses its model; their bytes count in the sessions' memory bound
(app/serving/session_memory.py)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from app import settings
from app.serving.session_memory import ledger
from pipelines.lab2d.experiment import Experiment
from pipelines.lab2d.model import EpsilonMLP


@dataclass(frozen=True)
class LabKey:
    """Everything that defines a trained model."""

    dataset: str
    sketch: str  # a digest of the drawing's strokes ("" for a built-in data set)
    seed: int
    num_points: int
    schedule: str
    num_timesteps: int
    train_steps: int


@dataclass
class TrainedModel:
    """A model trained on an experiment's data, with its loss at every step and its training time."""

    experiment: Experiment
    model: EpsilonMLP
    losses: list[float]
    wall_s: float

    @property
    def final_loss(self) -> float:
        tail = self.losses[-max(1, len(self.losses) // 10) :]
        return sum(tail) / len(tail)

    @property
    def nbytes(self) -> int:
        """The weights, the experiment's three point sets (x₀, ε, x_T), its scheduler (tables and step coefficients,
        which grow with T), a drawing's cells, and the loss list (a float is 32 bytes), with 20 % for the Python
        objects around them (measured against RSS in tests/test_lab_callbacks.py)."""
        weights = sum(p.numel() * p.element_size() for p in self.model.parameters())
        experiment = self.experiment
        held = 3 * experiment.num_points * 2 * 4 + experiment.scheduler.nbytes + experiment.distribution.nbytes
        return int(1.2 * (weights + held + 32 * len(self.losses)))


@dataclass
class LabSession:
    """One user's trained models (at most LAB_MODELS_PER_SESSION, the least recently used dropped) and which one the
    lab shows."""

    models: OrderedDict = field(default_factory=OrderedDict)
    current: LabKey | None = None
    released: bool = False  # its models were dropped to keep the sessions' memory bound

    def get(self, key: LabKey) -> TrainedModel | None:
        if key in self.models:
            self.models.move_to_end(key)
            ledger.touch(self)
        return self.models.get(key)

    def put(self, key: LabKey, trained: TrainedModel) -> None:
        self.models[key] = trained
        self.models.move_to_end(key)
        while len(self.models) > settings.LAB_MODELS_PER_SESSION:
            self.models.popitem(last=False)
        self.current, self.released = key, False
        ledger.admit(self)

    @property
    def nbytes(self) -> int:
        return sum(trained.nbytes for trained in self.models.values())

    def release(self) -> None:
        self.models.clear()
        self.released = True
