"""What people would rather see than read: tables and pictures. Humans read stderr, machines stdout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.table import Table

from nas import records
from nas.records import Kind, TrialRecord


def fmt_count(n: float) -> str:
    """11172810 -> '11.17M'; 456769024 -> '456.8M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.4g}{unit}"
    return f"{n:g}"


def fmt_duration(seconds: float) -> str:
    """42 -> '42 s'; 1500 -> '25 min'; 5400 -> '1 h 30 min'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def data_table(stats: dict, max_rows: int = 30) -> Table:
    """Images per class and split; past `max_rows` classes, the smallest and largest few and the median
    (`--format json` has them all)."""
    classes = stats["classes"]
    table = Table(title=f"{stats['dataset']}: images per class and split ({len(classes)} classes)")
    table.add_column("class")
    for split in stats["splits"]:
        table.add_column(split, justify="right")
    train = np.asarray(next(iter(stats["splits"].values()))["counts"])
    by_size = np.argsort(train, kind="stable")
    shown = range(len(classes)) if len(classes) <= max_rows else [*by_size[:5], None, *by_size[-5:]]
    for i in shown:
        if i is None:
            medians = (f"{np.median(s['counts']):g}" for s in stats["splits"].values())
            table.add_row(f"... median of {len(classes)}", *medians, style="dim")
        else:
            table.add_row(f"{i} {classes[i]}", *(str(s["counts"][i]) for s in stats["splits"].values()))
    table.add_row("total", *(str(s["images"]) for s in stats["splits"].values()), style="bold")
    table.add_row("pixel mean (0-255)", *(f"{s['mean']:.2f}" for s in stats["splits"].values()))
    table.add_row("pixel std (0-255)", *(f"{s['std']:.2f}" for s in stats["splits"].values()))
    return table


def sample_grid(images: np.ndarray, labels: np.ndarray, classes: list[str], path: Path, per_class: int = 8,
                max_classes: int = 20) -> Path:
    """A picture: one row per class, `per_class` training images each; past `max_classes` classes,
    `max_classes` of them spread evenly over the class list (the title says so)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = np.unique(np.linspace(0, len(classes) - 1, min(len(classes), max_classes)).round().astype(int))
    fig, axes = plt.subplots(len(shown), per_class, figsize=(per_class * 0.9, len(shown) * 0.95 + 0.4),
                             squeeze=False)
    if len(shown) < len(classes):
        fig.suptitle(f"{len(shown)} of {len(classes)} classes", fontsize=9)
    for row, c in enumerate(shown):
        idx = np.flatnonzero(labels == c)[:per_class]
        for j in range(per_class):
            ax = axes[row, j]
            ax.axis("off")
            if j < len(idx):
                image = images[idx[j]]
                if image.shape[0] == 3:
                    ax.imshow(image.transpose(1, 2, 0))
                else:
                    ax.imshow(image[0], cmap="gray_r", vmin=0, vmax=255)
        axes[row, 0].set_title(classes[c], fontsize=8, loc="left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def result_table(row: dict) -> Table:
    """The seed's own columns (and more) for one trained model."""
    table = Table(title="result", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for key, value in row.items():
        table.add_row(key, str(value))
    return table


# ---------------------------------------------------------------- the search's front

# Fixed normalisation for hypervolume: every objective becomes a loss in [0, 1] (1 = reference point).
# Costs on a log scale between a floor and a ceiling, accuracy as error rate.
LOG_RANGES = {"params": (1e3, 1e8), "macs": (1e5, 1e10), "latency": (1e-2, 1e2)}


def normalised_losses(values, objectives) -> np.ndarray:
    out = []
    for v, name in zip(values, objectives):
        if name == "accuracy":
            out.append(1.0 - v)
        else:
            low, high = LOG_RANGES[name]
            out.append((np.log10(max(v, low)) - np.log10(low)) / (np.log10(high) - np.log10(low)))
    return np.clip(np.array(out, dtype=float), 0.0, 1.0)


def hypervolume(points: list, objectives) -> float:
    from nas import optuna_adapter

    if not points:
        return 0.0
    losses = np.array([normalised_losses(p, objectives) for p in points])
    return optuna_adapter.hypervolume(losses, np.ones(len(objectives)))


def front_rows(records, val_size: int) -> list[dict]:
    """One plain dict per front record (see results.front): what `nas front` shows and prints as JSON/CSV."""
    rows = []
    for r in records:
        acc = r.accuracy
        rows.append({"trial": r.number, "rung": r.rung, "val_acc": acc,
                     "val_acc_se": float(np.sqrt(acc * (1 - acc) / val_size)),
                     "epochs": (r.fidelity or {}).get("epochs"), "subset": (r.fidelity or {}).get("subset"),
                     "seconds": (r.fidelity or {}).get("seconds"),
                     "params": r.params, "macs": r.macs, "latency_ms": r.latency_ms,
                     "latency_iqr_ms": r.latency.get("iqr_ms"), "summary": r.summary, "preset": r.preset,
                     "values": list(r.values)})
    return rows


def front_table(rows: list[dict], title: str) -> Table:
    table = Table(title=title)
    for col in ("trial", "rung", "val acc", "params", "MACs", "latency ms", "architecture"):
        table.add_column(col, justify="left" if col == "architecture" else "right")
    for r in rows:
        length = f"{r['seconds']:.0f}s" if r.get("seconds") else r["epochs"]
        budget = f"{r['rung']} ({length}x{r['subset']:g})" if r["epochs"] else str(r["rung"])
        table.add_row(str(r["trial"]) + (f" ({r['preset']})" if r["preset"] else ""), budget,
                      f"{r['val_acc']:.4f} ± {r['val_acc_se']:.4f}", fmt_count(r["params"]), fmt_count(r["macs"]),
                      f"{r['latency_ms']:.3f}", r["summary"] or "")
    return table


def _groups(rung_study, objectives) -> dict[str, list]:
    """A rung's trials as (record, accuracy) by how they are drawn: trained, front, pruned, ..."""
    on_front = {t.number for t in rung_study.best_trials}
    groups = {"trained": [], "front": [], "pruned": [], "infeasible": [], "reference": []}
    for t in rung_study.get_trials(deepcopy=False):
        r = TrialRecord.of(t)
        curve = r.curve or []
        if r.macs is None or r.kind == Kind.REUSED:
            continue
        if r.kind == Kind.INFEASIBLE:
            groups["infeasible"].append((r, None))
        elif r.kind == Kind.PRUNED and curve:
            groups["pruned"].append((r, curve[-1][1]))
        elif r.kind in (Kind.TRAINED, Kind.REFERENCE):
            acc = r.accuracy if objectives[0] == "accuracy" else (curve[-1][1] if curve else None)
            name = "reference" if r.kind == Kind.REFERENCE else "front" if t.number in on_front else "trained"
            groups[name].append((r, acc))
    return groups


STYLE = {"trained": dict(c="tab:blue", marker="o", alpha=0.5, label="trained"),
         "front": dict(c="tab:red", marker="o", label="Pareto front of this rung"),
         "pruned": dict(c="tab:gray", marker="v", alpha=0.5, label="pruned (acc. when stopped)"),
         "infeasible": dict(c="black", marker="x", label="infeasible (over a limit, not trained)"),
         "reference": dict(c="tab:green", marker="*", s=160, label="reference (seed preset)")}


def _scatter_rung(axes, groups: dict, highlight: int | None, budget: str) -> None:
    accs = [a for g in ("trained", "front", "pruned", "reference") for _, a in groups[g] if a is not None]
    floor = min(accs) - 0.01 if accs else 0.0
    for ax, (key, label) in zip(axes, (("macs", "MACs per image"), ("latency", "batch-1 latency (ms)"))):
        for name, items in groups.items():
            if not items:
                continue
            xs = [r.macs if key == "macs" else r.latency_ms for r, _ in items]
            ys = [a if a is not None else floor for _, a in items]
            ax.scatter(xs, ys, **STYLE[name])
            for x, y, (r, _) in zip(xs, ys, items):
                if name == "reference":
                    ax.annotate(r.preset or "", (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
                if r.number == highlight:
                    ax.scatter([x], [y], s=320, facecolors="none", edgecolors="tab:orange", linewidths=2.5,
                               label=f"trial {highlight} (exported)")
                    ax.annotate(f"trial {highlight}", (x, y), fontsize=8, xytext=(8, -12), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(f"validation accuracy ({budget})")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")


def plot_study(study, objectives, folder: Path, highlight: int | None = None,
               with_hypervolume: bool = True) -> list[Path]:
    """front.png (accuracy vs MACs and vs latency, one row per rung, highest first) and hypervolume.png
    (of rung 0, where every trial is drawn), written into `folder`.

    highlight: a trial number to ring and label (the exported trial, on a model card)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.pruning import rungs_of

    folder.mkdir(parents=True, exist_ok=True)
    rungs = [(k, s) for k, s in enumerate(rungs_of(study)) if k == 0 or s.get_trials(deepcopy=False)][::-1]
    fig, axes = plt.subplots(len(rungs), 2, figsize=(12, 4.8 * len(rungs)), squeeze=False)
    for row, (k, rung_study) in zip(axes, rungs):
        budget = records.rung_budget(rung_study) or records.StudySettings.of(study).budget
        length = f"{budget['seconds']:.0f} s" if budget.get("seconds") else f"{budget.get('epochs', '?')} epochs"
        label = f"rung {k}: {length} on {budget.get('subset', 1):.0%}"
        _scatter_rung(row, _groups(rung_study, objectives), highlight, label)
    trials = study.get_trials(deepcopy=False)
    fig.suptitle(f"study {study.study_name}: {len(trials)} trials drawn; each row compares one rung's budget")
    fig.tight_layout()
    front_png = folder / "front.png"
    fig.savefig(front_png, dpi=110)
    plt.close(fig)
    if not with_hypervolume:
        return [front_png]

    # hypervolume of the trained trials (all feasible: over-limit ones are never trained), trial by trial
    done, hv, when = [], [], []
    start = min((t.datetime_start for t in trials if t.datetime_start), default=None)
    for t in sorted(trials, key=lambda t: t.number):
        if TrialRecord.of(t).kind == Kind.TRAINED:
            done.append(t.values)
            hv.append(hypervolume(done, objectives))
            when.append((t.datetime_complete - start).total_seconds() / 60)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(when, hv, marker=".")
    ax.set_xlabel("minutes since the study started")
    ax.set_ylabel(f"hypervolume ({', '.join(objectives)}; normalised)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    hv_png = folder / "hypervolume.png"
    fig.savefig(hv_png, dpi=110)
    plt.close(fig)
    return [front_png, hv_png]


SPENT = ("measure", "wait", "latency", "train", "score")  # a trial's "seconds", in the order a trial spends them


def time_spent(studies) -> tuple[list[dict], float]:
    """Where a search's time went: per rung (studies: rungs_of(study)), the trials that ended, how many of
    them failed, and their seconds measuring (counting, ONNX export), waiting for the cores to time
    latency, timing it, training and scoring. Also the span from the first trial's start to the last one's
    end, in seconds (pauses between runs of a resumed study included)."""
    from optuna.trial import TrialState

    rows, starts, ends = [], [], []
    for rung, study in enumerate(studies):
        row = {"rung": rung, "trials": 0, "failed": 0, **dict.fromkeys(SPENT, 0.0)}
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)):
            row["trials"] += 1
            row["failed"] += t.state == TrialState.FAIL
            for part, seconds in (records.stored(t).seconds or {}).items():
                row[part] = row.get(part, 0.0) + seconds
            starts += [t.datetime_start] if t.datetime_start else []
            ends += [t.datetime_complete] if t.datetime_complete else []
        if row["trials"]:
            rows.append(row)
    span = (max(ends) - min(starts)).total_seconds() if starts and ends else 0.0
    return rows, span


def time_table(rows: list[dict], span: float) -> Table:
    table = Table(title=f"where the time went, in seconds: {fmt_duration(span)} from the first trial's start "
                        f"to the last one's end")
    for name in ("rung", "trials", "failed", *SPENT, "share"):
        table.add_column(name, justify="right")
    total = sum(r[p] for r in rows for p in SPENT) or 1.0
    for r in rows:
        table.add_row(str(r["rung"]), str(r["trials"]), str(r["failed"]), *(f"{r[p]:.0f}" for p in SPENT),
                      f"{sum(r[p] for p in SPENT) / total:.0%}")
    return table


class SearchDisplay:
    """The live view of a search on stderr: trial counts, the current trial's epoch bar, one line per trial."""

    FRONT_EVERY = 10  # trained trials between two prints of the best front so far

    def __init__(self, console, trials: int | None, already: int, front_source=None, clock=None):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[left]}"), TextColumn("{task.fields[info]}"),
                                 console=console)
        self.trials = self.progress.add_task("trained trials", total=trials, completed=already, info="", left="")
        self.epoch = self.progress.add_task("current trial", total=1, info="", left="", visible=False)
        self.tally = {"completed": 0, "pruned": 0, "infeasible": 0, "reused": 0, "failed": 0, "reference": 0,
                      "promoted": 0}
        self.front_source = front_source  # () -> (rows, title) of the front as it stands
        self.clock = clock  # a plan.Progress: the time left, or None when there is no estimate

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def _counts(self) -> str:
        return "  ".join(f"{k} {v}" for k, v in self.tally.items() if v)

    def __call__(self, event: str, **info):
        p = self.progress
        if event == "end" and self.clock:
            self.clock.finished(info.get("rung") or 0, info["kind"] in (Kind.TRAINED, Kind.PRUNED, Kind.REFERENCE))
        if self.clock and (left := self.clock.seconds_left()) is not None:
            p.update(self.trials, left=f"~{fmt_duration(left)} left")
        if event in ("start", "step") and "worker" in info:
            return  # several workers: one line per finished trial is all that stays readable
        rung = f" rung {info['rung']}" if info.get("rung") else ""
        if event == "start":
            p.update(self.epoch, description=f"trial {info['number']}{rung}", completed=0, total=info["epochs"],
                     info=info["summary"][:60], visible=True)
        elif event == "step":
            p.update(self.epoch, completed=info["epoch"] - 1 + info["step"] / info["steps"])
        elif event == "end":
            what = Kind(info["kind"])
            self.tally["promoted" if rung and what != Kind.FAILED else "completed" if what == Kind.TRAINED
                       else what.value] += 1
            if what in (Kind.TRAINED, Kind.PRUNED) and not rung:
                p.advance(self.trials)
            p.update(self.epoch, visible=False)
            p.update(self.trials, info=self._counts())
            line = f"trial {info['number']}{rung}: {what}" + (f" (worker {info['worker']})" if "worker" in info else "")
            if "acc" in info:
                line += f"  val acc {info['acc']:.4f}" + (f" at epoch {info['epoch']}" if what == Kind.PRUNED else "")
            if "costs" in info:
                c = info["costs"]
                line += f"  params {fmt_count(c['params'])}  MACs {fmt_count(c['macs'])}  latency {c['latency_ms']:.3f} ms"
            if "reason" in info:
                line += f"  ({info['reason']})"
            p.console.print(line, highlight=False)
            trained = self.tally["completed"] + self.tally["pruned"]
            if self.front_source and what in (Kind.TRAINED, Kind.PRUNED) and not rung and trained % self.FRONT_EVERY == 0:
                p.console.print(front_table(*self.front_source()))
        elif event == "timeout":
            p.console.print("--minutes reached: no new trial or promotion started")
