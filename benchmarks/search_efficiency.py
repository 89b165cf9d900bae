"""The fair race: validation hypervolume over time for plain Optuna, nas at an older commit, and nas now.

Three sides, same space, data, limits, seed and wall-clock budget, one after another on an idle machine:
  plain  `optuna.create_study(directions=...)` with a seeded TPE sampler; every draw trained at nas's
         rung-0 budget, scored once at the end, no pruning, no check before training (an over-limit
         model is trained, then left out as infeasible);
  start  `nas search` at `--start` (default 2633039, issue 34's starting point), run from a git worktree;
  nas    `nas search` as checked out.
Both nas sides run as a user runs them (`python -m nas search ... --minutes M --jobs 2`), so their
start-up (data, calibration, workers) counts against them; plain's data loading counts too. All three
are scored at one fidelity, rung 0's (`--epochs`, `--subset`): results of promoted trials trained
longer and are left out, so a promotion costs its side time and earns it nothing here. Points past the
budget are dropped. The hypervolume uses a fixed reference and normalisation (nas.report).

Each finished side is appended to `--out` as one JSON line; a rerun skips the sides already there for
this CPU, so a race of hours survives a stopped session. Ratios are computed only between sides run on
the same CPU model.

    python benchmarks/search_efficiency.py --minutes 20 --seeds 0,1,2 --out benchmarks/logs/search-efficiency.jsonl
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna

from nas import cores, data, machine, measure, models, spaces, train
from nas.config import DataConfig, Recipe, SearchConfig, parse_count, parse_ms
from nas.report import hypervolume

ROOT = Path(__file__).resolve().parent.parent
OBJECTIVES = ("accuracy", "macs", "latency")


def run_plain(config: SearchConfig) -> list[list[float]]:
    """[seconds, accuracy, macs, latency] per feasible trial, in the order they finished."""
    start = time.monotonic()
    space = spaces.load(config.space)
    splits = data.load(DataConfig(subset=config.subset))
    limits = config.limits()
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
            found.append([time.monotonic() - start, acc, macs, latency])
        return acc, macs, latency

    study = optuna.create_study(directions=["maximize", "minimize", "minimize"],
                                sampler=optuna.samplers.TPESampler(seed=config.seed))
    study.optimize(objective, timeout=config.minutes * 60 - (time.monotonic() - start))
    return found


def run_nas(tree: Path, config: SearchConfig, args) -> list[list[float]]:
    """`python -m nas search` from `tree` into a fresh study; its rung-0 trained trials, timed from launch."""
    with tempfile.TemporaryDirectory() as folder:
        storage = f"sqlite:///{folder}/race.db"
        command = [sys.executable, "-m", "nas", "search", "--space", config.space, "--study", "race",
                   "--storage", storage, "--objectives", ",".join(OBJECTIVES), "--minutes", str(config.minutes),
                   "--seed", str(config.seed), "--max-params", args.max_params, "--max-latency", args.max_latency,
                   "--epochs", str(config.epochs), "--subset", str(config.subset), "--jobs", "2"]
        env = os.environ | {"PYTHONPATH": str(tree), "NAS_LOCK_DIR": folder}
        launched = datetime.datetime.now()
        run = subprocess.run(command, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if run.returncode:
            raise SystemExit(f"{' '.join(command)} failed ({run.returncode}):\n{run.stderr[-3000:]}")
        study = optuna.load_study(study_name="race", storage=storage)
        found = [[(t.datetime_complete - launched).total_seconds(), *t.values]
                 for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
                 if t.user_attrs.get("rung", 0) == 0 and t.user_attrs.get("kind") == "trained"]
    return sorted(found)


def worktree(commit: str) -> Path:
    tree = Path(tempfile.gettempdir()) / f"nas-{commit}"
    if not tree.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True,
                       stdout=subprocess.DEVNULL)
    return tree


def hv_at(points: list, seconds: float) -> float:
    return hypervolume([p[1:] for p in points if p[0] <= seconds], OBJECTIVES)


def time_to_reach(points: list, target: float, budget: float) -> float | None:
    """Seconds `points` needed to reach hypervolume `target` within `budget`, None if never."""
    return next((p[0] for i, p in enumerate(points) if p[0] <= budget and hv_at(points[:i + 1], budget) >= target),
                None)


def report_seed(seed: int, sides: dict, minutes: float) -> dict:
    """Print one seed's hypervolume by minute; return nas's time to each other side's final as a budget share."""
    budget = minutes * 60
    print(f"seed {seed}: " + ", ".join(f"{n} {sum(p[0] <= budget for p in s['points'])} trials" for n, s in sides.items()))
    print(f"{'minute':>6} " + " ".join(f"{name:>8}" for name in sides))
    for m in range(1, int(minutes) + 1):
        print(f"{m:6d} " + " ".join(f"{hv_at(s['points'], m * 60):8.4f}" for s in sides.values()))
    ratios = {}
    for other in ("plain", "start"):
        if "nas" in sides and other in sides:
            reached = time_to_reach(sides["nas"]["points"], hv_at(sides[other]["points"], budget), budget)
            ratios[other] = None if reached is None else reached / budget
            print(f"  nas reached {other}'s final hypervolume "
                  + ("never" if reached is None else f"after {reached / 60:.1f} min = {reached / budget:.2f} of the budget"))
    return ratios


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="resnet_like")
    parser.add_argument("--minutes", type=float, default=20, help="wall-clock budget of each side")
    parser.add_argument("--max-params", default="1M")
    parser.add_argument("--max-latency", default="1ms")
    parser.add_argument("--seeds", default="0,1,2", help="one race per seed")
    parser.add_argument("--start", default="2633039", help="the older commit raced as side 'start'")
    parser.add_argument("--sides", default="plain,start,nas")
    parser.add_argument("--out", default="benchmarks/logs/search-efficiency.jsonl", help="results, appended")
    args = parser.parse_args()
    print(machine.header(), flush=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cpu, out = machine.cpu_model(), Path(args.out)
    done = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    commits = {"plain": "optuna " + optuna.__version__, "start": args.start, "nas": head.stdout.strip()}
    ratios = []
    for seed in (int(s) for s in args.seeds.split(",")):
        config = SearchConfig(space=args.space, study="race", storage="sqlite:///:memory:", trials=None,
                              objectives=OBJECTIVES, minutes=args.minutes, seed=seed, max_params=parse_count(args.max_params, "--max-params"),
                              max_latency_ms=parse_ms(args.max_latency, "--max-latency"))
        names = args.sides.split(",")
        order = names[seed % len(names):] + names[:seed % len(names)]  # who runs first rotates with the seed
        for name in order:
            if any(r["seed"] == seed and r["side"] == name and r["cpu"] == cpu and r["minutes"] == args.minutes
                   for r in done):
                continue
            print(f"seed {seed}: running {name} ({commits[name]}) for {args.minutes:g} min", flush=True)
            points = run_plain(config) if name == "plain" else run_nas(
                worktree(args.start) if name == "start" else ROOT, config, args)
            row = {"seed": seed, "side": name, "commit": commits[name], "cpu": cpu, "minutes": args.minutes,
                   "space": args.space, "rung0": [config.epochs, config.subset],
                   "when": datetime.datetime.now().isoformat(timespec="seconds"), "points": points}
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            done.append(row)
        sides = {r["side"]: r for r in done if r["seed"] == seed and r["cpu"] == cpu and r["minutes"] == args.minutes}
        ratios.append(report_seed(seed, {n: sides[n] for n in names if n in sides}, args.minutes))
    for other in ("plain", "start"):
        shares = [r.get(other) for r in ratios]
        print(f"nas's time to {other}'s final hypervolume, as a share of the budget, per seed: "
              + ", ".join("never" if s is None else f"{s:.2f}" for s in shares))


if __name__ == "__main__":
    main()
