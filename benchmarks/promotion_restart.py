"""Should a promoted trial restart at its new budget, or continue from the rung below?

For architectures of a study's rung 0 (its most accurate first), trains rung 1 two ways from the same
seed and data: (a) restart: a fresh network, one one-cycle schedule fitted to rung 1's budget (what
`nas search` does); (b) continue: the rung-0 network (trained here with the trial's recipe), then a
new one-cycle over the images rung 1 adds (its budget less rung 0's). Prints both validation
accuracies and the images each trained on. Accuracy only: it may run beside other work.

    python benchmarks/promotion_restart.py --study p26-acc --n 3
"""

from __future__ import annotations

import argparse
import math

import optuna

from nas import data, machine, models, storage, train
from nas.config import Budget, DataConfig, Recipe
from nas.records import TrialRecord


def splits_for(settings: dict, subset: float):
    f = settings["fidelity"]
    return data.load(DataConfig(dataset=f["dataset"], val_size=f["val_size"], split_seed=f["split_seed"],
                                subset=subset))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", required=True)
    parser.add_argument("--storage")
    parser.add_argument("--n", type=int, default=3, help="architectures, the most accurate of rung 0 first")
    args = parser.parse_args()
    print(machine.header())
    study = storage.load_study(args.study, args.storage or storage.default_storage(args.study))
    settings = study.user_attrs["nas"]
    rung0 = Budget(settings["fidelity"]["epochs"], settings["fidelity"]["subset"])
    rung1 = Budget(**settings["promotions"][0])
    # the continuation trains on rung 1's images for the epochs that make up the difference in images seen
    extra_epochs = max(1, math.ceil(round((rung1.images - rung0.images) / rung1.subset, 6)))
    done = [TrialRecord.of(t) for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    best = sorted((r for r in done if r.trained), key=lambda r: -r.accuracy)[:args.n]
    small, large = splits_for(settings, rung0.subset), splits_for(settings, rung1.subset)
    print(f"rung 0 {rung0}, rung 1 {rung1}; continue = rung 0 then {extra_epochs} epochs on {rung1.subset:.0%}")
    for r in best:
        recipe = Recipe.from_dict(r.recipe)
        _, restart = train.train(models.build(r.arch, seed=recipe.seed), large, recipe.replace(epochs=rung1.epochs),
                                 eval_epochs=set())
        first, _ = train.train(models.build(r.arch, seed=recipe.seed), small, recipe.replace(epochs=rung0.epochs),
                               eval_epochs=set())
        _, continued = train.train(first, large, recipe.replace(epochs=extra_epochs), eval_epochs=set())
        print(f"trial {r.number} ({r.summary[:50]}): restart {restart.val_acc:.4f} on "
              f"{rung1.epochs * len(large.train):,} images; continue {continued.val_acc:.4f} on "
              f"{rung0.epochs * len(small.train) + extra_epochs * len(large.train):,} images", flush=True)


if __name__ == "__main__":
    main()
