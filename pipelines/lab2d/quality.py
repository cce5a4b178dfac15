"""The 2D lab's quality table: for each data set, a model trained as the app trains it, then each sampler's samples
measured against fresh data (MMD and sliced Wasserstein, :mod:`pipelines.lab2d.metrics`), beside two references: the
starting noise x_T (where every sampler begins) and fresh data against fresh data (the floor: two draws of the same
distribution are this far apart at this many points).

    python -m pipelines.lab2d.quality                                   # every data set, N = 20 and 100
    python -m pipelines.lab2d.quality --datasets "8 Gaussians (ring)" --steps 10,50,1000 --train-steps 3000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from pipelines.lab2d.datasets import DATASETS, get_dataset
from pipelines.lab2d.experiment import Experiment
from pipelines.lab2d.metrics import MMD_BANDWIDTHS, SLICES, mmd_to, sliced_wasserstein
from pipelines.lab2d.sampling import LAB_SAMPLERS, RecordedRun, record_run
from pipelines.lab2d.score_field import ScoreError, alpha_bar, score_error
from pipelines.lab2d.training import TrainingConfig, fit

SCORE_CHECK_FRACTIONS = (0.1, 0.25, 0.5)  # the t/T at which the mixture's learned score is compared to the exact one


@dataclass(frozen=True)
class QualityRow:
    what: str  # a sampler's name, or a reference
    steps: int | None  # N (None for the references)
    nfe: int | None
    mmd: float
    swd: float
    seconds: float | None = None


@dataclass
class DatasetReport:
    name: str
    train_seconds: float
    final_loss: float  # mean L_simple over the last 10 % of the steps
    rows: list[QualityRow] = field(default_factory=list)
    score_errors: list[ScoreError] = field(default_factory=list)


def measure_against(reference: torch.Tensor) -> Callable[[torch.Tensor], tuple[float, float]]:
    """x ↦ (MMD, sliced W₂) of x against ``reference``."""
    to_reference = mmd_to(reference)
    return lambda x: (to_reference(x), sliced_wasserstein(x, reference))


def sample_rows(measure, runs: list[RecordedRun], num_steps: int) -> list[QualityRow]:
    """Each run's samples, measured (``measure``: from :func:`measure_against`)."""
    return [QualityRow(r.name, num_steps, r.num_evaluations, *measure(r.sample), r.wall_s) for r in runs]


def reference_rows(measure, experiment: Experiment) -> list[QualityRow]:
    """The start x_T ~ N(0, I) and the floor (the training data), measured."""
    return [
        QualityRow("noise x_T (the start)", None, None, *measure(experiment.x_T)),
        QualityRow("data vs fresh data (the floor)", None, None, *measure(experiment.data)),
    ]


def quality_rows(experiment: Experiment, runs: list[RecordedRun], num_steps: int) -> list[QualityRow]:
    """Runs of N = ``num_steps`` steps and the references, all against the experiment's fresh data."""
    measure = measure_against(experiment.fresh_data)
    return [*sample_rows(measure, runs, num_steps), *reference_rows(measure, experiment)]


def mixture_score_errors(model, experiment: Experiment, ts: list[int]) -> list[ScoreError]:
    """The learned score against the exact one at each t, over fresh data noised to t (x_t ~ q(x_t))."""
    errors = []
    for t in ts:
        ab = alpha_bar(experiment.scheduler, t)
        x_t = ab**0.5 * experiment.fresh_data + (1 - ab) ** 0.5 * experiment.noise
        errors.append(score_error(model, experiment.scheduler, experiment.distribution.mixture, x_t, t))
    return errors


def evaluate(experiment: Experiment, config: TrainingConfig, steps: list[int], eta: float) -> DatasetReport:
    """Train a model on the experiment's data, sample it with every lab sampler at each N from the same x_T, and
    measure; for the mixture, also the learned score against the exact one."""
    start = time.perf_counter()
    model, losses = fit(experiment.scheduler, experiment.data, config)
    tail = losses[-max(1, len(losses) // 10) :]
    report = DatasetReport(experiment.distribution.name, time.perf_counter() - start, sum(tail) / len(tail))
    measure = measure_against(experiment.fresh_data)
    for n in steps:
        runs = []
        for key in LAB_SAMPLERS:
            *_, run = record_run(model, experiment.scheduler, key, n, experiment.x_T, experiment.sampling_seed, eta, 2)
            runs.append(run)
        report.rows += sample_rows(measure, runs, n)
    report.rows += reference_rows(measure, experiment)
    if experiment.distribution.mixture is not None:
        T = experiment.num_timesteps
        report.score_errors = mixture_score_errors(model, experiment, [round(f * T) for f in SCORE_CHECK_FRACTIONS])
    return report


def markdown(report: DatasetReport) -> str:
    lines = [
        f"**{report.name}**: trained in {report.train_seconds:.1f} s, final L_simple {report.final_loss:.3f}.",
        "",
        "| samples | steps N | NFE | MMD | sliced W₂ | sampling time |",
        "|---|---|---|---|---|---|",
    ]
    for r in report.rows:
        steps, nfe = ("–", "–") if r.steps is None else (r.steps, r.nfe)
        seconds = "–" if r.seconds is None else f"{r.seconds:.2f} s"
        lines.append(f"| {r.what} | {steps} | {nfe} | {r.mmd:.4f} | {r.swd:.4f} | {seconds} |")
    if report.score_errors:
        lines += ["", "| t | mean ‖s_θ − ∇log q_t‖ | mean ‖∇log q_t‖ | relative |", "|---|---|---|---|"]
        for e in report.score_errors:
            lines.append(f"| {e.t} | {e.mean_error:.3f} | {e.mean_norm:.3f} | {e.relative:.1%} |")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", default="all", help=f"'all' or a comma-separated list of: {', '.join(DATASETS)}")
    p.add_argument("--points", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--schedule", default="linear")
    p.add_argument("--T", type=int, default=1000)
    p.add_argument("--steps", default="20,100", help="sampling steps N, comma-separated")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM's η")
    p.add_argument("--train-steps", type=int, default=TrainingConfig.steps)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the lab runs on one)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    names = list(DATASETS) if args.datasets == "all" else [n.strip() for n in args.datasets.split(",")]
    steps = [int(n) for n in args.steps.split(",")]
    print(
        f"MMD: RBF kernels at bandwidths {MMD_BANDWIDTHS} (averaged); sliced W₂: {SLICES} directions. "
        f"{args.points} samples against {args.points} fresh points; schedule {args.schedule}, T = {args.T}, "
        f"{args.train_steps} training steps, DDIM η = {args.eta:g}, seed {args.seed}.\n"
    )
    for name in names:
        experiment = Experiment(get_dataset(name), args.points, args.seed, args.schedule, args.T)
        config = TrainingConfig(steps=args.train_steps, seed=experiment.training_seed)
        print(markdown(evaluate(experiment, config, steps, args.eta)), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
