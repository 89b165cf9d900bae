"""The ladder's budgets and a search's expected duration (nas/plan.py), and where its time went."""

import time

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from nas import plan
from nas.config import Budget, SearchConfig, relative_budgets
from nas.report import time_spent


def config(**changes) -> SearchConfig:
    return SearchConfig(space="tiny", study="x", storage="sqlite://", trials=10, **changes)


@pytest.mark.parametrize("first, rungs, expected", [
    (Budget(1, 0.15), 2, (Budget(1, 0.45), Budget(1, 1.0))),  # the default ladder
    (Budget(1, 0.02), 2, (Budget(1, 0.06), Budget(1, 0.18))),  # a quick search stays quick
    (Budget(4, 0.2), 3, (Budget(4, 0.6), Budget(7, 1.0), Budget(22, 1.0))),  # more data first, then epochs
])
def test_each_rung_trains_eta_times_the_one_below(first, rungs, expected):
    assert relative_budgets(first, 3.0, rungs) == expected
    assert config(epochs=first.epochs, subset=first.subset, rungs=rungs).budgets == expected


def test_without_pruning_every_rung_costs_about_what_rung_0_costs():
    # 1 epoch on 10% of 50,000, then 1 on 30%, then 1 on 90%; the top 1/3 goes on each time
    levels = plan.levels(config(epochs=1, subset=0.1), train_images=50_000, val_images=0)
    assert [(lv.name, lv.share, lv.train_images) for lv in levels] == [
        ("rung 0", 1.0, 5_000), ("rung 1", 1 / 3, 15_000), ("rung 2", 1 / 9, 45_000)]
    estimate = plan.estimate(config(epochs=1, subset=0.1), plan.Speed(1_000, 4_000), 50_000, 0, workers=2)
    assert [estimate.per_trial(r) for r in ("rung 0", "rung 1", "rung 2")] == pytest.approx([5.0] * 3)
    assert estimate.wall_seconds(10) == pytest.approx(10 * (15 + plan.MEASURE_SECONDS) / 2)


def test_a_pruning_epoch_is_a_level_that_keeps_a_third():
    # 4 epochs on 20%, pruned at 2: every trial trains 2 epochs, a third the other 2, a ninth rung 1
    levels = plan.levels(config(epochs=4, subset=0.2, prune_epochs=(2,), rungs=1), 50_000, 10_000)
    assert [(lv.name, round(lv.share, 4), lv.train_images) for lv in levels] == [
        ("rung 0", 1.0, 20_000), ("rung 0", 0.3333, 20_000), ("rung 1", 0.1111, 120_000)]
    scoring = 10_000 * plan.TTA_SHARE / 4_000  # seconds
    estimate = plan.estimate(config(epochs=4, subset=0.2, prune_epochs=(2,), rungs=1), plan.Speed(1_000, 4_000),
                             50_000, 10_000, 1)
    assert estimate.seconds_each["rung 0"] == pytest.approx((20_000 / 1_000 + scoring) * (1 + 1 / 3))


def test_time_left_follows_the_pace_the_finished_trials_showed():
    estimate = plan.estimate(config(epochs=1, subset=0.1, rungs=0), plan.Speed(1_000, 4_000), 50_000, 0, workers=1)
    per_trial = estimate.per_trial()  # 5 s of training + the measuring
    at_plan, slow = plan.Progress(estimate, 10, None), plan.Progress(estimate, 10, None)
    assert at_plan.seconds_left() == pytest.approx(10 * per_trial, rel=0.01)  # nothing done: the plan itself
    for progress, pace in ((at_plan, 1.0), (slow, 2.0)):
        progress.started -= 5 * per_trial * pace  # 5 of 10 trials took this long
        for _ in range(5):
            progress.finished(rung=0, trained=True)
    assert at_plan.seconds_left() == pytest.approx(5 * per_trial, rel=0.01)
    assert 5 * per_trial * 1.5 < slow.seconds_left() < 5 * per_trial * 2  # the plan's pace still weighs a little
    booting = plan.Progress(estimate, 10, None, boot=30.0)  # the workers' start-up is still to come
    assert booting.seconds_left() == pytest.approx(30 + 10 * per_trial, rel=0.01)
    booting.started -= 30 + 5 * per_trial  # booted, then 5 trials at the plan's pace
    for _ in range(5):
        booting.finished(rung=0, trained=True)
    assert booting.seconds_left() == pytest.approx(5 * per_trial, rel=0.01)
    bounded = plan.Progress(estimate, 10, minutes=0.01)
    assert bounded.seconds_left() <= 0.6  # --minutes bounds it


def test_where_the_time_went_sums_each_rung_and_counts_failures(tmp_path):
    storage = f"sqlite:///{tmp_path}/t.db"
    studies = [optuna.create_study(study_name=name, storage=storage) for name in ("t", "t/rung-1")]
    spent = {"measure": 2.0, "wait": 1.0, "latency": 0.5, "train": 30.0, "score": 4.0}
    for study, states in zip(studies, ([TrialState.COMPLETE, TrialState.FAIL], [TrialState.COMPLETE])):
        for state in states:
            study.add_trial(create_trial(state=state, value=0.5 if state == TrialState.COMPLETE else None,
                                         user_attrs={"seconds": spent}))
    rows, span = time_spent(studies)
    assert [(r["rung"], r["trials"], r["failed"], r["train"], r["measure"]) for r in rows] == [
        (0, 2, 1, 60.0, 4.0), (1, 1, 0, 30.0, 2.0)]
    assert span >= 0


def test_calibration_times_real_training_steps_and_scoring_of_the_space():
    from nas import data, spaces

    started = time.perf_counter()
    draws = plan.calibrate(spaces.load("simple_cnn"), data.builtin_inputs(), threads=1, batch=32, draws=2, steps=2,
                           scored=64)
    seconds = time.perf_counter() - started
    assert len(draws) == 2 and all(d.macs > 0 for d in draws)
    # per draw, images over its timed steps alone: more than over the whole call
    assert all(d.train > 2 * 32 / seconds and d.score > 64 / seconds for d in draws)


def test_after_the_random_start_a_cost_objective_prices_trials_like_the_cheaper_half():
    draws = [plan.Speed(100, 400, macs=4e6), plan.Speed(100, 400, macs=3e6), plan.Speed(400, 1600, macs=1e6),
             plan.Speed(400, 1600, macs=2e6)]
    assert plan.expected_speed(draws, 10, 10, cost_objective=True) == plan.Speed(160, 640)  # all random: harmonic
    assert plan.expected_speed(draws, 10, 0, cost_objective=True) == plan.Speed(400, 1600)  # TPE: the cheap half
    assert plan.expected_speed(draws, 10, 0, cost_objective=False) == plan.Speed(160, 640)  # accuracy alone
    assert plan.expected_speed(draws, 0, 10, cost_objective=True) == plan.Speed(160, 640)  # none left
    mixed = plan.expected_speed(draws, 20, 10, cost_objective=True)  # 10 of each: per image 1/160 and 1/400
    assert mixed.train == pytest.approx(20 / (10 / 160 + 10 / 400))


def test_the_start_up_is_priced_like_the_workers_own_random_draws():
    draws = [plan.Speed(100, 400, macs=4e6), plan.Speed(400, 1600, macs=1e6), plan.Speed(400, 1600, macs=2e6),
             plan.Speed(50, 200, macs=9e6, startup=True)]
    assert plan.expected_speed(draws, 10, 10, cost_objective=True) == plan.Speed(50, 200)  # the replayed draw
    assert plan.expected_speed(draws, 10, 0, cost_objective=True) == plan.Speed(400, 1600)  # others' cheap half


def test_replayed_draws_are_the_networks_a_worker_draws_first():
    from nas import spaces, storage
    from nas.config import Recipe

    space, seed = spaces.load("resnet_like"), 1234
    study = optuna.create_study(sampler=storage.make_sampler("tpe", seed), directions=["maximize", "minimize"])
    drawn = []
    for _ in range(4):  # as Search._draw_one draws them, during TPE's random start-up
        trial = study.ask()
        drawn.append(spaces.sample(trial, space))
        spaces.sample_recipe(trial, space, Recipe())
        study.tell(trial, [0.5, 1.0])
    replayed = plan.replayed_draws(space, 28, draws=6, seed=0, startup=[(seed, 4)])
    assert [arch for arch, startup in replayed if startup] == drawn and [s for _, s in replayed] == [True] * 4 + [False] * 2
