import dataclasses
import json
import re
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import first_running
from optuna.trial import TrialState

from nas import records, results, search, storage
from nas.config import SearchConfig, parse_count, parse_ms, parse_objectives
from nas.errors import UsageError
from nas.records import StudySettings

TINY = str(Path(__file__).parent / "spaces" / "tiny.yaml")
FAST = ["--epochs", "2", "--subset", "0.01", "--val-size", "500", "--budgets", "3x0.02", "--jobs", "1"]


def run_search(nas_cli, tmp_path, *extra, trials=4):
    storage = f"sqlite:///{tmp_path}/s.db"
    out = nas_cli("search", "--space", TINY, "--study", "t", "--storage", storage, "--trials", str(trials),
                  *FAST, *extra)
    return out, storage


def test_tiny_search_end_to_end_and_front_matches_optuna(nas_cli, tmp_path):
    out, storage = run_search(nas_cli, tmp_path, "--format", "json", "--with-presets")
    assert out.returncode == 0, out.stderr
    study = optuna.load_study(study_name="t", storage=storage)
    assert study.metric_names == ["val_accuracy", "MACs", "latency_ms"]
    assert results.counts(study)["trained"] == 4 and results.counts(study)["reference"] == 1
    printed = json.loads(out.stdout)
    # 5 trained at rung 0 (the preset too) with eta 3: the best so far was promoted to rung 1 after the
    # 3rd and after the 4th result (ASHA decides with what it knows), at most once each
    rung1 = optuna.load_study(study_name="t/rung-1", storage=storage)
    promoted = [t.user_attrs["root"] for t in rung1.trials]
    assert 1 <= len(promoted) <= 2 and len(set(promoted)) == len(promoted)
    clock = records.rung_budget(rung1)["seconds"]  # the top rung trains every trial for this long:
    calibrated = float(re.search(r"per worker (\d+) images/s trained", out.stderr)[1])
    # 3x0.02 at the timed speed; the clock is stored to 0.1 s, the speed printed to 1 image/s
    assert clock == pytest.approx(3 * 0.02 * 59_500 / calibrated, rel=0.02, abs=0.05)
    assert clock > 0 and all(t.user_attrs["fidelity"]["seconds"] == clock for t in rung1.trials)
    on_rung1 = [t.user_attrs["root"] for t in sorted(rung1.best_trials, key=lambda t: -t.values[0])]
    assert [(r["trial"], r["rung"]) for r in printed][:len(on_rung1)] == [(n, 1) for n in on_rung1]
    assert {r["trial"] for r in printed[len(on_rung1):]} == {t.number for t in study.best_trials} - set(on_rung1)
    front = nas_cli("front", "--study", "t", "--storage", storage, "--format", "json")
    assert json.loads(front.stdout) == printed
    trial = study.best_trials[0]
    for attr in ("arch", "summary", "recipe", "params", "macs", "uncounted_ops", "latency", "curve", "fidelity",
                 "train_seconds"):
        assert attr in trial.user_attrs, attr
    assert set(trial.user_attrs["latency"]) >= {"median_ms", "iqr_ms", "backend", "threads", "device", "cpu"}
    assert trial.user_attrs["curve"] == [[2, round(trial.values[0], 5)]]  # no pruning epoch: scored once, at the end
    spent = trial.user_attrs["seconds"]  # where its time went, summed per rung by `nas front`
    assert set(spent) == {"measure", "wait", "latency", "train", "score"} and spent["train"] > spent["score"] > 0
    assert "where the time went" in front.stderr and "expected duration: about" in out.stderr
    csv = nas_cli("front", "--study", "t", "--storage", storage, "--format", "csv")
    assert csv.stdout.splitlines()[0].startswith("trial,rung,val_acc,val_acc_se")
    plot = nas_cli("plot", "--study", "t", "--storage", storage, "--out", str(tmp_path / "pics"))
    assert plot.returncode == 0, plot.stderr
    assert (tmp_path / "pics" / "front.png").stat().st_size > 10_000
    assert (tmp_path / "pics" / "hypervolume.png").stat().st_size > 5_000


def test_over_the_limit_is_recorded_infeasible_and_never_trained(nas_cli, tmp_path):
    # 1.2k params admits only the smallest archs of the tiny space
    out, storage = run_search(nas_cli, tmp_path, "--max-params", "1.2k", "--objectives", "accuracy,params",
                              "--seed", "1", trials=2)
    assert out.returncode == 0, out.stderr
    study = optuna.load_study(study_name="t", storage=storage)
    infeasible = [t for t in study.trials if t.user_attrs.get("kind") == "infeasible"]
    assert infeasible, "the tiny space has archs over 1.2k params"
    for t in infeasible:
        assert t.state == TrialState.COMPLETE and "curve" not in t.user_attrs and "train_seconds" not in t.user_attrs
        assert t.user_attrs["params"] > 1200 and t.constraints["params"] > 0
        assert t.number not in {b.number for b in study.best_trials}
    assert results.counts(study)["trained"] == 2


def test_latency_as_int8_times_each_trial_on_its_quantised_model(nas_cli, tmp_path):
    out, storage = run_search(nas_cli, tmp_path, "--latency-as", "int8", "--objectives", "accuracy,latency",
                              trials=1)
    assert out.returncode == 0, out.stderr
    study = optuna.load_study(study_name="t", storage=storage)
    latency = study.trials[0].user_attrs["latency"]
    assert latency["int8"] is True and latency["median_ms"] == study.trials[0].values[1] > 0
    assert StudySettings.of(study).raw["latency"]["int8"] is True
    again, _ = run_search(nas_cli, tmp_path, "--objectives", "accuracy,latency", trials=2)  # timed in fp32 now
    assert again.returncode == 2 and "created with other settings (latency" in " ".join(again.stderr.split())


def test_a_preset_over_a_limit_is_recorded_infeasible_not_trained(nas_cli, tmp_path):
    space = yaml.safe_load(Path(TINY).read_text())
    big = {"block": "plain", "depth": 1, "width": 64, "kernel": 3, "se": False, "downsample": True}
    space["presets"]["big"] = {"arch": {**space["presets"]["smallest"]["arch"], "stages": [big]}}
    (tmp_path / "with_big.yaml").write_text(yaml.safe_dump(space))
    out = nas_cli("search", "--space", str(tmp_path / "with_big.yaml"), "--study", "t", "--storage",
                  f"sqlite:///{tmp_path}/s.db", "--trials", "1", "--max-params", "1.2k", "--with-presets", *FAST)
    assert out.returncode == 0, out.stderr
    study = optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path}/s.db")
    big_trial, = [t for t in study.trials if t.user_attrs.get("preset") == "big"]
    assert big_trial.user_attrs["kind"] == "infeasible" and "curve" not in big_trial.user_attrs
    assert big_trial.user_attrs["params"] > 1200


def test_resume_reaches_the_count_and_keeps_what_was_done(nas_cli, tmp_path):
    out, storage = run_search(nas_cli, tmp_path, trials=2)
    assert out.returncode == 0, out.stderr
    before = {t.number: t.values for t in optuna.load_study(study_name="t", storage=storage).trials}
    out, _ = run_search(nas_cli, tmp_path, trials=4)
    assert out.returncode == 0, out.stderr
    study = optuna.load_study(study_name="t", storage=storage)
    assert results.counts(study)["trained"] == 4
    assert all(study.trials[n].values == v for n, v in before.items())


def test_minutes_bound_the_whole_search(nas_cli, tmp_path):
    out, storage = run_search(nas_cli, tmp_path, "--minutes", "0.01", trials=50)
    assert out.returncode == 0 and "--minutes reached" in out.stderr, out.stderr
    assert 1 <= results.counts(optuna.load_study(study_name="t", storage=storage))["trained"] < 50


def test_changed_settings_are_refused_and_the_study_is_untouched(nas_cli, tmp_path):
    out, storage = run_search(nas_cli, tmp_path, trials=1)
    assert out.returncode == 0, out.stderr
    n = len(optuna.load_study(study_name="t", storage=storage).trials)
    out, _ = run_search(nas_cli, tmp_path, "--objectives", "accuracy,params", trials=2)
    assert out.returncode == 2 and "other settings (objectives" in out.stderr and "Traceback" not in out.stderr
    assert len(optuna.load_study(study_name="t", storage=storage).trials) == n


@pytest.mark.parametrize("args, message", [
    (["--objectives", "accuracy,speed"], "unknown objective 'speed'"),
    (["--objectives", "macs,params"], "must include accuracy"),
    (["--max-params", "lots"], "--max-params 'lots' is not a count"),
    (["--max-latency", "1 fortnight"], "is not a duration"),
    (["--trials", "0"], "--trials 0: must be at least 1"),
])
def test_bad_search_input(nas_cli, tmp_path, args, message):
    out = nas_cli("search", "--space", TINY, "--study", "t", "--storage", f"sqlite:///{tmp_path}/s.db",
                  "--trials", "1", *args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr


def test_unknown_study_lists_what_is_there(nas_cli, tmp_path):
    out, storage = run_search(nas_cli, tmp_path, trials=1)
    out = nas_cli("front", "--study", "nope", "--storage", storage)
    assert out.returncode == 2 and "no study 'nope'" in out.stderr and "studies there: t" in out.stderr


def test_accuracy_comes_first_whatever_the_order():
    assert parse_objectives("latency,accuracy") == ("accuracy", "latency")


def test_units():
    assert parse_count("1M", "x") == 1e6 and parse_count("300k", "x") == 3e5
    assert parse_ms("1ms", "x") == 1.0 and parse_ms("500us", "x") == 0.5
    assert storage.redact("postgresql://nas:secret@db/x") == "postgresql://nas:***@db/x"
    with pytest.raises(UsageError):
        parse_count("-3", "x")


def test_rung_pruning_in_a_real_search(tmp_path, small):
    """eta 4 with n_min 2: at rung 1 most trials stop; they are PRUNED, keep their curve, stay off the front."""
    config = SearchConfig(space=TINY, study="p", storage=f"sqlite:///{tmp_path}/p.db", trials=6, epochs=2,
                                 prune_epochs=(1,), budgets=(), eta=4.0, n_min=2, objectives=("accuracy", "params"))
    runner = search.Search(config)
    runner.splits = lambda subset: small  # a few hundred real images
    c = runner.run()
    assert c["trained"] == 6 and c["pruned"] >= 2
    study = runner.study
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    for t in pruned:
        assert t.user_attrs["pruned_at_epoch"] == 1 and "rung_1" in t.user_attrs and len(t.user_attrs["curve"]) == 1
    assert not {t.number for t in pruned} & {t.number for t in results.front(study)}


class PruneFrom(optuna.pruners.BasePruner):
    def __init__(self, step: int):
        self.step = step

    def prune(self, study, trial):
        return trial.last_step >= self.step


def test_single_objective_prunes_before_the_last_epoch_never_at_it(tmp_path, small):
    """Optuna's pruners would stop a trial at its final epoch too, losing a finished result."""
    config = SearchConfig(space=TINY, study="s", storage=f"sqlite:///{tmp_path}/s.db", trials=3, epochs=2,
                          prune_epochs=(1,), budgets=(), objectives=("accuracy",))
    for study, step, states in (("early", 1, [TrialState.PRUNED] * 3), ("last", 2, [TrialState.COMPLETE] * 3)):
        runner = search.Search(dataclasses.replace(config, study=study))
        runner.splits = lambda subset: small
        runner.study.pruner = PruneFrom(step)  # wants every trial stopped from this epoch on
        runner.run()
        assert [t.state for t in runner.study.trials] == states
    with pytest.raises(UsageError, match="before rung 0's last epoch"):
        dataclasses.replace(config, prune_epochs=(2,))


def test_a_trial_taken_for_dead_by_another_worker_does_not_stop_this_one(tmp_path, small):
    """Another worker may fail (and requeue) a trial it thinks dead; its own worker must carry on."""
    from nas import spaces
    from nas.config import Recipe

    config = SearchConfig(space=TINY, study="d", storage=f"sqlite:///{tmp_path}/d.db", trials=1, epochs=1, budgets=())
    runner = search.Search(config)
    runner.splits = lambda subset: small
    trial = runner._ask()
    arch, recipe = spaces.sample(trial, runner.space), spaces.sample_recipe(trial, runner.space, Recipe(epochs=1))
    runner.study.tell(trial.number, state=TrialState.FAIL)  # what the other worker's stale-trial check does
    assert runner._guarded(trial, lambda: runner.evaluate(trial, arch, recipe)) == "failed"
    assert runner.run()["trained"] == 1  # and the worker goes on to the next trial


def test_a_preset_claimed_by_two_workers_at_once_is_trained_by_one(tmp_path, small):
    """Workers started together all find a preset unclaimed; the later claim steps back without training."""
    config = SearchConfig(space=TINY, study="c", storage=f"sqlite:///{tmp_path}/c.db", trials=1, epochs=1,
                                 budgets=(), with_presets=True)
    first, second = search.Search(config), search.Search(config)
    second.splits = lambda subset: small
    ask = second._ask

    def first_claims_meanwhile():  # between the second worker's check and its own claim
        first._ask().set_user_attr("preset", "smallest")
        return ask()

    second._ask = first_claims_meanwhile
    second._run_presets()
    claimed, stepped_back = second.study.get_trials(deepcopy=False)
    assert claimed.user_attrs["preset"] == stepped_back.user_attrs["preset"] == "smallest"
    assert claimed.state == TrialState.RUNNING  # still the first worker's to train
    assert stepped_back.state == TrialState.FAIL and "train_seconds" not in stepped_back.user_attrs
    assert f"claimed at the same moment by trial {claimed.number}" in stepped_back.user_attrs["fail_reason"]


def test_ctrl_c_marks_the_trial_failed_queues_it_again_and_exits_130(tmp_path):
    import signal
    import subprocess
    import sys
    storage = f"sqlite:///{tmp_path}/s.db"
    proc = subprocess.Popen([sys.executable, "-m", "nas", "search", "--space", TINY, "--study", "t", "--storage",
                             storage, "--trials", "50", "--epochs", "50", "--subset", "0.02", "--val-size", "500",
                             "--budgets", "none", "--jobs", "1", "--prune-at", "1"],  # a curve after epoch 1
                            stderr=subprocess.PIPE, text=True,
                            # a shell's background job inherits SIGINT ignored; a terminal's Ctrl-C is not
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first_running(storage, "t", lambda t: t.user_attrs.get("curve"), 120)  # scored at epoch 1, training on
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "run the same command" in stderr and "Traceback" not in stderr
    study = optuna.load_study(study_name="t", storage=storage)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    waiting = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(failed) == 1 and failed[0].user_attrs["fail_reason"] == "interrupted"
    assert len(waiting) == 1 and waiting[0].system_attrs["fixed_params"] == failed[0].params
    assert waiting[0].user_attrs["retry_of"] == failed[0].number


def test_a_promotion_is_judged_by_its_own_measured_speed_against_the_deadline(tmp_path, small):
    import time
    from types import SimpleNamespace

    config = SearchConfig(space=TINY, study="m", storage=f"sqlite:///{tmp_path}/m.db", trials=1, epochs=1,
                          subset=0.5, budgets=(search.Budget(10, 1.0),))
    runner = search.Search(config)
    runner.splits = lambda subset: small
    full = len(small.train) / 0.5  # images of the whole training split
    root = SimpleNamespace(user_attrs={"train_images_per_second": full})  # one pass per second: 10 s here
    now = time.monotonic()
    assert runner._ends_in_time(root, 1, now + 10 * search.PROMOTION_MARGIN + 5)
    assert not runner._ends_in_time(root, 1, now + 10 * search.PROMOTION_MARGIN - 5)
    assert runner._ends_in_time(root, 1, None)  # no --minutes: no deadline
