"""Pruning for several objectives: successive halving by non-dominated rank.

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
from dataclasses import dataclass

import numpy as np


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


@dataclass(frozen=True)
class RungPruner:
    rungs: tuple[int, ...] = (1, 2)  # epochs at which a trial is judged
    eta: float = 3.0  # keep the top 1/eta at each rung
    n_min: int = 5  # judge only once this many trials (this one included) reached the rung

    def keeps(self, me: tuple[float, ...], peers: list[tuple[float, ...]]) -> bool:
        """me and peers: (accuracy, cost1, cost2, ...); peers includes me. True = go on training."""
        if len(peers) < self.n_min:
            return True
        points = np.array([(-p[0], *p[1:]) for p in peers], dtype=float)  # maximise accuracy = minimise -acc
        ranks = nondominated_ranks(points)
        order = sorted(range(len(peers)), key=lambda i: (ranks[i], points[i][0]))
        kept = max(1, math.ceil(len(peers) / self.eta))
        mine = np.array((-me[0], *me[1:]), dtype=float)
        position = next(k for k, i in enumerate(order) if np.array_equal(points[i], mine))
        return position < kept
