"""Does torch.compile pay for itself in a long training? Eager vs compiled, same model, recipe, data.

Trains one architecture (a study's trial, or a space's preset) with nas's trainer twice in this
process, eager and with `compiled=True`, and prints the steady seconds per epoch (epochs 2 onward),
the compilation overhead (epoch 1 minus steady), the speed-up, the epochs after which compiling
has paid for itself, and both validation accuracies (the math is the same, so they should agree).

    python benchmarks/compile_speed.py --study fmnist-acc --trial 78
    python benchmarks/compile_speed.py --space simple_cnn --preset seed-structure-1
Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import statistics

import optuna

from nas import data, machine, models, spaces, train
from nas.config import DataConfig, Recipe


def load_arch(args) -> tuple[dict, Recipe, str]:
    if args.study:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=args.study, storage=args.storage or f"sqlite:///studies/{args.study}.db")
        attrs = study.trials[args.trial].user_attrs
        return attrs["arch"], Recipe.from_dict(attrs["recipe"]), attrs["summary"]
    arch = spaces.load(args.space).presets[args.preset]["arch"]
    return arch, Recipe(), args.preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study")
    parser.add_argument("--storage")
    parser.add_argument("--trial", type=int)
    parser.add_argument("--space")
    parser.add_argument("--preset")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--subset", type=float, default=0.2, help="fraction of the training split per epoch")
    args = parser.parse_args()
    print(machine.header())
    arch, recipe, name = load_arch(args)
    recipe = recipe.replace(epochs=args.epochs)
    splits = data.load(DataConfig(subset=args.subset), device="cpu")
    print(f"{name}: {args.epochs} epochs on {len(splits.train.labels):,} images, batch {recipe.batch_size}")
    rows = {}
    for compiled in (False, True):
        _, result = train.train(models.build(arch, seed=recipe.seed), splits, recipe, "cpu", compiled=compiled)
        seconds = [h["seconds"] for h in result.history]
        steady = statistics.median(seconds[1:])
        rows[compiled] = (seconds[0], steady, result.history[-1]["val_acc"])
        print(f"{'compiled' if compiled else 'eager':>8}: epoch 1 {seconds[0]:.1f} s, then {steady:.1f} s/epoch "
              f"(epochs 2-{args.epochs}), val acc {result.history[-1]['val_acc']:.4f}", flush=True)
    (e1, eager), (c1, comp) = rows[False][:2], rows[True][:2]
    overhead = (c1 - comp) - (e1 - eager)  # what epoch 1 costs beyond a steady epoch, less eager's own warm-up
    saved_per_full_epoch = (eager - comp) * 60_000 / len(splits.train.labels)
    print(f"speed-up {eager / comp:.2f}x per steady epoch; compilation {overhead:.0f} s; pays for itself after "
          + (f"{overhead / saved_per_full_epoch:.1f} epochs on 60,000 images" if saved_per_full_epoch > 0 else "never"))

if __name__ == "__main__":
    main()
