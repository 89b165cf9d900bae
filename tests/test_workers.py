"""Several workers on one study (PostgreSQL, local --jobs), crashed workers, device assignment."""

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
from conftest import TINY_SPACE, first_running, wait_for
from optuna.trial import TrialState

from nas import results, search, workers
from nas.pruning import rungs_of
from nas.config import SearchConfig
from nas.errors import UsageError

FAST = ["--epochs", "2", "--subset", "0.01", "--val-size", "500", "--budgets", "3x0.02", "--jobs", "1"]  # --jobs: as given
# `make test` starts this server (.ci/postgres); elsewhere point NAS_TEST_POSTGRES at one
POSTGRES = os.environ.get("NAS_TEST_POSTGRES", "postgresql://nas:nas@127.0.0.1:5432/nas_test")


def search_cmd(storage, study, trials, *extra):
    return [sys.executable, "-m", "nas", "search", "--space", TINY_SPACE, "--study", study, "--storage", storage,
            "--trials", str(trials), *FAST, *extra]


def assert_each_trial_ran_once(study):
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    for t in study.trials:
        if t.user_attrs.get("kind") == "trained":
            assert t.user_attrs["worker"].count(":") == 2  # one owner per trial: host:pid:start


def kill_then_run_again(proc, cmd):
    """SIGKILL the search, then run the same command to its end."""
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = subprocess.run(cmd, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr


def failed_and_rerun(study, victim):
    """Checks the killed trial was failed with its reason; returns the trials that ran its parameters again."""
    killed = study.trials[victim.number]
    assert killed.state == TrialState.FAIL and "died" in killed.user_attrs["fail_reason"]
    return [t for t in study.trials if t.user_attrs.get("retry_of") == victim.number]


def assert_each_root_promoted_once(study):
    """Every rung above 0 holds each architecture at most once, besides failed claims and crashes."""
    rungs = rungs_of(study)
    assert len(rungs) == 2 and rungs[1].trials, "nothing was promoted"
    roots = [t.user_attrs["root"] for t in rungs[1].trials if t.state != TrialState.FAIL]
    assert len(roots) == len(set(roots)) and all(t.state == TrialState.COMPLETE for t in rungs[1].trials
                                                 if t.state != TrialState.FAIL)


def test_three_workers_on_postgresql_make_one_search(nas_cli):
    study_name = f"pg-{uuid.uuid4().hex[:8]}"
    procs = [subprocess.Popen(search_cmd(POSTGRES, study_name, 4), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    try:
        assert [p.returncode for p in procs] == [0, 0, 0], errors
        study = optuna.load_study(study_name=study_name, storage=POSTGRES)
        c = results.counts(study)
        assert 4 <= c["trained"] <= 4 + 2 and c["running"] == 0 and c["failed"] == 0
        assert_each_trial_ran_once(study)
        assert_each_root_promoted_once(study)
        workers = {t.user_attrs["worker"] for t in study.trials if t.user_attrs.get("kind") == "trained"}
        assert len(workers) >= 2, "the trials were not shared between workers"
        front = nas_cli("front", "--study", study_name, "--storage", POSTGRES, "--format", "json")
        assert front.returncode == 0
        assert {row["trial"] for row in json.loads(front.stdout)} == {t.number for t in results.front(study)}
        assert "nas:nas@" not in "".join(errors) + front.stderr  # the password is never printed
    finally:
        for name in optuna.get_all_study_names(POSTGRES):
            if name == study_name or name.startswith(f"{study_name}/rung-"):
                optuna.delete_study(study_name=name, storage=POSTGRES)


def test_three_local_jobs_on_sqlite(nas_cli, tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    out = subprocess.run(search_cmd(storage, "t", 6, "--jobs", "3"), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    study = optuna.load_study(study_name="t", storage=storage)
    c = results.counts(study)
    assert 6 <= c["trained"] <= 6 + 2 and c["running"] == 0 and c["failed"] == 0
    assert_each_trial_ran_once(study)
    assert_each_root_promoted_once(study)
    assert nas_cli("front", "--study", "t", "--storage", storage).returncode == 0


def test_kill_9_then_the_same_command_fails_the_trial_reruns_its_params_and_finishes(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    # 20 short epochs: caught after its first (scored there: --prune-at 1), a trial has seconds of training
    # left when the kill lands
    cmd = search_cmd(storage, "t", 2, "--epochs", "20", "--budgets", "none", "--prune-at", "1")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # past epoch 1 (its curve has a point) and still running: killed in the middle of training
    study, victim = first_running(storage, "t", lambda t: t.user_attrs.get("curve"))
    finished = {t.number: t.values for t in study.trials if t.state == TrialState.COMPLETE}
    kill_then_run_again(proc, cmd)
    study = optuna.load_study(study_name="t", storage=storage)
    reruns = failed_and_rerun(study, victim)
    assert len(reruns) == 1 and reruns[0].params == victim.params and reruns[0].state != TrialState.FAIL
    assert all(study.trials[n].values == v for n, v in finished.items())  # nothing done was lost
    c = results.counts(study)
    assert c["trained"] == 2 and c["running"] == 0


def test_kill_9_during_a_promotion_then_the_same_command_trains_it_once(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    cmd = search_cmd(storage, "t", 3, "--budgets", "60x0.02")  # rung 1: 60 short epochs, long enough to be hit
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # its costs are copied from its root just before it trains
    _, victim = first_running(storage, "t/rung-1", lambda t: "latency" in t.user_attrs)
    kill_then_run_again(proc, cmd)
    rerun, = failed_and_rerun(optuna.load_study(study_name="t/rung-1", storage=storage), victim)
    assert rerun.state == TrialState.COMPLETE and rerun.user_attrs["root"] == victim.user_attrs["root"]
    fidelity = rerun.user_attrs["fidelity"]  # the top rung's: by the clock, the same seconds as the victim's
    assert rerun.params == victim.params and fidelity == victim.user_attrs["fidelity"]
    assert (fidelity["epochs"], fidelity["subset"]) == (60, 0.02) and fidelity["seconds"] > 0
    assert_each_root_promoted_once(optuna.load_study(study_name="t", storage=storage))


def test_a_worker_killed_between_claiming_a_promotion_and_owning_it_loses_nothing(tmp_path):
    storage, mark = f"sqlite:///{tmp_path}/s.db", tmp_path / "claimed"
    cmd = search_cmd(storage, "t", 3)  # 3 trials: the best is promoted to rung 1
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "NAS_TEST_HOOK": f"promotion:{mark}"})
    wait_for(mark.exists, "the worker to claim the promotion")  # RUNNING now, with no owner and no heartbeat
    kill_then_run_again(proc, cmd)  # ends: the claim is failed once OWNERLESS_GRACE has passed, then redone
    rung1 = optuna.load_study(study_name="t/rung-1", storage=storage).trials
    assert [t.state for t in rung1] == [TrialState.FAIL, TrialState.COMPLETE]
    assert "as it created it" in rung1[0].user_attrs["fail_reason"]
    assert rung1[1].user_attrs["root"] == rung1[0].user_attrs["root"] and rung1[1].user_attrs["retry_of"] == 0


def test_sigterm_stops_a_two_worker_search_with_its_workers_and_queues_their_trials_again(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    proc = subprocess.Popen(search_cmd(storage, "t", 50, "--jobs", "2", "--epochs", "50", "--subset", "0.02",
                                       "--budgets", "none", "--prune-at", "1"),  # a curve after epoch 1
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first_running(storage, "t", lambda t: t.user_attrs.get("curve"))  # scored at epoch 1, training on
    workers = [int(pid) for pid in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in stderr

    def alive(pid):
        try:  # the process may be reaped between checks, so read its status once
            return "zombie" not in Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return False

    # multiprocessing's resource tracker leaves a moment after the workers
    wait_for(lambda: not any(alive(pid) for pid in workers), "the workers to stop, not train on as orphans", 30)
    study = optuna.load_study(study_name="t", storage=storage)
    assert results.counts(study)["running"] == 0
    interrupted = [t for t in study.trials if t.state == TrialState.FAIL]
    assert interrupted and all(t.user_attrs["fail_reason"] == "interrupted" for t in interrupted)
    queued = {tuple(sorted(t.system_attrs["fixed_params"].items())) for t in study.trials if t.state == TrialState.WAITING}
    assert all(tuple(sorted(t.params.items())) in queued for t in interrupted)


def test_a_diverging_trial_is_failed_with_its_reason_and_the_search_goes_on(tmp_path, small):
    space = tmp_path / "wild.yaml"
    space.write_text(Path(TINY_SPACE).read_text().replace("lr: {low: 0.1, high: 0.4, log: true}",
                                                     "lr: {choices: [0.2, 100000.0]}"))
    config = SearchConfig(space=str(space), study="d", storage=f"sqlite:///{tmp_path}/d.db", trials=3,
                                 epochs=1, budgets=(), objectives=("accuracy", "params"))
    runner = search.Search(config)
    runner.splits = lambda subset: small
    c = runner.run()
    assert c["trained"] == 3 and c["failed"] >= 1
    failed = [t for t in runner.study.trials if t.state == TrialState.FAIL]
    assert all("loss became" in t.user_attrs["fail_reason"] for t in failed)


@pytest.mark.parametrize("spec, jobs, gpus, expected", [
    ("cpu", 3, 0, ["cpu"] * 3),
    ("auto", 2, 0, ["cpu", "cpu"]),
    ("auto", 1, 2, ["cuda:0", "cuda:1"]),  # every visible GPU, one worker each
    ("cuda", 1, 3, ["cuda:0", "cuda:1", "cuda:2"]),
    ("cuda:0,cuda:1", 1, 2, ["cuda:0", "cuda:1"]),
    ("cuda:1", 2, 2, ["cuda:1", "cuda:1"]),
])
def test_one_worker_per_accelerator(spec, jobs, gpus, expected):
    assert workers.worker_devices(spec, jobs, gpus) == expected


@pytest.mark.parametrize("spec, jobs, gpus, message", [
    ("cuda:0,cuda:1", 3, 2, "names 2 devices but --jobs is 3"),
    ("cuda:0,cuda:0", 1, 2, "names a device twice"),
    ("cuda", 1, 0, "no CUDA GPU"),
])
def test_bad_device_lists(spec, jobs, gpus, message):
    with pytest.raises(UsageError, match=message):
        workers.worker_devices(spec, jobs, gpus)
