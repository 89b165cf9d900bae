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


def _swap_state(study, trial_id: int, old, new, notes: dict | None = None) -> bool:
    """Set the trial's state to `new` only where it is still `old`, with the user attributes `notes` in the
    same transaction; True for the process that did."""
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
        for key, value in (notes or {}).items() if changed else ():
            connection.execute(sqlalchemy.delete(attrs).where((attrs.c.trial_id == trial_id) & (attrs.c.key == key)))
            connection.execute(sqlalchemy.insert(attrs).values(trial_id=trial_id, key=key, value_json=json.dumps(value)))
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


def fail_running(study, trial, notes: dict) -> bool:
    """Fail a RUNNING trial (a FrozenTrial of `study`), writing the user attributes `notes` (its reason);
    True only for the one process that did, so that only it queues the trial again."""
    from optuna.trial import TrialState

    if _backend(study) is not None:
        failed = _swap_state(study, trial._trial_id, TrialState.RUNNING, TrialState.FAIL, notes)
    else:  # in memory: one process, so reading then writing cannot race
        failed = study._storage.get_trial(trial._trial_id).state == TrialState.RUNNING
        for key, value in notes.items() if failed else ():
            study._storage.set_trial_user_attr(trial._trial_id, key, value)
        if failed:
            study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    return failed


def stale_running(study) -> list:
    """The RUNNING trials (FrozenTrials) whose heartbeat is older than the storage's grace period: their worker
    stopped beating, killed or cut off on another machine. Optuna's own fail_stale_trials fails them with a
    read-then-write, which two recovering workers can both pass on SQLite; nas fails them with fail_running."""
    backend = _backend(study)
    if backend is None or backend.heartbeat_interval is None:
        return []
    return [study._storage.get_trial(trial_id) for trial_id in backend._get_stale_trial_ids(study._study_id)]


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


def record_constraints(trial, constraints: dict[str, float]) -> None:
    """Optuna 5's named constraints (public Trial.set_constraint(), one "constraints:<name>" attribute each),
    plus the older list form: optuna-dashboard 0.21 reads only the list, and without it lists infeasible
    trials as best. Optuna reads both (the list's entries appear as "0", "1", ...)."""
    for name, value in constraints.items():
        trial.set_constraint(name, value)
    if constraints:
        trial.storage.set_trial_system_attr(trial._trial_id, "constraints", list(constraints.values()))


def named_constraints(t) -> dict[str, float]:
    """A FrozenTrial's constraints by name, without the list form's copies ("0", "1", ...)."""
    return {k: v for k, v in t.constraints.items() if not k.isdigit()}


def hypervolume(losses, reference) -> float:
    from optuna._hypervolume import compute_hypervolume

    return float(compute_hypervolume(losses, reference))
