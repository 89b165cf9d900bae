"""Which average of the weights scores best? Several read-outs of one training run, on validation.

Trains an export's network with its recipe (for --minutes, the lr following the clock as in
`nas export --minutes`) and, beside the trainer's own EMA (the recipe's decay), keeps
- EMAs with longer horizons (--decays), updated after every optimiser step like the trainer's;
- tail averages: the uniform mean of the raw weights at the end of every epoch in the last
  --tails fraction of the training time (stochastic weight averaging over the annealing tail),
  their BatchNorm statistics recomputed on the training images, as an average of weights has none.
All read-outs come from the same trajectory (same seed, data order and augmentation), so their
differences are not seed noise. Each is scored on the validation split with the recipe's flip TTA
(the test split is not read). Run one process per seed; with --threads 1, two fit this 2-core CPU.

    python benchmarks/weight_averaging.py studies/fmnist-acc5/exports/trial-3-m120 --minutes 80 \\
        --seed 0 --threads 1 --compile
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from nas import data, machine, models, train
from nas.config import DataConfig, Recipe


def recompute_batchnorm(model: nn.Module, images: torch.Tensor, precision: str) -> nn.Module:
    """BatchNorm statistics re-measured over `images` (un-augmented), in the trainer's precision."""
    batches = (images[s:s + train.EVAL_BATCH].float().contiguous(memory_format=torch.channels_last)
               for s in range(0, len(images), train.EVAL_BATCH))
    with train.autocast(images.device, precision):
        update_bn(batches, model)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export", help="an export folder (its arch.json gives network and recipe)")
    parser.add_argument("--minutes", type=float, default=80, help="training time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--decays", default="0.998,0.9995", help="extra EMA decays, comma-separated")
    parser.add_argument("--tails", default="0.5,0.25", help="tail fractions of the training time to average")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--subset", type=float, default=1.0, help="fraction of the training split")
    args = parser.parse_args()
    print(machine.header())
    if args.threads:
        torch.set_num_threads(args.threads)
    saved = json.loads((Path(args.export) / "arch.json").read_text())
    recipe = Recipe.from_dict(saved["recipe"]).replace(seed=args.seed)
    splits = data.load(DataConfig(subset=args.subset), device="cpu")  # validation: the test split is not read
    decays = [float(d) for d in args.decays.split(",") if d]
    tails: dict[float, AveragedModel | None] = {float(t): None for t in args.tails.split(",") if t}
    limit = args.minutes * 60
    print(f"{args.export}: {args.minutes:g} min of training on {len(splits.train.labels):,} images, seed {args.seed}, "
          f"trainer EMA {recipe.ema}, extra EMAs {decays}, tails {list(tails)}; "
          f"validation {len(splits.val.labels):,} images", flush=True)

    model = models.build(saved["arch"], seed=recipe.seed)
    emas: list[train.EMA] = []
    spent = 0.0

    def on_step(epoch: int, step: int, steps: int) -> None:
        if not emas:  # made at the first step: train() has moved the model to its device and layout by now
            emas.extend(train.EMA(model, d) for d in decays)
        for ema in emas:
            ema.update()

    def on_epoch(epoch: int, metrics: dict) -> None:
        nonlocal spent
        spent += metrics["seconds"]
        for fraction in tails:
            if spent >= (1 - fraction) * limit:
                if tails[fraction] is None:
                    tails[fraction] = AveragedModel(model)  # a uniform running mean of the weights
                tails[fraction].update_parameters(model)
        print(f"epoch {epoch}: train acc {metrics['train_acc']:.4f}, {metrics['seconds']:.1f} s, "
              f"{spent / 60:.1f} min", flush=True)

    started = time.perf_counter()
    trainer_ema, result = train.train(model, splits, recipe, "cpu", on_step=on_step, on_epoch=on_epoch,
                                      eval_epochs=set(), compiled=args.compile, length=train.ByClock(limit))
    precision = result.precision
    readouts = {"raw weights": model, f"trainer EMA {recipe.ema}": trainer_ema}
    readouts.update({f"EMA {e.decay}": e.model for e in emas})
    readouts[f"trainer EMA {recipe.ema}, BN recomputed"] = recompute_batchnorm(
        copy.deepcopy(trainer_ema), splits.train.images, precision)
    for fraction, tail in tails.items():
        if tail is not None:  # a weight average has no BatchNorm statistics of its own
            readouts[f"tail average, last {fraction:g} ({int(tail.n_averaged)} epochs), BN recomputed"] = \
                recompute_batchnorm(tail.module, splits.train.images, precision)
    print(f"{len(result.history)} epochs in {result.seconds / 60:.1f} min "
          f"({(time.perf_counter() - started) / 60:.1f} min with scoring); validation accuracy, flip TTA "
          f"{recipe.tta_flip}:", flush=True)
    for name, scored in readouts.items():
        print(f"  {name:>52}: {train.accuracy(scored, splits.val, recipe.tta_flip, precision):.4f}", flush=True)


if __name__ == "__main__":
    main()
