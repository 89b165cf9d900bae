"""The Ladder (nas/pruning.py): promotions between rungs through a real SQLite storage."""

import datetime

import optuna
import pytest
import sqlalchemy
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial

from nas import optuna_adapter, records, storage
from nas.config import Budget, SearchConfig, parse_budgets
from nas.errors import UsageError
from nas.pruning import Ladder, rung_study_name, rungs_of
from nas.recovery import CRASH_RETRIES, OWNERLESS_GRACE, own, recover_crashed, requeue

BUDGETS = (Budget(2, 0.5), Budget(4, 1.0))


def rung0(tmp_path, results):
    """Study 0 with finished trials: (accuracy, MACs) each, or None for one pruned."""
    study = optuna.create_study(study_name="p", storage=f"sqlite:///{tmp_path}/p.db",
                                directions=["maximize", "minimize"])
    for i, r in enumerate(results):
        common = dict(params={"x": i}, distributions={"x": IntDistribution(0, 100)}, user_attrs={"kind": "trained"})
        study.add_trial(create_trial(state=TrialState.PRUNED, **common) if r is None else
                        create_trial(values=list(r), **common))
    return study


def test_the_top_third_of_completed_trials_is_promoted_each_once(tmp_path):
    # 6 completed and 3 pruned with eta 3: the pruned ones were judged at their pruning epoch, so two of the
    # six go on: by rank then accuracy, 0 (rank 0, most accurate), then 2 (rank 0, cheapest)
    study = rung0(tmp_path, [(0.9, 50), (0.8, 60), (0.7, 10), (0.6, 70), (0.5, 80), (0.4, 90), None, None, None])
    ladder = Ladder(study, BUDGETS, eta=3)
    claims = [ladder.claim() for _ in range(3)]
    assert [c.root.number for c in claims[:2]] == [0, 2] and claims[2] is None
    assert all(c.rung == 1 and c.trial.params == {"x": c.root.number} for c in claims[:2])
    assert [s.study_name for s in rungs_of(study)] == ["p", "p/rung-1", "p/rung-2"]


def test_no_more_than_a_third_is_promoted_in_all_when_the_top_changes(tmp_path):
    study = rung0(tmp_path, [(0.5, 50), (0.4, 50), (0.3, 50)])
    ladder = Ladder(study, BUDGETS, eta=3)
    assert ladder.claim().root.number == 0
    for acc in (0.9, 0.8, 0.7):  # three better ones arrive: 6 results hold two promotions, not three
        study.add_trial(create_trial(values=[acc, 50], params={"x": 9}, distributions={"x": IntDistribution(0, 100)},
                                     user_attrs={"kind": "trained"}))
    assert ladder.claim().root.number == 3 and ladder.claim() is None


def test_the_top_rung_by_the_clock_trains_as_long_as_its_budget_takes_at_rung_0s_median_speed(tmp_path):
    def measured(speed):
        study.add_trial(create_trial(values=[0.6, 5], params={"x": 7}, distributions={"x": IntDistribution(0, 100)},
                                     user_attrs={"kind": "trained", "train_images_per_second": speed}))

    study = rung0(tmp_path, [(0.9, 50)])
    ladder = Ladder(study, BUDGETS, eta=3)
    assert ladder.clock_seconds(2, BUDGETS[1], 1_000) is None  # no speed measured yet: by its epochs
    for speed in (100.0, 400.0, 200.0):
        measured(speed)
    # 4 epochs on all 1,000 images at the median 200 images/s; set once, the rung's own from then on
    assert ladder.clock_seconds(2, BUDGETS[1], 1_000) == 20.0
    measured(1e6)
    assert ladder.clock_seconds(2, BUDGETS[1], 1_000) == 20.0
    assert records.rung_budget(ladder.studies[2]) == {"rung": 2, "of": "p", "epochs": 4, "subset": 1.0,
                                                      "seconds": 20.0}


def test_the_top_rung_by_the_clock_takes_the_calibrated_speed_first_and_keeps_it(tmp_path):
    study = rung0(tmp_path, [(0.9, 50)])
    ladder = Ladder(study, BUDGETS, eta=3)
    # 4 epochs on all 1,000 images at the 500 images/s the search's estimate timed, before any trial
    assert ladder.clock_seconds(2, BUDGETS[1], 1_000, speed=500.0) == 8.0
    assert ladder.clock_seconds(2, BUDGETS[1], 1_000, speed=50.0) == 8.0  # resumed elsewhere: the rung's own
    assert ladder.clock_seconds(2, BUDGETS[1], 1_000) == 8.0


def test_the_highest_rung_is_served_first(tmp_path):
    study = rung0(tmp_path, [(0.9, 50), (0.8, 50), (0.7, 50)] * 3)
    ladder = Ladder(study, BUDGETS, eta=3)
    for claim, acc in zip([ladder.claim() for _ in range(3)], (0.95, 0.85, 0.75)):
        claim.trial.set_user_attr("kind", "trained")  # as Search.promote() records it
        claim.trial.study.tell(claim.trial, [acc, 50])
    nxt = ladder.claim()  # rung 1 holds 3 results: its best goes to rung 2 before anything else
    assert nxt.rung == 2 and nxt.root.number == 0 and nxt.trial.study.study_name == rung_study_name("p", 2)


def test_two_workers_promoting_one_trial_at_once_train_it_once(tmp_path):
    study = rung0(tmp_path, [(0.9, 50), (0.8, 60), (0.7, 70)])
    first, second = Ladder(study, BUDGETS, eta=3), Ladder(study, BUDGETS, eta=3)
    root = study.trials[0]
    for _ in range(2):  # both found trial 0 due and queued it before either claimed
        Ladder.queue(first.studies[1], root, root=0)
    mine, theirs = first.claim(), second.claim()
    assert mine.root.number == 0 and theirs is None  # nothing else is due
    trials = first.studies[1].get_trials()
    assert [t.state for t in trials] == [TrialState.RUNNING, TrialState.FAIL]
    assert "promoted at the same moment" in trials[1].user_attrs["fail_reason"]


def test_a_crashed_promotion_is_queued_again_with_its_root_and_claimed_first(tmp_path):
    study = rung0(tmp_path, [(0.9, 50), (0.8, 60), (0.7, 70)])
    ladder = Ladder(study, BUDGETS, eta=3)
    crashed = ladder.claim()
    crashed.trial.study.tell(crashed.trial, state=TrialState.FAIL)
    requeue(crashed.trial.study, crashed.trial, "its worker died")
    again = ladder.claim()
    assert again.root.number == 0 and again.trial.user_attrs["retry_of"] == crashed.trial.number
    assert again.trial.params == crashed.trial.params
    again.trial.set_user_attr("kind", "trained")
    again.trial.study.tell(again.trial, [0.9, 50])
    assert ladder.claim() is None  # promoted once, trained once: never again


def test_a_promotion_crashing_again_is_queued_again_up_to_the_limit(tmp_path):
    study = rung0(tmp_path, [(0.9, 50), (0.8, 60), (0.7, 70)])
    ladder = Ladder(study, BUDGETS, eta=3)
    queued = []
    for _ in range(CRASH_RETRIES + 1):
        crashed = ladder.claim()
        assert crashed.root.number == 0
        crashed.trial.study.tell(crashed.trial, state=TrialState.FAIL)
        queued.append(requeue(crashed.trial.study, crashed.trial, "its worker died"))
    assert queued == [True] * CRASH_RETRIES + [False]  # the limit is reached: reported, nothing queued
    assert ladder.claim() is None


def test_a_trial_left_without_an_owner_is_failed_and_queued_again_after_a_grace(tmp_path):
    study = rung0(tmp_path, [(0.9, 50)])
    ownerless = create_trial(state=TrialState.RUNNING, params={"x": 7}, distributions={"x": IntDistribution(0, 100)})
    ownerless.datetime_start = datetime.datetime.now() - datetime.timedelta(seconds=OWNERLESS_GRACE + 1)
    study.add_trial(ownerless)
    fresh = create_trial(state=TrialState.RUNNING, params={"x": 8}, distributions={"x": IntDistribution(0, 100)})
    study.add_trial(fresh)  # just created: its worker is about to write its name
    assert recover_crashed(study) == [(1, True)]
    trials = study.trials
    assert trials[1].state == TrialState.FAIL and "as it created it" in trials[1].user_attrs["fail_reason"]
    assert trials[2].state == TrialState.RUNNING
    assert trials[3].state == TrialState.WAITING and trials[3].system_attrs["fixed_params"] == {"x": 7}


def test_a_trial_whose_heartbeat_stopped_is_failed_once_and_queued_again(tmp_path):
    rung0(tmp_path, [(0.9, 50)])
    study = optuna.load_study(study_name="p", storage=storage.open_storage(f"sqlite:///{tmp_path}/p.db"))
    silent, beating = study.ask({"x": IntDistribution(0, 100)}), study.ask({"x": IntDistribution(0, 100)})
    for trial in (silent, beating):
        own(trial)  # an owner this machine sees alive: only the heartbeat can tell
    optuna_adapter.storage(study)._backend.engine.connect().execute(sqlalchemy.text(
        f"UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00' WHERE trial_id = {silent._trial_id}"
    )).connection.commit()  # as if its machine went silent long ago
    assert [t.number for t in optuna_adapter.stale_running(study)] == [silent.number]
    assert recover_crashed(study) == [(silent.number, True)] and recover_crashed(study) == []
    trials = study.trials
    assert trials[silent.number].state == TrialState.FAIL and trials[beating.number].state == TrialState.RUNNING
    assert trials[silent.number].user_attrs["fail_reason"] == "its worker stopped beating"
    assert trials[-1].state == TrialState.WAITING and trials[-1].user_attrs["retry_of"] == silent.number


@pytest.mark.parametrize("text, message", [
    ("6x0.4,oops", "write EPOCHSxFRACTION per rung"),
    ("6x1.5", "write EPOCHSxFRACTION per rung"),
    ("0x0.5", "write EPOCHSxFRACTION per rung"),
])
def test_bad_budgets(text, message):
    with pytest.raises(UsageError, match=message):
        parse_budgets(text)


def test_budgets_must_grow():
    assert parse_budgets("6x0.4, 22x1") == (Budget(6, 0.4), Budget(22, 1.0)) and parse_budgets("none") == ()
    with pytest.raises(UsageError, match="trains no more than the rung below it"):
        SearchConfig(space="tiny", study="x", storage="x", trials=1, epochs=4, subset=0.5, budgets=(Budget(4, 0.5),))


def test_a_promotion_that_would_not_end_in_time_is_left_for_one_that_would(tmp_path):
    study = rung0(tmp_path, [(0.9, 50), (0.8, 60), (0.7, 70)] * 2)
    ladder = Ladder(study, BUDGETS, eta=3)
    slow = {0}  # the best trial trains too slowly to finish before the deadline
    claim = ladder.claim(fits=lambda root, k: root.number not in slow)
    assert claim.root.number == 3  # the next in rank that fits (it ties trial 0 on values)
    assert ladder.claim(fits=lambda root, k: False) is None
    assert ladder.claim().root.number == 0  # with time enough, trial 0 is still due
