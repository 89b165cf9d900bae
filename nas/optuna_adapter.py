"""Every use of Optuna's private API, in one place: a minor release may change any of it, and
tests/test_optuna_adapter.py fails loudly when one does.

Two steps here are nas's own rather than Optuna's: taking a waiting trial and failing a crashed one.
Optuna reads the trial's state, then writes the new one; SQLite ignores the SELECT ... FOR UPDATE
between them, so two processes could both take one promotion, or both queue a crashed trial again.
Here each is one conditional UPDATE (`WHERE state = <the state read>`), which SQLite and PostgreSQL
both apply atomically: of several processes that try at once, exactly one changes the row.
"""

from __future__ import annotations

import datetime
import json


def storage(study):
    return study._storage


def _backend(study):
    """The RDBStorage under Optuna's cache; None for other storages (in memory: one process)."""
    from optuna.storages import RDBStorage

    inner = getattr(study._storage, "_backend", study._storage)
    return inner if isinstance(inner, RDBStorage) else None


def _swap_state(study, trial_id: int, old, new, reason: str | None = None) -> bool:
    """Set the trial's state to `new` only where it is still `old`, with a fail_reason user attribute in the
    same transaction when given; True for the process that did."""
    import sqlalchemy
    from optuna.storages._rdb.models import TrialModel, TrialUserAttributeModel
    from optuna.trial import TrialState

    trials, attrs = TrialModel.__table__, TrialUserAttributeModel.__table__
    now = datetime.datetime.now()
    values = {"state": new, **({"datetime_start": now} if new == TrialState.RUNNING else {}),
              **({"datetime_complete": now} if new.is_finished() else {})}
    with _backend(study).engine.begin() as connection:
        changed = connection.execute(sqlalchemy.update(trials).where(
            trials.c.trial_id == trial_id, trials.c.state == old).values(**values)).rowcount == 1
        if changed and reason is not None:
            mine = (attrs.c.trial_id == trial_id) & (attrs.c.key == "fail_reason")
            connection.execute(sqlalchemy.delete(attrs).where(mine))
            connection.execute(sqlalchemy.insert(attrs).values(trial_id=trial_id, key="fail_reason",
                                                               value_json=json.dumps(reason)))
    return changed


def take_waiting(study):
    """An optuna.Trial for the first WAITING trial of the study, now RUNNING and this process's alone;
    None when none waits."""
    import optuna
    from optuna.trial import TrialState

    if _backend(study) is None:
        trial_id = study._pop_waiting_trial_id()
    else:
        waiting = study._storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,))
        trial_id = next((t._trial_id for t in waiting
                         if _swap_state(study, t._trial_id, TrialState.WAITING, TrialState.RUNNING)), None)
    return None if trial_id is None else optuna.Trial(study, trial_id)


def fail_running(study, trial, reason: str) -> bool:
    """Fail a RUNNING trial (a FrozenTrial of `study`) with its reason; True only for the one process that
    did, so that only it queues the trial again."""
    from optuna.trial import TrialState

    if _backend(study) is not None:
        failed = _swap_state(study, trial._trial_id, TrialState.RUNNING, TrialState.FAIL, reason)
    else:  # in memory: one process, so reading then writing cannot race
        failed = study._storage.get_trial(trial._trial_id).state == TrialState.RUNNING
        if failed:
            study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
            study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    return failed


def trial_by_number(study, number: int):
    """The study's FrozenTrial numbered `number`."""
    store = study._storage
    return store.get_trial(store.get_trial_id_from_study_id_trial_number(study._study_id, number))


def add_trial(study, template) -> None:
    """Add a trial built with optuna.trial.create_trial, in any state (WAITING queues it)."""
    study._storage.create_new_trial(study._study_id, template_trial=template)


def beat(trial) -> None:
    """Record a running trial's heartbeat now (Optuna beats only inside study.optimize)."""
    trial.storage.record_heartbeat(trial._trial_id)


def set_constraints(trial, values: list[float]) -> None:
    """The list form of a trial's constraints, beside Optuna 5's public Trial.set_constraint() (which writes
    one "constraints:<name>" attribute each): optuna-dashboard 0.21 reads only this list, and without it
    lists infeasible trials as best."""
    trial.storage.set_trial_system_attr(trial._trial_id, "constraints", list(values))


def hypervolume(losses, reference) -> float:
    from optuna._hypervolume import compute_hypervolume

    return float(compute_hypervolume(losses, reference))
