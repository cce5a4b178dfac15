import csv
import gzip
import json
import os
import signal
import struct
import threading
import time

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel
from PIL import Image
from safetensors import safe_open

from pipelines import DDPMExplorerPipeline
from pipelines.training.data import DatasetNotFoundError, load_fashion_mnist, read_idx, uint8_to_model_range
from pipelines.training.train import main as train_main
from pipelines.training.unet_presets import MODEL_PRESETS, build_unet


def write_idx(path, array: np.ndarray, dtype_code=0x08, gz=True):
    header = bytes([0, 0, dtype_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(">u1" if dtype_code == 0x08 else array.dtype).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.fixture
def fake_fashion_mnist(tmp_path):
    """64 learnable 28×28 'garments': bright rectangles of random size on black."""
    rng = np.random.default_rng(0)
    images = np.zeros((64, 28, 28), np.uint8)
    for im in images:
        h, w = rng.integers(8, 24, 2)
        im[14 - h // 2 : 14 + h // 2, 14 - w // 2 : 14 + w // 2] = rng.integers(150, 255)
    labels = rng.integers(0, 10, 64).astype(np.uint8)
    for split in ("train", "t10k"):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", labels)
    return tmp_path


def test_read_idx_hand_made(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", arr, gz=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), arr)
    write_idx(tmp_path / "a.idx.gz", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx.gz"), arr)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01x")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"abc")
    with pytest.raises(ValueError, match="bytes follow"):
        read_idx(tmp_path / "short")


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)


def test_padding_keeps_fashion_mnist_pixels():
    x = torch.randint(0, 256, (2, 28, 28), dtype=torch.uint8)
    y = uint8_to_model_range(x, 32)
    assert y.shape == (2, 1, 32, 32) and y[:, :, :2].eq(-1).all()
    torch.testing.assert_close(y[:, 0, 2:30, 2:30], x.float() / 127.5 - 1)


def test_presets_build():
    assert sum(p.numel() for p in build_unet("tiny", 32, 1).parameters()) < 100_000
    small = sum(p.numel() for p in build_unet("small", 32, 1).parameters())
    assert 1e6 < small < 3e6
    assert set(MODEL_PRESETS) >= {"tiny", "small", "base"}


def cli(**options) -> list[str]:
    """Command-line arguments from keywords: ``cli(batch_size=8, save_fp16=True)`` → ``--batch-size 8 --save-fp16``."""
    args = []
    for name, value in options.items():
        args.append("--" + name.replace("_", "-"))
        if value is not True:
            args.append(str(value))
    return args


def losses(run_dir):
    with (run_dir / "loss.csv").open() as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


@pytest.mark.slow
def test_train_resume_export_and_sample(fake_fashion_mnist, tmp_path):
    out = tmp_path / "run"
    common = cli(
        data_dir=fake_fashion_mnist,
        preset="tiny",
        batch_size=16,
        lr=3e-3,
        warmup_steps=2,
        num_train_timesteps=50,
        output_dir=out,
        sample_steps=3,
        checkpoint_every=10,
        sample_every=20,
        threads=2,
    )
    train_main([*common, "--steps", "20"])
    first = losses(out)
    assert [s for s, _ in first] == list(range(1, 21))
    head, tail = np.mean([v for _, v in first[:4]]), np.mean([v for _, v in first[-4:]])
    assert tail < head, f"loss did not decrease: {head:.3f} -> {tail:.3f}"
    assert (out / "samples_000020.png").exists() and (out / "loss.png").exists()

    with pytest.raises(SystemExit, match="pass --resume"):
        train_main([*common, "--steps", "30"])
    train_main([*common, "--steps", "30", "--resume"])
    steps = [s for s, _ in losses(out)]
    assert steps == list(range(1, 31)), "resume must continue from the saved step 20"

    export = out / "pipeline"
    pipe = DDPMExplorerPipeline.from_pretrained(export, use_safetensors=True)
    assert pipe.scheduler.config.num_train_timesteps == 50
    unet = UNet2DModel.from_pretrained(export, subfolder="unet")
    assert unet.config.sample_size == 32 and unet.config.in_channels == 1
    pipe.set_progress_bar_config(disable=True)
    images = pipe(batch_size=2, num_inference_steps=5, output_type="np").images
    assert images.shape == (2, 32, 32, 1) and np.isfinite(images).all()


def test_train_on_an_image_folder_in_rgb(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "run"
    train_main(
        cli(
            image_folder=folder,
            channels=3,
            resolution=16,
            preset="tiny",
            batch_size=4,
            steps=3,
            output_dir=out,
            sample_steps=2,
            num_train_timesteps=20,
            save_fp16=True,
        )
    )
    unet = UNet2DModel.from_pretrained(out / "pipeline", subfolder="unet")
    assert unet.config.in_channels == 3 and unet.config.sample_size == 16


def small_run(data_dir, out, checkpoint_every: int) -> list[str]:
    """A tiny model's run, sampled only at its end: the arguments but --steps."""
    options = dict(preset="tiny", batch_size=8, sample_every=1000, sample_steps=2, num_train_timesteps=20)
    return cli(data_dir=data_dir, output_dir=out, checkpoint_every=checkpoint_every, **options)


@pytest.mark.slow
def test_resume_drops_log_rows_after_the_saved_state(fake_fashion_mnist, tmp_path):
    out = tmp_path / "run"
    common = small_run(fake_fashion_mnist, out, checkpoint_every=4)
    train_main([*common, "--steps", "4"])
    with (out / "loss.csv").open("a") as f:  # a run killed after logging steps 5 and 6 but before saving them
        f.write("5,0.9,1e-4,1.0,0\n6,0.9,1e-4,1.0,0\n")
    train_main([*common, "--steps", "6", "--resume"])
    assert [s for s, _ in losses(out)] == [1, 2, 3, 4, 5, 6]
    assert all(v != 0.9 for _, v in losses(out)[4:]), "the stale rows must be replaced"


def saved_step(run_dir) -> int:
    with safe_open(str(run_dir / "state.safetensors"), "pt") as f:
        return json.loads(f.metadata()["json"])["step"]


@pytest.mark.slow
def test_sigterm_saves_the_step_under_way_and_resume_continues_from_it(fake_fashion_mnist, tmp_path):
    """A paused or preempted run (``kill PID``) loses no work: the loop finishes its step, saves, and returns."""
    out = tmp_path / "run"
    common = small_run(fake_fashion_mnist, out, checkpoint_every=1000)

    def terminate_after_three_steps():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if (out / "loss.csv").exists() and len(losses(out)) >= 3:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=terminate_after_three_steps, daemon=True)
    watcher.start()
    train_main([*common, "--steps", "1000"])
    watcher.join()
    stopped_at = saved_step(out)
    assert 3 <= stopped_at < 1000 and [s for s, _ in losses(out)] == list(range(1, stopped_at + 1))
    assert not (out / "pipeline").exists(), "a stopped run does not export"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "the handler is removed when training returns"

    train_main([*common, "--steps", str(stopped_at + 2), "--resume"])
    assert [s for s, _ in losses(out)] == list(range(1, stopped_at + 3))
    assert saved_step(out) == stopped_at + 2 and (out / "pipeline").exists()


@pytest.mark.slow
def test_a_new_run_can_start_from_a_committed_milestone(fake_fashion_mnist, tmp_path):
    """When runs/ is lost, the exported EMA weights (what git keeps) seed a new run at their step."""
    first, second = tmp_path / "first", tmp_path / "second"
    train_main([*small_run(fake_fashion_mnist, first, checkpoint_every=4), "--steps", "4", "--save-fp16"])
    milestone = first / "pipeline"
    exported = UNet2DModel.from_pretrained(milestone / "unet").float().state_dict()

    train_main(
        [*small_run(fake_fashion_mnist, second, 2), "--steps", "4", "--init-from", str(milestone), "--init-step", "4"]
    )
    again = UNet2DModel.from_pretrained(second / "pipeline" / "unet").state_dict()
    assert all(torch.equal(again[k], exported[k]) for k in exported), "no step to make: the milestone comes back"

    train_main(
        [
            *small_run(fake_fashion_mnist, tmp_path / "third", 2),
            "--steps",
            "6",
            "--init-from",
            str(milestone),
            "--init-step",
            "4",
        ]
    )
    assert [s for s, _ in losses(tmp_path / "third")] == [5, 6] and saved_step(tmp_path / "third") == 6
    straight = tmp_path / "straight"  # the learning-rate schedule goes on where an uninterrupted run would be
    train_main([*small_run(fake_fashion_mnist, straight, 6), "--steps", "6"])

    def rates(run_dir):
        with (run_dir / "loss.csv").open() as f:
            return {int(r["step"]): r["lr"] for r in csv.DictReader(f)}

    assert rates(tmp_path / "third") == {k: v for k, v in rates(straight).items() if k > 4}
    with pytest.raises(SystemExit, match="differs from this run's"):
        train_main(
            [
                *small_run(fake_fashion_mnist, tmp_path / "fourth", 2),
                "--preset",
                "small",
                "--steps",
                "5",
                "--init-from",
                str(milestone),
            ]
        )


@pytest.mark.slow
def test_stop_step_ends_a_run_part_way_along_its_schedule_and_a_learned_run_trains(fake_fashion_mnist, tmp_path):
    """--stop-step N: the run saves, exports and ends at N, with the learning rates of the whole --steps schedule;
    --resume goes on. A learned-variance run (L_hybrid) widened from a fixed-variance milestone trains and exports
    a 2-channel UNet with a learned_range scheduler."""
    part, whole = tmp_path / "part", tmp_path / "whole"
    train_main([*small_run(fake_fashion_mnist, part, 2), "--steps", "8", "--stop-step", "3"])
    train_main([*small_run(fake_fashion_mnist, whole, 2), "--steps", "8"])

    def rates(run_dir):
        with (run_dir / "loss.csv").open() as f:
            return {int(r["step"]): r["lr"] for r in csv.DictReader(f)}

    assert rates(part) == {k: v for k, v in rates(whole).items() if k <= 3} and saved_step(part) == 3
    assert (part / "pipeline" / "unet" / "config.json").exists()
    train_main([*small_run(fake_fashion_mnist, part, 2), "--steps", "8", "--resume"])
    assert rates(part) == rates(whole)
    learned = tmp_path / "learned"
    train_main(
        [
            *small_run(fake_fashion_mnist, learned, 2),
            "--steps",
            "10",
            "--variance-type",
            "learned_range",
            "--init-from",
            str(whole / "pipeline"),
            "--init-step",
            "8",
        ]
    )
    pipe = DDPMExplorerPipeline.from_pretrained(learned / "pipeline")
    assert pipe.unet.config.out_channels == 2 and pipe.scheduler.config.variance_type == "learned_range"
    assert all(np.isfinite(loss) for _, loss in losses(learned))


def test_the_loss_plot_names_the_loss_the_run_trains(tmp_path, monkeypatch):
    """A learned-Σ_θ run's loss.csv holds L_hybrid, and its plot says so; a fixed-Σ run's says L_simple."""
    import argparse

    import matplotlib.axes

    from pipelines.training.train import loss_name_of
    from pipelines.training.visualize import HYBRID_LOSS, SIMPLE_LOSS, save_loss_curve

    assert loss_name_of(argparse.Namespace(variance_type="learned_range")) == HYBRID_LOSS
    assert loss_name_of(argparse.Namespace(variance_type="fixed_small")) == SIMPLE_LOSS
    labels = []
    monkeypatch.setattr(matplotlib.axes.Axes, "set_ylabel", lambda ax, label, **kw: labels.append(label))
    log = tmp_path / "loss.csv"
    log.write_text("step,loss\n1,0.5\n2,0.4\n")
    save_loss_curve(log, tmp_path / "a.png", loss_name=HYBRID_LOSS)
    save_loss_curve(log, tmp_path / "b.png")
    assert labels == [HYBRID_LOSS, SIMPLE_LOSS] and (tmp_path / "a.png").stat().st_size > 0
