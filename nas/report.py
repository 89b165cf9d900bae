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


def epoch_table(history: list[dict]) -> Table:
    table = Table(title="training")
    for col in ("epoch", "train loss", "train acc", "val acc", "s/epoch", "img/s"):
        table.add_column(col, justify="right")
    for m in history:
        table.add_row(str(m["epoch"]), f"{m['train_loss']:.4f}", f"{m['train_acc']:.4f}", f"{m['val_acc']:.4f}",
                      f"{m['seconds']:.1f}", f"{m.get('images_per_second', 0):.0f}")
    return table


def result_table(row: dict) -> Table:
    """The seed's own columns (and more) for one trained model."""
    table = Table(title="result", show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for key, value in row.items():
        table.add_row(key, str(value))
    return table
