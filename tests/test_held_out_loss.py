"""Held-out loss: each checkpoint's ε-MSE on the same test images, timesteps and noise, and paired differences."""

import json
import math

import pytest
import torch
from conftest import make_tiny_unet
from test_training import fake_fashion_mnist  # noqa: F401 (a fixture)

from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler
from pipelines.training import held_out_loss


def tiny_pipeline_32(seed=0, prediction_type="epsilon", learned=False, classes=None):
    scheduler = DDPMExplorerScheduler(
        num_train_timesteps=100,
        beta_schedule="cosine",
        prediction_type=prediction_type,
        variance_type="learned_range" if learned else "fixed_small",
    )
    unet = make_tiny_unet(sample_size=32, seed=seed, num_class_embeds=classes, learned_variance=learned)
    return DDPMExplorerPipeline(unet=unet, scheduler=scheduler)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_each_images_error_is_its_noise_against_the_networks_eps_hat(prediction_type):
    """By hand: x_t from the closed form, ε̂ from the network's first channels (ε itself, or read from v), and
    ‖ε − ε̂‖² averaged over the image's pixels; a learned Σ_θ's channel plays no part."""
    pipe = tiny_pipeline_32(prediction_type=prediction_type, learned=True)
    g = torch.Generator().manual_seed(3)
    x0 = torch.rand(7, 1, 32, 32, generator=g) * 2 - 1
    t, noise = held_out_loss.fixed_inputs(7, (1, 32, 32), 100, seed=4)
    got = held_out_loss.eps_errors(pipe.unet, pipe.scheduler, x0, t, noise, batch_size=3)  # batches of 3, 3 and 1
    ab = pipe.scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
    with torch.no_grad():
        out = pipe.unet(x_t, t).sample[:, :1]
    eps_hat = out if prediction_type == "epsilon" else ab.sqrt() * out + (1 - ab).sqrt() * x_t
    torch.testing.assert_close(got, (eps_hat - noise).square().mean(dim=(1, 2, 3)), atol=1e-5, rtol=1e-5)
    again_t, again_noise = held_out_loss.fixed_inputs(7, (1, 32, 32), 100, seed=4)
    assert torch.equal(t, again_t) and torch.equal(noise, again_noise), "the same seed, the same inputs"
    assert 0 <= int(t.min()) and int(t.max()) < 100


def test_differences_are_paired_image_by_image():
    """A checkpoint against itself differs by exactly 0 with 0 error; against another, the mean difference is the
    difference of the means, its error that of the per-image differences; groups by band of t and by class."""
    t = torch.tensor([0, 5, 15, 40, 80, 99])
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    a = torch.tensor([1.0, 0.5, 0.4, 0.2, 0.1, 0.05])
    b = a + torch.tensor([0.1, 0.2, 0.0, 0.1, 0.3, 0.1])
    report = held_out_loss.compare({"a": a, "a again": a.clone(), "b": b}, t, labels, 100, ("odd", "even"))
    same = report["a again"]
    assert all(g["minus_first"]["mean"] == 0 for g in same.values())
    assert all(g["minus_first"]["se"] == 0 for g in same.values() if g["minus_first"]["n"] > 1)
    assert math.isnan(same["t in [11, 30]"]["minus_first"]["se"]), "one image: no standard error"
    diff = report["b"]["all"]["minus_first"]
    assert diff["mean"] == pytest.approx((b - a).mean().item()) and diff["n"] == 6
    assert diff["se"] == pytest.approx(((b - a).std() / 6**0.5).item())
    assert report["a"]["all"]["eps_mse"]["mean"] == pytest.approx(a.mean().item())
    bands = {k: v["eps_mse"]["n"] for k, v in report["a"].items() if k.startswith("t in")}
    assert bands == {"t in [1, 10]": 2, "t in [11, 30]": 1, "t in [31, 60]": 1, "t in [61, 100]": 2}
    assert report["b"]["even"]["minus_first"]["mean"] == pytest.approx((b - a)[labels == 1].mean().item())


def test_the_command_line_compares_checkpoints_on_the_test_images(fake_fashion_mnist, tmp_path, capsys):  # noqa: F811
    """Class-conditional checkpoints (each image asks for its own class, or ∅), the first against itself and
    against another; the table reads the JSON back; a checkpoint of another shape ends the run with why."""
    first, other = tmp_path / "first", tmp_path / "other"
    tiny_pipeline_32(seed=0, classes=11).save_pretrained(first)
    tiny_pipeline_32(seed=1, classes=11).save_pretrained(other)
    out = tmp_path / "held-out.json"
    args = ["--data-dir", str(fake_fashion_mnist), "--batch-size", "16", "--json", str(out)]
    held_out_loss.main([*args, "--checkpoints", str(first), str(first), str(other)])
    report = json.loads(out.read_text())
    assert report["num_images"] == 64 and not report["null_label"]
    rows = report["checkpoints"]
    assert list(rows) == [str(first), str(other)], "the same folder twice is one checkpoint"
    assert rows[str(other)]["all"]["minus_first"]["mean"] != 0
    assert rows[str(other)]["all"]["minus_first"]["mean"] == pytest.approx(
        rows[str(other)]["all"]["eps_mse"]["mean"] - rows[str(first)]["all"]["eps_mse"]["mean"], abs=1e-6
    )
    assert sum(rows[str(first)][c]["eps_mse"]["n"] for c in report_classes(rows)) == 64
    printed = capsys.readouterr().out
    held_out_loss.main(["--table", "--json", str(out)])
    assert capsys.readouterr().out.strip() == printed.strip()
    held_out_loss.main([*args, "--null-label", "--checkpoints", str(first)])
    null = json.loads(out.read_text())["checkpoints"][str(first)]["all"]["eps_mse"]["mean"]
    assert null != rows[str(first)]["all"]["eps_mse"]["mean"], "asking for ∅ is another question"
    small = tmp_path / "small"
    DDPMExplorerPipeline(
        unet=make_tiny_unet(sample_size=8), scheduler=DDPMExplorerScheduler(num_train_timesteps=100)
    ).save_pretrained(small)
    with pytest.raises(SystemExit, match="differs"):
        held_out_loss.main([*args, "--checkpoints", str(first), str(small)])


def report_classes(rows):
    first = next(iter(rows.values()))
    return [g for g in first if g != "all" and not g.startswith("t in")]
