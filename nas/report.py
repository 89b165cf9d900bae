"""What people would rather see than read: tables and pictures. Humans read stderr, machines stdout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.table import Table


def fmt_count(n: float) -> str:
    """11172810 -> '11.17M'; 456769024 -> '456.8M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.4g}{unit}"
    return f"{n:g}"


def data_table(stats: dict) -> Table:
    classes = stats["classes"]
    table = Table(title=f"{stats['dataset']}: images per class and split")
    table.add_column("class")
    for split in stats["splits"]:
        table.add_column(split, justify="right")
    for i, name in enumerate(classes):
        table.add_row(f"{i} {name}", *(str(s["counts"][i]) for s in stats["splits"].values()))
    table.add_row("total", *(str(s["images"]) for s in stats["splits"].values()), style="bold")
    table.add_row("pixel mean (0-255)", *(f"{s['mean']:.2f}" for s in stats["splits"].values()))
    table.add_row("pixel std (0-255)", *(f"{s['std']:.2f}" for s in stats["splits"].values()))
    return table


def sample_grid(images: np.ndarray, labels: np.ndarray, classes: list[str], path: Path, per_class: int = 8) -> Path:
    """A picture: one row per class, `per_class` training images each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(classes), per_class, figsize=(per_class * 0.9, len(classes) * 0.95))
    for c, name in enumerate(classes):
        idx = np.flatnonzero(labels == c)[:per_class]
        for j in range(per_class):
            ax = axes[c, j]
            ax.axis("off")
            if j < len(idx):
                ax.imshow(images[idx[j]].squeeze(), cmap="gray_r", vmin=0, vmax=255)
        axes[c, 0].set_title(name, fontsize=8, loc="left")
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
    from optuna._hypervolume import compute_hypervolume

    if not points:
        return 0.0
    losses = np.array([normalised_losses(p, objectives) for p in points])
    return float(compute_hypervolume(losses, np.ones(len(objectives))))


def front_rows(trials, val_size: int) -> list[dict]:
    """One plain dict per Pareto-optimal trial: what `nas front` shows and prints as JSON/CSV."""
    rows = []
    for t in trials:
        acc = t.values[0] if t.values else float("nan")
        lat = t.user_attrs.get("latency") or {}
        rows.append({"trial": t.number, "val_acc": acc, "val_acc_se": float(np.sqrt(acc * (1 - acc) / val_size)),
                     "params": t.user_attrs.get("params"), "macs": t.user_attrs.get("macs"),
                     "latency_ms": lat.get("median_ms"), "latency_iqr_ms": lat.get("iqr_ms"),
                     "summary": t.user_attrs.get("summary"), "preset": t.user_attrs.get("preset"),
                     "values": list(t.values)})
    return rows


def front_table(rows: list[dict], title: str) -> Table:
    table = Table(title=title)
    for col in ("trial", "val acc", "params", "MACs", "latency ms", "architecture"):
        table.add_column(col, justify="left" if col == "architecture" else "right")
    for r in rows:
        table.add_row(str(r["trial"]) + (f" ({r['preset']})" if r["preset"] else ""),
                      f"{r['val_acc']:.4f} ± {r['val_acc_se']:.4f}", fmt_count(r["params"]), fmt_count(r["macs"]),
                      f"{r['latency_ms']:.3f}", r["summary"] or "")
    return table


def plot_study(study, objectives, folder: Path, highlight: int | None = None,
               with_hypervolume: bool = True) -> list[Path]:
    """front.png (accuracy vs MACs and vs latency) and hypervolume.png, written into `folder`.

    highlight: a trial number to ring and label (the exported trial, on a model card)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    folder.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    on_front = {t.number for t in study.best_trials}
    groups = {"trained": [], "front": [], "pruned": [], "infeasible": [], "reference": []}
    for t in trials:
        kind = t.user_attrs.get("kind")
        if "macs" not in t.user_attrs or kind == "reused":
            continue
        curve = t.user_attrs.get("curve") or []
        if kind == "infeasible":
            groups["infeasible"].append((t, None))
        elif t.state == TrialState.PRUNED and curve:
            groups["pruned"].append((t, curve[-1][1]))
        elif t.state == TrialState.COMPLETE:
            acc = t.values[0] if objectives[0] == "accuracy" else (curve[-1][1] if curve else None)
            groups["reference" if kind == "reference" else "front" if t.number in on_front else "trained"].append((t, acc))
    trained_accs = [a for g in ("trained", "front", "pruned", "reference") for _, a in groups[g] if a is not None]
    floor = min(trained_accs) - 0.01 if trained_accs else 0.0
    style = {"trained": dict(c="tab:blue", marker="o", alpha=0.5, label="trained"),
             "front": dict(c="tab:red", marker="o", label="Pareto front"),
             "pruned": dict(c="tab:gray", marker="v", alpha=0.5, label="pruned (acc. when stopped)"),
             "infeasible": dict(c="black", marker="x", label="infeasible (over a limit, not trained)"),
             "reference": dict(c="tab:green", marker="*", s=160, label="reference (seed preset)")}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, (key, label) in zip(axes, (("macs", "MACs per image"), ("latency", "batch-1 latency (ms)"))):
        for name, items in groups.items():
            if not items:
                continue
            xs = [t.user_attrs["macs"] if key == "macs" else t.user_attrs["latency"]["median_ms"] for t, _ in items]
            ys = [a if a is not None else floor for _, a in items]
            ax.scatter(xs, ys, **style[name])
            for x, y, (t, _) in zip(xs, ys, items):
                if name == "reference":
                    ax.annotate(t.user_attrs.get("preset", ""), (x, y), fontsize=7, xytext=(4, 4),
                                textcoords="offset points")
                if t.number == highlight:
                    ax.scatter([x], [y], s=320, facecolors="none", edgecolors="tab:orange", linewidths=2.5,
                               label=f"trial {highlight} (exported)")
                    ax.annotate(f"trial {highlight}", (x, y), fontsize=8, xytext=(8, -12), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("validation accuracy (search fidelity)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"study {study.study_name}: {len(trials)} trials")
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
        if t.state == TrialState.COMPLETE and t.user_attrs.get("kind") == "trained":
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


class SearchDisplay:
    """The live view of a search on stderr: trial counts, the current trial's epoch bar, one line per trial."""

    FRONT_EVERY = 10  # trained trials between two prints of the best front so far

    def __init__(self, console, trials: int, already: int, front_source=None):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=console)
        self.trials = self.progress.add_task("trained trials", total=trials, completed=already, info="")
        self.epoch = self.progress.add_task("current trial", total=1, info="", visible=False)
        self.tally = {"completed": 0, "pruned": 0, "infeasible": 0, "reused": 0, "failed": 0, "reference": 0}
        self.front_source = front_source  # () -> (rows, title) of the front as it stands

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def _counts(self) -> str:
        return "  ".join(f"{k} {v}" for k, v in self.tally.items() if v)

    def __call__(self, event: str, **info):
        p = self.progress
        if event in ("start", "step") and "worker" in info:
            return  # several workers: one line per finished trial is all that stays readable
        if event == "start":
            p.update(self.epoch, description=f"trial {info['number']}", completed=0, total=info["epochs"],
                     info=info["summary"][:60], visible=True)
        elif event == "step":
            p.update(self.epoch, completed=info["epoch"] - 1 + info["step"] / info["steps"])
        elif event == "end":
            what = info["kind"]
            self.tally["completed" if what == "trained" else what] += 1
            if what in ("trained", "pruned"):
                p.advance(self.trials)
            p.update(self.epoch, visible=False)
            p.update(self.trials, info=self._counts())
            line = f"trial {info['number']}: {what}" + (f" (worker {info['worker']})" if "worker" in info else "")
            if "acc" in info:
                line += f"  val acc {info['acc']:.4f}" + (f" at epoch {info['epoch']}" if what == "pruned" else "")
            if "costs" in info:
                c = info["costs"]
                line += f"  params {fmt_count(c['params'])}  MACs {fmt_count(c['macs'])}  latency {c['latency_ms']:.3f} ms"
            if "reason" in info:
                line += f"  ({info['reason']})"
            p.console.print(line, highlight=False)
            trained = self.tally["completed"] + self.tally["pruned"]
            if self.front_source and what in ("trained", "pruned") and trained % self.FRONT_EVERY == 0:
                p.console.print(front_table(*self.front_source()))
        elif event == "timeout":
            p.console.print("--timeout reached: no new trials started")
