"""nas's search vs Optuna's plain multi-objective approach, same space, data and wall-clock budget.

(a) nas: hard limits checked before training, pruning at rung 0's epochs, promotions, nas's sampler.
(b) plain Optuna: `optuna.create_study(directions=...)` with a seeded TPE sampler, every trial
    trained at nas's rung-0 budget, no pruning, no pre-training rejection (an over-limit model is
    trained, then counts as infeasible).
Fair by construction: both sides seeded alike, both score validation once, at the end of a rung-0
training (promoted results are left out of nas's hypervolume: they trained longer); fresh studies
every run; the side that runs first alternates with the seed. Prints the validation hypervolume
(fixed reference point and normalisation, feasible trials only) each reaches over time, and how long
(a) took to reach (b)'s final hypervolume (target: a third of the time or less), per seed and overall.
Run it on an otherwise idle machine.

    python benchmarks/search_efficiency.py --minutes 30 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import optuna

from nas import cores, data, machine, measure, models, spaces, train
from nas.config import DataConfig, Recipe
from nas.report import hypervolume
from nas.config import SearchConfig
from nas.search import Search
from nas.config import parse_count, parse_ms


def run_nas(config: SearchConfig) -> list[tuple[float, list[float]]]:
    start = time.monotonic()
    found = []

    def events(event, **info):
        if event == "end" and info["kind"] == "trained" and not info.get("rung"):
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
            _, result = train.train(model, splits, recipe, "cpu", eval_epochs=set())  # scored once, at the end
        acc = result.val_acc if result.status == "completed" else 0.0
        costs = {"params": params, "macs": macs, "latency_ms": latency}
        if all(costs[k] <= v for k, v in limits.items()):
            found.append((time.monotonic() - start, [acc, macs, latency]))
        return acc, macs, latency

    study = optuna.create_study(directions=["maximize", "minimize", "minimize"],
                                sampler=optuna.samplers.TPESampler(seed=config.seed))
    study.optimize(objective, timeout=config.minutes * 60)
    return found


def curve(found, objectives):
    points, out = [], []
    for t, values in found:
        points.append(values)
        out.append((t, hypervolume(points, objectives)))
    return out


def hv_at(c, t):
    return max([hv for when, hv in c if when <= t], default=0.0)


def race(config: SearchConfig, objectives) -> dict[str, list]:
    """Both sides once, in a fresh study each; the seed decides which runs first."""
    sides = {"nas": lambda: run_nas(config), "plain": lambda: run_plain(config)}
    order = ["nas", "plain"] if config.seed % 2 == 0 else ["plain", "nas"]
    return {name: curve(sides[name](), objectives) for name in order}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="resnet_like")
    parser.add_argument("--minutes", type=float, default=30, help="wall-clock budget of each side")
    parser.add_argument("--max-params", default="1M")
    parser.add_argument("--max-latency", default="1ms")
    parser.add_argument("--seeds", default="0,1,2", help="one race per seed")
    args = parser.parse_args()
    print(machine.header())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objectives = ("accuracy", "macs", "latency")
    ratios = []
    for seed in (int(s) for s in args.seeds.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            config = SearchConfig(space=args.space, study="bench", storage=f"sqlite:///{folder}/bench.db",
                                  trials=None, objectives=objectives, minutes=args.minutes, seed=seed,
                                  max_params=parse_count(args.max_params, "--max-params"),
                                  max_latency_ms=parse_ms(args.max_latency, "--max-latency"))
            print(f"seed {seed}: space {args.space}, limits {config.limits()}, rung 0 {config.epochs} epochs on "
                  f"{config.subset:.0%}, {args.minutes} min each", flush=True)
            runs = race(config, objectives)
        ratios.append(report_race(runs, args.minutes))
    done = [r for r in ratios if r is not None]
    print(f"time ratio nas/plain to plain's final hypervolume: {', '.join('-' if r is None else f'{r:.2f}' for r in ratios)}"
          + (f"; mean {np.mean(done):.2f}, spread {min(done):.2f}-{max(done):.2f}" if done else ""))


def report_race(runs: dict, minutes: float) -> float | None:
    """Print one race's hypervolume by minute; return the share of the budget nas needed to reach plain's final."""
    print(f"{'minute':>6} " + " ".join(f"{name:>11}" for name in runs))
    for m in range(1, int(minutes) + 1):
        print(f"{m:6d} " + " ".join(f"{hv_at(c, m * 60):11.4f}" for c in runs.values()))
    plain, ours = runs["plain"], runs["nas"]
    target = plain[-1][1] if plain else 0.0
    reached = next((t for t, hv in ours if hv >= target), None)
    print(f"plain: {len(plain)} feasible trained trials, final hypervolume {target:.4f}; nas: {len(ours)} at rung 0, "
          f"final {ours[-1][1] if ours else 0:.4f}; " + ("nas did not reach plain's final" if reached is None else
          f"nas reached plain's final after {reached / 60:.1f} min = {reached / (minutes * 60):.2f} of the budget"),
          flush=True)
    return None if reached is None else reached / (minutes * 60)


if __name__ == "__main__":
    main()
