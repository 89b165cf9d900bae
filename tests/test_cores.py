import fcntl
import multiprocessing as mp
import os
import time

from nas import cores, export, measure, models, spaces


def _train_until_released(started, release, log):
    with cores.training():
        log.put("train-start")
        started.set()
        release.wait(60)
        log.put("train-end")  # still holding the lock


def _time_once(log):
    with cores.timing(while_waiting=lambda: log.put("timing-blocked")):
        log.put("timing")


def events_until(log, last: str, count: int = 1) -> list[str]:
    seen = []
    while seen.count(last) < count:
        seen.append(log.get(timeout=60))
    return seen


def test_timing_waits_for_the_trainings_which_share_the_cores(tmp_path, monkeypatch):
    """By the order of events, not by the clock: the timing is seen blocked while both trainings hold
    the lock, and runs only after both ended. A broken lock times at once, before any training ends."""
    monkeypatch.setattr(cores, "LOCK_DIR", tmp_path)
    ctx = mp.get_context("fork")
    log, release = ctx.Queue(), ctx.Event()
    trainers = [ctx.Process(target=_train_until_released, args=(ctx.Event(), release, log)) for _ in range(2)]
    for p in trainers:
        p.start()
    seen = events_until(log, "train-start", 2)  # both hold the shared lock at once
    timer = ctx.Process(target=_time_once, args=(log,))
    timer.start()
    seen += events_until(log, "timing-blocked")
    release.set()
    seen += events_until(log, "timing")
    for p in (*trainers, timer):
        p.join(30)
    assert "timing" not in seen[:seen.index("timing-blocked")]
    assert seen.index("timing") > max(i for i, e in enumerate(seen) if e == "train-end")
    assert seen.count("train-end") == 2


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
    log, started, release = ctx.Queue(), ctx.Event(), ctx.Event()
    trainer = ctx.Process(target=_train_until_released, args=(started, release, log))
    trainer.start()
    assert started.wait(30)
    calls = []

    def waiting():
        calls.append(len(calls))
        if len(calls) == 3:
            release.set()  # the training ends only once the timing has waited three times

    with cores.timing(while_waiting=waiting):
        timed_after = events_until(log, "train-end")
    trainer.join(30)
    assert len(calls) >= 3 and timed_after == ["train-start", "train-end"]


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


def _note(path, event: str) -> None:
    with open(path, "a") as f:  # one write per line, appended: the file keeps the order events happened in
        f.write(event + "\n")


def _train_in_steps(path, started, release):
    deadline = time.monotonic() + 120  # a test that never releases it must not leave it spinning
    with cores.training():
        started.set()
        while not release.is_set() and time.monotonic() < deadline:
            _note(path, "step")
            cores.let_timing_in()
        _note(path, "train-end")


def test_a_training_steps_aside_for_a_timing_and_carries_on_after_it(tmp_path, monkeypatch):
    """By the order of events: the timing runs in the middle of the training, and no step runs during it."""
    monkeypatch.setattr(cores, "LOCK_DIR", tmp_path)
    path = tmp_path / "events"
    ctx = mp.get_context("fork")
    started, release = ctx.Event(), ctx.Event()
    trainer = ctx.Process(target=_train_in_steps, args=(path, started, release), daemon=True)
    trainer.start()
    assert started.wait(30)
    waits = []

    def no_deadlock():  # a training that never steps aside would hold the timing off until its end
        waits.append(1)
        assert len(waits) < 60, "the training did not step aside for the timing"

    with cores.timing(while_waiting=no_deadlock):
        _note(path, "timing-start")
        steps_before = path.read_text().split().count("step")
        for _ in range(3):
            os.sched_yield()
        _note(path, "timing-end")
    while path.read_text().split().count("step") <= steps_before + 5:  # it carries on by itself
        os.sched_yield()
    release.set()
    trainer.join(30)
    events = path.read_text().split()
    start, end = events.index("timing-start"), events.index("timing-end")
    assert end == start + 1 and steps_before > 0  # nothing stepped while the timing ran
    assert events[-1] == "train-end" and "step" in events[end:]  # the same training went on after it
