import pytest
import torch
from torch import nn

from nas import measure, models, spaces


def test_macs_of_a_known_conv_are_exact_and_uncounted_ops_are_named():
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 28 * 28, 10))
    macs, uncounted = measure.count_macs(model)
    assert macs == 28 * 28 * 8 * 9 + 8 * 28 * 28 * 10
    assert measure.count_params(model) == 8 * 9 + 8 * 28 * 28 * 10 + 10
    # an elementwise op that fvcore does not count is reported, not dropped
    macs2, uncounted2 = measure.count_macs(models.build(spaces.load("simple_cnn").presets["seed-structure-1"]["arch"]))
    assert "aten::max_pool2d" in uncounted2 and macs2 > 7e6


class ScriptedClock:
    """perf_counter for measure._time: timed call i lasts durations[i] seconds, whatever it really took."""

    def __init__(self, durations):
        self.durations, self.now, self.calls = list(durations), 0.0, 0

    def __call__(self):
        if self.calls % 2:  # the end of timed call i = calls // 2
            self.now += self.durations[self.calls // 2]
        self.calls += 1
        return self.now


def test_latency_is_the_median_and_iqr_of_the_timed_calls_on_both_backends(monkeypatch):
    model = models.build(spaces.load("simple_cnn").presets["seed-structure-1"]["arch"])
    durations = [0.001 * (i + 1) for i in range(20)]  # 1..20 ms, shuffled below: order must not matter
    for backend in ("onnxruntime", "torch"):
        monkeypatch.setattr(measure.time, "perf_counter", ScriptedClock(durations[::-1]))
        lat = measure.latency(model, backend=backend, threads=1, runs=20, warmup=3)
        assert lat["backend"] == backend and lat["threads"] == 1 and lat["device"] == "cpu" and lat["batch"] == 1
        assert lat["runs"] == 20 and lat["median_ms"] == pytest.approx(10.5)
        assert lat["iqr_ms"] == pytest.approx(15.25 - 5.75)  # numpy's linear percentiles of 1..20


def test_throughput_is_the_batch_over_the_median_call(monkeypatch):
    monkeypatch.setattr(measure.time, "perf_counter", ScriptedClock([0.5] * 5))
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    assert measure.throughput(model, batch=64, backend="torch", runs=5) == pytest.approx(64 / 0.5)


def test_onnx_export_agrees_with_torch_at_any_batch(tmp_path):
    import onnxruntime as ort

    model = models.build(spaces.load("simple_cnn").presets["seed-structure-1"]["arch"]).eval()
    measure.export_onnx(model, str(tmp_path / "m.onnx"))
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 7):
        x = torch.rand(batch, 1, 28, 28) * 255
        ours = model(x).detach().numpy()
        theirs = session.run(None, {"pixels": x.numpy()})[0]
        assert theirs.shape == (batch, 10) and abs(ours - theirs).max() < 1e-3
