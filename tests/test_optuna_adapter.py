"""nas/optuna_adapter.py: each private Optuna call it makes, and claims that cannot race."""

import multiprocessing

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState, create_trial
from test_workers import POSTGRES

from nas import optuna_adapter, storage

WAITING = 60  # trials queued for the racing processes to take
RACERS = 4


def queued_study(url: str, name: str):
    study = optuna.create_study(study_name=name, storage=storage.open_storage(url))
    for n in range(WAITING):
        optuna_adapter.add_trial(study, create_trial(state=TrialState.WAITING, user_attrs={"n": n}))
    return study


def take_all(url: str, name: str, barrier, out) -> None:
    """One racing process: take waiting trials until none is left; report their numbers."""
    study = optuna.load_study(study_name=name, storage=storage.open_storage(url))
    barrier.wait()  # all start at the same moment
    taken = []
    while (trial := optuna_adapter.take_waiting(study)) is not None:
        taken.append(trial.number)
    out.put(taken)


def fail_all(url: str, name: str, barrier, out) -> None:
    """One racing process: fail every running trial; report those this process failed."""
    study = optuna.load_study(study_name=name, storage=storage.open_storage(url))
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    barrier.wait()
    out.put([t.number for t in running if optuna_adapter.fail_running(study, t, {"fail_reason": "its worker died"})])


def race(target, url: str, name: str) -> list[list[int]]:
    context = multiprocessing.get_context("fork")
    barrier, out = context.Barrier(RACERS), context.Queue()
    procs = [context.Process(target=target, args=(url, name, barrier, out)) for _ in range(RACERS)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    return f"sqlite:///{tmp_path}/race.db" if request.param == "sqlite" else POSTGRES


def test_racing_processes_take_each_waiting_trial_exactly_once_then_fail_each_once(url, tmp_path):
    name = f"race-{tmp_path.name}"
    try:
        queued_study(url, name)
        taken = race(take_all, url, name)
        numbers = [n for each in taken for n in each]
        assert sorted(numbers) == list(range(WAITING))  # every one taken, none twice
        assert sum(1 for each in taken if each) >= 2, "the processes did not race"
        failed = race(fail_all, url, name)  # all RACERS see every trial RUNNING and try to fail it
        assert sorted(n for each in failed for n in each) == list(range(WAITING))
        study = optuna.load_study(study_name=name, storage=url)
        assert all(t.state == TrialState.FAIL and t.user_attrs["fail_reason"] == "its worker died"
                   for t in study.trials)
    finally:
        optuna.delete_study(study_name=name, storage=url)


def test_a_trial_finished_meanwhile_is_neither_taken_nor_failed(tmp_path):
    study = queued_study(f"sqlite:///{tmp_path}/s.db", "s")
    first = optuna_adapter.take_waiting(study)
    assert first.number == 0 and study.trials[0].state == TrialState.RUNNING
    study.tell(first, 0.5)
    assert not optuna_adapter.fail_running(study, study.trials[0], {"fail_reason": "late"})
    assert study.trials[0].state == TrialState.COMPLETE and "fail_reason" not in study.trials[0].user_attrs
    assert optuna_adapter.take_waiting(study).number == 1  # the next one waiting


def test_in_memory_storage_takes_and_fails_as_well():
    study = optuna.create_study()
    study.enqueue_trial({})
    trial = optuna_adapter.take_waiting(study)
    assert trial.number == 0 and optuna_adapter.take_waiting(study) is None
    assert optuna_adapter.fail_running(study, study.trials[0], {"fail_reason": "gone"})
    assert study.trials[0].state == TrialState.FAIL and study.trials[0].user_attrs == {"fail_reason": "gone"}
    assert not optuna_adapter.fail_running(study, study.trials[0], {"fail_reason": "x"})


def test_the_other_private_calls_still_mean_what_nas_reads(tmp_path):
    study = optuna.create_study(study_name="p", storage=storage.open_storage(f"sqlite:///{tmp_path}/p.db"))
    assert optuna_adapter.storage(study).get_study_id_from_name("p") is not None
    optuna_adapter.add_trial(study, create_trial(state=TrialState.COMPLETE, value=0.25, user_attrs={"k": 1}))
    assert optuna_adapter.trial_by_number(study, 0).user_attrs == {"k": 1}
    trial = study.ask()
    optuna_adapter.beat(trial)
    beats = optuna_adapter.storage(study)._backend.engine.connect().exec_driver_sql(
        "SELECT trial_id FROM trial_heartbeats").fetchall()
    assert beats == [(trial._trial_id,)]  # what Optuna's stale-trial check reads
    optuna_adapter.record_constraints(trial, {"params": 1.0, "latency": -2.0})
    study.tell(trial, 0.5)
    # optuna-dashboard 0.21 marks a trial infeasible from this list alone
    assert study.trials[1].system_attrs["constraints"] == [1.0, -2.0]
    assert optuna_adapter.named_constraints(study.trials[1]) == {"params": 1.0, "latency": -2.0}
    # two points in the unit square: 1 - the union of their dominated boxes
    assert optuna_adapter.hypervolume(np.array([[0.5, 0.5], [0.25, 0.75]]), np.ones(2)) == pytest.approx(0.3125)
