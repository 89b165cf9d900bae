"""report.py on constructed inputs: hypervolume, the front's rows and its table."""

import math

import optuna
import pytest
from rich.console import Console

from nas import report
from nas.records import TrialRecord


def test_costs_are_normalised_on_a_log_scale_and_accuracy_as_error():
    losses = report.normalised_losses([0.9, 10 ** 7.5, 1.0], ["accuracy", "macs", "latency"])
    assert losses == pytest.approx([0.1, 0.5, 0.5])  # macs 1e5-1e10, latency 0.01-100 ms
    assert report.normalised_losses([0.2, 1e12], ["accuracy", "macs"]) == pytest.approx([0.8, 1.0])  # clipped


def test_hypervolume_of_constructed_points():
    objectives = ["accuracy", "macs"]
    a = (0.9, 1e5)  # losses (0.1, 0): the box [0.1, 1] x [0, 1]
    dominated = (0.5, 10 ** 7.5)  # (0.5, 0.5): inside a's box, adds nothing
    d = (0.95, 10 ** 7.5)  # (0.05, 0.5): adds the strip [0.05, 0.1] x [0.5, 1]
    assert report.hypervolume([], objectives) == 0.0
    assert report.hypervolume([a], objectives) == pytest.approx(0.9)
    assert report.hypervolume([a, dominated], objectives) == pytest.approx(0.9)
    assert report.hypervolume([a, dominated, d], objectives) == pytest.approx(0.9 + 0.05 * 0.5)


def trial(number, acc, rung=0, **attrs):
    t = optuna.trial.create_trial(values=[acc, attrs.get("macs", 1e6)], user_attrs=attrs)
    t.number = number
    return TrialRecord.of(t, rung)


def test_front_rows_carry_each_trials_figures_and_the_standard_error():
    trials = [trial(3, 0.9, rung=2, params=1000, macs=2e6, latency={"median_ms": 0.5, "iqr_ms": 0.01},
                    summary="stem8", preset="full-res-resnet", root=3, fidelity={"epochs": 9, "subset": 0.8}),
              trial(7, 0.8, params=10, macs=3e5, latency={"median_ms": 0.1, "iqr_ms": 0.002}, summary="stem4",
                    fidelity={"epochs": 4, "subset": 0.2})]
    rows = report.front_rows(trials, val_size=10_000)
    assert [(r["trial"], r["rung"], r["epochs"], r["subset"]) for r in rows] == [(3, 2, 9, 0.8), (7, 0, 4, 0.2)]
    first = rows[0]
    assert first["val_acc_se"] == pytest.approx(math.sqrt(0.9 * 0.1 / 10_000))  # 0.003
    assert (first["params"], first["macs"], first["latency_ms"], first["latency_iqr_ms"]) == (1000, 2e6, 0.5, 0.01)
    assert first["preset"] == "full-res-resnet" and rows[1]["preset"] is None and first["values"] == [0.9, 2e6]

    console = Console(record=True, width=200)
    console.print(report.front_table(rows, "front"))
    text = console.export_text()
    assert "3 (full-res-resnet)" in text and "0.9000 ± 0.0030" in text and "2M" in text and "0.500" in text
    assert "2 (9x0.8)" in text  # the rung and its budget


@pytest.mark.parametrize("n, shown", [(11172810, "11.17M"), (456769024, "456.8M"), (696500, "696.5K"), (12, "12")])
def test_counts_are_shown_in_human_units(n, shown):
    assert report.fmt_count(n) == shown


def test_many_classes_show_their_extremes_and_median_and_a_spread_of_sample_rows(tmp_path):
    import numpy as np

    classes = [f"c{i}" for i in range(100)]
    counts = list(range(1, 101))  # class i has i + 1 training images
    stats = {"dataset": "many", "classes": classes,
             "splits": {"train": {"images": sum(counts), "counts": counts, "mean": 1.0, "std": 2.0}}}
    console = Console(width=200, record=True)
    console.print(report.data_table(stats))
    text = console.export_text()
    assert "0 c0" in text and "99 c99" in text and "median of 100" in text and "50 c50" not in text
    labels = np.repeat(np.arange(100), 3)
    images = np.zeros((300, 3, 8, 8), np.uint8)
    picture = report.sample_grid(images, labels, classes, tmp_path / "grid.png", per_class=3)
    from PIL import Image

    assert Image.open(picture).size[1] > Image.open(picture).size[0]  # a PNG of 100 rows of 3 samples: tall
