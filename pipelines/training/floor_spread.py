"""How much a real floor moves with the real images it is drawn from.

    python -m pipelines.training.floor_spread --per-class 100 --draws 20 \
        --json checkpoints/fashion-mnist-32-cond/evaluation/floor-spread.json

The quality report's per-class floor is the Fréchet distance of *one* set of N training images of a class (N = the
samples of that class, 100 at 1,000 samples) to every held-out image of that class: what a model that draws exactly
its training distribution would score, from one draw. A model's FD at N is one draw too. This command draws the floor
``--draws`` times from disjoint training subsets of the same N, in each judge's features, and reports each class's
range: a target such as "≤ 3× the class's floor" is only as sharp as that range is narrow.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pipelines.training.classifier import predict
from pipelines.training.evaluate import add_scoring_arguments, judges_from, load_evaluation_data
from pipelines.training.metrics import frechet_distance_between


def class_floors(net, train_x, train_y, test_x, test_y, n: int, draws: int, seed: int = 0) -> dict[int, list[float]]:
    """Per class c: the FD of ``draws`` disjoint sets of ``n`` training images of c to every test image of c, in
    ``net``'s features (classes with too few training images for the draws are left out)."""
    g = torch.Generator().manual_seed(seed)
    floors = {}
    for c in test_y.unique().tolist():
        own = torch.nonzero(train_y == c)[:, 0]
        if len(own) < n * draws:
            continue
        picked = own[torch.randperm(len(own), generator=g)[: n * draws]]  # (draws · n,) disjoint sets of n
        features = predict(net, train_x[picked])[0].reshape(draws, n, -1)  # (draws, n, D)
        test = predict(net, test_x[test_y == c])[0]
        floors[c] = [frechet_distance_between(f, test) for f in features]
    return floors


def spread(values: list[float]) -> dict:
    """min, median, max and max ÷ min of a class's floors."""
    t = torch.tensor(values)
    return {
        "min": t.min().item(),
        "median": t.median().item(),
        "max": t.max().item(),
        "max_over_min": (t.max() / t.min()).item(),
    }


def markdown_table(report: dict) -> str:
    """One row a class, one column a judge: the floor's min – max (max ÷ min)."""
    judges = list(report["judges"])
    rows = [
        "| class | " + " | ".join(f"{j}: floor min – max (max ÷ min)" for j in judges) + " |",
        "|---" * (len(judges) + 1) + "|",
    ]
    for name in report["class_names"]:
        cells = []
        for j in judges:
            s = report["judges"][j].get(name)
            cells.append("–" if s is None else f"{s['min']:.3g} – {s['max']:.3g} ({s['max_over_min']:.1f}×)")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scoring_arguments(p)
    p.add_argument("--per-class", type=int, default=100, help="N: training images a class in each draw")
    p.add_argument("--draws", type=int, default=20, help="disjoint draws a class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="write the floors and their spread here")
    args = p.parse_args(argv)
    if args.per_class < 2 or args.draws < 2:
        raise SystemExit("--per-class and --draws take at least 2.")
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_evaluation_data(args.data_dir)
    names = list(data.class_names)
    report = {"per_class": args.per_class, "draws": args.draws, "seed": args.seed, "class_names": names, "judges": {}}
    floors_of = {}
    for key, net in judges_from(args).items():
        floors = class_floors(
            net, data.train_x, data.train_y, data.test_x, data.test_y, args.per_class, args.draws, args.seed
        )
        floors_of[key] = {names[c]: f for c, f in floors.items()}
        report["judges"][key] = {names[c]: spread(f) for c, f in floors.items()}
    print(markdown_table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report | {"floors": floors_of}, indent=2))


if __name__ == "__main__":
    main()
