"""Does the search rank architectures the way training at export length does?

Takes architectures from a real study (every one its top rung reached, then rung-0 trials spread over
the accuracy ranking, plus the space's presets) and gives each three validation scores:
(a) rung 0, the old single fidelity (4 epochs on 10,000 images), (b) the study's top rung
(22 epochs on 50,000 by default), (c) a long training (60 epochs on the 50,000 training images).
Scores the study already holds are reused; the rest are trained here. Prints the Spearman rank
correlation of (a) and of (b) against (c), and whether (c)'s winner is first / in the top 3 of each.
Goals (issue 26): Spearman at the top rung >= 0.8, and the long winner among the top rung's top 3.

Hours of work: every result is appended to a JSON-lines file as it finishes, and a long training
checkpoints each epoch, so the same command resumes where it stopped.

    python benchmarks/ranking_at_length.py --study p26-acc --n 8 --long-epochs 60
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import optuna

from nas import data, export, machine, measure, models, spaces, storage, train
from nas.config import Budget, DataConfig, Recipe
from nas.pruning import rungs_of
from nas.records import TrialRecord

RESULTS = Path(__file__).parent / "results" / "ranking_at_length"


def spearman(a, b) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def candidates(study, n: int) -> list[dict]:
    """Architectures to compare: the top rung's, then rung 0's spread over its ranking, then the presets."""
    rungs = rungs_of(study)
    scores = [{} for _ in rungs]  # per rung: architecture number -> validation accuracy there
    records = {}
    for k, rung in enumerate(rungs):
        for t in rung.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            r = TrialRecord.of(t, k)
            if r.trained and r.feasible:
                scores[k][r.number] = r.accuracy
                records.setdefault(r.number, r)
    top = max(k for k in range(len(rungs)) if scores[k])
    chosen = sorted(scores[top], key=lambda m: -scores[top][m])
    ranked0 = sorted(scores[0], key=lambda m: -scores[0][m])
    for i in np.linspace(0, len(ranked0) - 1, max(n - len(chosen), 0) + len(chosen)).round().astype(int):
        if len(chosen) < n and ranked0[i] not in chosen:
            chosen.append(ranked0[i])
    picked = [{"name": f"trial {m}", "arch": records[m].arch, "recipe": records[m].recipe,
               "record": records[m], "rung0": scores[0].get(m), "top": scores[-1].get(m) if len(rungs) > 1 else None}
              for m in chosen]
    space = spaces.load(study.user_attrs["nas"]["space"])
    max_params = study.user_attrs["nas"]["limits"].get("params", float("inf"))
    for name, preset in space.presets.items():
        fits = measure.count_params(models.build(preset["arch"])) <= max_params  # latency is not re-timed here
        if fits and not any(p["record"] and p["record"].preset == name for p in picked):
            recipe = {**Recipe(seed=0).to_dict(), **(preset.get("recipe") or {})}
            picked.append({"name": f"preset {name}", "arch": preset["arch"], "recipe": recipe, "record": None,
                           "rung0": None, "top": None})
    return picked


def score(arch: dict, recipe: dict, budget: Budget, settings: dict, augment: str, mirror: bool,
          checkpoint: Path | None = None) -> float:
    """Validation accuracy of `arch` trained with its recipe for `budget` (the one-cycle fitted to it), with
    the augmentation as the search drew it ("search") or as an export would use it ("final")."""
    fidelity = settings["fidelity"]
    splits = data.load(DataConfig(dataset=fidelity["dataset"], val_size=fidelity["val_size"],
                                  split_seed=fidelity["split_seed"], subset=budget.subset))
    r = Recipe.from_dict(recipe)
    r = r.replace(epochs=budget.epochs, augment=export.final_augment(r.augment, augment, mirror))
    _, result = train.train(models.build(arch, seed=r.seed), splits, r, "auto", checkpoint=checkpoint,
                            eval_epochs={budget.epochs})
    return result.val_acc


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", required=True)
    parser.add_argument("--storage", help="default sqlite:///studies/<study>.db")
    parser.add_argument("--n", type=int, default=8, help="architectures from the study (presets come on top)")
    parser.add_argument("--long-epochs", type=int, default=60, help="the long training, on all 50,000 images")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    print(machine.header())
    study = storage.load_study(args.study, args.storage or storage.default_storage(args.study))
    settings = study.user_attrs["nas"]
    budgets = {"rung0": Budget(settings["fidelity"]["epochs"], settings["fidelity"]["subset"]),
               "top": Budget(**settings["promotions"][-1]) if settings.get("promotions") else None,
               "long": Budget(args.long_epochs, 1.0)}
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / f"{args.study}.jsonl"
    done = {(d["name"], d["what"]): d["val_acc"] for d in map(json.loads, log.read_text().splitlines())} \
        if log.exists() else {}
    rows = []
    for c in candidates(study, args.n):
        row = {"name": c["name"]}
        for what, budget in budgets.items():
            known = c.get(what) if what != "long" else None
            if (c["name"], what) not in done and known is None and budget is not None:
                folder = args.out / "checkpoints" / f"{args.study}-{c['name'].replace(' ', '-')}-{what}"
                mirror = export.mirroring_allowed(c["record"]) if c["record"] else True  # presets: their own flip
                acc = score(c["arch"], c["recipe"], budget, settings, "final" if what == "long" else "search",
                            mirror, checkpoint=folder)
                with log.open("a") as f:
                    f.write(json.dumps({"name": c["name"], "what": what, "val_acc": acc, "budget": str(budget),
                                        "summary": models.summary(c["arch"])}) + "\n")
                done[(c["name"], what)] = acc
            row[what] = known if known is not None else done.get((c["name"], what))
        print(json.dumps(row), flush=True)
        rows.append(row)
    report(rows)


def report(rows: list[dict]) -> None:
    long = np.array([r["long"] for r in rows])
    print(f"{'architecture':<28} {'rung 0':>8} {'top rung':>9} {'long':>8}")
    for r in sorted(rows, key=lambda r: -r["long"]):
        print(f"{r['name']:<28} {r['rung0']:8.4f} {r['top'] if r['top'] is not None else float('nan'):9.4f} "
              f"{r['long']:8.4f}")
    winner = int(np.argmax(long))
    for what in ("rung0", "top"):
        if any(r[what] is None for r in rows):
            continue
        scores = np.array([r[what] for r in rows])
        top3 = set(np.argsort(-scores)[:3])
        print(f"{what}: Spearman {spearman(scores, long):.2f} against the long training; its first is the long "
              f"winner: {int(np.argmax(scores)) == winner}; long winner in its top 3: {winner in top3}")


if __name__ == "__main__":
    main()
