"""Does a cheap search trial rank architectures like a longer training does?

Draws architectures (with their sampled recipes) spread across a space's MAC range, trains each
at the search's default fidelity and at a longer one, and prints the Spearman rank correlation
of the two validation accuracies (target >= 0.7) and what each fidelity cost.

    python benchmarks/fidelity_ranking.py                     # 12 archs of resnet_like
    python benchmarks/fidelity_ranking.py --n 12 --long-epochs 8
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import optuna

from nas import data, machine, measure, models, spaces, train
from nas.config import DataConfig, Recipe
from nas.config import SearchConfig


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main():
    defaults = SearchConfig(space="resnet_like", study="x", storage="x", trials=1)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="resnet_like")
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="search fidelity: epochs")
    parser.add_argument("--subset", type=float, default=defaults.subset, help="search fidelity: data fraction")
    parser.add_argument("--long-epochs", type=int, default=8, help="the longer training, on the whole train split")
    parser.add_argument("--max-macs", type=float, default=60e6, help="skip draws above this (keeps the run short)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(machine.header())
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    space = spaces.load(args.space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.seed))
    pool = []
    for _ in range(20 * args.n):
        trial = study.ask()
        arch, recipe = spaces.sample(trial, space), spaces.sample_recipe(trial, space, Recipe(seed=args.seed))
        macs, _ = measure.count_macs(models.build(arch))
        if macs <= args.max_macs:
            pool.append((macs, arch, recipe))
    pool.sort(key=lambda p: p[0])
    picks = [pool[round(i)] for i in np.linspace(0, len(pool) - 1, args.n)]  # evenly spread over MACs

    cheap_data = data.load(DataConfig(subset=args.subset))
    full_data = data.load(DataConfig())
    rows = []
    print(f"{args.n} archs of {args.space}; search fidelity {args.epochs} epochs on {len(cheap_data.train)} images, "
          f"long {args.long_epochs} epochs on {len(full_data.train)} images; validation {len(full_data.val)} images")
    for i, (macs, arch, recipe) in enumerate(picks):
        times, accs = [], []
        for splits, epochs in ((cheap_data, args.epochs), (full_data, args.long_epochs)):
            start = time.perf_counter()
            _, result = train.train(models.build(arch), splits, recipe.replace(epochs=epochs), device="cpu")
            times.append(time.perf_counter() - start)
            accs.append(result.val_acc if result.status == "completed" else 0.0)
        rows.append((macs, *accs, *times))
        print(f"  {i + 1:2d}. {macs / 1e6:6.1f}M MACs  cheap {accs[0]:.4f} ({times[0]:5.1f} s)  "
              f"long {accs[1]:.4f} ({times[1]:6.1f} s)  {models.summary(arch)}", flush=True)
    rows = np.array(rows)
    print(f"Spearman rank correlation (search fidelity vs long training): {spearman(rows[:, 1], rows[:, 2]):.3f}")
    print(f"mean time per arch: search fidelity {rows[:, 3].mean():.1f} s, long {rows[:, 4].mean():.1f} s")


if __name__ == "__main__":
    main()
