"""What nas stores on Optuna trials and studies, written and read in one place.

Every user attribute nas keeps is a field below: `write` stores fields on a trial, `TrialRecord.of`
reads them back typed, and `StudySettings` does the same for the settings a study was created with.
No other module names an attribute key, so a stored name changes here or nowhere."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum

SETTINGS_KEY = "nas"  # the study's settings (config.SearchConfig.settings)
RUNG_KEY = "rung"  # a rung study's budget: {"rung", "of", "epochs", "subset"}
_EPOCH_SCORE = "rung_{}"  # accuracy at a pruning epoch, one attribute per epoch so workers never overwrite


class Kind(str, Enum):
    """How a trial ended (None while it runs)."""

    TRAINED = "trained"  # drawn by the sampler and trained to its budget
    REFERENCE = "reference"  # a preset of the space (--with-presets), trained for comparison
    REUSED = "reused"  # the same arch and recipe as an earlier trial, whose result it copies
    INFEASIBLE = "infeasible"  # over a limit: measured, never trained
    PRUNED = "pruned"  # stopped at a pruning epoch
    FAILED = "failed"  # diverged, crashed or interrupted; its parameters may be queued again

    def __str__(self) -> str:  # "pruned", not "Kind.PRUNED", in messages
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


@dataclass(frozen=True)
class Stored:
    """The user attributes of one trial; None where never written."""

    worker: str | None = None  # host:pid:start of the process that runs it (recovery.this_worker)
    root: int | None = None  # a promotion's rung-0 trial number; None on rung 0
    preset: str | None = None  # the space's preset it trains (--with-presets)
    rung: int | None = None  # 0 = the first budget; k = promoted k times
    kind: Kind | None = None  # how it ended, as written (see TrialRecord.kind for the state's say)
    arch: dict | None = None
    summary: str | None = None  # models.summary(arch)
    recipe: dict | None = None  # config.Recipe.to_dict()
    key: str | None = None  # arch + recipe hash: an identical later draw reuses this result
    fidelity: dict | None = None  # the budget it trained at: epochs, subset
    params: int | None = None
    macs: int | None = None
    uncounted_ops: dict | None = None  # ops fvcore could not count
    latency: dict | None = None  # median_ms, iqr_ms, backend, threads, ...
    curve: list | None = None  # [[epoch, validation accuracy], ...]
    seconds: dict | None = None  # where its time went: measure, wait, latency, train, score
    train_seconds: float | None = None
    train_images_per_second: float | None = None
    precision: str | None = None  # the training's dtype
    pruned_at_epoch: int | None = None
    reused_from: int | None = None
    fail_reason: str | None = None
    retry_of: int | None = None  # the failed trial whose parameters it runs again
    retry_reason: str | None = None
    crashes: int | None = None  # crashes in a row of these parameters


FIELDS = {f.name for f in dataclasses.fields(Stored)}


def _plain(value):
    return value.value if isinstance(value, Enum) else value


def attrs(**fields) -> dict:
    """Fields of `Stored` as user attributes (None left out), for write() or a trial queued with them
    (Study.enqueue_trial, create_trial); an unknown name is a bug, caught here."""
    unknown = set(fields) - FIELDS
    if unknown:
        raise KeyError(f"not a stored trial field: {', '.join(sorted(unknown))}")
    return {name: _plain(value) for name, value in fields.items() if value is not None}


def write(trial, **fields) -> None:
    """Store fields of `Stored` on a running trial."""
    for name, value in attrs(**fields).items():
        trial.set_user_attr(name, value)


def write_epoch_score(trial, epoch: int, accuracy: float) -> None:
    trial.set_user_attr(_EPOCH_SCORE.format(epoch), accuracy)


def epoch_score(t, epoch: int) -> float | None:
    """A trial's validation accuracy at a pruning epoch, if it reached it."""
    return t.user_attrs.get(_EPOCH_SCORE.format(epoch))


def stored(t) -> Stored:
    a = t.user_attrs
    values = {name: a.get(name) for name in FIELDS}
    values["kind"] = Kind(values["kind"]) if values["kind"] else None
    return Stored(**values)


@dataclass(frozen=True)
class TrialRecord:
    """A trial as nas reads it: Optuna's facts plus what nas stored."""

    number: int  # the architecture's number: its trial in rung 0, whatever rung this result comes from
    rung: int  # 0 = the search's first budget; k = promoted k times
    kind: Kind | None  # None while running
    values: tuple[float, ...] | None  # the objectives, accuracy first
    stored: Stored
    distributions: dict  # what the sampler could draw, per parameter
    trial: object  # the optuna FrozenTrial underneath

    @classmethod
    def of(cls, t, rung: int | None = None) -> "TrialRecord":
        from optuna.trial import TrialState

        s = stored(t)
        kind = {TrialState.FAIL: Kind.FAILED, TrialState.PRUNED: Kind.PRUNED}.get(t.state, s.kind)
        if t.state == TrialState.COMPLETE and kind is None:
            kind = Kind.TRAINED  # completed by Optuna alone (a study of another tool)
        return cls(number=t.number if s.root is None else s.root, rung=s.rung or 0 if rung is None else rung,
                   kind=kind, values=tuple(t.values) if t.values else None, stored=s,
                   distributions=t.distributions, trial=t)

    def __getattr__(self, name):  # record.arch, record.params, ...: the stored fields
        if name in FIELDS:
            return getattr(self.stored, name)
        raise AttributeError(name)

    @property
    def latency(self) -> dict:
        return self.stored.latency or {}

    @property
    def accuracy(self) -> float:
        return self.values[0] if self.values else float("nan")

    @property
    def latency_ms(self) -> float | None:
        return self.latency.get("median_ms")

    @property
    def trained(self) -> bool:
        """A result of training to the budget: what may be promoted, compared and exported."""
        return self.kind in (Kind.TRAINED, Kind.REFERENCE)

    @property
    def feasible(self) -> bool:
        return all(v <= 0 for v in self.trial.constraints.values())

    @property
    def costs(self) -> dict:
        """The measured costs, as the search's objectives and limits name them."""
        return {"params": self.params or 0, "macs": self.macs or 0, "latency_ms": self.latency_ms or 0}


# ---------------------------------------------------------------- the study's settings

@dataclass(frozen=True)
class StudySettings:
    """What a study was created with (config.SearchConfig.settings), with the defaults of studies from
    before a setting was recorded."""

    objectives: tuple[str, ...] = ("accuracy",)
    dataset: str = "fashion-mnist"
    val_size: float = 0.1
    split_seed: int = 0
    image_size: int | None = None
    skip_bad: bool = False
    budget: dict = field(default_factory=dict)  # rung 0's: epochs, subset
    inputs: dict | None = None  # config.Inputs.to_dict(): shape, classes, normalisation
    val_images: int = 10_000
    raw: dict = field(default_factory=dict)  # as stored: compared whole when a study is continued

    @classmethod
    def of(cls, study) -> "StudySettings":
        raw = study.user_attrs.get(SETTINGS_KEY) or {}
        fidelity, data = raw.get("fidelity") or {}, raw.get("data") or {}
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(objectives=tuple(raw.get("objectives") or ("accuracy",)),
                   **{k: v for k, v in fidelity.items() if k in known},
                   budget={k: fidelity[k] for k in ("epochs", "subset") if k in fidelity},
                   inputs=data.get("inputs"), val_images=data.get("val_images") or 10_000, raw=raw)

    @property
    def recorded(self) -> bool:
        return bool(self.raw)


def write_settings(study, settings: dict) -> None:
    study.set_user_attr(SETTINGS_KEY, settings)


def stored_settings(summary) -> dict | None:
    """The settings of a study summary (optuna.get_all_study_summaries), None before they are written."""
    return summary.user_attrs.get(SETTINGS_KEY)


def rung_budget(rung_study) -> dict | None:
    return rung_study.user_attrs.get(RUNG_KEY)


def write_rung_budget(rung_study, rung: int, of: str, budget) -> None:
    """What a rung study trains: rung k of study `of`, a config.Budget (by the clock: its seconds once set)."""
    rung_study.set_user_attr(RUNG_KEY, {"rung": rung, "of": of, **budget.to_dict()})
