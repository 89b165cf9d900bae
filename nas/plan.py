"""How long a search will take: the ladder's expected work, priced at this machine's measured speed.

A drawn trial trains rung 0, stopped at each pruning epoch unless in the top 1/eta there, and the top
1/eta of each rung's completed trials train again at the next rung (nas/pruning.py). So a trial's
expected work is a sum over the ladder's levels, each weighted by the share of trials that reach it.
Work is counted in images: trained images, and scored images (twice with the flip TTA).

`calibrate` times a few training steps and a scoring pass of draws of the space on this machine: first
the very networks the workers will draw in TPE's random start-up (replayed from their sampler seeds),
which price the start-up, then seeded random draws. After the start-up, when a cost is
among the objectives, TPE draws cheap networks: in the main job of 2026-12-07 its draws had half the
random ones' median MACs and trained 2.2x faster, about as fast as the random draws below the median
MACs (1,182 against 1,163 images/s), so those are what the rest are priced like. `Progress` corrects
the price with the search's own trials as they finish: the live display's time left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from nas.config import Budget, SearchConfig

TTA_SHARE = 1.5  # scored images per validation image: the flip TTA (twice) is drawn for about half the trials
MEASURE_SECONDS = 4.0  # per drawn trial: counting, ONNX export, waiting for the cores and timing latency (3.9 s
# per trial in the main job of 2026-12-07, 2 workers)


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
class Speed:
    """Images per second of one worker: trained (a training step) and scored (a forward pass, eval mode)."""

    train: float
    score: float
    macs: float = 0.0  # of the network timed; 0 for an average
    startup: bool = False  # one of the sampler's own random start-up draws, replayed (calibrate's `startup`)

    @staticmethod
    def average(speeds: list[Speed]) -> Speed:
        """The speed of trials training as many images each, one after the other (harmonic means)."""
        return Speed(len(speeds) / sum(1 / s.train for s in speeds), len(speeds) / sum(1 / s.score for s in speeds))


def expected_speed(draws: list[Speed], trials: int, random_trials: int, cost_objective: bool) -> Speed:
    """The average speed of `trials` trials, the first `random_trials` drawn at random (priced like the
    sampler's own start-up draws where calibrate replayed them, else like all draws), the others by TPE:
    like the other draws below the median MACs when a cost is an objective, like all of them otherwise."""
    own = [d for d in draws if d.startup]
    others = [d for d in draws if not d.startup] or draws
    median = sorted(d.macs for d in others)[len(others) // 2]
    cheap = [d for d in others if d.macs < median] or others
    explore, exploit = Speed.average(own or others), Speed.average(cheap if cost_objective else others)
    first, later = (min(trials, random_trials), max(0, trials - random_trials)) if trials else (1, 0)
    return Speed((first + later) / (first / explore.train + later / exploit.train),
                 (first + later) / (first / explore.score + later / exploit.score))


@dataclass(frozen=True)
class Estimate:
    """Expected worker-seconds of a search, per rung, at `speed` per worker."""

    speed: Speed
    share: dict[str, float]  # per rung (and "measure"): the share of drawn trials that train there
    seconds_each: dict[str, float]  # per rung: worker-seconds of one trial there (rung 0: on average)
    workers: int

    def per_trial(self, rung: str | None = None) -> float:
        """Worker-seconds per drawn trial, of one rung or all."""
        names = [rung] if rung else self.share
        return sum(self.share[n] * self.seconds_each[n] for n in names)

    def wall_seconds(self, trials: int) -> float:
        return trials * self.per_trial() / self.workers


def estimate(config: SearchConfig, speed: Speed, train_images: int, val_images: int, workers: int) -> Estimate:
    share, seconds_each = {"measure": 1.0, "rung 0": 1.0}, {"measure": MEASURE_SECONDS, "rung 0": 0.0}
    for level in levels(config, train_images, val_images):
        seconds = level.train_images / speed.train + level.scored_images * TTA_SHARE / speed.score
        if level.name == "rung 0":  # its pruning epochs' levels: one average rung-0 trial
            seconds_each["rung 0"] += level.share * seconds
        else:
            share[level.name], seconds_each[level.name] = level.share, seconds
    return Estimate(speed, share, seconds_each, workers)


def replayed_draws(space, image_size: int, draws: int, seed: int, startup=()) -> list[tuple[dict, bool]]:
    """(arch, replayed start-up draw?) for `draws` draws: first, for each (sampler seed, count) in `startup`,
    the first `count` architectures a search worker with that sampler seed draws at random (TPE's start-up
    is a RandomSampler of the same seed, and arch and recipe are drawn in the same order, so these are the
    very networks it will train), then seeded random draws up to `draws`."""
    import optuna

    from nas import spaces
    from nas.config import Recipe

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = []
    for sampler_seed, count in startup:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=sampler_seed))
        for _ in range(count):
            trial = study.ask()
            out.append((spaces.sample(trial, space, image_size), True))
            spaces.sample_recipe(trial, space, Recipe())  # as the search draws it: the same random stream
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out += [(spaces.sample(study.ask(), space, image_size), False) for _ in range(max(0, draws - len(out)))]
    return out


def calibrate(space, inputs, threads: int, batch: int, draws: int = 40, steps: int = 1, scored: int = 256,
              seed: int = 0, startup=()) -> list[Speed]:
    """The speed of one worker (`threads` threads) on each of `draws` draws of the space (replayed_draws:
    the workers' own start-up draws first, where `startup` names their sampler seeds): `steps` training
    steps of `batch` images and one scoring pass over `scored` images, each after an untimed one that sets
    oneDNN up."""
    import torch

    from nas import cores, measure, models, train
    from nas.config import Recipe

    device = torch.device("cpu")
    precision = train.pick_precision(device)
    x = torch.rand(batch, *inputs.shape).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, len(inputs.classes), (batch,))
    images = torch.randint(0, 256, (scored, *inputs.shape), dtype=torch.uint8)
    speeds = []
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with cores.training():
            for arch, replayed in replayed_draws(space, inputs.size, draws, seed, startup):
                model = models.build(arch, inputs)
                macs = measure.count_macs(model, inputs.shape)[0]
                model = model.to(memory_format=torch.channels_last)
                optimizer = train.make_optimizer(model, Recipe())
                seconds = 0.0
                for step in range(steps + 1):
                    start = time.perf_counter()
                    with train.autocast(device, precision):
                        loss = torch.nn.functional.cross_entropy(model(x).float(), y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    seconds += (time.perf_counter() - start) if step else 0.0
                train.predict(model, images[:batch], False, precision)
                start = time.perf_counter()
                train.predict(model, images, False, precision)
                speeds.append(Speed(steps * batch / seconds, scored / (time.perf_counter() - start), macs, replayed))
    finally:
        torch.set_num_threads(before)
    return speeds


class Progress:
    """Time left of a running search: the estimate's remaining work, priced at the pace its finished
    trials showed (elapsed wall time over the estimated worker-seconds of the work they did)."""

    def __init__(self, plan: Estimate, trials_left: int | None, minutes: float | None, boot: float = 0.0):
        self.plan, self.minutes = plan, minutes
        self.boot = boot  # expected seconds before the workers start their first trials
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
            working = max(0.0, elapsed - self.boot)
            pace = (working + self.prior) / (self.done / self.plan.workers + self.prior) if self.done else 1.0
            left = max(0.0, self.boot - elapsed) + max(0.0, self.total - self.done) / self.plan.workers * pace
        if self.minutes is not None:
            left = min(left if left is not None else float("inf"), max(0.0, 60 * self.minutes - elapsed))
        return left
