"""Who may use this machine's cores: any number of trainings at once, or one latency timing alone.

A latency figure taken while a trial trains on the same cores is meaningless (0.5 ms becomes
hundreds), so every nas process (search workers, `nas train`, `nas export`, `nas evaluate`) takes a
machine-wide readers-writer lock: training and test scoring hold it shared, timing holds it
exclusive. A turnstile lock gives the timing priority: once it waits, no new training
starts, and a training in flight steps aside at its next optimiser step (let_timing_in) until
the timing is done. Without that, a worker's few seconds of timing waited for the other
worker's whole training: up to 11 minutes behind a promotion (benchmarks/README.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from pathlib import Path

LOCK_DIR = Path(os.environ.get("NAS_LOCK_DIR", tempfile.gettempdir()))


def _lock_file(name: str):
    LOCK_DIR.mkdir(parents=True, exist_ok=True)  # NAS_LOCK_DIR may name a folder not made yet
    return open(LOCK_DIR / f"nas-{os.getuid()}-{name}.lock", "a+")


@contextlib.contextmanager
def _held(f, mode, while_waiting=None):
    if while_waiting is None:
        fcntl.flock(f, mode)
    else:
        while True:
            try:
                fcntl.flock(f, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                while_waiting()
                time.sleep(1)
    try:
        yield
    finally:
        fcntl.flock(f, fcntl.LOCK_UN)


_trainings = []  # (turnstile, cores) lock files of this process's trainings in flight


@contextlib.contextmanager
def training():
    """Held while a model trains; many may hold it at once."""
    with _lock_file("turnstile") as turnstile, _lock_file("cores") as cores:
        with _held(turnstile, fcntl.LOCK_EX):  # wait behind a timing that is queued
            fcntl.flock(cores, fcntl.LOCK_SH)
        _trainings.append((turnstile, cores))
        try:
            yield
        finally:
            _trainings.remove((turnstile, cores))
            fcntl.flock(cores, fcntl.LOCK_UN)


def let_timing_in() -> None:
    """Between two training steps: if a timing waits (it holds the turnstile), give the cores up until it
    is done, then carry on. Two flock calls when nothing waits."""
    for turnstile, cores in _trainings:
        try:
            fcntl.flock(turnstile, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            fcntl.flock(cores, fcntl.LOCK_UN)
            with _held(turnstile, fcntl.LOCK_EX):  # free again once the timing has its result
                fcntl.flock(cores, fcntl.LOCK_SH)
        else:
            fcntl.flock(turnstile, fcntl.LOCK_UN)


@contextlib.contextmanager
def timing(while_waiting=None):
    """Held while latency is timed: nothing trains meanwhile.

    while_waiting: called about once a second until the lock is ours. A search worker beats its
    trial's heartbeat there: a training steps aside at its next step, but scoring does not (seconds to
    minutes), and a silent trial would be taken for dead by the other workers.
    """
    with _lock_file("turnstile") as turnstile, _lock_file("cores") as cores:
        with _held(turnstile, fcntl.LOCK_EX, while_waiting), _held(cores, fcntl.LOCK_EX, while_waiting):
            yield
