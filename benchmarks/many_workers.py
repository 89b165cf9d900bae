"""Load test: many `nas search` workers on one PostgreSQL study. Not a timed test.

Starts N worker processes (default 8) of the real command on one study, each running very cheap trials
(the tests' tiny space, one epoch on a few hundred images), and prints trials per minute, trials lost
(left running or failed) or run twice, the overshoot past --trials, and the storage errors the workers met.

    bash .ci/postgres                                   # a server on loopback (as root)
    python benchmarks/many_workers.py --workers 8 --trials 200
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
from optuna.trial import TrialState

from nas import machine, results, storage

TINY = str(Path(__file__).resolve().parent.parent / "tests" / "spaces" / "tiny.yaml")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", default=os.environ.get("NAS_TEST_POSTGRES",
                                                            "postgresql://nas:nas@127.0.0.1:5432/nas_test"))
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    print(machine.header())

    study = f"load-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "nas", "search", "--space", TINY, "--study", study, "--storage", args.storage,
           "--trials", str(args.trials), "--epochs", "1", "--subset", "0.005", "--val-size", "500",
           "--objectives", "accuracy,params", "--max-params", "none", "--format", "json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # N workers share the cores; none should oversubscribe
    start = time.monotonic()
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(args.workers)]
    outputs = [p.communicate()[1] for p in procs]
    minutes = (time.monotonic() - start) / 60

    s = optuna.load_study(study_name=study, storage=storage.open_storage(args.storage))
    c = results.counts(s)
    numbers = collections.Counter(t.number for t in s.trials)
    owners = collections.Counter(t.user_attrs.get("worker") for t in s.trials if t.user_attrs.get("kind") == "trained")
    lost = [t.number for t in s.trials if t.state in (TrialState.RUNNING, TrialState.FAIL)]
    errors = collections.Counter(m for out in outputs for m in re.findall(r"\b(\w+(?:Error|Exception))\b", out))
    print(f"{args.workers} workers, study {study} on {storage.redact(args.storage)}")
    print(f"worker exit codes: {[p.returncode for p in procs]}")
    print(f"trained trials: {c['trained']} (asked for {args.trials}; {c['trained'] - args.trials} over, "
          f"at most {args.workers - 1} expected) in {minutes:.1f} min -> {c['trained'] / minutes:.1f} trials/min")
    print(f"trials by worker: {sorted(owners.values(), reverse=True)}")
    print(f"lost (running or failed at the end): {len(lost)} {lost[:10]}")
    print(f"run twice (a trial number seen twice): {sum(n > 1 for n in numbers.values())}")
    print(f"storage errors in the workers' output: {dict(errors) or 0}")
    optuna.delete_study(study_name=study, storage=storage.open_storage(args.storage))


if __name__ == "__main__":
    main()
