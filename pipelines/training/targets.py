"""The default model's quality targets (the model issue's), and how far a set of samples is from each.

At the app's default settings, in every judge's feature space: class accuracy ≥ 97 %, every class ≥ 90 % and none
read as another more than 10 % of the time; Fréchet distance ≤ 2× the real floor overall and ≤ 3× for each class.

Each measure is put on one scale, its ratio to its target (≤ 1 meets it): an error rate against the error the
target allows ((1 − accuracy) / (1 − 0.97)), a confusion share against 10 %, an FD ratio against 2× or 3×. The
strictest measure of a setting is its largest ratio; ``guidance_sweep.recommend`` picks the setting whose strictest
measure is the smallest, and the quality report says which measures miss.

Both read the same figures: a scorer's ``overall`` block (``pipelines.training.evaluate.SampleScorer``: the first
judge's figures at the top, the others under ``second_space`` and ``third_space``) and, where measured, the
class-matched figures of each space (``quality_report.space_report``'s ``spaces``: per-class accuracy, what each
class is read as, per-class and class-matched overall FD).
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_CLASS_ACCURACY = 0.97  # overall, in every judge
MIN_PER_CLASS_ACCURACY = 0.90  # each class, in every judge
MAX_CONFUSION = 0.10  # the share of a class read as any one other class
MAX_FD_RATIO = 2.0  # overall, each space
MAX_FD_RATIO_PER_CLASS = 3.0  # each class, each space

OVERALL_SPACES = {"first": "convnet", "second_space": "resnet", "third_space": "noflip"}  # a scorer's keys: judges


@dataclass(frozen=True)
class Miss:
    """One measure against its target: ``ratio`` ≤ 1 meets it."""

    ratio: float
    what: str  # e.g. "noflip: Shirt class accuracy 87.0 % (target ≥ 90 %)"


def overall_spaces(overall: dict) -> dict:
    """A scorer's figures by judge: the first judge's at the top level, the others under their keys."""
    others = {name: overall[key] for key, name in OVERALL_SPACES.items() if key in overall}
    return {OVERALL_SPACES["first"]: overall, **others}


def measures(overall: dict, spaces: dict | None = None) -> list[Miss]:
    """Every measure of the targets that these figures have, each as a :class:`Miss`, strictest first."""
    out = []
    for name, s in overall_spaces(overall).items():
        if "class_accuracy" in s:
            out.append(accuracy_measure(name, "class accuracy", s["class_accuracy"], MIN_CLASS_ACCURACY))
        for cls, a in s.get("class_accuracy_per_class", {}).items():
            out.append(accuracy_measure(name, f"{cls} class accuracy", a, MIN_PER_CLASS_ACCURACY))
        out.append(fd_measure(name, "FD", s["fd_ratio"], MAX_FD_RATIO))
    for name, s in (spaces or {}).items():
        out.append(fd_measure(name, "class-matched FD", s["fd_ratio"], MAX_FD_RATIO))
        names = list(s["per_class"])
        for i, (cls, c) in enumerate(s["per_class"].items()):
            out.append(accuracy_measure(name, f"{cls} class accuracy", c["class_accuracy"], MIN_PER_CLASS_ACCURACY))
            out.append(fd_measure(name, f"{cls} FD", c["fd_ratio"], MAX_FD_RATIO_PER_CLASS))
            row = s["confusion"][i]  # how the samples that asked for this class were read
            for j, n in enumerate(row):
                if j != i and n:
                    share = n / sum(row)
                    what = f"{name}: {cls} read as {names[j]} {100 * share:.1f} % (target ≤ {100 * MAX_CONFUSION:g} %)"
                    out.append(Miss(share / MAX_CONFUSION, what))
    unique = {m.what: m for m in out}  # a judge's per-class accuracy is in both blocks where both were measured
    return sorted(unique.values(), key=lambda m: -m.ratio)


def accuracy_measure(space: str, what: str, accuracy: float, target: float) -> Miss:
    """An accuracy against its target. The scorers count in float32, so exactly 90 of 100 arrives as 0.89999998: it is
    read to 6 decimals, which meets a target of 90 % as it should."""
    accuracy = round(accuracy, 6)
    return Miss((1 - accuracy) / (1 - target), f"{space}: {what} {100 * accuracy:.1f} % (target ≥ {100 * target:g} %)")


def fd_measure(space: str, what: str, ratio: float, target: float) -> Miss:
    return Miss(ratio / target, f"{space}: {what} {ratio:.2f}× its real floor (target ≤ {target:g}×)")


def strictest(overall: dict, spaces: dict | None = None) -> Miss:
    """The measure furthest from its target (or nearest to missing it, where all are met)."""
    return measures(overall, spaces)[0]


def missed(overall: dict, spaces: dict | None = None) -> list[Miss]:
    """The measures that miss their targets, strictest first (empty: every target met)."""
    return [m for m in measures(overall, spaces) if m.ratio > 1]
