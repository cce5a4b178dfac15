"""The floor's spread: each draw is the FD of its own disjoint training set to the class's test images."""

import json

import pytest
import torch
from test_training import fake_fashion_mnist  # noqa: F401 (a fixture)

from pipelines.training import floor_spread
from pipelines.training.classifier import FashionClassifier, predict
from pipelines.training.metrics import frechet_distance_between


def test_each_draw_is_the_fd_of_its_own_disjoint_set_and_the_draws_differ():
    torch.manual_seed(0)
    net = FashionClassifier().eval()
    g = torch.Generator().manual_seed(1)
    train_y = torch.arange(200) % 2  # class 2 has test images but no training image
    train_x = torch.rand(200, 1, 32, 32, generator=g) * 2 - 1
    test_x, test_y = torch.rand(60, 1, 32, 32, generator=g) * 2 - 1, torch.arange(60) % 3
    floors = floor_spread.class_floors(net, train_x, train_y, test_x, test_y, n=12, draws=4, seed=5)
    assert sorted(floors) == [0, 1], "a class without n · draws training images is left out"
    # the same draws by hand: one permutation a class, in class order, cut into disjoint sets of n
    gen = torch.Generator().manual_seed(5)
    for c in (0, 1):
        own = torch.nonzero(train_y == c)[:, 0]
        picked = own[torch.randperm(len(own), generator=gen)[:48]].reshape(4, 12)
        assert len(set(picked.flatten().tolist())) == 48
        test = predict(net, test_x[test_y == c])[0]
        by_hand = [frechet_distance_between(predict(net, train_x[i])[0], test) for i in picked]
        assert floors[c] == pytest.approx(by_hand, rel=1e-5)
        assert len(set(floors[c])) == 4, "disjoint draws give different floors"
    s = floor_spread.spread([2.0, 1.0, 4.0])
    assert (s["min"], s["median"], s["max"], s["max_over_min"]) == (1.0, 2.0, 4.0, 4.0)


def test_the_command_line_writes_each_judges_spread_and_a_table(fake_fashion_mnist, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "spread.json"
    args = ["--data-dir", str(fake_fashion_mnist), "--second-classifier", "", "--third-classifier", ""]
    floor_spread.main([*args, "--per-class", "2", "--draws", "2", "--json", str(out)])
    report = json.loads(out.read_text())
    assert list(report["judges"]) == ["convnet"]
    spreads = report["judges"]["convnet"]
    assert spreads and all(s["min"] <= s["median"] <= s["max"] for s in spreads.values())
    assert all(len(report["floors"]["convnet"][name]) == 2 for name in spreads)
    assert "| class | convnet: floor min – max (max ÷ min) |" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="at least 2"):
        floor_spread.main([*args, "--draws", "1"])
