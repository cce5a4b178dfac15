"""The quality-against-steps sweep, end to end on a tiny random 32 px model and a fake Fashion-MNIST."""

import json

import pytest
import torch
from conftest import make_tiny_unet
from test_training import fake_fashion_mnist  # noqa: F401 (a fixture)

from pipelines import DDPMExplorerPipeline, DDPMExplorerScheduler
from pipelines.training import classifier, sampler_sweep


@pytest.fixture
def tiny_32px(tmp_path):
    unet = make_tiny_unet(sample_size=32)
    scheduler = DDPMExplorerScheduler(beta_schedule="cosine", lambda_min_clipped=-5.1, thresholding=True)
    DDPMExplorerPipeline(unet=unet, scheduler=scheduler).save_pretrained(tmp_path / "tiny-32")
    return tmp_path / "tiny-32"


@pytest.fixture
def second_network(fake_fashion_mnist, tmp_path):  # noqa: F811
    """A residual classifier trained briefly on the fake data: a second, independent feature space."""
    out = tmp_path / "resnet"
    args = ["--data-dir", str(fake_fashion_mnist), "--architecture", "resnet", "--seed", "1", "--epochs", "1"]
    classifier.main([*args, "--batch-size", "16", "--threads", "2", "--output-dir", str(out)])
    return out


def test_the_second_network_is_another_architecture_and_loads_as_one(second_network):
    net = classifier.load_classifier(second_network)
    assert isinstance(net, classifier.ResidualClassifier)
    assert not isinstance(classifier.load_classifier(), classifier.ResidualClassifier), "the committed one is not"
    features, probs = classifier.predict(net, torch.zeros(3, 1, 32, 32))
    assert features.shape == (3, net.feature_dim) and torch.allclose(probs.sum(-1), torch.ones(3))
    metrics = json.loads((second_network / "metrics.json").read_text())
    assert metrics["architecture"] == "resnet" and metrics["seed"] == 1


@pytest.mark.slow
def test_sweep_writes_points_resumes_and_plots(tiny_32px, fake_fashion_mnist, second_network, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "sweep.json"
    common = ["--checkpoint", str(tiny_32px), "--data-dir", str(fake_fashion_mnist), "--num-samples", "20"]
    common += ["--second-classifier", str(second_network)]
    common += ["--batch-size", "10", "--json", str(out), "--plot", str(tmp_path / "sweep.png")]
    sampler_sweep.main([*common, "--samplers", "ddpm,heun", "--nfe", "3,5"])
    points = json.loads(out.read_text())["points"]
    assert sorted(points) == ["ddpm@3", "ddpm@5", "heun@2", "heun@3"]  # Heun: 2 steps make 3 evaluations
    assert points["heun@3"]["nfe"] == 5 and points["ddpm@5"]["nfe"] == 5
    for p in points.values():
        assert p["frechet_distance"] > 0 and p["frechet_distance_real_floor"] > 0 and 0 < p["mean_max_softmax"] <= 1
        assert 0 <= p["min_class_fraction"] <= 1 and p["wall_s"] >= 0
        second = p["second_space"]  # scored in every space, each against its own floor
        assert second["frechet_distance"] > 0 and second["frechet_distance_real_floor"] > 0
        assert second["frechet_distance"] != p["frechet_distance"]
        assert second["fd_ratio"] == pytest.approx(second["frechet_distance"] / second["frechet_distance_real_floor"])
    assert (tmp_path / "sweep.png").stat().st_size > 1000
    # resumed: the points already there are kept, not recomputed; the new one is added
    sampler_sweep.main([*common, "--samplers", "ddpm,euler", "--nfe", "3"])
    again = json.loads(out.read_text())["points"]
    assert again["ddpm@3"] == points["ddpm@3"] and "euler@3" in again
    replot = [*common[:-1], str(tmp_path / "replot.png")]  # every point measured already: the plot still comes
    sampler_sweep.main([*replot, "--samplers", "ddpm", "--nfe", "3"])
    assert (tmp_path / "replot.png").stat().st_size > 1000 and json.loads(out.read_text())["points"] == again
    sampler_sweep.main(["--json", str(out), "--table"])
    table = capsys.readouterr().out
    assert "| Heun | 3 | 5 |" in table and "| Euler | 3 | 3 |" in table
    heun = next(row for row in table.splitlines() if row.startswith("| Heun | 3 |"))
    assert f"{points['heun@3']['second_space']['frechet_distance']:.2f}" in heun
    with pytest.raises(SystemExit, match="other settings"):
        sampler_sweep.main([*common[:-4], "--num-samples", "30", "--json", str(out), "--nfe", "3"])


@pytest.mark.slow
def test_the_same_seed_gives_every_sampler_the_same_noise(tiny_32px):
    from pipelines.loading import load_pipeline

    pipe = load_pipeline(tiny_32px)
    a, seconds = sampler_sweep.generate_with(pipe, "ddim", 1, 4, 2, seed=3)
    b, _ = sampler_sweep.generate_with(pipe, "ddim", 1, 4, 2, seed=3)
    assert torch.equal(a, b) and a.shape == (4, 1, 32, 32) and seconds > 0
    # the sweep's DDIM is the deterministic η = 0, not η = 1 (which is DDPM's ancestral step, and gave DDPM's figures)
    ddim, _ = sampler_sweep.generate_with(pipe, "ddim", 3, 4, 4, seed=3)
    ddpm, _ = sampler_sweep.generate_with(pipe, "ddpm", 3, 4, 4, seed=3)
    run = pipe.iter_trajectory(
        batch_size=4, generator=torch.Generator().manual_seed(3), num_inference_steps=3, eta=0.0
    )
    assert torch.equal(ddim, list(run)[-1].prev_sample.clamp(-1, 1))
    assert not torch.allclose(ddim, ddpm, atol=1e-3)


@pytest.mark.slow
def test_all_t_ddpm_resumes_mid_point_with_the_same_samples(tmp_path):
    scheduler = DDPMExplorerScheduler(num_train_timesteps=30, beta_schedule="cosine")
    pipe = DDPMExplorerPipeline(unet=make_tiny_unet(sample_size=32), scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    whole, _ = sampler_sweep.generate_with(pipe, "ddpm", 30, 4, 2, seed=5)

    calls, predict = [], pipe.predict

    def stopped_after(n):
        def counted(*args):
            if len(calls) == n:
                raise KeyboardInterrupt
            calls.append(1)
            return predict(*args)

        return counted

    partial = tmp_path / "sweep.partial.safetensors"
    pipe.predict = stopped_after(30 + 25)  # batch 0 done, batch 1 stopped at its 26th step: saved after its 20th
    with pytest.raises(KeyboardInterrupt):
        sampler_sweep.generate_with(pipe, "ddpm", 30, 4, 2, seed=5, partial=partial, save_every=10)
    key = {"point": "ddpm@30", "num_samples": 4, "batch_size": 2, "seed": 5}
    saved = sampler_sweep.load_partial(partial, key)
    assert saved["timestep"] == 9 and saved["done"].shape == (2, 1, 32, 32) and saved["elapsed_s"] > 0
    with pytest.raises(SystemExit, match="another run"):
        sampler_sweep.load_partial(partial, key | {"seed": 6})

    calls.clear()
    pipe.predict = stopped_after(10**6)
    resumed, seconds = sampler_sweep.generate_with(pipe, "ddpm", 30, 4, 2, seed=5, partial=partial, save_every=10)
    assert len(calls) == 10, "resumed at t = 9: ten steps left, not sixty"
    assert torch.equal(resumed, whole), "the same x_t and generator state make the same samples"
    assert seconds >= saved["elapsed_s"] and not partial.exists()


def test_latents_replace_the_drawn_x_T_in_the_ddpm_scale(tiny_32px):
    from pipelines.loading import load_pipeline
    from pipelines.samplers import get_sampler

    pipe = load_pipeline(tiny_32px)
    euler = get_sampler("euler").scheduler(pipe.scheduler.config)  # works on x·√(1+σ²)
    x_T = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(1))

    def final(**kwargs):
        run = pipe.iter_trajectory(num_inference_steps=3, scheduler=euler, show_progress=False, **kwargs)
        return list(run)[-1].prev_sample

    assert torch.allclose(final(latents=x_T), final(batch_size=2, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="latents must be"):
        final(latents=x_T[0])
    with pytest.raises(ValueError, match="not both"):
        next(pipe.iter_trajectory(latents=x_T, image=x_T, start_timestep=10, show_progress=False))


@pytest.mark.slow
def test_evaluate_reports_both_feature_spaces_and_the_bound(tiny_32px, fake_fashion_mnist, second_network, tmp_path):  # noqa: F811
    from pipelines.training import evaluate

    out = tmp_path / "eval.json"
    args = ["--checkpoint", str(tiny_32px), "--data-dir", str(fake_fashion_mnist), "--num-samples", "20"]
    args += ["--sample-steps", "3", "--batch-size", "10", "--elbo-images", "4", "--elbo-timesteps", "2"]
    evaluate.main([*args, "--second-classifier", str(second_network), "--json", str(out)])
    results = json.loads(out.read_text())
    quality, second = results["quality"], results["quality"]["second_space"]
    assert quality["n"] == 20 and quality["fd_ratio"] > 0 and second["fd_ratio"] > 0
    assert second["frechet_distance_real_floor"] != quality["frechet_distance_real_floor"], "two different spaces"
    third = quality["third_space"]  # the no-flip judge, by default for Fashion-MNIST: a third floor of its own
    assert third["fd_ratio"] > 0 and third["frechet_distance_real_floor"] not in (
        quality["frechet_distance_real_floor"],
        second["frechet_distance_real_floor"],
    )
    assert results["elbo"]["images"] == 4 and results["elbo"]["bits_per_dim"] > 0
    evaluate.main([*args, "--second-classifier", "", "--third-classifier", "", "--json", str(out)])
    assert not {"second_space", "third_space"} & set(json.loads(out.read_text())["quality"]), "one network: one space"


@pytest.fixture
def tiny_conditional_32px(tmp_path):
    unet = make_tiny_unet(sample_size=32, num_class_embeds=11)  # the ten classes and the null label
    scheduler = DDPMExplorerScheduler(beta_schedule="cosine", lambda_min_clipped=-5.1, thresholding=True)
    DDPMExplorerPipeline(unet=unet, scheduler=scheduler).save_pretrained(tmp_path / "tiny-cond-32")
    return tmp_path / "tiny-cond-32"


@pytest.mark.slow
def test_guidance_sweep_scores_each_w_picks_one_and_resumes(tiny_conditional_32px, fake_fashion_mnist, tmp_path):  # noqa: F811
    from safetensors.torch import load_file

    from pipelines.training import guidance_sweep

    out, samples = tmp_path / "guidance.json", tmp_path / "samples.safetensors"
    args = ["--checkpoint", str(tiny_conditional_32px), "--data-dir", str(fake_fashion_mnist), "--num-samples", "20"]
    args += ["--second-classifier", "", "--sampler", "ddim", "--steps", "2", "--batch-size", "10", "--json", str(out)]
    guidance_sweep.main(
        [
            *args,
            "--guidance",
            "0,1,3",
            "--plot",
            str(tmp_path / "g.png"),
            "--grid",
            str(tmp_path / "grid.png"),
            "--samples-out",
            str(samples),
        ]
    )
    results = json.loads(out.read_text())
    assert sorted(results["points"]) == ["w=0", "w=1", "w=3"]
    for p in results["points"].values():
        assert 0 <= p["class_accuracy"] <= 1 and len(p["class_accuracy_per_class"]) == 10  # 2 samples of each class
        assert p["fd_ratio"] > 0 and p["n"] == 20
    assert results["recommended_guidance_scale"] in (1.0, 3.0), "w = 0 is never recommended: it ignores the class"
    kept = load_file(samples)
    assert sorted(kept) == ["w=0", "w=1", "w=3"] and kept["w=1"].dtype == torch.uint8 and kept["w=1"].shape[0] == 20
    assert not torch.equal(kept["w=0"], kept["w=3"]), "guidance changes the samples"
    assert (tmp_path / "g.png").stat().st_size > 1000 and (tmp_path / "grid.png").stat().st_size > 100
    guidance_sweep.main([*args, "--guidance", "1,5"])  # resumed: w = 1 kept, w = 5 added
    again = json.loads(out.read_text())["points"]
    assert again["w=1"] == results["points"]["w=1"] and "w=5" in again
    with pytest.raises(SystemExit, match="other settings"):
        guidance_sweep.main([*args[:-1], str(out), "--steps", "3"])
    more = ["--guidance", "3", "--interval", "none,600-1000", "--rescale", "0,0.7", "--write-model-index"]
    guidance_sweep.main([*args, *more, "--plot", str(tmp_path / "g2.png"), "--samples-out", str(samples)])
    results = json.loads(out.read_text())
    assert {"w=3,phi=0.7", "w=3,t=600-1000", "w=3,t=600-1000,phi=0.7"} < set(results["points"])
    assert results["points"]["w=3,t=600-1000"]["guidance_interval"] == [600, 1000]
    kept = load_file(samples)
    assert not torch.equal(kept["w=3"], kept["w=3,phi=0.7"]) and not torch.equal(kept["w=3"], kept["w=3,t=600-1000"])
    best = guidance_sweep.recommend(results["points"])
    from pipelines.loading import load_pipeline

    pipe = load_pipeline(tiny_conditional_32px)  # the index it wrote loads, and the app's controls start on it
    expected = (best["guidance_scale"], best["guidance_rescale"] or 0.0, best["guidance_interval"])
    got = pipe.recommended_guidance()
    assert (got.scale, got.rescale, None if got.interval is None else list(got.interval)) == expected
    assert (tmp_path / "g2.png").stat().st_size > 1000
    per_class_args = ["--guidance", "0,3", "--class-scales", "none;0=0,1=1", "--samples-out", str(samples)]
    guidance_sweep.main([*args, *per_class_args])
    point = json.loads(out.read_text())["points"]["w=3;0=0,1=1"]
    assert point["guidance_class_scales"] == [0.0, 1.0] + [3.0] * 8 and point["guidance_class_overrides"] == {
        "0": 0.0,
        "1": 1.0,
    }
    guidance_sweep.main(["--checkpoint", str(tiny_conditional_32px), "--json", str(out), "--choose", "w=3;0=0,1=1"])
    assert load_pipeline(tiny_conditional_32px).recommended_guidance().class_scales == (0.0, 1.0) + (3.0,) * 8
    with pytest.raises(SystemExit, match="no point 'w=9'"):
        guidance_sweep.main(["--checkpoint", str(tiny_conditional_32px), "--json", str(out), "--choose", "w=9"])
    kept = load_file(samples)
    per_class, plain, unguided = kept["w=3;0=0,1=1"], kept["w=3"], kept["w=0"]
    assert torch.equal(per_class[0::10], unguided[0::10]), "class 0 at its own w = 0: as the w = 0 point drew it"
    assert torch.equal(per_class[2::10], plain[2::10]), "class 2 at the point's w = 3"
    assert not torch.equal(per_class[1::10], plain[1::10])


def guidance_point(w, accuracy, fd, second_fd, softmax=0.95):
    """A guidance sweep's point as ``recommend`` reads it: class accuracy, confidence and FD ratios in two spaces."""
    return {
        "guidance_scale": w,
        "class_accuracy": accuracy,
        "fd_ratio": fd,
        "mean_max_softmax": softmax,
        "second_space": {"fd_ratio": second_fd},
        "n": 1000,
    }


def recommended_w(points):
    from pipelines.training.guidance_sweep import recommend

    return recommend(points)["guidance_scale"]


def test_recommend_takes_the_setting_whose_strictest_measure_is_nearest_its_target():
    """Each measure against its target (error rate against 3 %, FD ratio against 2×): w = 1 misses accuracy by
    3.3 times the error allowed, w = 3 the second space's FD by 1.75 times, w = 2 its accuracy by 1.33 times."""
    point = guidance_point
    points = {
        "0": point(0, 0.1, 1.0, 1.0),  # never: it ignores the class
        "1": point(1, 0.90, 1.8, 2.0),
        "2": point(2, 0.96, 2.2, 2.6),
        "3": point(3, 0.98, 2.0, 3.5),
        "5": point(5, 0.99, 4.0, 6.0),
    }
    assert recommended_w(points) == 2
    points["3"]["second_space"]["fd_ratio"] = 2.4  # now its strictest is the first space's 2.0× (1.0) or 2.4× (1.2)
    assert recommended_w(points) == 3
    from pipelines.training.guidance_sweep import recommend

    assert recommend({"0": points["0"]}) is None, "no guided setting measured yet"


def test_recommend_counts_the_no_flip_judge_in_accuracy_and_in_distance():
    from pipelines.training.guidance_sweep import markdown_table

    points = {"2": guidance_point(2, 0.96, 2.2, 2.6), "3": guidance_point(3, 0.98, 2.0, 2.4)}
    assert recommended_w(points) == 3
    points["3"]["third_space"] = {"frechet_distance": 4.0, "fd_ratio": 2.0, "class_accuracy": 0.9}
    points["2"]["third_space"] = {"frechet_distance": 4.0, "fd_ratio": 2.0, "class_accuracy": 0.97}
    assert recommended_w(points) == 2, "the no-flip judge reads w = 3's samples right 90 % of the time"
    points["3"]["third_space"]["class_accuracy"] = 0.97
    points["2"]["third_space"]["fd_ratio"] = 4.0
    assert recommended_w(points) == 3, "the no-flip judge sees w = 2 at 4×"
    rows = {p["guidance_scale"]: p | {"min_class_fraction": 0.1, "wall_s": 1.0} for p in points.values()}
    for p in rows.values():
        p["frechet_distance"], p["second_space"]["frechet_distance"] = 2 * p["fd_ratio"], 1.0
    table = markdown_table({"points": rows})
    assert "| class accuracy, no-flip |" in table and "| FD, no-flip space (× its floor) |" in table
    assert "| 3 | – | 98.0 % | 97.0 % |" in table and "| 4.00 (2.0×) |" in table
    assert "| resnet: FD 2.40× its real floor (target ≤ 2×) (1.20) |" in table  # w = 3's strictest measure
    del rows[3]["third_space"]  # a point scored before the third judge
    assert "| 3 | – | 98.0 % | – |" in markdown_table({"points": rows})


def test_recommend_weighs_interval_and_rescale_settings_like_scales_and_names_the_setting():
    from pipelines.training.guidance_sweep import markdown_table, recommend, setting_of

    plain = guidance_point(3, 0.97, 2.5, 2.5)
    interval = guidance_point(3, 0.97, 1.8, 2.0) | {"guidance_interval": [100, 700], "guidance_rescale": 0.7}
    points = {"w=3": plain, "w=3,t=100-700,phi=0.7": interval}
    assert recommend(points) is interval
    assert setting_of(interval) == {
        "recommended_guidance_scale": 3,
        "recommended_guidance_interval": [100, 700],
        "recommended_guidance_rescale": 0.7,
        "recommended_guidance_class_scales": None,
    }
    assert setting_of(plain)["recommended_guidance_interval"] is None
    assert setting_of(plain)["recommended_guidance_rescale"] is None
    rows = {k: p | {"frechet_distance": 1.0, "min_class_fraction": 0.1, "wall_s": 1.0} for k, p in points.items()}
    for p in rows.values():
        p["second_space"] = {"frechet_distance": 1.0, "fd_ratio": 2.0}
    table = markdown_table({"points": rows})
    assert "| 3 | t in [100, 700], φ = 0.7 | 97.0 % |" in table
    assert "| convnet: class accuracy 97.0 % (target ≥ 97 %) (1.00) |" in table


def class_matched(per_class_fd, read_as_other=0, accuracy=1.0):
    """A space's class-matched figures (``ClassMatchedScorer``'s) for three classes of 100 samples: the second class
    at ``per_class_fd``× its floor, ``read_as_other`` of the first class's samples read as the third."""
    names = ["a", "b", "c"]
    confusion = [[100 - read_as_other, 0, read_as_other], [0, 100, 0], [0, 0, 100]]
    per_class = {
        n: {"class_accuracy": accuracy, "fd_ratio": per_class_fd if n == "b" else 1.0, "read_as": {}} for n in names
    }
    return {"fd_ratio": 1.0, "class_accuracy": accuracy, "confusion": confusion, "per_class": per_class}


def test_recommend_sees_a_class_far_from_the_data_or_read_as_another_where_overall_figures_do_not():
    from pipelines.training import targets

    good, bad = guidance_point(2, 0.99, 1.5, 1.5), guidance_point(3, 0.99, 1.0, 1.0)
    good["spaces"], bad["spaces"] = {"convnet": class_matched(2.4)}, {"convnet": class_matched(6.0)}
    assert recommended_w({"2": good, "3": bad}) == 2, "w = 3's class b is 6× from the data: twice its 3× target"
    bad["spaces"] = {"convnet": class_matched(1.0, read_as_other=20)}
    assert recommended_w({"2": good, "3": bad}) == 2, "a fifth of w = 3's class a reads as c: twice the 10 % allowed"
    worst = targets.strictest(bad, bad["spaces"])
    assert worst.what == "convnet: a read as c 20.0 % (target ≤ 10 %)" and worst.ratio == pytest.approx(2.0)
    assert targets.missed(good, good["spaces"]) == [], "every target met"
    exactly = {"convnet": class_matched(1.0, accuracy=float(torch.tensor(90 / 100)))}  # float32: 0.89999998
    assert targets.missed(good, exactly) == [], "90 of 100 meets the 90 % target, whatever float32 makes of it"
    assert len(targets.missed(good, {"convnet": class_matched(1.0, accuracy=0.89)})) == 3


def test_the_class_by_class_table_names_each_points_furthest_class_and_what_it_misses(tmp_path, capsys):
    from pipelines.training.guidance_sweep import class_matched_table, main

    good, bad = guidance_point(2, 0.99, 1.5, 1.5), guidance_point(3, 0.99, 1.0, 1.0)
    good["spaces"] = {"convnet": class_matched(2.4)}
    bad["spaces"] = {"convnet": class_matched(6.0), "resnet": class_matched(1.0, read_as_other=20)}
    bad["guidance_interval"] = [170, 790]
    table = class_matched_table({"points": {"w=2": good, "w=3": bad}})
    assert "| 2 | – | 99.0 % (convnet / resnet) | 1.50 / 1.50× | 1.00× (convnet) | b 2.4× (convnet) | 0 |" in table
    row = "| 3 | t in [170, 790] | 99.0 % (convnet / resnet) | 1.00 / 1.00× | 1.00 / 1.00× (convnet / resnet) "
    assert row + "| b 6.0× (convnet) | 2 | convnet: b FD 6.00× its real floor (target ≤ 3×) (2.00) |" in table
    assert class_matched_table({"points": {"w=2": guidance_point(2, 0.99, 1.5, 1.5)}}) == "", "none class by class"
    rows = {"w=2": good | {"frechet_distance": 1.0, "min_class_fraction": 0.1, "wall_s": 1.0}}
    rows["w=2"]["second_space"] = {"frechet_distance": 1.0, "fd_ratio": 1.5}
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps({"points": rows}))
    main(["--json", str(path), "--table"])
    printed = capsys.readouterr().out
    assert "| wall s |" in printed and "| measures missed |" in printed, "both tables"


def test_the_sweep_runs_every_scale_at_every_interval_and_rescale_but_unguided_ones_once():
    import argparse

    from pipelines.training.evaluate import guidance_label
    from pipelines.training.guidance_sweep import settings

    args = argparse.Namespace(guidance="0,1,2", interval="none,100-700", rescale="0,0.7")
    asked = settings(args)
    assert asked[:2] == [(0.0, None, 0.0), (1.0, None, 0.0)] and len(asked) == 2 + 4
    assert (2.0, (100.0, 700.0), 0.7) in asked
    assert [guidance_label(*s) for s in asked][2:4] == ["w=2", "w=2,phi=0.7"]
    assert guidance_label(2.0, (100.0, 700.0), 0.7) == "w=2,t=100-700,phi=0.7"
    for bad in ("700-100", "abc", "5"):
        with pytest.raises(SystemExit, match="LO-HI"):
            settings(argparse.Namespace(guidance="2", interval=bad, rescale="0"))
    with pytest.raises(SystemExit, match="φ in"):
        settings(argparse.Namespace(guidance="2", interval="none", rescale="1.5"))


@pytest.mark.slow
def test_a_conditional_sweep_reports_class_accuracy(tiny_conditional_32px, fake_fashion_mnist, tmp_path):  # noqa: F811
    out = tmp_path / "sweep.json"
    args = ["--checkpoint", str(tiny_conditional_32px), "--data-dir", str(fake_fashion_mnist), "--num-samples", "20"]
    args += ["--second-classifier", "", "--batch-size", "20", "--json", str(out), "--samplers", "ddim", "--nfe", "2"]
    sampler_sweep.main([*args, "--guidance-scale", "2"])
    point = json.loads(out.read_text())["points"]["ddim@2"]
    assert 0 <= point["class_accuracy"] <= 1
    with pytest.raises(SystemExit, match="other settings"):
        sampler_sweep.main([*args, "--guidance-scale", "3"])
    # the checkpoint's recommended interval and φ are what the app samples with: the sweep samples with them too
    index_file = tiny_conditional_32px / "model_index.json"
    index = json.loads(index_file.read_text())
    extras = {"recommended_guidance_interval": [500, 1000], "recommended_guidance_rescale": 0.5}
    index_file.write_text(json.dumps(index | extras))
    with pytest.raises(SystemExit, match="other settings"):  # the same JSON, sampled without them
        sampler_sweep.main([*args, "--guidance-scale", "2"])
    args[args.index(str(out))] = str(tmp_path / "with-extras.json")
    sampler_sweep.main([*args, "--guidance-scale", "2"])
    setup = json.loads((tmp_path / "with-extras.json").read_text())
    assert (setup["guidance_interval"], setup["guidance_rescale"]) == ([500, 1000], 0.5)
    with pytest.raises(SystemExit, match="other settings"):  # the JSON holds points sampled with them
        sampler_sweep.main([*args, "--guidance-scale", "2", "--guidance-interval", "none", "--guidance-rescale", "0"])
    args[args.index(str(tmp_path / "with-extras.json"))] = str(out)  # a sweep from before they existed resumes
    sampler_sweep.main([*args, "--guidance-scale", "2", "--guidance-interval", "none", "--guidance-rescale", "0"])
    with pytest.raises(SystemExit, match="φ in"):
        sampler_sweep.main([*args, "--guidance-rescale", "2"])
    index_file.write_text(json.dumps(index))


@pytest.mark.slow
def test_without_a_w_the_sweep_samples_each_class_at_the_checkpoints_own_and_says_which(
    tiny_conditional_32px,
    fake_fashion_mnist,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    """No --guidance-scale: the checkpoint's recommended w, per class where it records them, is what the pipeline
    gets and what the JSON records; a sweep made before the recommendation changed is not resumed as the same."""
    out = tmp_path / "sweep.json"
    args = ["--checkpoint", str(tiny_conditional_32px), "--data-dir", str(fake_fashion_mnist), "--num-samples", "20"]
    args += ["--second-classifier", "", "--batch-size", "20", "--json", str(out), "--samplers", "ddim", "--nfe", "2"]
    index_file = tiny_conditional_32px / "model_index.json"
    index = json.loads(index_file.read_text())
    index_file.write_text(json.dumps(index | {"recommended_guidance_scale": 2.0}))
    sampler_sweep.main(args)
    setup = json.loads(out.read_text())
    assert (setup["guidance_scale"], setup["guidance_class_scales"]) == (2.0, None)

    per_class = [2.0] * 9 + [3.0]
    index_file.write_text(json.dumps(index | {"recommended_guidance_scale": 2.0,
                                              "recommended_guidance_class_scales": per_class}))  # fmt: skip
    with pytest.raises(SystemExit, match="other settings"):  # its points were sampled at one w
        sampler_sweep.main(args)
    asked = []
    real = sampler_sweep.generate_with
    monkeypatch.setattr(
        sampler_sweep, "generate_with", lambda *a, **k: asked.append(a[7]) or real(*a, **k)
    )  # the w the pipeline is given (its 8th argument)
    args[args.index(str(out))] = str(tmp_path / "per-class.json")
    sampler_sweep.main(args)
    setup = json.loads((tmp_path / "per-class.json").read_text())
    assert (setup["guidance_scale"], setup["guidance_class_scales"]) == (2.0, per_class)
    assert asked == [per_class]
    args[args.index(str(tmp_path / "per-class.json"))] = str(tmp_path / "one-w.json")
    sampler_sweep.main([*args, "--guidance-scale", "2"])  # one w for every class, as asked
    assert json.loads((tmp_path / "one-w.json").read_text())["guidance_class_scales"] is None
    assert asked[-1] == 2.0
    index_file.write_text(json.dumps(index))


def test_the_default_is_the_fastest_point_within_ten_percent_of_ddpm_100_in_both_spaces():
    def point(sampler, nfe, fd, second_fd):
        return {"sampler": sampler, "steps": nfe, "nfe": nfe, "frechet_distance": fd,
                "second_space": {"frechet_distance": second_fd}}  # fmt: skip

    points = {"ddpm@100": point("ddpm", 100, 10.0, 2.0), "ddpm@1000": point("ddpm", 1000, 9.0, 1.8)}
    points |= {"unipc@10": point("unipc", 10, 10.5, 2.3), "unipc@20": point("unipc", 20, 10.9, 2.1)}
    points |= {"heun@19": point("heun", 19, 12.0, 1.9), "euler@50": point("euler", 50, 9.5, 2.0)}
    best = sampler_sweep.fastest_within({"points": points})
    assert (best["sampler"], best["nfe"]) == ("unipc", 20), (
        "unipc@10 is too far in the second space, heun in the first"
    )
    assert sampler_sweep.fastest_within({"points": {"unipc@20": points["unipc@20"]}}) is None, "no reference: none"
    for p in points.values():  # the floors: 5 in the first space, 1 in the second
        p["fd_ratio"], p["second_space"]["fd_ratio"] = p["frechet_distance"] / 5, p["second_space"]["frechet_distance"]
    assert sampler_sweep.fastest_within({"points": points}, max_fd_ratio=2.05)["sampler"] == "euler", "2.1× is out"
    assert sampler_sweep.fastest_within({"points": points}, max_fd_ratio=1.0) is None
    # no reference point: the fewest evaluations within the floors' bar alone (a checkpoint's own sampler)
    alone = {k: points[k] for k in ("unipc@10", "unipc@20", "euler@50")}
    assert sampler_sweep.fastest_within({"points": alone}, None, max_fd_ratio=2.2)["nfe"] == 20, "unipc@10: 2.3×"
    assert sampler_sweep.fastest_within({"points": alone}, None) is None, "no bar at all: none"


def test_the_fastest_point_within_the_floors_is_written_as_the_checkpoints_own_sampler(tmp_path, capsys):
    from pipelines.loading import load_pipeline

    checkpoint = tmp_path / "tiny"
    DDPMExplorerPipeline(unet=make_tiny_unet(), scheduler=DDPMExplorerScheduler()).save_pretrained(checkpoint)
    points = {
        "unipc@15": {"sampler": "unipc", "steps": 15, "nfe": 15, "frechet_distance": 9.0, "fd_ratio": 4.9},
        "ddpm@50": {"sampler": "ddpm", "steps": 50, "nfe": 50, "frechet_distance": 3.0, "fd_ratio": 1.5},
    }
    sweep = tmp_path / "samplers.json"
    sweep.write_text(json.dumps({"points": points}))
    args = ["--checkpoint", str(checkpoint), "--json", str(sweep), "--fastest", "--max-fd-ratio", "3"]
    sampler_sweep.main([*args, "--relative-to", "none", "--write-model-index"])
    assert "ddpm 50 50" in capsys.readouterr().out
    pipe = load_pipeline(checkpoint)
    assert (pipe.config.recommended_sampler, pipe.config.recommended_num_inference_steps) == ("ddpm", 50)


def test_the_default_must_also_be_within_ten_percent_in_the_no_flip_space():
    def point(sampler, nfe, fd, third_fd):
        return {"sampler": sampler, "steps": nfe, "nfe": nfe, "frechet_distance": fd, "fd_ratio": fd / 5,
                "third_space": {"frechet_distance": third_fd, "fd_ratio": third_fd}}  # fmt: skip

    points = {"ddpm@100": point("ddpm", 100, 10.0, 2.0), "unipc@10": point("unipc", 10, 10.5, 2.5)}
    points["unipc@20"] = point("unipc", 20, 10.9, 2.1)
    best = sampler_sweep.fastest_within({"points": points})
    assert (best["sampler"], best["nfe"]) == ("unipc", 20), "unipc@10 is 25 % off in the no-flip space"
    assert sampler_sweep.fastest_within({"points": points}, max_fd_ratio=2.15)["nfe"] == 100, "2.18× at unipc@20"
    del points["unipc@20"]["third_space"]  # not measured where the reference was: not comparable
    assert sampler_sweep.fastest_within({"points": points})["sampler"] == "ddpm"
    for p in points.values():
        p |= {"mean_max_softmax": 0.9, "min_class_fraction": 0.1, "wall_s": 1.0}
    table = sampler_sweep.markdown_table({"points": points})
    assert "| FD, no-flip space (× its floor) |" in table and "| 2.50 (2.5×) |" in table


def test_class_scales_name_each_class_at_its_own_w_and_key_their_points():
    from pipelines.training.guidance_sweep import (
        class_scales_of,
        label_of,
        parse_class_scales,
        setting_of,
        variant_of,
    )

    names = ["a", "b", "c"]
    assert parse_class_scales("none;a=3,c=1.5", names) == [{}, {"a": 3.0, "c": 1.5}]
    assert class_scales_of(2.0, {"a": 3.0, "c": 1.5}, names) == [3.0, 2.0, 1.5]
    assert class_scales_of(2.0, {}, names) is None
    point = {"guidance_scale": 2.0, "guidance_interval": [170, 790], "guidance_class_overrides": {"a": 3.0}}
    point["guidance_class_scales"] = [3.0, 2.0, 2.0]
    assert label_of(point) == "w=2,t=170-790;a=3"
    assert variant_of(point) == "t in [170, 790], per class: a 3"
    assert setting_of(point)["recommended_guidance_class_scales"] == [3.0, 2.0, 2.0]
    for bad, message in (("d=3", "no class 'd'"), ("a=x", "a's w must be"), ("a=60", "a's w must be")):
        with pytest.raises(SystemExit, match=message):
            parse_class_scales(bad, names)
