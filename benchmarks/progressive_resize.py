"""Does progressive resizing buy accuracy in a fixed training time? Same network, recipe, data and clock.

Trains an export's network with its recipe for --minutes of training twice in this process: at full
size throughout, then with `progressive_from` (smaller images early, full size for the last quarter;
see nas.train.training_side). Both runs have the same time limit, so the progressive run fits more
epochs; the question is whether they are worth more than the full-size epochs they replace.
Prints per run: epochs managed, median seconds per epoch at each side, validation accuracy.

    python benchmarks/progressive_resize.py studies/fmnist-acc5/exports/trial-3-m120 --minutes 25 --compile
Run it on an otherwise idle machine: the two runs compare wall-clock budgets.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from nas import data, machine, models, train
from nas.config import DataConfig, Recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export", help="an export folder (its arch.json gives network and recipe)")
    parser.add_argument("--minutes", type=float, default=25, help="training time of each run")
    parser.add_argument("--start", type=int, default=20, help="side in pixels the progressive run starts at")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--subset", type=float, default=1.0, help="fraction of the training split")
    args = parser.parse_args()
    print(machine.header())
    saved = json.loads((Path(args.export) / "arch.json").read_text())
    recipe = Recipe.from_dict(saved["recipe"]).replace(seed=args.seed)
    splits = data.load(DataConfig(subset=args.subset), device="cpu")  # validation: the test split is not read
    print(f"{args.export}: {args.minutes:g} min of training per run on {len(splits.train.labels):,} images, "
          f"batch {recipe.batch_size}, seed {args.seed}, validation {len(splits.val.labels):,} images", flush=True)
    for start in (0, args.start):
        run = recipe.replace(progressive_from=start)
        _, result = train.train(models.build(saved["arch"], seed=run.seed), splits, run, "cpu",
                                compiled=args.compile, length=train.ByClock(args.minutes * 60), eval_epochs=set())
        by_side: dict[int, list[float]] = {}
        for h in result.history[:-1]:  # the last epoch is cut short by the clock
            by_side.setdefault(h["side"], []).append(h["seconds"])
        speeds = ", ".join(f"{side}px {statistics.median(s):.1f} s/epoch x{len(s)}"
                           for side, s in sorted(by_side.items()))
        name = f"progressive from {start}px" if start else "full size"
        print(f"{name:>24}: {len(result.history)} epochs ({speeds}), "
              f"val acc {result.val_acc:.4f}", flush=True)


if __name__ == "__main__":
    main()
