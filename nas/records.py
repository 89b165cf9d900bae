"""One record per trial: what nas stores on an Optuna trial, read in one place.

Search writes these attributes; front, export and report read them only through TrialRecord."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(str, Enum):
    TRAINED = "trained"  # drawn by the sampler and trained
    REFERENCE = "reference"  # a preset of the space (--with-presets), trained for comparison
    REUSED = "reused"  # the same arch and recipe as an earlier trial, whose result it copies
    INFEASIBLE = "infeasible"  # over a limit: measured, never trained


@dataclass(frozen=True)
class TrialRecord:
    number: int  # the architecture's number: its trial in rung 0, whatever rung this result comes from
    rung: int  # 0 = the search's first budget; k = promoted k times
    kind: Kind | None  # None while running, or failed before it was measured
    values: tuple[float, ...] | None  # the objectives, accuracy first
    arch: dict | None
    recipe: dict | None
    summary: str | None
    preset: str | None
    params: int | None
    macs: int | None
    latency: dict  # median_ms, iqr_ms, backend, threads, ...
    fidelity: dict | None  # the budget this result was trained at: epochs, subset
    train_images_per_second: float | None
    distributions: dict  # what the sampler could draw, per parameter
    trial: object  # the optuna FrozenTrial underneath

    @classmethod
    def of(cls, t, rung: int = 0) -> "TrialRecord":
        a = t.user_attrs
        kind = a.get("kind")
        return cls(number=a.get("root", t.number), rung=rung, kind=Kind(kind) if kind else None,
                   values=tuple(t.values) if t.values else None, arch=a.get("arch"), recipe=a.get("recipe"),
                   summary=a.get("summary"), preset=a.get("preset"), params=a.get("params"), macs=a.get("macs"),
                   latency=a.get("latency") or {}, fidelity=a.get("fidelity"),
                   train_images_per_second=a.get("train_images_per_second"), distributions=t.distributions, trial=t)

    @property
    def accuracy(self) -> float:
        return self.values[0] if self.values else float("nan")

    @property
    def latency_ms(self) -> float | None:
        return self.latency.get("median_ms")

    @property
    def trained(self) -> bool:
        return self.kind in (Kind.TRAINED, Kind.REFERENCE)

    @property
    def feasible(self) -> bool:
        return all(v <= 0 for v in self.trial.constraints.values())
