"""`nas search`: the trial's steps.

Per trial: sample arch + recipe -> build -> measure (params, MACs, latency) -> over a hard limit? recorded
as infeasible, never trained -> train at rung 0's budget, pruned at a few epochs -> tell the objectives.
The best of each rung are promoted and trained again at a larger budget (nas/pruning.py's Ladder). The
study lives in the storage (nas/storage.py); crashed workers are recovered by nas/recovery.py and several
local workers run by nas/workers.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import asdict

from nas import optuna_adapter, records
from nas.config import Budget, DataConfig, Recipe, SearchConfig, builtin_inputs
from nas.errors import NasError, UsageError
from nas.records import Kind, TrialRecord
from nas.recovery import CRASH_RETRIES, HEARTBEAT, own, recover_crashed, requeue, test_hook
from nas.results import counts
from nas.storage import open_study, quiet_optuna

GIVE_UP_AFTER = 50  # consecutive infeasible (or already trained) proposals before the search stops
PROMOTION_MARGIN = 1.2  # a promotion's expected time over its pure training time: scoring, loading, noise


def candidate_key(arch: dict, recipe: dict) -> str:
    return hashlib.sha256(json.dumps([arch, recipe], sort_keys=True).encode()).hexdigest()[:16]


def check_limits_reachable(space, config: SearchConfig, inputs=None, draws: int = 200) -> None:
    """Refuse at once (before the study is touched) a params or MACs limit that no random draw of the space
    meets, instead of measuring hopeless proposals one by one. Latency limits are left to the search."""
    import optuna

    from nas import measure, models, spaces

    if config.max_params is None and config.max_macs is None:
        return
    inputs = inputs or builtin_inputs()
    quiet_optuna()
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    sized = sorted((measure.count_params(models.build(arch, inputs)), i, arch) for i, arch in
                   enumerate(spaces.sample(sampler.ask(), space, inputs.size) for _ in range(draws)))
    fitting = [(p, arch) for p, _, arch in sized if config.max_params is None or p <= config.max_params]
    if not fitting:
        raise UsageError(f"no architecture of {draws} random draws from space {space.name} fits --max-params "
                         f"{config.max_params:g} (the smallest has {sized[0][0]} params); raise the limit or "
                         f"use a space with smaller models")
    if config.max_macs is not None:
        smallest = min(measure.count_macs(models.build(arch, inputs))[0] for _, arch in fitting[:30])
        if smallest > config.max_macs:
            raise UsageError(f"no architecture of {draws} random draws from space {space.name} fits --max-macs "
                             f"{config.max_macs:g} (the smallest has {smallest} MACs); raise the limit or use a "
                             f"space with smaller models")

# ---------------------------------------------------------------- one trial

class Search:
    """Runs trials into a study; `events` (optional) receives progress for the display.

    One trial of rung 0: draw arch + recipe -> describe -> reuse an identical earlier result, or measure ->
    refuse if over a limit -> train (pruned at a few epochs) -> tell. A promotion: copy the root's
    description and costs -> train at the rung's budget -> tell. ASHA's order: a due promotion before a new
    draw, the highest rung first."""

    def __init__(self, config: SearchConfig, events=None, new: bool = False, worker: int = 0):
        from nas import data, spaces, train
        from nas.pruning import Ladder, RungPruner

        self.config = config
        self.space = spaces.load(config.space)
        self.device = train.resolve_device(config.device)
        self._splits = {}  # subset -> data.Splits, loaded when a rung first needs it
        first = self.splits(config.subset)
        self.inputs = first.inputs  # what every model of the study takes: shape, classes, normalisation
        self.space.check_size(self.inputs.size)
        check_limits_reachable(self.space, config, self.inputs)
        self.study = open_study(config, self.space.path, data.record(config.data, first), new=new, worker=worker)
        self.ladder = Ladder(self.study, config.budgets, config.eta)
        self.pruner = RungPruner(tuple(config.prune_epochs), config.eta, config.n_min)
        self.events = events or (lambda event, **info: None)
        self.stop_requested = False  # set by request_stop(); honoured at the next training step
        self._seconds = (None, {})  # (trial, its seconds so far): see _spent()

    def splits(self, subset: float):
        from nas import data

        if subset not in self._splits:
            self._splits[subset] = data.load(DataConfig(**{**asdict(self.config.data), "subset": subset}),
                                             device=self.device)
        return self._splits[subset]

    # -- the loop
    def run(self) -> dict[str, int]:
        deadline = time.monotonic() + 60 * self.config.minutes if self.config.minutes else None
        if self.config.with_presets:
            self._run_presets()
        rejected_in_a_row = 0
        while not self._out_of_time(deadline):
            self._recover()
            promotion = self.ladder.claim(fits=lambda root, k: self._ends_in_time(root, k, deadline))
            if promotion is not None:
                self._guarded(promotion.trial, lambda: self.promote(promotion))
            elif self.config.trials is None or counts(self.study)["trained"] < self.config.trials:
                kind = self._draw_one()
                rejected_in_a_row = rejected_in_a_row + 1 if kind in (Kind.INFEASIBLE, Kind.REUSED) else 0
                if rejected_in_a_row >= GIVE_UP_AFTER:
                    raise NasError(f"the last {GIVE_UP_AFTER} proposals were all over the limits or already "
                                   f"trained; loosen --max-params/--max-macs/--max-latency or widen the space "
                                   f"(the study keeps everything so far)")
            elif self.ladder.busy():
                self._wait()  # other workers' trials may yet earn promotions
            else:
                break
        return counts(self.study)

    def _out_of_time(self, deadline: float | None) -> bool:
        self._check_stop()
        late = deadline is not None and time.monotonic() > deadline
        if late:
            self.events("timeout")
        return late

    def _ends_in_time(self, root, k: int, deadline: float | None) -> bool:
        """Would promoting `root` to rung k end before the deadline, at the speed its rung-0 training measured?
        A search's --minutes bound its whole length: a 22-epoch promotion started at the last minute would not."""
        speed = records.stored(root).train_images_per_second
        if deadline is None or not speed:
            return True
        budget = self._budget(k)
        seconds = (budget.seconds or budget.images * self._whole_split() / speed) * PROMOTION_MARGIN
        return time.monotonic() + seconds <= deadline

    def _recover(self) -> None:
        for study in self.ladder.studies:
            for number, queued in recover_crashed(study):
                self.events("end", number=number, kind=Kind.FAILED, reason="its worker died; queued again" if queued
                            else f"its worker died; crashed {CRASH_RETRIES + 1} times in a row, not queued again")

    def _wait(self) -> None:
        for _ in range(HEARTBEAT):
            self._check_stop()
            time.sleep(0.5)

    def _draw_one(self) -> Kind:
        from nas import spaces

        trial = self._ask()
        arch = spaces.sample(trial, self.space, self.inputs.size)
        recipe = spaces.sample_recipe(trial, self.space, Recipe(epochs=self.config.epochs, seed=self.config.seed))
        return self._guarded(trial, lambda: self.evaluate(trial, arch, recipe))

    def _ask(self):
        trial = self.study.ask()
        test_hook("ask")
        own(trial)
        return trial

    def _run_presets(self):
        for name, preset in self.space.presets.items():
            # asked afresh before each preset: another worker may have taken it meanwhile
            if self._preset_trials(name):
                continue
            trial = self._ask()
            records.write(trial, preset=name)
            # claimed, then checked again: workers that start together all pass the check above, and
            # only the lowest-numbered claim trains it
            first = min(self._preset_trials(name))
            if first != trial.number:
                from optuna.trial import TrialState

                reason = f"preset {name} was claimed at the same moment by trial {first}, which takes it"
                records.write(trial, fail_reason=reason, kind=Kind.FAILED)
                self.study.tell(trial, state=TrialState.FAIL)
                self.events("end", number=trial.number, kind=Kind.FAILED, reason=reason)
                continue
            recipe = Recipe.from_dict({**Recipe(epochs=self.config.epochs, seed=self.config.seed).to_dict(),
                                       **(preset.get("recipe") or {})})
            self._guarded(trial, lambda: self.evaluate(trial, preset["arch"], recipe, reference=True))

    def _preset_trials(self, name: str) -> list[int]:
        return [t.number for t in self.study.get_trials(deepcopy=False) if records.stored(t).preset == name]

    def _guarded(self, trial, work) -> Kind:
        """work(), but a trial that dies (Ctrl-C, a crash) is marked failed with its reason, not left running."""
        import optuna
        from optuna.trial import TrialState

        try:
            return work()
        except optuna.exceptions.UpdateFinishedTrialError:
            # another worker took this trial for dead and requeued its parameters: nothing left to do here
            self.events("end", number=trial.number, kind=Kind.FAILED,
                        reason="taken for dead by another worker; queued again")
            return Kind.FAILED
        except BaseException as e:
            interrupted = isinstance(e, KeyboardInterrupt)
            reason = "interrupted" if interrupted else f"{type(e).__name__}: {e}"
            records.write(trial, fail_reason=reason[:1000], kind=Kind.FAILED)
            trial.study.tell(trial, state=TrialState.FAIL)
            requeue(trial.study, trial, reason, always=interrupted)  # the next run trains these parameters first
            raise

    def request_stop(self, signum=None, frame=None):
        """A signal handler (Ctrl-C, SIGTERM): the trial stops at its next training step, failed and queued
        again. Raising at once instead could land inside a storage call or a multiprocessing queue's
        put, whose locks are not signal-safe (a worker then hangs at exit); a second signal does it anyway."""
        if self.stop_requested:
            raise KeyboardInterrupt
        self.stop_requested = True

    def _check_stop(self):
        if self.stop_requested:
            raise KeyboardInterrupt

    def _values(self, accuracy: float, costs: dict) -> list[float]:
        known = {"accuracy": accuracy, "params": costs["params"], "macs": costs["macs"], "latency": costs["latency_ms"]}
        return [float(known[o]) for o in self.config.objectives]

    # -- rung 0: a new draw
    def evaluate(self, trial, arch: dict, recipe: Recipe, reference: bool = False) -> Kind:
        """Describe, then reuse or measure -> check limits -> train with pruning -> tell. Returns the trial's kind."""
        from nas import models

        key = self._describe(trial, arch, recipe, Budget(self.config.epochs, self.config.subset), rung=0)
        if not reference and self._reuse(trial, key):
            kind = Kind.REUSED
            self.events("end", number=trial.number, kind=kind)
        else:
            model = models.build(arch, self.inputs, seed=recipe.seed)
            costs = self._measure(trial, model, recipe)
            if any(costs[n] > limit for n, limit in self.config.limits().items()):
                # a preset over a limit too: training it would spend the search's budget on a model it cannot pick
                kind = Kind.INFEASIBLE
                records.write(trial, kind=kind)
                self.study.tell(trial, self._values(0.0, costs))
                self.events("end", number=trial.number, kind=kind, costs=costs)
            else:
                judge = None if reference else self._pruning_judge(trial, recipe, costs)
                result = self._train(trial, model, recipe, self.splits(self.config.subset), judge,
                                     eval_epochs=set(self.config.prune_epochs))
                kind = self._tell(trial, result, costs, Kind.REFERENCE if reference else Kind.TRAINED)
        return kind

    def _describe(self, trial, arch: dict, recipe: Recipe, budget: Budget, rung: int) -> str:
        from nas import models

        key = candidate_key(arch, recipe.to_dict())
        records.write(trial, arch=arch, summary=models.summary(arch), recipe=recipe.to_dict(), key=key,
                      fidelity=budget.to_dict(), rung=rung)
        self.events("start", number=_architecture(trial), rung=rung, summary=models.summary(arch), epochs=recipe.epochs)
        return key

    def _reuse(self, trial, key: str) -> bool:
        from optuna.trial import TrialState

        for old in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            was = records.stored(old)
            if was.key == key and was.kind == Kind.TRAINED:
                records.write(trial, params=was.params, macs=was.macs, latency=was.latency, curve=was.curve,
                              uncounted_ops=was.uncounted_ops, kind=Kind.REUSED, reused_from=old.number)
                optuna_adapter.record_constraints(trial, optuna_adapter.named_constraints(old))
                self.study.tell(trial, old.values)
                return True
        return False

    def _measure(self, trial, model, recipe: Recipe) -> dict:
        """Params, MACs and latency onto the trial, with how far each is over its limit. Returns the costs."""
        from nas import cores, measure, models

        start = time.perf_counter()
        params, (macs, uncounted) = measure.count_params(model), measure.count_macs(model)
        # timed as deployed: with the flip test-time augmentation when the recipe uses it
        with measure.latency_timer(models.deployable(model, recipe.tta_flip), backend=self.config.latency_backend,
                                   threads=self.config.latency_threads, int8_images=self._int8_images()) as time_it:
            counted = time.perf_counter()
            with cores.timing(while_waiting=self._beater(trial)):  # never while a trial trains on these cores
                waited = time.perf_counter()
                latency = time_it()
        self._spent(trial, measure=counted - start, wait=waited - counted, latency=time.perf_counter() - waited)
        records.write(trial, params=params, macs=macs, uncounted_ops=uncounted, latency=latency)
        costs = {"params": params, "macs": macs, "latency_ms": latency["median_ms"]}
        # > 0: over the limit, by that fraction
        optuna_adapter.record_constraints(trial, {name: costs[name] / limit - 1 for name, limit in self.config.limits().items()})
        return costs

    def _int8_images(self):
        """With --latency-as int8, the training images each trial's int8 model is calibrated on; else None."""
        from nas import quantize

        if self.config.latency_as != "int8":
            return None
        return quantize.calibration_images(self.splits(self.config.subset).train.images.cpu().numpy())

    def _pruning_judge(self, trial, recipe: Recipe, costs: dict):
        """on_epoch's verdict at rung 0's pruning epochs: True = stop this trial."""
        cost_values = self._values(0.0, costs)[1:]

        def judge(epoch: int, accuracy: float) -> bool:
            if len(self.config.objectives) == 1:
                trial.report(accuracy, epoch)
                # Optuna's pruners would also stop a trial at its last epoch, throwing away a finished result
                return epoch < recipe.epochs and trial.should_prune()
            if epoch not in self.config.prune_epochs or epoch == recipe.epochs:
                return False
            records.write_epoch_score(trial, epoch, accuracy)
            peers = [(score, *self._values(0.0, TrialRecord.of(t).costs)[1:]) for t in
                     self.study.get_trials(deepcopy=False) if (score := records.epoch_score(t, epoch)) is not None]
            return not self.pruner.keeps((accuracy, *cost_values), peers)

        return judge

    def _spent(self, trial, **seconds) -> None:
        """Add to the trial's account of where its time went: measure, wait (for the cores, to time latency),
        latency, train, score (nas front's "where the time went")."""
        same, before = self._seconds
        self._seconds = (trial, {**(before if same is trial else {}), **seconds})
        records.write(trial, seconds={k: round(v, 2) for k, v in self._seconds[1].items()})

    # -- training, shared by both kinds of trial
    def _beater(self, trial):
        """A callback that keeps the trial alive (heartbeat) and honours a stop, between training steps."""
        last_beat = time.monotonic()

        def beat():
            nonlocal last_beat
            self._check_stop()  # a safe point: between two optimiser steps or tries of the lock, no storage call
            if time.monotonic() - last_beat > HEARTBEAT:
                optuna_adapter.beat(trial)
                last_beat = time.monotonic()

        return beat

    def _train(self, trial, model, recipe: Recipe, splits, judge, eval_epochs: set[int], length=None):
        """Train (for recipe.epochs, or `length`: a train.ByClock), recording the validation curve on the
        trial; `judge(epoch, accuracy)` may stop it."""
        from nas import cores, train

        beat, curve = self._beater(trial), []

        def on_epoch(epoch, metrics):
            if metrics["val_acc"] is None:  # not a scoring epoch
                return False
            curve.append([epoch, round(metrics["val_acc"], 5)])
            records.write(trial, curve=curve)
            return judge is not None and judge(epoch, metrics["val_acc"])

        def on_step(epoch, step, steps):
            beat()
            self.events("step", epoch=epoch, step=step, steps=steps)

        with cores.training():
            _, result = train.train(model, splits, recipe, self.device, on_epoch=on_epoch, on_step=on_step,
                                    eval_epochs=eval_epochs, length=length)
        self._spent(trial, train=result.seconds, score=result.score_seconds)
        records.write(trial, train_seconds=round(result.seconds, 2),
                      train_images_per_second=round(result.images_per_second, 1), precision=result.precision)
        return result

    def _tell(self, trial, result, costs: dict, kind: Kind) -> Kind:
        """The training's outcome into the storage: failed (diverged), pruned, or its values."""
        from optuna.trial import TrialState

        root, rung = _architecture(trial), records.stored(trial).rung or 0
        if result.status == "diverged":
            kind = Kind.FAILED
            records.write(trial, fail_reason=result.reason, kind=kind)
            trial.study.tell(trial, state=TrialState.FAIL)
            self.events("end", number=root, rung=rung, kind=kind, reason=result.reason)
        elif result.status == "stopped":
            kind = Kind.PRUNED
            records.write(trial, kind=kind, pruned_at_epoch=len(result.history))
            trial.study.tell(trial, state=TrialState.PRUNED)
            self.events("end", number=root, rung=rung, kind=kind, epoch=len(result.history), acc=result.val_acc)
        else:
            records.write(trial, kind=kind)
            trial.study.tell(trial, self._values(result.val_acc, costs))
            self.events("end", number=root, rung=rung, kind=kind, acc=result.val_acc, costs=costs)
        return kind

    # -- rungs 1, 2, ...: a promotion
    def _budget(self, rung: int) -> Budget:
        """Rung `rung`'s budget; the top rung's with its seconds when it trains by the clock."""
        budget = self.config.budgets[rung - 1]
        if self.config.top_clock and rung == len(self.config.budgets):
            seconds = self.ladder.clock_seconds(rung, budget, self._whole_split())  # None: by its epochs
            budget = dataclasses.replace(budget, seconds=seconds)
        return budget

    def set_clock(self, images_per_second: float) -> None:
        """Fix the top rung's seconds from the calibrated training speed, before any trial: the rung then costs
        what the estimate says (set from rung 0's first trials instead, TPE's slow random draws made it 3x that)."""
        if self.config.top_clock and self.config.budgets:
            self.ladder.clock_seconds(len(self.config.budgets), self.config.budgets[-1], self._whole_split(),
                                      speed=images_per_second)

    def _whole_split(self) -> int:
        """Images in the whole training split (rung 0 trains config.subset of it)."""
        return round(len(self.splits(self.config.subset).train) / self.config.subset)

    def promote(self, promotion) -> Kind:
        """Train a promoted architecture afresh at its rung's budget (the one-cycle schedule fitted to it)."""
        from nas import models, train

        root, trial = TrialRecord.of(promotion.root), promotion.trial
        test_hook("promotion")
        own(trial)
        budget = self._budget(promotion.rung)
        recipe = Recipe.from_dict(root.recipe).replace(epochs=budget.epochs)
        self._describe(trial, root.arch, recipe, budget, rung=promotion.rung)
        # the same network: its costs stand
        records.write(trial, params=root.params, macs=root.macs, uncounted_ops=root.uncounted_ops,
                      latency=root.latency)
        optuna_adapter.record_constraints(trial, optuna_adapter.named_constraints(root.trial))
        model = models.build(root.arch, self.inputs, seed=recipe.seed)
        clock = train.ByClock(budget.seconds) if budget.seconds else None
        result = self._train(trial, model, recipe, self.splits(budget.subset), None,
                             eval_epochs=set() if clock else {budget.epochs}, length=clock)
        return self._tell(trial, result, root.costs, root.stored.kind or Kind.TRAINED)


def _architecture(trial) -> int:
    """The number that names a trial's architecture: its own on rung 0, its root's on a promotion."""
    root = records.stored(trial).root
    return trial.number if root is None else root


