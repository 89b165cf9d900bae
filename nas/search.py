"""`nas search`: an Optuna multi-objective study over a search space.

Per trial: sample arch + recipe -> build -> measure (params, MACs, latency) -> over a hard
limit? recorded as infeasible, never trained -> train at rung 0's budget, pruned at a few
epochs -> tell the objectives. The best of each rung are promoted and trained again at a larger
budget (nas/pruning.py's Ladder). Every result and the study's settings live in the storage, so a
re-run continues where the last one stopped and other tools (optuna-dashboard) see the same.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import socket
import time
from dataclasses import asdict
from pathlib import Path

from nas import optuna_adapter
from nas.config import Budget, DataConfig, Recipe, SearchConfig
from nas.errors import NasError, UsageError

OBJECTIVES = {"accuracy": "maximize", "params": "minimize", "macs": "minimize", "latency": "minimize"}
OBJECTIVE_LABELS = {"accuracy": "val_accuracy", "params": "params", "macs": "MACs", "latency": "latency_ms"}
GIVE_UP_AFTER = 50  # consecutive infeasible (or already trained) proposals before the search stops
RANDOM_TRIALS = 10  # TPE's start-up: drawn at random before it models the results
HEARTBEAT, GRACE = 10, 120  # seconds: a running trial's heartbeat interval; silence after which it is failed
CRASH_RETRIES = 2  # times a crashed trial's parameters are queued again: a model that kills its worker must
# not kill every worker in turn, and one unlucky crash must not lose a promotion
OWNERLESS_GRACE = 30  # seconds a RUNNING trial may have no owner: only the moment between its creation and
# the owner's note, unless its worker was killed right then
STOP_GRACE = 30  # seconds a stopped worker has to fail and requeue its trial before it is killed
PROMOTION_MARGIN = 1.2  # a promotion's expected time over its pure training time: scoring, loading, noise


# ---------------------------------------------------------------- human units

def parse_count(text: str, flag: str) -> float:
    """'1M' -> 1e6, '300k' -> 3e5, '2.5G' -> 2.5e9, '12000' -> 12000."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", str(text))
    if not m:
        raise UsageError(f"{flag} {text!r} is not a count; write e.g. 1M, 300k, 2.5G or 12000")
    return float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]


def parse_ms(text: str, flag: str) -> float:
    """'1ms' -> 1.0, '500us' -> 0.5, '0.002s' -> 2.0 (milliseconds)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s)\s*", str(text))
    if not m:
        raise UsageError(f"{flag} {text!r} is not a duration; write e.g. 1ms, 500us or 0.002s")
    return float(m.group(1)) * {"us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


def parse_objectives(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or not names:
        raise UsageError(f"unknown objective {unknown[0] if unknown else text!r}; choose from {', '.join(OBJECTIVES)}")
    if len(set(names)) != len(names):
        raise UsageError(f"--objectives {text!r} names an objective twice")
    if "accuracy" not in names:
        raise UsageError(f"--objectives {text!r} must include accuracy (costs alone need no search)")
    return ("accuracy", *(n for n in names if n != "accuracy"))  # accuracy first: values[0] everywhere


# ---------------------------------------------------------------- configuration

def default_storage(study: str) -> str:
    return f"sqlite:///studies/{study}.db"


def redact(url: str) -> str:
    """Never show a storage password: postgresql://user:secret@host -> postgresql://user:***@host."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


# ---------------------------------------------------------------- the study

def _quiet_optuna():
    """Optuna logs every trial and warns about experimental arguments; nas shows its own progress."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # nas records the heartbeats itself (ask/tell, see Search._ask and on_step), not through Study.optimize
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def open_storage(url: str):
    import optuna

    _quiet_optuna()

    kwargs = {}
    if url.startswith("sqlite:///"):
        folder = Path(url[len("sqlite:///"):]).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"--storage {redact(url)}: cannot make the folder {folder} ({e.strerror}); "
                             f"give a path in a folder you can write to") from None
        kwargs = {"engine_kwargs": {"connect_args": {"timeout": 60}}}  # local workers wait for the file lock
    for attempt in range(5):
        try:
            # a running trial's worker beats every HEARTBEAT s; one silent for GRACE s is taken for dead (another
            # machine's worker killed or cut off) and failed by the next worker that looks, its params queued again
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=HEARTBEAT, grace_period=GRACE,
                heartbeat_stale_trial_callback=lambda study, t: requeue(study, t, "its worker stopped beating"),
                **kwargs)
        except Exception as e:  # bad URL, server down, missing driver
            # workers starting together on an empty database race to create Optuna's tables: try again
            if type(e).__name__ in ("IntegrityError", "ProgrammingError") and attempt < 4:
                time.sleep(0.5 + attempt)
                continue
            raise NasError(f"cannot open storage {redact(url)}: {type(e).__name__}: "
                           f"{redact(str(e).splitlines()[0])}") from None


def load_study(study: str, storage: str):
    """An existing study, for the commands that only read (front, plot, export, dashboard): they refuse a
    SQLite file that does not exist rather than leave an empty database behind."""
    import optuna

    path = Path(storage[len("sqlite:///"):]) if storage.startswith("sqlite:///") else None
    if path is not None and not path.is_file():
        raise UsageError(f"no study database at {path}; run nas search --study {study} first, or give the "
                         f"--storage it used")
    store = open_storage(storage)
    from nas.pruning import is_rung_study

    names = [s.study_name for s in optuna.get_all_study_summaries(store) if not is_rung_study(s.study_name)]
    if study not in names:
        raise UsageError(f"no study {study!r} in {redact(storage)}; studies there: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=study, storage=store)


def make_sampler(name: str, seed: int):
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    # multivariate + group: the space is conditional (stages, expansion), and trials run in parallel
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True,
                                      n_startup_trials=RANDOM_TRIALS)


def open_study(config: SearchConfig, space_file: Path, data: dict, new: bool = False, worker: int = 0):
    """Create the study, or continue it when its stored settings match this run's (data: data.record())."""
    import optuna

    store = open_storage(config.storage)
    settings = config.settings(space_file, data)
    existing = {s.study_name: s for s in optuna.get_all_study_summaries(store)}
    if config.study in existing:
        if new:
            raise UsageError(f"study {config.study!r} already exists in {redact(config.storage)}; "
                             f"pick another --study name (nothing was changed)")
        stored = existing[config.study].user_attrs.get("nas")
        if stored is not None and stored != settings:  # None: another worker created it a moment ago
            changed = [k for k in settings if (stored or {}).get(k) != settings[k]]
            raise UsageError(f"study {config.study!r} was created with other settings ({', '.join(changed)}: "
                             f"{json.dumps({k: (stored or {}).get(k) for k in changed})}); continue it with "
                             f"those, or start a new study with --study NEW_NAME")
    n_before = existing[config.study].n_trials if config.study in existing else 0
    # each run (worker, resume) gets its own sampler seed so none repeats another's proposals; workers on a
    # shared server may start at the same moment on several machines, so there the process also counts
    seed = config.seed * 100_003 + n_before + 7_919 * worker
    if not config.storage.startswith("sqlite"):
        seed += int(hashlib.sha256(this_worker().encode()).hexdigest()[:8], 16)
    directions = [OBJECTIVES[o] for o in config.objectives]
    pruner = (optuna.pruners.SuccessiveHalvingPruner(min_resource=config.prune_epochs[0], reduction_factor=int(config.eta))
              if len(directions) == 1 and config.prune_epochs else optuna.pruners.NopPruner())
    study = optuna.create_study(study_name=config.study, storage=store, directions=directions, load_if_exists=True,
                                sampler=make_sampler(config.sampler, seed), pruner=pruner)
    if "nas" not in study.user_attrs:
        study.set_metric_names([OBJECTIVE_LABELS[o] for o in config.objectives])
        study.set_user_attr("nas", settings)
    return study


# ---------------------------------------------------------------- reading trials

def counts(study) -> dict[str, int]:
    """trained (completed or pruned, the --trials count), pruned, infeasible, reused, failed, running."""
    from optuna.trial import TrialState

    c = dict.fromkeys(("trained", "completed", "pruned", "infeasible", "reused", "reference", "failed", "running"), 0)
    for t in study.get_trials(deepcopy=False):
        kind = t.user_attrs.get("kind")
        if t.state == TrialState.RUNNING:
            c["running"] += 1
        elif t.state == TrialState.FAIL:
            c["failed"] += 1
        elif kind in ("infeasible", "reused", "reference"):
            c[kind] += 1
        elif t.state == TrialState.PRUNED:
            c["pruned"] += 1
            c["trained"] += 1
        elif t.state == TrialState.COMPLETE:
            c["completed"] += 1
            c["trained"] += 1
    return c


def front(study) -> list:
    """TrialRecords of the Pareto front of the highest rung reached, most accurate first, then of each lower
    rung the front's architectures not shown yet: results are compared only with results of the same budget.
    Reused duplicates are left out (their original stands for them)."""
    from nas.pruning import rungs_of
    from nas.records import TrialRecord

    rows, shown = [], set()
    for rung, rung_study in reversed(list(enumerate(rungs_of(study)))):
        best = [TrialRecord.of(t, rung) for t in rung_study.best_trials]
        for record in sorted((r for r in best if r.trained), key=lambda r: -r.accuracy):
            if record.number not in shown:
                rows.append(record)
                shown.add(record.number)
    return rows


def promotions(study) -> dict[int, int]:
    """Completed trials per rung above 0: {1: 12, 2: 4, 3: 1}."""
    from optuna.trial import TrialState

    from nas.pruning import rungs_of

    return {k: len(s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            for k, s in enumerate(rungs_of(study)) if k > 0}


def candidate_key(arch: dict, recipe: dict) -> str:
    return hashlib.sha256(json.dumps([arch, recipe], sort_keys=True).encode()).hexdigest()[:16]


def record_constraints(trial, constraints: dict[str, float]) -> None:
    """Optuna 5's named constraints, plus the older list form that optuna-dashboard (0.21) reads to
    mark a trial infeasible; Optuna reads both (the list's entries appear as "0", "1", ...)."""
    for name, value in constraints.items():
        trial.set_constraint(name, value)
    if constraints:
        optuna_adapter.set_constraints(trial, list(constraints.values()))


def check_limits_reachable(space, config: SearchConfig, inputs=None, draws: int = 200) -> None:
    """Refuse at once (before the study is touched) a params or MACs limit that no random draw of the space
    meets, instead of measuring hopeless proposals one by one. Latency limits are left to the search."""
    import optuna

    from nas import data, measure, models, spaces

    if config.max_params is None and config.max_macs is None:
        return
    inputs = inputs or data.builtin_inputs()
    _quiet_optuna()
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


# ---------------------------------------------------------------- crashed workers

def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot) from /proc: with the pid, it names one process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def this_worker() -> str:
    """host:pid:start-time, stored on each trial: which process ran it, and whether that process still lives."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def worker_is_gone(owner: str | None) -> bool:
    """True only when the owner ran on this machine and that very process no longer exists."""
    if not owner or owner.count(":") < 2:
        return False
    host, pid, started = owner.rsplit(":", 2)
    return host == socket.gethostname() and _start_time(int(pid)) != started


def requeue(study, trial, reason: str, always: bool = False) -> bool:
    """Note why a trial failed and queue its parameters as a new trial: up to CRASH_RETRIES times in a row
    for a crash, every time for a Ctrl-C (`always`). A promotion goes back to its rung's queue, where the
    Ladder picks it up before anything else. False when the crash limit is reached: nothing queued."""
    from nas.pruning import Ladder

    crashes = trial.user_attrs.get("crashes", 0) + (not always)
    if crashes > CRASH_RETRIES:
        return False
    note = {"retry_of": trial.number, "retry_reason": reason[:1000], "crashes": crashes}
    if "root" in trial.user_attrs:
        Ladder.queue(study, trial, note)
    elif trial.params and "preset" not in trial.user_attrs:  # presets are run again by name
        study.enqueue_trial(trial.params, user_attrs=note)
    return True


def test_hook(point: str) -> None:
    """NAS_TEST_HOOK=point:path stops the worker at `point` (the test writes no sleep): it creates `path`, then
    waits to be killed. Tests use it to kill a worker at an exact moment."""
    hook = os.environ.get("NAS_TEST_HOOK", "")
    if hook.partition(":")[0] == point:
        Path(hook.partition(":")[2]).touch()
        while True:
            time.sleep(1)


def _gone(trial) -> str | None:
    """Why a RUNNING trial is taken for dead: its worker's process is gone, or it never got an owner."""
    import datetime

    owner = trial.user_attrs.get("worker")
    if worker_is_gone(owner):
        return f"its worker ({owner}) died"
    started = trial.datetime_start
    if owner is None and started and (datetime.datetime.now() - started).total_seconds() > OWNERLESS_GRACE:
        return "its worker died as it created it"
    return None


def recover_crashed(study) -> list[int]:
    """Fail the trials whose worker died: on this machine at once (its process is gone), anywhere once they
    have had no owner for OWNERLESS_GRACE seconds, on other machines once their heartbeat is GRACE seconds
    old. Their parameters run again as new trials. Returns (number, queued again?) for each."""
    import optuna
    from optuna.trial import TrialState

    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = _gone(t)
        # of several workers recovering at once, the one that failed it queues it again
        if reason and optuna_adapter.fail_running(study, t, reason):
            failed.append((t.number, requeue(study, t, reason)))
    optuna.storages.fail_stale_trials(study)
    return failed


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
                rejected_in_a_row = rejected_in_a_row + 1 if kind in ("infeasible", "reused") else 0
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
        speed = root.user_attrs.get("train_images_per_second")
        if deadline is None or not speed:
            return True
        train_images = len(self.splits(self.config.subset).train) / self.config.subset
        seconds = self.config.budgets[k - 1].images * train_images / speed * PROMOTION_MARGIN
        return time.monotonic() + seconds <= deadline

    def _recover(self) -> None:
        for study in self.ladder.studies:
            for number, queued in recover_crashed(study):
                self.events("end", number=number, kind="failed", reason="its worker died; queued again" if queued
                            else f"its worker died; crashed {CRASH_RETRIES + 1} times in a row, not queued again")

    def _wait(self) -> None:
        for _ in range(HEARTBEAT):
            self._check_stop()
            time.sleep(0.5)

    def _draw_one(self) -> str:
        from nas import spaces

        trial = self._ask()
        arch = spaces.sample(trial, self.space, self.inputs.size)
        recipe = spaces.sample_recipe(trial, self.space, Recipe(epochs=self.config.epochs, seed=self.config.seed))
        return self._guarded(trial, lambda: self.evaluate(trial, arch, recipe))

    def _ask(self):
        trial = self.study.ask()
        test_hook("ask")
        self._own(trial)
        return trial

    def _own(self, trial) -> None:
        trial.set_user_attr("worker", this_worker())  # which process runs it; see recover_crashed()
        optuna_adapter.beat(trial)

    def _run_presets(self):
        for name, preset in self.space.presets.items():
            # asked afresh before each preset: another worker may have taken it meanwhile
            if name in {t.user_attrs.get("preset") for t in self.study.get_trials(deepcopy=False)}:
                continue
            trial = self._ask()
            trial.set_user_attr("preset", name)
            # claimed, then checked again: workers that start together all pass the check above, and
            # only the lowest-numbered claim trains it
            first = min(t.number for t in self.study.get_trials(deepcopy=False) if t.user_attrs.get("preset") == name)
            if first != trial.number:
                from optuna.trial import TrialState

                reason = f"preset {name} was claimed at the same moment by trial {first}, which takes it"
                trial.set_user_attr("fail_reason", reason)
                self.study.tell(trial, state=TrialState.FAIL)
                self.events("end", number=trial.number, kind="failed", reason=reason)
                continue
            recipe = Recipe.from_dict({**Recipe(epochs=self.config.epochs, seed=self.config.seed).to_dict(),
                                       **(preset.get("recipe") or {})})
            self._guarded(trial, lambda: self.evaluate(trial, preset["arch"], recipe, reference=True))

    def _guarded(self, trial, work) -> str:
        """work(), but a trial that dies (Ctrl-C, a crash) is marked failed with its reason, not left running."""
        import optuna
        from optuna.trial import TrialState

        try:
            return work()
        except optuna.exceptions.UpdateFinishedTrialError:
            # another worker took this trial for dead and requeued its parameters: nothing left to do here
            self.events("end", number=trial.number, kind="failed", reason="taken for dead by another worker; queued again")
            return "failed"
        except BaseException as e:
            interrupted = isinstance(e, KeyboardInterrupt)
            reason = "interrupted" if interrupted else f"{type(e).__name__}: {e}"
            trial.set_user_attr("fail_reason", reason[:1000])
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
    def evaluate(self, trial, arch: dict, recipe: Recipe, reference: bool = False) -> str:
        """Describe, then reuse or measure -> check limits -> train with pruning -> tell. Returns the trial's kind."""
        from nas import models

        key = self._describe(trial, arch, recipe, Budget(self.config.epochs, self.config.subset), rung=0)
        if not reference and self._reuse(trial, key):
            kind = "reused"
            self.events("end", number=trial.number, kind=kind)
        else:
            model = models.build(arch, self.inputs, seed=recipe.seed)
            costs = self._measure(trial, model, recipe)
            if any(costs[n] > limit for n, limit in self.config.limits().items()):
                # a preset over a limit too: training it would spend the search's budget on a model it cannot pick
                kind = "infeasible"
                trial.set_user_attr("kind", kind)
                self.study.tell(trial, self._values(0.0, costs))
                self.events("end", number=trial.number, kind=kind, costs=costs)
            else:
                judge = None if reference else self._pruning_judge(trial, recipe, costs)
                result = self._train(trial, model, recipe, self.splits(self.config.subset), judge,
                                     eval_epochs=set(self.config.prune_epochs))
                kind = self._tell(trial, result, costs, "reference" if reference else "trained")
        return kind

    def _describe(self, trial, arch: dict, recipe: Recipe, budget: Budget, rung: int) -> str:
        from nas import models

        key = candidate_key(arch, recipe.to_dict())
        for name, value in (("arch", arch), ("summary", models.summary(arch)), ("recipe", recipe.to_dict()),
                            ("key", key), ("fidelity", dataclasses.asdict(budget)), ("rung", rung)):
            trial.set_user_attr(name, value)
        root = trial.user_attrs.get("root", trial.number)
        self.events("start", number=root, rung=rung, summary=models.summary(arch), epochs=recipe.epochs)
        return key

    def _reuse(self, trial, key: str) -> bool:
        from optuna.trial import TrialState

        for old in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if old.user_attrs.get("key") == key and old.user_attrs.get("kind") == "trained":
                for name in ("params", "macs", "latency", "curve", "uncounted_ops"):
                    trial.set_user_attr(name, old.user_attrs.get(name))
                trial.set_user_attr("kind", "reused")
                trial.set_user_attr("reused_from", old.number)
                record_constraints(trial, {k: v for k, v in old.constraints.items() if not k.isdigit()})
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
                                   threads=self.config.latency_threads) as time_it:
            counted = time.perf_counter()
            with cores.timing(while_waiting=self._beater(trial)):  # never while a trial trains on these cores
                waited = time.perf_counter()
                latency = time_it()
        self._spent(trial, measure=counted - start, wait=waited - counted, latency=time.perf_counter() - waited)
        for name, value in (("params", params), ("macs", macs), ("uncounted_ops", uncounted), ("latency", latency)):
            trial.set_user_attr(name, value)
        costs = {"params": params, "macs": macs, "latency_ms": latency["median_ms"]}
        # > 0: over the limit, by that fraction
        record_constraints(trial, {name: costs[name] / limit - 1 for name, limit in self.config.limits().items()})
        return costs

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
            trial.set_user_attr(f"rung_{epoch}", accuracy)
            peers = [(t.user_attrs[f"rung_{epoch}"], *(self._values(0.0, stored_costs(t))[1:])) for t in
                     self.study.get_trials(deepcopy=False) if f"rung_{epoch}" in t.user_attrs]
            return not self.pruner.keeps((accuracy, *cost_values), peers)

        return judge

    def _spent(self, trial, **seconds) -> None:
        """Add to the trial's account of where its time went: measure, wait (for the cores, to time latency),
        latency, train, score (nas front's "where the time went")."""
        same, before = self._seconds
        self._seconds = (trial, {**(before if same is trial else {}), **seconds})
        trial.set_user_attr("seconds", {k: round(v, 2) for k, v in self._seconds[1].items()})

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

    def _train(self, trial, model, recipe: Recipe, splits, judge, eval_epochs: set[int]):
        """Train, recording the validation curve on the trial; `judge(epoch, accuracy)` may stop it."""
        from nas import cores, train

        beat, curve = self._beater(trial), []

        def on_epoch(epoch, metrics):
            if metrics["val_acc"] is None:  # not a scoring epoch
                return False
            curve.append([epoch, round(metrics["val_acc"], 5)])
            trial.set_user_attr("curve", curve)
            return judge is not None and judge(epoch, metrics["val_acc"])

        def on_step(epoch, step, steps):
            beat()
            self.events("step", epoch=epoch, step=step, steps=steps)

        with cores.training():
            _, result = train.train(model, splits, recipe, self.device, on_epoch=on_epoch, on_step=on_step,
                                    eval_epochs=eval_epochs)
        self._spent(trial, train=result.seconds, score=result.score_seconds)
        trial.set_user_attr("train_seconds", round(result.seconds, 2))
        trial.set_user_attr("train_images_per_second", round(result.images_per_second, 1))
        trial.set_user_attr("precision", result.precision)
        return result

    def _tell(self, trial, result, costs: dict, kind: str) -> str:
        """The training's outcome into the storage: failed (diverged), pruned, or its values."""
        from optuna.trial import TrialState

        root = trial.user_attrs.get("root", trial.number)
        rung = trial.user_attrs.get("rung", 0)
        if result.status == "diverged":
            kind = "failed"
            trial.set_user_attr("fail_reason", result.reason)
            trial.study.tell(trial, state=TrialState.FAIL)
            self.events("end", number=root, rung=rung, kind=kind, reason=result.reason)
        elif result.status == "stopped":
            trial.set_user_attr("kind", kind)
            trial.set_user_attr("pruned_at_epoch", len(result.history))
            trial.study.tell(trial, state=TrialState.PRUNED)
            kind = "pruned"
            self.events("end", number=root, rung=rung, kind=kind, epoch=len(result.history), acc=result.val_acc)
        else:
            trial.set_user_attr("kind", kind)
            trial.study.tell(trial, self._values(result.val_acc, costs))
            self.events("end", number=root, rung=rung, kind=kind, acc=result.val_acc, costs=costs)
        return kind

    # -- rungs 1, 2, ...: a promotion
    def promote(self, promotion) -> str:
        """Train a promoted architecture afresh at its rung's budget (the one-cycle schedule fitted to it)."""
        from nas import models

        root, trial = promotion.root, promotion.trial
        test_hook("promotion")
        self._own(trial)
        budget = self.config.budgets[promotion.rung - 1]
        arch = root.user_attrs["arch"]
        recipe = Recipe.from_dict(root.user_attrs["recipe"]).replace(epochs=budget.epochs)
        self._describe(trial, arch, recipe, budget, rung=promotion.rung)
        for name in ("params", "macs", "uncounted_ops", "latency"):  # the same network: its costs stand
            trial.set_user_attr(name, root.user_attrs.get(name))
        record_constraints(trial, {k: v for k, v in root.constraints.items() if not k.isdigit()})
        model = models.build(arch, self.inputs, seed=recipe.seed)
        result = self._train(trial, model, recipe, self.splits(budget.subset), None, eval_epochs={budget.epochs})
        return self._tell(trial, result, stored_costs(root), root.user_attrs.get("kind", "trained"))


def stored_costs(t) -> dict:
    """A trial's measured costs, as _measure() returned them."""
    a = t.user_attrs
    return {"params": a.get("params", 0), "macs": a.get("macs", 0),
            "latency_ms": (a.get("latency") or {}).get("median_ms", 0)}


# ---------------------------------------------------------------- several local workers

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
