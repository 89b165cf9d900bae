"""How long a search will take: the ladder's expected work, priced at this machine's measured speed.

A drawn trial trains rung 0, stopped at each pruning epoch unless in the top 1/eta there, and the top
1/eta of each rung's completed trials train again at the next rung (nas/pruning.py). So a trial's
expected work is a sum over the ladder's levels, each weighted by the share of trials that reach it.
Work is counted in images: trained images, and scored images (a forward pass, about a third of a
training step's cost, twice with the flip TTA). `calibrate` prices an image by timing a few training
steps of random draws of the space on this machine; `Progress` corrects the price with the search's
own trials as they finish, which is what the live display's time left shows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from nas.config import Budget, SearchConfig

FORWARD_SHARE = 1 / 3  # a scored image's cost against a trained image's (forward only, no backward/step)
TTA_SHARE = 1.5  # scored images per validation image: the flip TTA (twice) is drawn for about half the trials
MEASURE_SECONDS = 3.0  # per drawn trial: counting, ONNX export and latency timing, building the model


@dataclass(frozen=True)
class Level:
    """One level of the ladder: a pruning epoch inside rung 0, or a whole rung."""

    name: str  # "rung 0", "rung 1", ...
    share: float  # of drawn trials that train at this level
    train_images: float  # images each of them trains here
    scored_images: float  # validation images each scores here (before the TTA)


def levels(config: SearchConfig, train_images: int, val_images: int) -> list[Level]:
    """The ladder as levels. train_images: the whole training split (rung 0 trains config.subset of it)."""
    first = Budget(config.epochs, config.subset)
    cuts = [e for e in sorted(config.prune_epochs) if e < config.epochs]
    points = [0, *cuts, config.epochs]
    out = []
    for j, (start, end) in enumerate(zip(points, points[1:])):
        out.append(Level("rung 0", config.eta ** -j, (end - start) * first.subset * train_images, val_images))
    kept = config.eta ** -len(cuts)  # share of drawn trials that complete rung 0
    for k, budget in enumerate(config.budgets, start=1):
        out.append(Level(f"rung {k}", kept * config.eta ** -k, budget.images * train_images, val_images))
    return out


@dataclass(frozen=True)
class Estimate:
    """Expected worker-seconds of a search, per rung, at `images_per_second` per worker."""

    images_per_second: float  # training throughput of one worker, averaged over the space's draws
    share: dict[str, float]  # per rung (and "measure"): the share of drawn trials that train there
    seconds_each: dict[str, float]  # per rung: worker-seconds of one trial there (rung 0: on average)
    workers: int

    def per_trial(self, rung: str | None = None) -> float:
        """Worker-seconds per drawn trial, of one rung or all."""
        names = [rung] if rung else self.share
        return sum(self.share[n] * self.seconds_each[n] for n in names)

    def wall_seconds(self, trials: int) -> float:
        return trials * self.per_trial() / self.workers


def estimate(config: SearchConfig, images_per_second: float, train_images: int, val_images: int,
             workers: int) -> Estimate:
    share, seconds_each = {"measure": 1.0, "rung 0": 1.0}, {"measure": MEASURE_SECONDS, "rung 0": 0.0}
    for level in levels(config, train_images, val_images):
        seconds = (level.train_images + level.scored_images * TTA_SHARE * FORWARD_SHARE) / images_per_second
        if level.name == "rung 0":  # its pruning epochs' levels: one average rung-0 trial
            seconds_each["rung 0"] += level.share * seconds
        else:
            share[level.name], seconds_each[level.name] = level.share, seconds
    return Estimate(images_per_second, share, seconds_each, workers)


def calibrate(space, inputs, threads: int, draws: int = 6, steps: int = 3, batch: int = 256, seed: int = 0) -> float:
    """Training images per second of one worker (`threads` threads) over `draws` seeded random draws of the
    space: the total images over the total seconds, as a search's trials would add up."""
    import optuna
    import torch

    from nas import cores, models, spaces, train
    from nas.config import Recipe

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    device = torch.device("cpu")
    precision = train.pick_precision(device)
    x = torch.rand(batch, inputs.channels, inputs.size, inputs.size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, len(inputs.classes), (batch,))
    seconds = 0.0
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with cores.training():
            for _ in range(draws):
                model = models.build(spaces.sample(sampler.ask(), space, inputs.size), inputs).to(
                    memory_format=torch.channels_last)
                optimizer = train.make_optimizer(model, Recipe())
                for step in range(steps + 1):  # the first step sets oneDNN up: not timed
                    start = time.perf_counter()
                    with train.autocast(device, precision):
                        loss = torch.nn.functional.cross_entropy(model(x).float(), y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    seconds += (time.perf_counter() - start) if step else 0.0
    finally:
        torch.set_num_threads(before)
    return draws * steps * batch / seconds


class Progress:
    """Time left of a running search: the estimate's remaining work, priced at the pace its finished
    trials showed (elapsed wall time over the estimated worker-seconds of the work they did)."""

    def __init__(self, plan: Estimate, trials_left: int | None, minutes: float | None):
        self.plan, self.minutes = plan, minutes
        self.total = plan.per_trial() * trials_left if trials_left is not None else None  # worker-seconds
        self.started = time.monotonic()
        self.done = 0.0  # estimated worker-seconds of the work finished so far
        # the plan's own pace counts as this many wall-seconds of evidence: a trial or two in, the pace seen
        # is mostly the work still in flight, which has taken time but is not done yet
        self.prior = 0.1 * self.total / plan.workers if self.total else 0.0

    def finished(self, rung: int, trained: bool) -> None:
        """A trial ended: at rung 0 (measured, and `trained` there unless infeasible or reused), or a
        promotion at `rung`."""
        names = ["measure", "rung 0"] if rung == 0 and trained else ["measure"] if rung == 0 else [f"rung {rung}"]
        self.done += sum(self.plan.seconds_each.get(n, 0.0) for n in names)

    def seconds_left(self) -> float | None:
        elapsed = time.monotonic() - self.started
        left = None
        if self.total is not None:
            pace = (elapsed + self.prior) / (self.done / self.plan.workers + self.prior) if self.done else 1.0
            left = max(0.0, self.total - self.done) / self.plan.workers * pace
        if self.minutes is not None:
            left = min(left if left is not None else float("inf"), max(0.0, 60 * self.minutes - elapsed))
        return left
