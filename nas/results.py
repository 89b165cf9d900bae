"""A study's results as nas reads them: trials per kind, the front of each rung, promotions."""

from __future__ import annotations

from nas.records import Kind, TrialRecord


def counts(study) -> dict[str, int]:
    """trained (completed or pruned, the --trials count), pruned, infeasible, reused, failed, running."""
    from optuna.trial import TrialState

    c = dict.fromkeys(("trained", "completed", "pruned", "infeasible", "reused", "reference", "failed", "running"), 0)
    for t in study.get_trials(deepcopy=False):
        kind = TrialRecord.of(t).kind
        if t.state == TrialState.RUNNING:
            c["running"] += 1
        elif kind in (Kind.TRAINED, Kind.PRUNED):
            c["completed" if kind == Kind.TRAINED else "pruned"] += 1
            c["trained"] += 1
        elif kind is not None:
            c[kind.value] += 1
    return c


def front(study) -> list:
    """TrialRecords of the Pareto front of the highest rung reached, most accurate first, then of each lower
    rung the front's architectures not shown yet: results are compared only with results of the same budget.
    Reused duplicates are left out (their original stands for them)."""
    from nas.pruning import rungs_of

    rows, shown = [], set()
    for rung, rung_study in reversed(list(enumerate(rungs_of(study)))):
        best = [TrialRecord.of(t, rung) for t in rung_study.best_trials]
        for record in sorted((r for r in best if r.trained), key=lambda r: -r.accuracy):
            if record.number not in shown:
                rows.append(record)
                shown.add(record.number)
    return rows


def promotions(study) -> dict[int, int]:
    """Completed trials per rung above 0: {1: 12, 2: 4, 3: 1}."""
    from optuna.trial import TrialState

    from nas.pruning import rungs_of

    return {k: len(s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            for k, s in enumerate(rungs_of(study)) if k > 0}


