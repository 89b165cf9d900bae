import numpy as np

from nas.pruning import RungPruner, nondominated_ranks


def test_ranks_peel_fronts():
    # (cost a, cost b), both minimised
    points = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [6, 6], [4, 4]])
    assert nondominated_ranks(points).tolist() == [0, 0, 0, 1, 3, 2]


def test_waits_for_enough_peers():
    pruner = RungPruner(eta=3, n_min=5)
    worst = (0.1, 100.0)
    assert pruner.keeps(worst, [worst, (0.9, 1.0), (0.8, 2.0)])


def test_single_cost_curves_keep_the_front_and_drop_the_dominated():
    """Constructed rung accuracies: same cost, accuracy decides; a cheap fair model survives."""
    pruner = RungPruner(eta=3, n_min=5)
    # (accuracy at the rung, MACs)
    trials = [(0.90, 50.0), (0.85, 50.0), (0.70, 50.0), (0.60, 50.0), (0.80, 5.0), (0.50, 60.0)]
    kept = [t for t in trials if pruner.keeps(t, trials)]
    assert kept == [(0.90, 50.0), (0.80, 5.0)]  # the two non-dominated points: top 1/3 of 6


def test_curves_over_rungs_prune_the_hopeless_early():
    """Accuracy curves over 3 rungs: the poor starters go at rung 1, the plateau ('e') at rung 2."""
    pruner = RungPruner(rungs=(1, 2), eta=2, n_min=3)
    curves = {  # trial -> accuracy at epochs 1, 2, 3; all of equal cost
        "a": [0.80, 0.86, 0.90], "b": [0.78, 0.85, 0.89], "c": [0.60, 0.70, 0.75],
        "d": [0.55, 0.65, 0.70], "e": [0.79, 0.80, 0.81], "f": [0.40, 0.50, 0.60],
    }
    alive = set(curves)
    for rung_index, _ in enumerate(pruner.rungs):
        reached = [(curves[t][rung_index], 1.0) for t in sorted(curves) if t in alive]
        alive = {t for t in alive if pruner.keeps((curves[t][rung_index], 1.0), reached)}
    assert alive == {"a", "b"}


def test_ties_keep_at_least_one():
    pruner = RungPruner(eta=10, n_min=3)
    same = [(0.5, 1.0)] * 4
    assert pruner.keeps(same[0], same)
