"""Do racing workers take a queued trial twice? Optuna's own pop (read, then write) against nas's conditional
UPDATE (nas/optuna_adapter.take_waiting), on a fresh SQLite file per round: 4 processes released at once
take 60 queued trials until none is left. Prints the takes, and how many took a trial another had taken.

    python benchmarks/claim_race.py --rounds 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile

import optuna
from optuna.trial import TrialState, create_trial

from nas import machine, optuna_adapter, storage

QUEUED, RACERS = 60, 4


def optuna_pop(study):
    trial_id = study._pop_waiting_trial_id()
    return None if trial_id is None else optuna.Trial(study, trial_id)


def racer(take, url: str, barrier, out) -> None:
    study = optuna.load_study(study_name="race", storage=storage.open_storage(url))
    barrier.wait()
    taken = []
    while (trial := take(study)) is not None:
        taken.append(trial.number)
    out.put(taken)


def one_round(take) -> list[int]:
    url = f"sqlite:///{tempfile.mkdtemp()}/race.db"
    study = optuna.create_study(study_name="race", storage=storage.open_storage(url))
    for _ in range(QUEUED):
        optuna_adapter.add_trial(study, create_trial(state=TrialState.WAITING))
    context = multiprocessing.get_context("fork")
    barrier, out = context.Barrier(RACERS), context.Queue()
    procs = [context.Process(target=racer, args=(take, url, barrier, out)) for _ in range(RACERS)]
    for p in procs:
        p.start()
    taken = [n for _ in procs for n in out.get(timeout=300)]
    for p in procs:
        p.join()
    return taken


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    print(machine.header())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name, take in (("optuna's pop", optuna_pop), ("nas's conditional UPDATE", optuna_adapter.take_waiting)):
        taken = [n for _ in range(args.rounds) for n in one_round(take)]
        print(f"{name}: {args.rounds} rounds of {QUEUED} queued trials, {RACERS} processes: "
              f"{len(taken)} takes of {len(set(taken))} trials ({len(taken) - len(set(taken))} duplicate takes)")


if __name__ == "__main__":
    main()
