"""Thin commands: parse, build config, call the library, render. Torch is imported inside
commands so `nas --help` is instant. User mistakes (NasError) print one red line, no traceback."""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

from rich.console import Console

from nas.config import (EXPORT_MINUTES, PICKS, SAMPLERS, Budget, DataConfig, ExportConfig, SearchConfig,
                        parse_budgets, parse_count, parse_epochs, parse_ms, parse_objectives)
from nas.errors import NasError, UsageError

err = Console(stderr=True)  # humans read stderr
STARTED = time.monotonic()  # this process's start, near enough: what a search's workers will redo is timed from it
STUDIES = Path("studies")


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage dump
        print_error(f"{self.prog}: {message} (see {self.prog} --help)")
        raise SystemExit(2)


def print_error(message: str) -> None:
    """One red line, never wrapped: scripts and people grep for it."""
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True, markup=True)


# ---------------------------------------------------------------- nas spaces

def cmd_spaces(args) -> int:
    from nas import measure, models, spaces
    from nas.report import fmt_count

    rows = []
    for space in spaces.load_all():
        for name, preset in space.presets.items():
            model = models.build(preset["arch"])
            macs, _ = measure.count_macs(model)
            rows.append({"space": space.name, "preset": name, "params": measure.count_params(model), "macs": macs,
                         "summary": models.summary(preset["arch"])})
        if not space.presets:
            rows.append({"space": space.name, "preset": None, "params": None, "macs": None, "summary": ""})
    if args.format == "json":
        listing = [{"name": s.name, "path": str(s.path), "family": s.family, "description": s.description,
                    "presets": [r for r in rows if r["space"] == s.name and r["preset"]]} for s in spaces.load_all()]
        print(json.dumps(listing, indent=2))
        return 0
    from rich.table import Table

    table = Table(title="search spaces and their presets (MACs: multiply-adds per 28x28 image)")
    for col in ("space", "preset", "params", "MACs", "architecture"):
        table.add_column(col, justify="right" if col in ("params", "MACs") else "left")
    for r in rows:
        table.add_row(r["space"], r["preset"] or "-", fmt_count(r["params"]) if r["params"] else "-",
                      fmt_count(r["macs"]) if r["macs"] else "-", r["summary"])
    err.print(table)
    for s in spaces.load_all():
        err.print(f"[bold]{s.name}[/bold] ({s.path}): {s.description}", highlight=False)
    return 0


# ---------------------------------------------------------------- nas data

def data_config(args):
    return DataConfig(dataset=args.dataset, data_dir=args.data_dir, val_size=args.val_size,
                      split_seed=args.split_seed, subset=getattr(args, "subset", DataConfig.subset),
                      image_size=args.image_size, skip_bad=args.skip_bad)


def cmd_data(args) -> int:
    from nas import data
    from nas.report import data_table, sample_grid

    splits = data.load(data_config(args), with_test=True)
    for note in splits.notes:
        err.print(f"note: {note}", highlight=False)
    stats = {"dataset": args.dataset, "classes": splits.classes, "inputs": splits.inputs.to_dict(), "splits": {},
             "files": splits.files}
    for name in ("train", "val", "test"):
        s = getattr(splits, name)
        pixels = s.images.float()
        stats["splits"][name] = {"images": len(s), "counts": s.labels.bincount(minlength=len(splits.classes)).tolist(),
                                 "mean": pixels.mean().item(), "std": pixels.std().item()}
    picture = sample_grid(splits.train.images.numpy(), splits.train.labels.numpy(), splits.classes,
                          Path(args.out or STUDIES / f"data-{Path(args.dataset).name}.png"))
    stats["picture"] = str(picture)
    if args.format == "json":
        print(json.dumps(stats, indent=2))
    else:
        err.print(data_table(stats))
        err.print(f"samples per class: {picture}")
    return 0


# ---------------------------------------------------------------- nas train

def read_json(path: str, flag: str):
    """A JSON file named on the command line; a one-line usage error naming the flag if it cannot be read."""
    try:
        return json.loads(Path(path).read_text())
    except OSError as e:
        raise UsageError(f"{flag} {path}: cannot read it ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"{flag} {path}: not valid JSON (line {e.lineno}: {e.msg})") from None


def read_arch_file(path: str) -> tuple[dict, dict]:
    """An arch JSON file: either the arch dict itself or {"arch": ..., "recipe": ...}."""
    raw = read_json(path, "--arch")
    if not isinstance(raw, dict):
        raise UsageError(f"--arch {path}: expected a JSON object with the arch")
    if "arch" in raw:
        return raw["arch"], raw.get("recipe") or {}
    return raw, {}


def read_recipe_file(path: str) -> dict:
    """A recipe JSON file: the recipe itself, or any object with a "recipe" key (an export's arch.json)."""
    raw = read_json(path, "--recipe")
    recipe = raw.get("recipe", raw) if isinstance(raw, dict) else None
    if not isinstance(recipe, dict):
        raise UsageError(f"--recipe {path}: expected a JSON object with the recipe, or with a 'recipe' key")
    return recipe


def choose_arch(args, space, image_size: int) -> tuple[dict, dict, str]:
    """(arch, recipe overrides, where it came from) from --preset, --arch or a seeded random draw."""
    if args.preset and args.arch:
        raise UsageError("give --preset or --arch, not both")
    if args.preset:
        if args.preset not in space.presets:
            raise UsageError(f"space {space.name} has no preset {args.preset!r}; presets: "
                             f"{', '.join(space.presets) or 'none'}")
        preset = space.presets[args.preset]
        return preset["arch"], preset.get("recipe") or {}, f"preset {args.preset}"
    if args.arch:
        arch, recipe = read_arch_file(args.arch)
        arch.setdefault("family", space.family)
        return arch, recipe, args.arch
    import optuna

    from nas import spaces

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = args.seed or 0
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
    return spaces.sample(trial, space, image_size), {}, f"random draw from {space.name} (seed {seed})"


def build_recipe(args, overrides: dict):
    """The preset's or file's recipe, then the command line's flags on top."""
    from nas.config import Recipe, parse_augment

    values = Recipe.from_dict(overrides).to_dict()
    flags = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "optimizer": args.optimizer,
             "weight_decay": args.weight_decay, "label_smoothing": args.label_smoothing, "ema": args.ema,
             "seed": args.seed}
    values.update({k: v for k, v in flags.items() if v is not None})
    if args.no_tta:
        values["tta_flip"] = False
    if args.augment is not None:
        values["augment"].update(parse_augment(args.augment, "--augment"))
    return Recipe.from_dict(values)


def cmd_train(args) -> int:
    import torch

    from nas import cores, data, machine, measure, models, spaces, train
    from nas.report import fmt_count, result_table

    space = spaces.load(args.space)
    device = train.resolve_device(args.device)
    # bad data fails before any work
    splits = data.load(data_config(args), device=device, with_test=args.test, final=args.final)
    space.check_size(splits.inputs.size)
    arch, recipe_overrides, origin = choose_arch(args, space, splits.inputs.size)
    if args.recipe:  # e.g. an export's arch.json: train another network exactly as that export was trained
        recipe_overrides = read_recipe_file(args.recipe)
    recipe = build_recipe(args, recipe_overrides)
    model = models.build(arch, splits.inputs, seed=recipe.seed)
    params = measure.count_params(model)
    macs, uncounted = measure.count_macs(model)
    err.print(f"[bold]{models.summary(arch)}[/bold]  ({origin})", highlight=False)
    err.print(f"params {fmt_count(params)}  MACs {fmt_count(macs)} per image"
              + (f"  (fvcore did not count: {', '.join(f'{k} x{v}' for k, v in uncounted.items())})" if uncounted else ""))
    lat = None
    if not args.no_latency:  # timed before training, and never while another nas process trains
        deployed = models.deployable(model, recipe.tta_flip)  # timed as shipped: flip TTA included
        with cores.timing():
            lat = measure.latency(deployed, backend=args.latency_backend, threads=args.latency_threads)
            lat["throughput_batch256"] = measure.throughput(deployed, backend=args.latency_backend,
                                                            threads=args.latency_threads)
        err.print(f"latency {lat['median_ms']:.3f} ms (IQR {lat['iqr_ms']:.3f}) at batch 1, "
                  f"{lat['backend']}, {lat['threads']} thread(s), {lat['device']}; "
                  f"throughput {lat['throughput_batch256']:.0f} images/s at batch 256")
    err.print(f"data: {len(splits.train)} train / {len(splits.val) if splits.val else 'no'} validation images"
              + (f" / {len(splits.test)} test" if args.test else "") + f", device {device}", highlight=False)

    bar, on_epoch, on_step = epoch_bar(recipe.epochs)
    with bar, cores.training():
        trained, result = train.train(model, splits, recipe, device, args.precision, on_epoch, on_step,
                                      compiled=args.compile)
    if result.status == "diverged":
        raise NasError(f"training diverged: {result.reason}; lower --lr or change the recipe")
    test_acc = train.accuracy(trained, splits.test, recipe.tta_flip, result.precision) if args.test else None
    row = {"network": models.summary(arch) if not args.preset else args.preset, "params": fmt_count(params),
           "MACs": fmt_count(macs), "train acc": f"{result.history[-1]['train_acc']:.4f}",
           "val acc": f"{result.val_acc:.4f}" if result.val_acc is not None else "-",
           "test acc": f"{test_acc:.4f}" if test_acc is not None else "-",
           "epochs": len(result.history), "s/epoch": f"{result.seconds / len(result.history):.1f}",
           "latency ms": f"{lat['median_ms']:.3f}" if lat else "-", "batch": recipe.batch_size}
    err.print(result_table(row))
    err.print(f"on {machine.summary()}", highlight=False)
    if args.format == "json":
        print(json.dumps({"arch": arch, "recipe": recipe.to_dict(), "params": params, "macs": macs,
                          "uncounted_ops": uncounted, "latency": lat, "status": result.status,
                          "precision": result.precision, "history": result.history, "val_acc": result.val_acc,
                          "test_acc": test_acc, "train_seconds": result.seconds, "device": str(device),
                          "torch_threads": torch.get_num_threads(), "machine": machine.describe()}, indent=2))
    return 0


# ---------------------------------------------------------------- nas search / front / plot

def study_args(args) -> tuple[str, str]:
    from nas.storage import default_storage

    return args.study, args.storage or default_storage(args.study)


def front_so_far(study) -> tuple[list[dict], str]:
    from nas.records import StudySettings
    from nas.report import front_rows
    from nas.results import front

    settings, records = StudySettings.of(study), front(study)
    cpus = sorted({r.latency["cpu"] for r in records if "cpu" in r.latency})
    timed = f"; latency timed on {' and '.join(cpus)}" if cpus else ""
    return front_rows(records, settings.val_images), (
        f"Pareto front of study {study.study_name} on {data_summary(settings)} "
        f"({', '.join(settings.objectives)}; validation accuracy ± standard error{timed})")


def data_summary(settings) -> str:
    """'fashion-mnist (10 classes: T-shirt/top, Trouser, Pullover, ...; 1x28x28)' from a StudySettings."""
    name = Path(settings.dataset).name
    inputs = settings.inputs
    if not inputs:  # studies from before the data was recorded
        return name
    classes = inputs["classes"]
    shown = ", ".join(classes[:3]) + (", ..." if len(classes) > 3 else "")
    return f"{name} ({len(classes)} classes: {shown}; {inputs['channels']}x{inputs['size']}x{inputs['size']})"


def print_front(study, fmt: str) -> None:
    """The front (stdout for json and csv, stderr as a table), then where the study's time went (stderr)."""
    from nas.pruning import rungs_of
    from nas.report import front_table, time_spent, time_table

    rows, title = front_so_far(study)
    if fmt == "json":
        print(json.dumps(rows, indent=2))
    elif fmt == "csv":
        import csv

        writer = csv.DictWriter(sys.stdout, fieldnames=[k for k in rows[0] if k != "values"] if rows else ["trial"],
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    else:
        err.print(front_table(rows, title))
    err.print(time_table(*time_spent(rungs_of(study))))


def cmd_search(args) -> int:
    from nas import results, search, storage, workers
    from nas.report import SearchDisplay

    space_name = Path(args.space).stem
    study_name = args.study or space_name
    max_params = (SearchConfig.max_params if args.max_params is None else
                  None if args.max_params == "none" else parse_count(args.max_params, "--max-params"))
    limits = {"max_params": max_params, "max_macs": args.max_macs and parse_count(args.max_macs, "--max-macs"),
              "max_latency_ms": args.max_latency and parse_ms(args.max_latency, "--max-latency")}
    trials = 100 if args.trials is None and args.minutes is None else args.trials
    config = SearchConfig(
        space=args.space, study=study_name, storage=args.storage or storage.default_storage(study_name),
        trials=trials, objectives=parse_objectives(args.objectives), **limits, epochs=args.epochs,
        subset=args.subset, prune_epochs=parse_epochs(args.prune_at, "--prune-at"), rungs=args.rungs, eta=args.eta,
        top_clock=args.top_rung == "clock",
        budgets=parse_budgets(args.budgets) if args.budgets else None, sampler=args.sampler, seed=args.seed,
        with_presets=args.with_presets, minutes=args.minutes, device=args.device,
        latency_backend=args.latency_backend, latency_threads=args.latency_threads, latency_as=args.latency_as,
        data=dataclasses.replace(data_config(args), subset=DataConfig.subset))
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs}: must be at least 1")
    import torch

    devices = workers.worker_devices(args.device, args.jobs, torch.cuda.device_count())
    config = dataclasses.replace(config, device=devices[0])
    runner = search.Search(config, new=args.new)  # creates or checks the study before any worker starts
    already = results.counts(runner.study)["trained"]
    err.print(f"study [bold]{config.study}[/bold] in {storage.redact(config.storage)}: {already} of {config.trials or 'unlimited'} "
              f"trained trials so far; rung 0: {Budget(config.epochs, config.subset)} of the training split"
              + "".join(f", rung {k}: {b}" for k, b in enumerate(config.budgets, start=1))
              + (" by the clock (as long as that takes at the calibrated speed)"
                 if config.top_clock and config.budgets else "")
              + f" (the top 1/{config.eta:g} of each rung goes on); limits {config.limits() or 'none'}",
              highlight=False)
    clock = expected_duration(runner, config, devices, already)
    if len(devices) == 1:  # several workers: run_workers passes the stop on to each
        signal.signal(signal.SIGINT, runner.request_stop)
        signal.signal(signal.SIGTERM, runner.request_stop)
    with SearchDisplay(err, config.trials, already, lambda: front_so_far(runner.study), clock) as display:
        runner.events = display
        try:
            final = runner.run() if len(devices) == 1 else workers.run_workers(config, devices, display)
        except KeyboardInterrupt:
            err.print(f"interrupted: the running trial is marked failed and queued again; run the same "
                      f"command to continue study {config.study}", soft_wrap=True)
            raise
    extra = final["trained"] - (config.trials or final["trained"])
    promoted = results.promotions(runner.study)
    err.print(f"done: {final['trained']} trained ({final['completed']} completed, {final['pruned']} pruned), "
              f"{final['infeasible']} infeasible, {final['reused']} reused, {final['failed']} failed"
              + "".join(f"; {n} trained at rung {k}" for k, n in promoted.items())
              + (f"; {extra} over --trials: workers that started together at the end" if extra > 0 else ""))
    print_front(runner.study, args.format)
    return 0


def expected_duration(runner, config: SearchConfig, devices: list[str], already: int):
    """Print how long the search should take, from a few timed training steps of the space on this machine;
    returns the plan.Progress the live display counts down with (None without an estimate: on a GPU)."""
    from nas import plan, storage
    from nas.config import Recipe
    from nas.report import fmt_duration

    if any(d != "cpu" for d in devices):
        return None
    threads = max(1, (os.cpu_count() or 1) // len(devices))
    batch = runner.space.recipe.get("batch_size")  # the space's fixed recipe, if it fixes one
    batch = batch if isinstance(batch, int) else Recipe().batch_size
    left = max(0, (config.trials or 0) - already)
    random_left = max(0, storage.RANDOM_TRIALS - already)
    # the start-up draws each worker will make, replayed from its sampler's seed (not on a shared server,
    # where the seed depends on the process)
    replayable = config.sampler == "tpe" and config.storage.startswith("sqlite")
    per_worker = math.ceil(random_left / len(devices)) if replayable else 0
    n_before = len(runner.study.get_trials(deepcopy=False))
    startup = [(storage.sampler_seed(config, n_before, worker), per_worker) for worker in range(len(devices))]
    calibrating = time.monotonic()
    draws = plan.calibrate(runner.space, runner.inputs, threads, batch, seed=config.seed, startup=startup)
    speed = plan.expected_speed(draws, left, random_left, any(o != "accuracy" for o in config.objectives))
    calibrated = time.monotonic()
    runner.set_clock(speed.train)
    first = runner.splits(config.subset)
    # each worker process imports, opens the study and loads the data, as this one did before and after calibrating
    boot = (calibrating - STARTED) + (time.monotonic() - calibrated) if len(devices) > 1 else 0.0
    estimate = plan.estimate(config, speed, round(len(first.train) / config.subset), len(first.val), len(devices))
    if config.trials is not None:
        wall = boot + estimate.wall_seconds(left)
        parts = ", ".join(f"{name} {fmt_duration(left * estimate.per_trial(name) / len(devices))}"
                          for name in estimate.share)
        sooner = config.minutes and config.minutes * 60 < wall
        bound = f"; --minutes {config.minutes:g} stops it sooner" if sooner else ""
        starting = f"workers starting {fmt_duration(boot)}, " if boot else ""
        err.print(f"expected duration: about {fmt_duration(wall)} from now for {left} more trials on {len(devices)} "
                  f"worker(s) ({starting}{parts}; per worker {speed.train:.0f} images/s trained and "
                  f"{speed.score:.0f} scored, timed on this machine in {fmt_duration(calibrated - calibrating)}){bound}",
                  highlight=False)
    return plan.Progress(estimate, left if config.trials is not None else None, config.minutes, boot)


def cmd_front(args) -> int:
    from nas import storage

    print_front(storage.load_study(*study_args(args)), args.format)
    return 0


def cmd_plot(args) -> int:
    from nas import storage
    from nas.records import StudySettings
    from nas.report import plot_study

    study = storage.load_study(*study_args(args))
    objectives = StudySettings.of(study).objectives
    for path in plot_study(study, objectives, Path(args.out or STUDIES / args.study)):
        err.print(f"wrote {path}")
    return 0


# ---------------------------------------------------------------- nas export / evaluate / dashboard

def epoch_bar(epochs: int | None):
    """A rich progress bar for a training run, with callbacks for train.train()."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    label = "epoch {task.fields[epoch]}" + ("/{task.fields[epochs]}" if epochs else "")
    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err)
    task = bar.add_task("train", total=1, epoch=1, epochs=epochs)

    def on_step(epoch, step, steps):
        bar.start()  # on the first step, so nothing is drawn when a command stops before training
        bar.update(task, completed=step, total=steps, epoch=epoch)

    @contextlib.contextmanager
    def shown():  # not Progress's own context manager: that draws the bar at once
        try:
            yield
        finally:
            bar.stop()

    def on_epoch(epoch, m):
        val = f"  val acc {m['val_acc']:.4f}" if m.get("val_acc") is not None else ""
        bar.console.print(f"epoch {epoch}: loss {m['train_loss']:.4f}  train acc {m['train_acc']:.4f}{val}  "
                          f"{m['seconds']:.1f} s", highlight=False)

    return shown(), on_epoch, on_step


def cmd_export(args) -> int:
    from nas import export
    from nas.report import fmt_count

    if args.epochs is not None and args.minutes is not None:
        raise UsageError("--epochs and --minutes both set the length of the training; give one of them")
    minutes = EXPORT_MINUTES if args.epochs is None and args.minutes is None else args.minutes
    config = ExportConfig(study=args.study, storage=study_args(args)[1], trial=args.trial, pick=args.pick,
                          epochs=ExportConfig.epochs if args.epochs is None else args.epochs,
                          minutes=minutes, subset=args.subset, seed=args.seed, augment=args.augment,
                          compile=args.compile, device=args.device, data_dir=args.data_dir, out=args.out,
                          force=args.force, int8=args.int8)
    bar, on_epoch, on_step = epoch_bar(None if config.minutes else config.epochs)
    with bar:
        folder, m = export.export(config, on_epoch, on_step, say=lambda text: err.print(text, highlight=False))
    lat = m["latency"]
    err.print(f"test accuracy {m['test_acc']:.4f} (onnxruntime; PyTorch {m['test_acc_torch']:.4f}, agreement "
              f"{m['onnx_torch_agreement']:.2%} of {m['test_images']} images); params {fmt_count(m['params'])}; "
              f"latency {lat['onnxruntime']['median_ms']:.3f} ms onnxruntime, {lat['torch']['median_ms']:.3f} ms "
              f"PyTorch (batch 1, 1 thread)", highlight=False)
    print_int8(m)
    err.print(f"wrote {folder}/: model.onnx, {'model.int8.onnx, ' if config.int8 else ''}model.pt2, "
              f"weights.safetensors, arch.json, metrics.json, README.md, front.png", highlight=False)
    if args.format == "json":
        print(json.dumps({"folder": str(folder), **{k: v for k, v in m.items() if k != "history"}}, indent=2))
    return 0


def print_int8(m: dict) -> None:
    """The int8 file beside the fp32 one, and the warning when it lost too much."""
    q = m.get("int8")
    if q:
        err.print(f"int8: test accuracy {q['test_acc']:.4f} (fp32 {m['test_acc_onnxruntime']:.4f}, agreement "
                  f"{q['fp32_agreement']:.2%}); latency {q['latency']['median_ms']:.3f} ms (fp32 "
                  f"{m['latency']['onnxruntime']['median_ms']:.3f}); {q['size_bytes'] / 1e6:.2f} MB (fp32 "
                  f"{q['fp32_size_bytes'] / 1e6:.2f})", highlight=False)
    if q and q["warning"]:
        err.print(f"[yellow]warning[/yellow]: {q['warning']}", highlight=False)


def cmd_quantize(args) -> int:
    from nas import export

    m = export.add_int8(Path(args.folder), args.data_dir)
    print_int8(m)
    err.print(f"wrote {args.folder}/model.int8.onnx; metrics.json and README.md updated", highlight=False)
    if args.format == "json":
        print(json.dumps(m["int8"], indent=2))
    return 0


def cmd_evaluate(args) -> int:
    from nas import export, machine

    s = export.evaluate(Path(args.folder), args.data_dir)
    if args.format == "json":
        print(json.dumps(s, indent=2))
    err.print(f"test accuracy {s['test_acc_onnxruntime']:.4f} onnxruntime, {s['test_acc_torch']:.4f} PyTorch "
              f"(agreement {s['onnx_torch_agreement']:.2%}); metrics.json says {s['recorded_test_acc']:.4f}"
              + (f"; int8 {s['int8']['test_acc']:.4f}, metrics.json says {s['int8']['recorded_test_acc']:.4f}"
                 if "int8" in s else ""), highlight=False)
    if not s["same_cpu"]:
        err.print(f"[yellow]warning[/yellow]: the latencies were recorded on {s['recorded_cpu'] or 'an unrecorded CPU'} "
                  f"and are re-timed on {machine.cpu_model()}: compare them only on the same machine", highlight=False)
    for backend, lat in s["latency"].items():
        low, high = lat["recorded_spread_ms"]
        err.print(f"latency {backend}: {lat['median_ms']:.3f} ms (IQR {lat['iqr_ms']:.3f}); recorded "
                  f"{lat['recorded_median_ms']:.3f} ms, spread {low:.3f}-{high:.3f} ms -> "
                  f"{'within' if lat['within_spread'] else 'outside'} the recorded spread", highlight=False)
    if not s["reproduced"]:
        raise NasError(f"the files in {args.folder} do not reproduce metrics.json's test accuracy")
    err.print("[green]reproduced[/green]: the test accuracy matches metrics.json exactly")
    return 0


def cmd_dashboard(args) -> int:
    from nas import storage

    study_name, url = study_args(args)
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: a TCP port is between 1 and 65535; pick one such as 8080")
    study = storage.load_study(study_name, url)  # a clear error for a missing study, before any server starts
    from optuna_dashboard import run_server

    from nas.pruning import rungs_of

    rungs = [s.study_name for s in rungs_of(study)[1:]]
    err.print(f"optuna-dashboard for study {study_name} ({storage.redact(url)}): "
              f"http://{args.host}:{args.port}/dashboard/  (Ctrl-C stops it)"
              + (f"; its promoted trials, one study per rung: {', '.join(rungs)}" if rungs else ""),
              highlight=False, soft_wrap=True)
    try:
        run_server(storage.open_storage(url), host=args.host, port=args.port)
    except OSError as e:
        raise NasError(f"cannot listen on {args.host}:{args.port} ({e.strerror}); pick another --port") from None
    except KeyboardInterrupt:
        err.print("dashboard stopped")
    return 0


# ---------------------------------------------------------------- nas predict

def cmd_predict(args) -> int:
    from rich.table import Table

    from nas.predict import predict

    if args.top < 1:
        raise UsageError(f"--top {args.top}: must be at least 1")
    rows = predict(args.export, args.images, args.top, int8=args.int8)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(["path", *(f"{k}_{i + 1}" for i in range(args.top) for k in ("class", "probability"))])
        for r in rows:
            writer.writerow([r["path"], *(v for t in r["top"] for v in (t["class"], t["probability"]))])
    else:
        table = Table(title=f"predictions of {args.export}")
        table.add_column("image")
        for i in range(args.top):
            table.add_column(f"#{i + 1}")
        for r in rows:
            table.add_row(r["path"], *(f"{t['class']} {t['probability']:.1%}" for t in r["top"]))
        err.print(table)
    return 0


# ---------------------------------------------------------------- wiring

def add_data_args(p):
    p.add_argument("--data", "--dataset", dest="dataset", default=DataConfig.dataset,
                   help="fashion-mnist (default), mnist, kmnist, or your own images: a folder with one subfolder "
                        "per class (optionally inside train/, val/, test/), a CSV of path,label, or an .npz")
    p.add_argument("--image-size", type=int, help="own images: the side they are resized to (default: their "
                                                  f"median side, at most {64})")
    p.add_argument("--skip-bad", action="store_true", help="own images: leave unreadable files out (counted) "
                                                           "instead of refusing the data")
    p.add_argument("--data-dir", help="folder with the four IDX files (default: $NAS_DATA_DIR, "
                                      "/usr/share/datasets/fashion-mnist, then a torchvision download)")
    p.add_argument("--val-size", type=int, default=DataConfig.val_size,
                   help="validation images held out of the training images (default: 1/6 of them, 10,000 of "
                        "Fashion-MNIST's 60,000)")
    p.add_argument("--split-seed", type=int, default=DataConfig.split_seed,
                   help="seed of the stratified train/validation split")


def add_study(p, required: bool = True) -> None:
    p.add_argument("--study", required=required, help=None if required else "study name (default: the space's name)")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///studies/<study>.db)")


def add_space(p) -> None:
    p.add_argument("--space", required=True, help="space name (see nas spaces) or path to a .yaml file")


def add_latency_args(p, defaults) -> None:
    p.add_argument("--latency-backend", choices=["onnxruntime", "torch"], default=defaults.latency_backend,
                   help="what batch-1 latency is timed with (default %(default)s)")
    p.add_argument("--latency-threads", type=int, default=defaults.latency_threads,
                   help="threads of the latency timing (default %(default)s, as deployed on one core)")


def add_format(p, *more: str, help: str | None = None) -> None:
    p.add_argument("--format", choices=["table", "json", *more], default="table", help=help)


def parser() -> Parser:
    top = Parser(prog="nas", description="Neural architecture search for small, fast image classifiers.")
    top.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = top.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("spaces", help="list search spaces and their presets (params, MACs)")
    add_format(p)
    p.set_defaults(func=cmd_spaces)

    p = sub.add_parser("data", help="class counts per split, pixel statistics, a picture of samples")
    add_data_args(p)
    p.add_argument("--out", help="where to write the samples picture (default studies/data-<dataset>.png)")
    add_format(p)
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("train", help="train one architecture (a preset, an arch.json or a random draw)")
    add_space(p)
    p.add_argument("--preset", help="a named preset of the space, e.g. seed-structure-1")
    p.add_argument("--arch", help="JSON file with an arch dict (or {'arch': ..., 'recipe': ...})")
    p.add_argument("--recipe", help="JSON file with a recipe, or an export's arch.json (its recipe); flags "
                                    "still override it")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="peak learning rate per 256 images")
    p.add_argument("--optimizer", choices=["sgd", "adamw"])
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--ema", type=float, help="per-step EMA decay of weights for evaluation (0 = off)")
    p.add_argument("--augment", help="augmentation policy, e.g. crop=2,flip=1,cutout=8")
    p.add_argument("--no-tta", action="store_true", help="evaluate without horizontal-flip test-time augmentation")
    p.add_argument("--seed", type=int, help="seeds weights, batch order, augmentation and a random draw "
                                           "(default: the recipe's, else 0)")
    p.add_argument("--subset", type=float, default=DataConfig.subset, help="fraction of the training split to train on")
    p.add_argument("--test", action="store_true", help="after training, score the test split once")
    p.add_argument("--compile", action="store_true", help="torch.compile the training step (see nas export --compile)")
    p.add_argument("--final", action="store_true", help="train on train + validation (all 60,000 images) as "
                                                        "nas export does; nothing is scored on validation")
    p.add_argument("--device", default=SearchConfig.device, help="cpu, cuda, cuda:N (default: a GPU if there is one)")
    p.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto")
    add_latency_args(p, SearchConfig)
    p.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    add_format(p)
    add_data_args(p)
    p.set_defaults(func=cmd_train)

    S = SearchConfig
    p = sub.add_parser("search", help="multi-objective architecture search into an Optuna study")
    add_space(p)
    p.add_argument("--trials", type=int, help="trials trained at rung 0 (completed or pruned) the study should hold; "
                                              "promotions come on top (default: 100, or unlimited with --minutes)")
    add_study(p, required=False)
    p.add_argument("--new", action="store_true", help="refuse to continue an existing study of this name")
    p.add_argument("--objectives", default=",".join(S.objectives), help="from accuracy, params, macs, latency")
    p.add_argument("--max-params", help=f"hard limit, e.g. 1M (default {S.max_params:.3g}, the seed's); 'none' for none")
    p.add_argument("--max-macs", help="hard limit on multiply-adds per image, e.g. 300M")
    p.add_argument("--max-latency", help="hard limit on batch-1 latency, e.g. 1ms")
    p.add_argument("--epochs", type=int, default=S.epochs, help="rung 0 (every trial): epochs")
    p.add_argument("--subset", type=float, default=S.subset, help="rung 0 (every trial): fraction of the training split")
    p.add_argument("--prune-at", default="", help="rung-0 epochs at which a trial outside the top 1/eta of those "
                                                "that reached it stops, e.g. 2,3 (default: none)")
    p.add_argument("--rungs", type=int, default=S.rungs,
                   help="promotion rungs above rung 0, each training --eta times the images of the one below "
                        "(default %(default)s; 0: no promotions)")
    p.add_argument("--eta", type=float, default=S.eta,
                   help="each rung and pruning epoch keeps the top 1/eta of the trials that reached it "
                        "(default %(default)g)")
    p.add_argument("--budgets", help="the promotion rungs spelt out instead, EPOCHSxFRACTION each, e.g. 6x0.4,9x0.8; "
                                     "none: no promotions")
    p.add_argument("--top-rung", choices=["clock", "epochs"], default="clock" if S.top_clock else "epochs",
                   help="clock: the top rung trains every trial as long as its budget takes at the speed timed "
                        "at the start (rung 0's median on a GPU), so it ranks networks at equal time, as nas "
                        "export trains them; epochs: for its budget (default %(default)s)")
    p.add_argument("--sampler", choices=SAMPLERS, default=S.sampler)
    p.add_argument("--seed", type=int, default=S.seed)
    p.add_argument("--with-presets", action="store_true",
                   help="train the space's presets (those inside the limits) first as reference trials")
    p.add_argument("--minutes", type=float, help="the search's time budget: no trial or promotion starts after it")
    p.add_argument("--jobs", type=int, help="local worker processes sharing the study and the cores (default: one "
                                            "per core on a CPU, 1.66x one worker's throughput on 2 cores)")
    p.add_argument("--device", default=S.device, help="cpu, cuda, cuda:N or cuda:0,cuda:1 (one worker per GPU); "
                                                   "default: every visible GPU, else the CPU")
    add_latency_args(p, S)
    p.add_argument("--latency-as", choices=["fp32", "int8"], default=S.latency_as,
                   help="time the latency objective and limit on each trial's int8 model (what nas export "
                        "--int8 ships); faster than fp32 on these CPUs for networks over ~0.5 ms, slower below")
    add_format(p, "csv", help="how to print the front")
    add_data_args(p)
    p.set_defaults(func=cmd_search)

    for name, func, text in (("front", cmd_front, "the Pareto front of a study"),
                             ("plot", cmd_plot, "PNG pictures of a study's front and hypervolume")):
        p = sub.add_parser(name, help=text)
        add_study(p)
        if name == "front":
            add_format(p, "csv")
        else:
            p.add_argument("--out", help="folder for the pictures (default studies/<study>/)")
        p.set_defaults(func=func)

    p = sub.add_parser("export", help="retrain a trial on train + validation, test it once, write deployable files")
    add_study(p)
    p.add_argument("--trial", type=int, help="trial number (default: chosen by --pick)")
    p.add_argument("--pick", choices=PICKS, default=ExportConfig.pick,
                   help="best: most accurate trial on the front; knee: the front's balanced point (see README)")
    p.add_argument("--epochs", type=int, help="final training epochs instead of --minutes")
    p.add_argument("--minutes", type=float, help=f"train for this many minutes (default {EXPORT_MINUTES:g}): the "
                                                 f"learning rate follows the clock, so the run ends annealed")
    p.add_argument("--subset", type=float, default=ExportConfig.subset, help="fraction of train + validation to train on")
    p.add_argument("--seed", type=int, help="training seed (default: the trial's)")
    p.add_argument("--augment", default=ExportConfig.augment,
                   help="augmentation of the final training: final (default: the trial's, mirroring on where its "
                        "space allows it), search (the trial's as drawn), or e.g. crop=2,flip=1,cutout=8 over the trial's")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training step (1.2-1.3x faster for the headline run's trial 78 on a "
                        "CPU, but 2.9x slower for seed-structure-1: try a few epochs first; needs a C++ compiler)")
    p.add_argument("--device", default=ExportConfig.device, help="cpu, cuda, cuda:N (default: a GPU if there is one)")
    p.add_argument("--data-dir", help="folder with the four IDX files")
    p.add_argument("--out", help="export folder (default studies/<study>/exports/trial-<n>)")
    p.add_argument("--force", action="store_true", help="replace an existing export folder")
    p.add_argument("--int8", action="store_true", help="also write model.int8.onnx (static per-channel QDQ, "
                                                       "onnxruntime), scored and timed beside model.onnx")
    add_format(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("evaluate", help="re-check an export's test accuracy and latency from its files")
    p.add_argument("folder", help="an export folder, e.g. studies/resnet_like/exports/trial-42")
    p.add_argument("--data-dir", help="folder with the four IDX files")
    add_format(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("quantize", help="add model.int8.onnx to a finished export, scored and timed beside fp32")
    p.add_argument("folder", help="an export folder, e.g. studies/resnet_like/exports/trial-42")
    p.add_argument("--data-dir", help="folder with the four IDX files")
    add_format(p)
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("predict", help="the top classes of image files, from an export folder alone (onnxruntime)")
    p.add_argument("export", help="an export folder, e.g. studies/resnet_like/exports/trial-42")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, BMP, WebP) or folders of them")
    p.add_argument("--top", type=int, default=3, help="classes shown per image, most likely first")
    p.add_argument("--int8", action="store_true", help="run model.int8.onnx (nas export --int8 or nas quantize)")
    add_format(p, "csv")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("dashboard", help="optuna-dashboard on a study (loopback unless --host)")
    add_study(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback only)")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(func=cmd_dashboard)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # `kill` (SIGTERM) stops like Ctrl-C: the running trial is failed and queued again, and a search's
    # worker processes are stopped with it instead of training on as orphans
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        return args.func(args)
    except NasError as e:
        if args.debug:
            raise
        print_error(str(e).replace("[", r"\["))
        return e.exit_code
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/yellow]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
