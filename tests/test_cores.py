import fcntl
import multiprocessing as mp
import os
import time

from nas import cores, export, measure, models, spaces


def _train_for(seconds, started, log):
    with cores.training():
        started.set()
        log.put(("train-start", time.monotonic()))
        time.sleep(seconds)
        log.put(("train-end", time.monotonic()))


def test_timing_waits_for_training_and_trainings_share(tmp_path, monkeypatch):
    monkeypatch.setattr(cores, "LOCK_DIR", tmp_path)
    ctx = mp.get_context("fork")
    log, a, b = ctx.Queue(), ctx.Event(), ctx.Event()
    p1 = ctx.Process(target=_train_for, args=(0.6, a, log))
    p2 = ctx.Process(target=_train_for, args=(0.6, b, log))
    p1.start(), p2.start()
    assert a.wait(10) and b.wait(10)  # two trainings hold the cores together
    with cores.timing():
        timed_at = time.monotonic()
    p1.join(), p2.join()
    events = [log.get() for _ in range(4)]
    ends = [t for name, t in events if name == "train-end"]
    assert len(ends) == 2 and timed_at >= max(ends)  # the timing ran only after both finished


def test_a_lock_folder_not_made_yet_is_made(tmp_path, monkeypatch):
    # NAS_LOCK_DIR naming a missing folder once crashed a search on its first timing (GPU check, 2026-11-27)
    monkeypatch.setattr(cores, "LOCK_DIR", tmp_path / "not" / "yet")
    with cores.training():
        pass
    with cores.timing():
        pass
    assert sorted(p.name.split("-")[-1] for p in (tmp_path / "not" / "yet").iterdir()) == ["cores.lock", "turnstile.lock"]


def test_a_waiting_timing_keeps_calling_back_until_the_training_ends(tmp_path, monkeypatch):
    """A search worker beats its trial's heartbeat there, or the other workers take the trial for dead."""
    monkeypatch.setattr(cores, "LOCK_DIR", tmp_path)
    ctx = mp.get_context("fork")
    log, started = ctx.Queue(), ctx.Event()
    trainer = ctx.Process(target=_train_for, args=(2.5, started, log))
    trainer.start()
    assert started.wait(10)
    calls = []
    with cores.timing(while_waiting=lambda: calls.append(time.monotonic())):
        timed_at = time.monotonic()
    trainer.join()
    _, end = [log.get() for _ in range(2)][1]
    assert len(calls) >= 2 and timed_at >= end


def _timing_holds_the_cores(lock_dir) -> bool:
    """True when some process holds the cores exclusively, as cores.timing() does."""
    with open(lock_dir / f"nas-{os.getuid()}-cores.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
        return False


def test_an_export_times_its_files_only_with_the_cores_to_itself(tmp_path, monkeypatch, small):
    # two exports run side by side: one's latency must not be timed while the other trains or scores
    monkeypatch.setattr(cores, "LOCK_DIR", tmp_path)
    seen = []

    def fake_timer(*args, **kwargs):
        seen.append(_timing_holds_the_cores(tmp_path))
        return {"median_ms": 1.0, "iqr_ms": 0.0, "runs": 1}

    monkeypatch.setattr(measure, "onnx_latency", fake_timer)
    monkeypatch.setattr(measure, "torch_latency", fake_timer)
    model = models.build(spaces.load("simple_cnn").presets["seed-structure-1"]["arch"]).eval()
    export.write_programs(model, tmp_path)
    scores = export.score_files(tmp_path, small.val)
    assert scores["test_images"] == len(small.val) and scores["onnx_torch_agreement"] >= 0.99
    assert seen and all(seen)  # every timing run held the cores exclusively
