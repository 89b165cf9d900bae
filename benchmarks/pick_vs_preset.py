"""The search's pick against the hand-written preset at equal training (issue 34, goal 2).

1. One 30-minute search without presets (time it on an idle machine: its length is a clock):
       nas search --space resnet_like --study pick-vs-preset --objectives accuracy --max-params 1M \\
                  --max-latency 1ms --minutes 30 --seed 0
2. Per seed S, its pick retrained and exported, then `full-res-resnet` trained with the same flags,
   seed and epochs on the same 60,000 images, both scored once on the test split:
       nas export --study pick-vs-preset --pick best --epochs 40 --augment crop=2,flip=1,cutout=8 --seed S
       nas train --space resnet_like --preset full-res-resnet --epochs 40 --augment crop=2,flip=1,cutout=8 \\
                 --seed S --final --test --format json
Each finished step is appended to `--out` as one JSON line and skipped by a rerun, so the four hours
survive stopped sessions (an export resumes from its checkpoint; a search or a `nas train` cut short
starts again). Prints both test accuracies per seed and their medians: the goal is pick >= preset,
the stretch pick >= preset + 0.2 points.

    python benchmarks/pick_vs_preset.py --seeds 0,1,2 --out benchmarks/logs/pick-vs-preset.jsonl
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from nas import machine

ROOT = Path(__file__).resolve().parent.parent
STUDY = "pick-vs-preset"
RECIPE = ["--epochs", "40", "--augment", "crop=2,flip=1,cutout=8"]


def nas(*args: str, capture: bool = False) -> str:
    run = subprocess.run([sys.executable, "-m", "nas", *args], cwd=ROOT, check=True, text=True,
                         stdout=subprocess.PIPE if capture else None)
    return run.stdout if capture else ""


def search(args) -> dict:
    Path(ROOT / "studies" / f"{STUDY}.db").unlink(missing_ok=True)  # a search cut short starts again
    nas("search", "--space", "resnet_like", "--study", STUDY, "--objectives", "accuracy", "--max-params", "1M",
        "--max-latency", "1ms", "--minutes", str(args.minutes), "--seed", "0")
    return {}


def export(seed: int) -> dict:
    folder = ROOT / "studies" / STUDY / f"pick-seed{seed}"
    nas("export", "--study", STUDY, "--pick", "best", *RECIPE, "--seed", str(seed), "--out", str(folder))
    metrics = json.loads((folder / "metrics.json").read_text())
    return {"test_acc": metrics["test_acc"], "params": metrics["params"], "trial": metrics["provenance"]["trial"],
            "search_val_acc": metrics["search_val_acc"], "epochs": metrics["epochs"],
            "folder": str(folder.relative_to(ROOT))}


def preset(seed: int) -> dict:
    out = json.loads(nas("train", "--space", "resnet_like", "--preset", "full-res-resnet", *RECIPE, "--seed",
                         str(seed), "--final", "--test", "--format", "json", capture=True))
    return {"test_acc": out["test_acc"], "params": out["params"], "epochs": len(out["history"])}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--minutes", type=float, default=30, help="the search's budget")
    parser.add_argument("--out", default="benchmarks/logs/pick-vs-preset.jsonl", help="results, appended")
    args = parser.parse_args()
    print(machine.header(), flush=True)
    out = Path(args.out)
    done = {r["step"]: r for r in map(json.loads, out.read_text().splitlines())} if out.exists() else {}
    seeds = [int(s) for s in args.seeds.split(",")]
    steps = [("search", lambda: search(args))] + [
        (f"{side} seed {s}", lambda side=side, s=s: (export if side == "pick" else preset)(s))
        for s in seeds for side in ("pick", "preset")]
    for step, run in steps:
        if step in done:
            continue
        print(f"{time.strftime('%H:%M:%S')} {step}", flush=True)
        begun = time.monotonic()
        row = {"step": step, **run(), "seconds": round(time.monotonic() - begun), "cpu": machine.cpu_model()}
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        done[step] = row
    pick = [done[f"pick seed {s}"]["test_acc"] for s in seeds]
    hand = [done[f"preset seed {s}"]["test_acc"] for s in seeds]
    for s, a, b in zip(seeds, pick, hand):
        print(f"seed {s}: pick {a:.4f}, full-res-resnet {b:.4f}, difference {100 * (a - b):+.2f} points")
    gap = 100 * (statistics.median(pick) - statistics.median(hand))
    print(f"median: pick {statistics.median(pick):.4f}, full-res-resnet {statistics.median(hand):.4f}, "
          f"{gap:+.2f} points (goal >= 0, stretch >= +0.20)")


if __name__ == "__main__":
    main()
