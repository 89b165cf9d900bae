"""How much of two search workers' time goes to training? With and without trainings stepping aside
for a latency timing (nas/cores.py's let_timing_in), one process, the same search twice.

Latency is timed only while nothing trains. Before let_timing_in, a worker that wanted to time its new
trial waited for the other worker's whole training, minutes behind a promotion. Each side runs a
fresh 2-worker search (forked, one thread each, as `--jobs 2`) for the same minutes and seed; the
side that runs first alternates with the seed. Prints, per side, trials trained at rung 0, promotions
trained, and the share of the workers' time spent training. Run it on an otherwise idle machine.

    python benchmarks/worker_utilisation.py --minutes 10 --seed 0
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile

import optuna

from nas import cores, machine
from nas.config import SearchConfig
from nas.pruning import rungs_of
from nas.search import Search
from nas.storage import load_study
from nas.config import parse_count, parse_ms


def worker(config: SearchConfig, index: int, step_aside: bool) -> None:
    import torch

    torch.set_num_threads(1)
    if not step_aside:
        cores.let_timing_in = lambda: None  # the old behaviour: a timing waits for whole trainings
    Search(config, worker=index).run()


def run_side(config: SearchConfig, step_aside: bool) -> dict:
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=worker, args=(config, i, step_aside)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    study = load_study(config.study, config.storage)
    trials = [t for rung in rungs_of(study) for t in rung.get_trials(deepcopy=False)
              if t.datetime_complete is not None]
    spent = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)
    training = sum(t.user_attrs.get("train_seconds") or 0 for t in trials)
    rung0 = [t for t in trials if t.user_attrs.get("rung") == 0 and t.user_attrs.get("kind") == "trained"]
    return {"rung 0 trained": len(rung0), "promotions trained": sum(t.user_attrs.get("rung", 0) > 0 for t in trials),
            "trial seconds": round(spent), "training seconds": round(training),
            "training share": round(training / spent, 3) if spent else 0.0}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(machine.header())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sides = [("waits for whole trainings", False), ("trainings step aside", True)]
    if args.seed % 2:
        sides.reverse()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, step_aside in sides:
            config = SearchConfig(space="resnet_like", study=f"u-{step_aside}", storage=f"sqlite:///{tmp}/u.db",
                                  trials=None, minutes=args.minutes, seed=args.seed, objectives=("accuracy",),
                                  max_params=parse_count("1M", "--max-params"),
                                  max_latency_ms=parse_ms("1ms", "--max-latency"))
            results[name] = run_side(config, step_aside)
            print(f"{name}: {results[name]}", flush=True)
    old, new = (results[name] for name, _ in sorted(sides, key=lambda s: s[1]))
    print(f"step aside / wait: rung-0 trials {new['rung 0 trained'] / max(old['rung 0 trained'], 1):.2f}x, "
          f"training share {new['training share']:.2f} vs {old['training share']:.2f}")


if __name__ == "__main__":
    main()
