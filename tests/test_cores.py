import multiprocessing as mp
import time

from nas import cores


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
