"""Several local workers on one study: one process per device (or per core), each asking, training and
telling on its own; the parent shows their progress and stops them cleanly."""

from __future__ import annotations

import dataclasses
import os
import time

from nas.config import SearchConfig
from nas.errors import NasError, UsageError
from nas.results import counts
from nas.search import Search
from nas.storage import open_storage

STOP_GRACE = 30  # seconds a stopped worker has to fail and requeue its trial before it is killed


def worker_devices(spec: str, jobs: int | None, gpus: int) -> list[str]:
    """One device per worker. `--device cuda:0,cuda:1` (or `cuda`, or `auto` with GPUs visible): one worker
    per GPU, one trial per accelerator; `cpu` or `cuda:N`: `--jobs` workers sharing it (None: one per core
    on the CPU, measured the faster on 2 cores in benchmarks/workers_vs_threads.py; one on a GPU)."""
    spec = (spec or "auto").strip()
    if spec == "auto":
        spec = "cuda" if gpus else "cpu"
    if spec == "cuda":
        if not gpus:
            raise UsageError("--device cuda: no CUDA GPU is visible; use --device cpu")
        names = [f"cuda:{i}" for i in range(gpus)]
    else:
        names = [d.strip() for d in spec.split(",") if d.strip()]
    if len(names) == 1:
        per_core = os.cpu_count() or 1
        return names * (jobs or (per_core if names[0] == "cpu" else 1))
    if jobs not in (None, 1, len(names)):
        raise UsageError(f"--device {spec} names {len(names)} devices but --jobs is {jobs}; drop --jobs "
                         f"(one worker per device)")
    if len(set(names)) != len(names):
        raise UsageError(f"--device {spec} names a device twice")
    return names


def _worker(config: SearchConfig, index: int, jobs: int, queue) -> None:
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches every process: the parent passes it on
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))  # share the cores, do not oversubscribe
    try:
        runner = Search(config, events=lambda event, **info: queue.put((event, {**info, "worker": index})), worker=index)
        signal.signal(signal.SIGTERM, runner.request_stop)  # run_workers' terminate(): fail and requeue the trial
        runner.run()
        queue.put(("worker-done", {"worker": index}))
    except NasError as e:
        queue.put(("worker-error", {"worker": index, "message": str(e)}))
    except KeyboardInterrupt:
        pass


def run_workers(config: SearchConfig, devices: list[str], events) -> dict[str, int]:
    """One process per entry of `devices` on this machine, one study. Each asks, trains and tells on its own;
    the storage hands out trial numbers, so none runs twice. Near the end up to K-1 trials may be over N."""
    import multiprocessing as mp
    import queue as queue_module

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    jobs = len(devices)
    procs = [ctx.Process(target=_worker, args=(dataclasses.replace(config, device=d), i, jobs, queue))
             for i, d in enumerate(devices)]
    for p in procs:
        p.start()
    finished, error = set(), None
    try:
        while len(finished) < jobs:
            try:
                event, info = queue.get(timeout=1.0)
            except queue_module.Empty:
                for i, p in enumerate(procs):
                    if not p.is_alive() and i not in finished:
                        finished.add(i)
                        error = error or f"worker {i} exited with status {p.exitcode}"
                continue
            if event == "worker-done":
                finished.add(info["worker"])
            elif event == "worker-error":
                finished.add(info["worker"])
                error = error or info["message"]
            else:
                events(event, **info)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        # a worker exits only once what it queued is read, so keep reading while they stop; one that has not
        # stopped within STOP_GRACE is killed (the next run recovers its trial as crashed)
        deadline = time.monotonic() + STOP_GRACE
        while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
            try:
                queue.get(timeout=0.2)
            except queue_module.Empty:
                pass
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join()
    if error:
        raise NasError(error)
    import optuna

    return counts(optuna.load_study(study_name=config.study, storage=open_storage(config.storage)))
