"""Which recipe change is worth having at export length? One export's network, several recipes, several seeds.

Trains the network of an export folder with its recipe ("base") and with each --variant (recipe keys
changed), once per seed, on the training split, and scores the validation split (the test split is
not read). Runs --parallel trainings at once, each in its own process: on a GPU they share the card
(with --minutes, each gets a similar share and prints the epochs it managed); on a CPU run one at a
time. Prints one row per run and the mean and spread per variant.

    python benchmarks/recipe_variants.py studies/fmnist-acc5/exports/trial-3-m120 --epochs 220 --seeds 0,1 \\
        --variant cutmix augment.cutmix=0.5 --variant ls0.2 label_smoothing=0.2 --device cuda --parallel 6

A variant is a name and KEY=VALUE pairs: recipe keys (dots for nested ones, e.g. augment.cutout=12),
values as JSON (else text); `arch=FILE` trains another network (a JSON arch, or an export's arch.json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from nas import data, machine, models, train
from nas.config import DataConfig, Recipe


def parse_variant(words: list[str]) -> dict:
    name, *pairs = words
    changes = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            changes[key] = json.loads(value)
        except json.JSONDecodeError:
            changes[key] = value
    return {"name": name, "changes": changes}


def apply_changes(saved: dict, changes: dict) -> tuple[dict, Recipe]:
    """(arch, recipe) of the export with a variant's changes."""
    arch, recipe = saved["arch"], json.loads(json.dumps(saved["recipe"]))
    for key, value in changes.items():
        if key == "arch":
            loaded = json.loads(Path(value).read_text())
            arch = loaded.get("arch", loaded)
            continue
        *path, last = key.split(".")
        node = recipe
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return arch, Recipe.from_dict(recipe)


def run_one(spec: dict) -> dict:
    """One training (in a child process): its row, and per-epoch lines in spec['log']."""
    torch.set_num_threads(spec["threads"])
    arch, recipe = apply_changes(spec["saved"], spec["changes"])
    recipe = recipe.replace(seed=spec["seed"], epochs=spec["epochs"] or recipe.epochs)
    splits = data.load(DataConfig(subset=spec["subset"]), device=spec["device"])  # validation, never test
    log = open(spec["log"], "w", buffering=1)

    def on_epoch(epoch: int, m: dict) -> None:
        log.write(f"epoch {epoch}: loss {m['train_loss']:.4f} train acc {m['train_acc']:.4f} {m['seconds']:.1f} s\n")

    _, result = train.train(models.build(arch, seed=recipe.seed), splits, recipe, spec["device"],
                            on_epoch=on_epoch, eval_epochs=set(), compiled=spec["compile"],
                            length=train.ByClock(spec["minutes"] * 60) if spec["minutes"] else None)
    seconds = [h["seconds"] for h in result.history]
    return {"variant": spec["name"], "seed": spec["seed"], "status": result.status,
            "epochs": len(result.history), "s_per_epoch": statistics.median(seconds),
            "train_acc": result.history[-1]["train_acc"], "val_acc": result.val_acc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export", nargs="?", help="an export folder (its arch.json gives network and recipe)")
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar="NAME KEY=VALUE",
                        help="a recipe variant (repeatable); 'base' (the export's recipe) always runs")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds")
    parser.add_argument("--epochs", type=int, default=0, help="epochs of every run (0 = the recipe's)")
    parser.add_argument("--minutes", type=float, default=0, help="train each run for this long instead (CPU)")
    parser.add_argument("--subset", type=float, default=1.0, help="fraction of the training split")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--parallel", type=int, default=1, help="trainings at once")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--logs", default="benchmarks/results/recipe_variants", help="folder of per-run logs")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child's spec, as JSON
    args = parser.parse_args()
    print(machine.header())
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))), flush=True)
        return

    saved = json.loads((Path(args.export) / "arch.json").read_text())
    variants = [{"name": "base", "changes": {}}] + [parse_variant(v) for v in args.variant]
    for v in variants:
        apply_changes(saved, v["changes"])  # a bad key fails here, before anything trains
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // args.parallel)
    specs = [{**v, "saved": saved, "seed": int(s), "epochs": args.epochs, "minutes": args.minutes,
              "subset": args.subset, "device": args.device, "compile": args.compile, "threads": threads,
              "log": str(logs / f"{v['name']}-seed{s}.log")}
             for s in args.seeds.split(",") for v in variants]
    print(f"{args.export}: {len(variants)} recipes x {len(args.seeds.split(','))} seeds, "
          f"{args.epochs or 'recipe'} epochs{f', {args.minutes:g} min each' if args.minutes else ''}, "
          f"{args.parallel} at a time on {args.device}; validation accuracy", flush=True)
    pending, running, rows = list(specs), [], []
    started = time.perf_counter()
    while pending or running:
        while pending and len(running) < args.parallel:
            spec = pending.pop(0)
            running.append((spec, subprocess.Popen([sys.executable, __file__, "--one", json.dumps(spec)],
                                                   stdout=subprocess.PIPE, text=True)))
        time.sleep(2)
        for spec, proc in [r for r in running if r[1].poll() is not None]:
            running.remove((spec, proc))
            out = proc.stdout.read().strip().splitlines()
            row = json.loads(out[-1]) if proc.returncode == 0 and out else \
                {"variant": spec["name"], "seed": spec["seed"], "status": f"failed ({proc.returncode})"}
            rows.append(row)
            print(f"{row['variant']:>16} seed {row['seed']}: " + (
                f"val acc {row['val_acc']:.4f}  train acc {row['train_acc']:.4f}  {row['epochs']} epochs  "
                f"{row['s_per_epoch']:.1f} s/epoch" if "val_acc" in row else row["status"])
                + f"  [{(time.perf_counter() - started) / 60:.1f} min]", flush=True)
    print("variant: mean val acc (min-max) over seeds")
    for v in variants:
        accs = [r["val_acc"] for r in rows if r["variant"] == v["name"] and r.get("val_acc") is not None]
        if accs:
            print(f"{v['name']:>16}: {statistics.mean(accs):.4f} ({min(accs):.4f}-{max(accs):.4f}), "
                  f"{len(accs)} seeds  {json.dumps(v['changes'])}")


if __name__ == "__main__":
    main()
