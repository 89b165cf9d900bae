"""Pruning and promotion for several objectives: successive halving by non-dominated rank.

Two mechanisms share one ranking (`ranked`: non-dominated rank of (accuracy, costs), then accuracy):
- RungPruner stops a trial early inside rung 0, at a few of its epochs.
- Ladder promotes the best of each rung to the next, larger budget (asynchronous successive halving,
  ASHA, Li et al. 2020), through the storage so that any number of workers share it.

Optuna's `Trial.report` raises NotImplementedError in multi-objective studies (optuna#3450), so
nas prunes by itself. At each rung epoch r1 < r2 < ..., a trial records its validation accuracy
at that rung in the storage; it stops when, among at least `n_min` trials that reached the same
rung (any worker, any state), it falls outside the top 1/eta. "Top" orders by non-dominated rank
of (accuracy at the rung, the trial's known costs) and, within a rank, by accuracy. A cheap model
with fair accuracy therefore survives beside an accurate expensive one: the front is kept, not
just the most accurate corner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from nas import records
from nas.optuna_adapter import add_trial, storage, take_waiting, trial_by_number
from nas.records import Kind, TrialRecord


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """a dominates b when it is no worse everywhere and better somewhere (all minimised)."""
    return bool(np.all(a <= b) and np.any(a < b))


def nondominated_ranks(points: np.ndarray) -> np.ndarray:
    """Rank 0 = the Pareto front, rank 1 = the front once rank 0 is removed, ... (all minimised)."""
    n = len(points)
    ranks = np.full(n, -1)
    remaining = set(range(n))
    rank = 0
    while remaining:
        front = [i for i in remaining if not any(dominates(points[j], points[i]) for j in remaining if j != i)]
        for i in front:
            ranks[i] = rank
        remaining -= set(front)
        rank += 1
    return ranks


def ranked(points: list[tuple[float, ...]]) -> list[int]:
    """Indices of points (accuracy, cost1, cost2, ...), best first: by non-dominated rank, then accuracy."""
    losses = np.array([(-p[0], *p[1:]) for p in points], dtype=float)
    ranks = nondominated_ranks(losses)
    return sorted(range(len(points)), key=lambda i: (ranks[i], losses[i][0]))


@dataclass(frozen=True)
class RungPruner:
    rungs: tuple[int, ...] = (1, 2)  # epochs at which a trial is judged
    eta: float = 3.0  # keep the top 1/eta at each rung
    n_min: int = 5  # judge only once this many trials (this one included) reached the rung

    def keeps(self, me: tuple[float, ...], peers: list[tuple[float, ...]]) -> bool:
        """me and peers: (accuracy, cost1, cost2, ...); peers includes me. True = go on training."""
        if len(peers) < self.n_min:
            return True
        kept = max(1, math.ceil(len(peers) / self.eta))
        position = next(k for k, i in enumerate(ranked(peers)) if tuple(peers[i]) == tuple(me))
        return position < kept


# ---------------------------------------------------------------- promotions between rungs

def rung_study_name(study_name: str, rung: int) -> str:
    """Rung k > 0 lives in a study of its own, so Optuna's front, the dashboard and the sampler (which
    learns from rung 0 only) never compare results of different budgets."""
    return f"{study_name}/rung-{rung}"


def is_rung_study(name: str) -> bool:
    return "/rung-" in name


def rungs_of(study) -> list:
    """[study, its rung-1 study, its rung-2 study, ...]: those that exist, none created."""
    import optuna

    names = set(optuna.get_all_study_names(storage(study)))
    studies = [study]
    while rung_study_name(study.study_name, len(studies)) in names:
        studies.append(optuna.load_study(study_name=rung_study_name(study.study_name, len(studies)),
                                         storage=storage(study)))
    return studies


@dataclass
class Promotion:
    rung: int  # the rung it trains at now (>= 1)
    trial: object  # an optuna.Trial of that rung's study, RUNNING and owned by this worker
    root: object  # the FrozenTrial of rung 0 the architecture was drawn in; its number names it everywhere


class Ladder:
    """The rungs of one search: study 0 (where trials are drawn) and one study per promotion budget.

    A trial of rung k is promoted once it ranks in the top floor(n_k / eta) of the n_k trials that completed
    rung k (those pruned inside rung 0 were judged at their pruning epoch already: every level of the
    ladder, pruning epoch or rung, keeps 1/eta of those that reached it: ASHA's asynchronous rule alone
    promoted 43% here, as the top changed), and only once: a root appears at most once per rung, the lowest-numbered claim wins when two workers promote together, and a promotion
    that crashed is queued again by the search's requeue()."""

    def __init__(self, study, budgets, eta: float):
        import optuna

        self.eta = eta
        self.studies = [study]
        for k, budget in enumerate(budgets, start=1):
            rung = optuna.create_study(study_name=rung_study_name(study.study_name, k), storage=storage(study),
                                       directions=study.directions, load_if_exists=True,
                                       sampler=optuna.samplers.RandomSampler())
            if records.rung_budget(rung) is None:
                if study.metric_names:
                    rung.set_metric_names(study.metric_names)
                records.write_rung_budget(rung, k, study.study_name, budget)
            self.studies.append(rung)

    def claim(self, fits=None) -> Promotion | None:
        """The next promotion for this worker, highest rung first (ASHA); None when nothing is due.

        fits(root, k) -> bool, optional: whether there is time left to train `root` at rung k; due promotions
        that do not fit are left for later (a queued one, left by a crash, is always taken)."""
        for k in range(len(self.studies) - 1, 0, -1):
            promotion = self._claim_at(k, fits)
            if promotion is not None:
                return promotion
        return None

    def clock_seconds(self, k: int, budget, train_images: int, speed: float | None = None) -> float | None:
        """Rung k by the clock: how long each of its trials trains. Set once (a resumed search keeps it, so the
        rung ranks every trial at one length): the time `budget`'s images take at `speed` (images/s, the
        calibrated speed the search's estimate uses), else at the median training speed of rung 0's trials so
        far. (Two workers getting there at the same moment may each set it, from nearly the same trials.)
        None while there is neither a speed nor a trial of rung 0 with a measured one."""
        stored = records.rung_budget(self.studies[k]) or {}
        if not stored.get("seconds"):
            speed = speed or self._median_speed()
            if speed is None:
                return None
            seconds = round(budget.images * train_images / speed, 1)
            records.write_rung_budget(self.studies[k], k, self.studies[0].study_name,
                                      replace(budget, seconds=seconds))
            stored = records.rung_budget(self.studies[k])
        return stored["seconds"]

    def _median_speed(self) -> float | None:
        """The median training speed (images/s) of rung 0's completed trials; None before the first."""
        from optuna.trial import TrialState

        trials = self.studies[0].get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        speeds = sorted(s for t in trials if (s := records.stored(t).train_images_per_second))
        return speeds[len(speeds) // 2] if speeds else None

    def busy(self) -> bool:
        """Is any trial of any rung running (in another worker)? Its result may yet earn a promotion.
        Queued ones do not count: a rung's queue is emptied by claim(), rung 0's only while trials are due."""
        from optuna.trial import TrialState

        return any(s.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) for s in self.studies)

    def _claim_at(self, k: int, fits=None) -> Promotion | None:
        study = self.studies[k]
        trial = take_waiting(study)  # a promotion queued again after a crash goes first
        if trial is None:
            due = [root for root in self._due(k) if fits is None or fits(root, k)]
            if not due:
                return None
            self.queue(study, due[0], root=due[0].number)
            trial = take_waiting(study)  # ours, or another worker's queued at the same moment
            if trial is None:
                return None
        root = self._root(records.stored(trial).root)
        if self._claimed_earlier(study, trial):
            return self._drop_duplicate(study, trial, k, fits)
        return Promotion(rung=k, trial=trial, root=root)

    def _due(self, k: int) -> list:
        """Roots (FrozenTrials of rung 0) in the top 1/eta of rung k-1 that rung k has not seen yet."""
        from optuna.trial import TrialState

        below = self.studies[k - 1]
        trials = below.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        done = [t for t in trials if (r := TrialRecord.of(t)).trained and r.feasible]
        kept = int(len(done) // self.eta)
        top = [done[i] for i in ranked([tuple(t.values) for t in done])[:kept]] if kept and done else []
        seen = {records.stored(t).root for t in self.studies[k].get_trials(deepcopy=False)}
        roots = [TrialRecord.of(t).number for t in top]
        # at most floor(n / eta) promoted in all: once the top has changed, those promoted earlier still count
        return [self._root(r) for r in roots if r not in seen][:max(0, kept - len(seen))]

    def _root(self, number: int):
        return trial_by_number(self.studies[0], number)

    @staticmethod
    def queue(study, like, **fields) -> None:
        """Queue a trial with the params of `like` (a root, or a promotion to run again) into `study`, with
        `like`'s root and preset and the stored `fields` given."""
        from optuna.trial import TrialState, create_trial

        was = records.stored(like)
        template = create_trial(state=TrialState.WAITING, params=like.params, distributions=like.distributions,
                                user_attrs=records.attrs(root=was.root, preset=was.preset) | records.attrs(**fields))
        add_trial(study, template)

    @staticmethod
    def _claimed_earlier(study, trial) -> bool:
        from optuna.trial import TrialState

        root = records.stored(trial).root
        return any(records.stored(t).root == root and t.number < trial.number and t.state != TrialState.FAIL
                   for t in study.get_trials(deepcopy=False))

    def _drop_duplicate(self, study, trial, k: int, fits) -> Promotion | None:
        from optuna.trial import TrialState

        records.write(trial, fail_reason="promoted at the same moment by another worker, which trains it",
                      kind=Kind.FAILED)
        study.tell(trial, state=TrialState.FAIL)
        return self._claim_at(k, fits)
