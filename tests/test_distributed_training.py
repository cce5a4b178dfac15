"""Two processes (gloo on the CPU, as several GPUs would run it) train the model one process trains.

``--batch-size`` is the global batch: each of N processes takes 1/N of it, the learning-rate schedule steps once per
step, and each rank draws its own noise. The same command on 1 and on 2 processes then logs one row per step with the
same learning rates, and its loss curve and exported model agree within the noise the ranks draw.
"""

import csv
import os
import shutil
import subprocess
import sys

import pytest
import torch
from test_training import cli, fake_fashion_mnist  # noqa: F401 (a fixture)

from pipelines import DDPMExplorerPipeline
from pipelines.objective import l_simple
from pipelines.training.data import load_fashion_mnist, uint8_to_model_range

pytestmark = pytest.mark.slow
STEPS = 30


def rows(run_dir) -> list[dict]:
    with (run_dir / "loss.csv").open() as f:
        return list(csv.DictReader(f))


def run(args: list[str], processes: int) -> None:
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    if processes == 1:
        command = [sys.executable, "-m", "pipelines.train", *args]
    else:
        torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
        command = [torchrun, "--standalone", f"--nproc_per_node={processes}", "-m", "pipelines.train", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def held_out_loss(pipeline_dir, data_dir) -> float:
    """L_simple of an exported model on the data with fixed ε and t (the same draws for every model)."""
    pipe = DDPMExplorerPipeline.from_pretrained(pipeline_dir)
    images, _ = load_fashion_mnist(data_dir, "test")
    x0 = torch.nn.functional.pad(uint8_to_model_range(images), (2, 2, 2, 2), value=-1.0)
    g = torch.Generator().manual_seed(123)
    noise = torch.randn(x0.shape, generator=g)
    t = torch.randint(0, pipe.scheduler.config.num_train_timesteps, (len(x0),), generator=g)
    with torch.no_grad():
        return l_simple(pipe.unet, pipe.scheduler, x0, noise, t).item()


def test_two_processes_train_what_one_process_trains(fake_fashion_mnist, tmp_path):  # noqa: F811
    options = dict(
        data_dir=fake_fashion_mnist,
        preset="tiny",
        batch_size=8,
        lr=3e-3,
        warmup_steps=2,
        num_train_timesteps=20,
        sample_every=1000,
        sample_steps=2,
        checkpoint_every=1000,
        threads=1,
        steps=STEPS,
    )
    one, two = tmp_path / "one", tmp_path / "two"
    run(cli(output_dir=one, **options), processes=1)
    run(cli(output_dir=two, **options), processes=2)

    single, double = rows(one), rows(two)
    # rank 0 alone writes the log: one row per step, and the same learning rate at each (accelerate would step the
    # schedule once per process without split batches: warm-up and decay twice as fast on 2 processes)
    assert [int(r["step"]) for r in double] == list(range(1, STEPS + 1))
    assert [r["lr"] for r in double] == [r["lr"] for r in single]

    def mean_loss(log, first, last):
        return sum(float(r["loss"]) for r in log[first:last]) / (last - first)

    for log in (single, double):  # both learn: the last third's loss well under the first steps'
        assert mean_loss(log, 20, STEPS) < 0.5 * mean_loss(log, 0, 2)
    assert mean_loss(double, 10, STEPS) == pytest.approx(mean_loss(single, 10, STEPS), rel=0.25)
    assert held_out_loss(two / "pipeline", fake_fashion_mnist) == pytest.approx(
        held_out_loss(one / "pipeline", fake_fashion_mnist), rel=0.25
    )
