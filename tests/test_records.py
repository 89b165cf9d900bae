"""nas/records.py: what is written on a trial reads back typed, every ending has a Kind, settings have defaults."""

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas import records
from nas.config import DataConfig, SearchConfig
from nas.records import Kind, StudySettings, TrialRecord

SPACE = Path(__file__).resolve().parent / "spaces" / "tiny.yaml"


def test_written_fields_read_back_typed():
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    records.write(trial, arch={"family": "simple_cnn"}, params=1200, macs=34_000, kind=Kind.TRAINED,
                  latency={"median_ms": 0.25, "iqr_ms": 0.01}, curve=[[1, 0.5]], fidelity={"epochs": 2, "subset": 0.1})
    records.write_epoch_score(trial, 1, 0.5)
    study.tell(trial, [0.5, 1200])
    record = TrialRecord.of(study.trials[0])
    assert (record.kind, record.params, record.macs, record.latency_ms) == (Kind.TRAINED, 1200, 34_000, 0.25)
    assert record.arch == {"family": "simple_cnn"} and record.accuracy == 0.5 and record.trained
    assert record.costs == {"params": 1200, "macs": 34_000, "latency_ms": 0.25}
    assert records.epoch_score(study.trials[0], 1) == 0.5 and records.epoch_score(study.trials[0], 2) is None
    assert record.number == 0 and record.rung == 0 and record.preset is None  # never written: None


def test_an_unknown_field_is_refused_before_anything_is_written():
    study = optuna.create_study()
    trial = study.ask()
    with pytest.raises(KeyError, match="accuracy"):
        records.write(trial, params=1, accuracy=0.9)
    with pytest.raises(KeyError, match="accuracy"):
        records.attrs(accuracy=0.9)
    assert study.trials[0].user_attrs == {}


@pytest.mark.parametrize("state, written, kind", [
    (TrialState.COMPLETE, Kind.TRAINED, Kind.TRAINED), (TrialState.COMPLETE, Kind.REFERENCE, Kind.REFERENCE),
    (TrialState.COMPLETE, Kind.REUSED, Kind.REUSED), (TrialState.COMPLETE, Kind.INFEASIBLE, Kind.INFEASIBLE),
    (TrialState.COMPLETE, None, Kind.TRAINED),  # a study written by another tool
    (TrialState.PRUNED, Kind.TRAINED, Kind.PRUNED),  # studies from before Kind.PRUNED wrote "trained"
    (TrialState.FAIL, None, Kind.FAILED), (TrialState.RUNNING, None, None)])
def test_every_ending_has_a_kind(state, written, kind):
    study = optuna.create_study()
    trial = study.ask()
    if written:
        records.write(trial, kind=written)
    if state != TrialState.RUNNING:
        study.tell(trial, 0.5 if state == TrialState.COMPLETE else None, state=state)
    record = TrialRecord.of(study.trials[0])
    assert record.kind == kind
    assert record.trained == (kind in (Kind.TRAINED, Kind.REFERENCE))


def test_a_promotion_is_named_by_its_root():
    study = optuna.create_study()
    study.enqueue_trial({}, user_attrs=records.attrs(root=7, rung=2, preset=None))
    trial = study.ask()
    assert trial.user_attrs == {"root": 7, "rung": 2}  # None is not stored
    record = TrialRecord.of(study.trials[0])
    assert (record.number, record.rung) == (7, 2)


def test_settings_read_back_with_defaults_for_older_studies(tmp_path):
    bare = optuna.create_study()
    assert not StudySettings.of(bare).recorded
    assert StudySettings.of(bare).objectives == ("accuracy",) and StudySettings.of(bare).dataset == "fashion-mnist"
    config = SearchConfig(space="tiny", study="s", storage="x", trials=1, objectives=("accuracy", "params"), epochs=3,
                          subset=0.2, data=DataConfig(val_size=500, split_seed=4))
    data = {"val_images": 500, "inputs": {"channels": 1, "size": 28, "classes": ["a", "b"], "mean": [1], "std": [2]}}
    records.write_settings(bare, config.settings(SPACE, data))
    settings = StudySettings.of(bare)
    assert settings.recorded and settings.objectives == ("accuracy", "params")
    assert (settings.val_size, settings.split_seed, settings.val_images) == (500, 4, 500)
    assert settings.budget == {"epochs": 3, "subset": 0.2} and settings.inputs["classes"] == ["a", "b"]
