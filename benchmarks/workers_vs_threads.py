"""One worker with every core, or one worker per core? The training throughput of the same seeded draws
of a space, trained (a few timed steps each, as `nas search` calibrates its estimate) by one process
with all threads, then by one process per core with one thread each, side by side. Prints images per
second of the machine for both and their ratio. Run it on an otherwise idle machine.

    python benchmarks/workers_vs_threads.py --space resnet_like --draws 12
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os

from nas import data, machine, plan, spaces


def rate(space_name: str, threads: int, draws: int, seed: int, out) -> None:
    speeds = plan.calibrate(spaces.load(space_name), data.builtin_inputs(), threads, batch=256, draws=draws, steps=3,
                            seed=seed)
    out.put(plan.Speed.average(speeds).train)


def side(space_name: str, workers: int, draws: int, seed: int) -> float:
    """Images per second of the machine: the workers' rates added up (each trains the same draws)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = [ctx.Process(target=rate, args=(space_name, threads, draws, seed, out)) for _ in range(workers)]
    for p in procs:
        p.start()
    rates = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return sum(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default="resnet_like")
    parser.add_argument("--draws", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(machine.header())
    cores = os.cpu_count() or 1
    one = side(args.space, 1, args.draws, args.seed)
    many = side(args.space, cores, args.draws, args.seed)
    print(f"1 worker x {cores} threads: {one:.0f} training images/s")
    print(f"{cores} workers x 1 thread: {many:.0f} training images/s ({many / one:.2f}x)")


if __name__ == "__main__":
    main()
