"""nas's search vs Optuna's plain multi-objective approach, same space, data and wall-clock budget.

(a) nas: hard limits checked before training, rung pruning, nas's sampler settings.
(b) plain Optuna: `optuna.create_study(directions=...)` with its default sampler, every trial
    trained at the same fidelity as nas's unpruned trials, no pruning, no pre-training rejection
    (an over-limit model is trained, then counts as infeasible).
Prints the validation hypervolume (fixed reference point and normalisation, feasible trials only)
each reaches over time, and how long (a) took to reach (b)'s final hypervolume (target: a third
of the time or less). Run it on an otherwise idle machine.

    python benchmarks/search_efficiency.py --minutes 20
    python benchmarks/search_efficiency.py --minutes 8 --samplers tpe,nsga2,random   # also picks the default sampler
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

import optuna

from nas import cores, data, measure, models, spaces, train
from nas.config import DataConfig, Recipe
from nas.report import hypervolume
from nas.config import SearchConfig
from nas.search import Search, parse_count, parse_ms


def run_nas(config: SearchConfig) -> list[tuple[float, list[float]]]:
    start = time.monotonic()
    found = []

    def events(event, **info):
        if event == "end" and info["kind"] == "trained":
            c = info["costs"]
            found.append((time.monotonic() - start, [info["acc"], c["macs"], c["latency_ms"]]))

    Search(config, events=events).run()
    return found


def run_plain(config: SearchConfig) -> list[tuple[float, list[float]]]:
    space = spaces.load(config.space)
    splits = data.load(DataConfig(subset=config.subset))
    limits = config.limits()
    start = time.monotonic()
    found = []

    def objective(trial):
        arch = spaces.sample(trial, space)
        recipe = spaces.sample_recipe(trial, space, Recipe(epochs=config.epochs, seed=config.seed))
        model = models.build(arch)
        params, (macs, _) = measure.count_params(model), measure.count_macs(model)
        latency = measure.latency(models.deployable(model, recipe.tta_flip))["median_ms"]
        with cores.training():
            _, result = train.train(model, splits, recipe, "cpu")
        acc = result.val_acc if result.status == "completed" else 0.0
        costs = {"params": params, "macs": macs, "latency_ms": latency}
        if all(costs[k] <= v for k, v in limits.items()):
            found.append((time.monotonic() - start, [acc, macs, latency]))
        return acc, macs, latency

    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    study.optimize(objective, timeout=config.timeout)
    return found


def curve(found, objectives):
    points, out = [], []
    for t, values in found:
        points.append(values)
        out.append((t, hypervolume(points, objectives)))
    return out


def hv_at(c, t):
    return max([hv for when, hv in c if when <= t], default=0.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="resnet_like")
    parser.add_argument("--minutes", type=float, default=20, help="wall-clock budget of each approach")
    parser.add_argument("--max-params", default="1M")
    parser.add_argument("--max-latency", default="1ms")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samplers", default="tpe", help="nas runs, one per sampler, e.g. tpe,nsga2,random")
    parser.add_argument("--keep", help="folder for bench.db (studies bench-<sampler>), kept for nas front/plot/export")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objectives = ("accuracy", "macs", "latency")
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or scratch
        config = SearchConfig(space=args.space, study="bench", storage=f"sqlite:///{folder}/bench.db", trials=100_000,
                              objectives=objectives, max_params=parse_count(args.max_params, "--max-params"),
                              max_latency_ms=parse_ms(args.max_latency, "--max-latency"), seed=args.seed,
                              timeout=args.minutes * 60)
        print(f"space {args.space}, limits {config.limits()}, fidelity {config.epochs} epochs on {config.subset:.0%}, "
              f"budget {args.minutes} min each")
        runs = {}
        for sampler in args.samplers.split(","):
            run = dataclasses.replace(config, sampler=sampler, study=f"bench-{sampler}")
            runs[f"nas {sampler}"] = curve(run_nas(run), objectives)
        runs["plain"] = curve(run_plain(config), objectives)
    print(f"{'minute':>6} " + " ".join(f"{name:>11}" for name in runs))
    for m in range(1, int(args.minutes) + 1):
        print(f"{m:6d} " + " ".join(f"{hv_at(c, m * 60):11.4f}" for c in runs.values()))
    b = runs["plain"]
    target = b[-1][1] if b else 0.0
    print(f"plain Optuna's final hypervolume {target:.4f} from {len(b)} feasible trained trials")
    for name, a in runs.items():
        if name == "plain":
            continue
        reached = next((t for t, hv in a if hv >= target), None)
        print(f"{name}: {len(a)} feasible trained trials, final hypervolume {a[-1][1] if a else 0:.4f}; "
              + ("did not reach plain's final hypervolume" if reached is None else
                 f"reached plain's final after {reached / 60:.1f} min = {reached / (args.minutes * 60):.2f} of the budget"))


if __name__ == "__main__":
    main()
