"""Where a study lives: opening the storage, creating or continuing a study, loading one to read.

SQLite by default, PostgreSQL (or any SQLAlchemy URL) for workers on several machines. Every result and
the study's settings live in the storage, so a re-run continues where the last one stopped and other
tools (optuna-dashboard) see the same.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

from nas import records
from nas.config import OBJECTIVES, SearchConfig
from nas.errors import NasError, UsageError
from nas.recovery import GRACE, HEARTBEAT, this_worker

OBJECTIVE_LABELS = {"accuracy": "val_accuracy", "params": "params", "macs": "MACs", "latency": "latency_ms"}
RANDOM_TRIALS = 10  # TPE's start-up: drawn at random before it models the results


def default_storage(study: str) -> str:
    return f"sqlite:///studies/{study}.db"


def redact(url: str) -> str:
    """Never show a storage password: postgresql://user:secret@host -> postgresql://user:***@host."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


def quiet_optuna():
    """Optuna logs every trial and warns about experimental arguments; nas shows its own progress."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # nas records the heartbeats itself (ask/tell, see Search._ask and on_step), not through Study.optimize
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def open_storage(url: str):
    import optuna

    quiet_optuna()

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
            # machine's worker killed or cut off) and failed by the next worker that looks (recover_crashed)
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT, grace_period=GRACE, **kwargs)
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
    from nas.pruning import is_rung_study

    store = open_storage(storage)
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


def sampler_seed(config: SearchConfig, n_before: int, worker: int) -> int:
    """Each run (worker, resume) gets its own sampler seed so none repeats another's proposals; workers on a
    shared server may start at the same moment on several machines, so there the process also counts.
    n_before: the trials the study held when the worker opened it."""
    seed = config.seed * 100_003 + n_before + 7_919 * worker
    if not config.storage.startswith("sqlite"):
        seed += int(hashlib.sha256(this_worker().encode()).hexdigest()[:8], 16)
    return seed


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
        stored = records.stored_settings(existing[config.study])
        if stored is not None and stored != settings:  # None: another worker created it a moment ago
            changed = [k for k in settings if (stored or {}).get(k) != settings[k]]
            raise UsageError(f"study {config.study!r} was created with other settings ({', '.join(changed)}: "
                             f"{json.dumps({k: (stored or {}).get(k) for k in changed})}); continue it with "
                             f"those, or start a new study with --study NEW_NAME")
    n_before = existing[config.study].n_trials if config.study in existing else 0
    seed = sampler_seed(config, n_before, worker)
    directions = [OBJECTIVES[o] for o in config.objectives]
    pruner = (optuna.pruners.SuccessiveHalvingPruner(min_resource=config.prune_epochs[0], reduction_factor=int(config.eta))
              if len(directions) == 1 and config.prune_epochs else optuna.pruners.NopPruner())
    study = optuna.create_study(study_name=config.study, storage=store, directions=directions, load_if_exists=True,
                                sampler=make_sampler(config.sampler, seed), pruner=pruner)
    if not records.StudySettings.of(study).recorded:
        study.set_metric_names([OBJECTIVE_LABELS[o] for o in config.objectives])
        records.write_settings(study, settings)
    return study


