"""Crashed and killed workers: which process owns a trial, finding trials whose worker died, and queueing
their parameters again (a promotion back to its rung), up to a limit.

A trial's owner is host:pid:start-time, so a local worker's death is seen at once; another machine's
worker is taken for dead once its heartbeat is GRACE seconds old (Optuna's stale-trial check).
"""

from __future__ import annotations

import datetime
import os
import socket
import time
from pathlib import Path

from nas import optuna_adapter, records
from nas.records import Kind

HEARTBEAT, GRACE = 10, 120  # seconds: a running trial's heartbeat interval; silence after which it is failed
CRASH_RETRIES = 2  # times a crashed trial's parameters are queued again: a model that kills its worker must
# not kill every worker in turn, and one unlucky crash must not lose a promotion
OWNERLESS_GRACE = 30  # seconds a RUNNING trial may have no owner: only the moment between its creation and
# the owner's note, unless its worker was killed right then


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot) from /proc: with the pid, it names one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def this_worker() -> str:
    """host:pid:start-time, stored on each trial: which process ran it, and whether that process still lives."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def worker_is_gone(owner: str | None) -> bool:
    """True only when the owner ran on this machine and that very process no longer exists."""
    if not owner or owner.count(":") < 2:
        return False
    host, pid, started = owner.rsplit(":", 2)
    return host == socket.gethostname() and _start_time(int(pid)) != started


def requeue(study, trial, reason: str, always: bool = False) -> bool:
    """Note why a trial failed and queue its parameters as a new trial: up to CRASH_RETRIES times in a row
    for a crash, every time for a Ctrl-C (`always`). A promotion goes back to its rung's queue, where the
    Ladder picks it up before anything else. False when the crash limit is reached: nothing queued."""
    from nas.pruning import Ladder

    before = records.stored(trial)
    crashes = (before.crashes or 0) + (not always)
    if crashes > CRASH_RETRIES:
        return False
    note = {"retry_of": trial.number, "retry_reason": reason[:1000], "crashes": crashes}
    if before.root is not None:
        Ladder.queue(study, trial, **note)
    elif trial.params and before.preset is None:  # presets are run again by name
        study.enqueue_trial(trial.params, user_attrs=records.attrs(**note))
    return True


def test_hook(point: str) -> None:
    """NAS_TEST_HOOK=point:path stops the worker at `point` (the test writes no sleep): it creates `path`, then
    waits to be killed. Tests use it to kill a worker at an exact moment."""
    hook = os.environ.get("NAS_TEST_HOOK", "")
    if hook.partition(":")[0] == point:
        Path(hook.partition(":")[2]).touch()
        while True:
            time.sleep(1)


def own(trial) -> None:
    """Note which process runs the trial, and beat: from here on recovery can tell whether it died."""
    records.write(trial, worker=this_worker())
    optuna_adapter.beat(trial)


def _gone(trial) -> str | None:
    """Why a RUNNING trial is taken for dead: its worker's process is gone, or it never got an owner."""
    owner = records.stored(trial).worker
    if worker_is_gone(owner):
        return f"its worker ({owner}) died"
    started = trial.datetime_start
    if owner is None and started and (datetime.datetime.now() - started).total_seconds() > OWNERLESS_GRACE:
        return "its worker died as it created it"
    return None


def recover_crashed(study) -> list[tuple[int, bool]]:
    """Fail the trials whose worker died: on this machine at once (its process is gone), anywhere once they
    have had no owner for OWNERLESS_GRACE seconds, on other machines once their heartbeat is GRACE seconds
    old. Their parameters run again as new trials. Returns (number, queued again?) for each."""
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    dead = [(t, _gone(t)) for t in running] + [(t, "its worker stopped beating")
                                               for t in optuna_adapter.stale_running(study)]
    failed = []
    for t, reason in dead:
        # of several workers recovering at once, the one that failed it queues it again
        if reason and optuna_adapter.fail_running(study, t, records.attrs(fail_reason=reason, kind=Kind.FAILED)):
            failed.append((t.number, requeue(study, t, reason)))
    return failed


