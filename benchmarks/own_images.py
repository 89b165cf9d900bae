"""How long do your own images take to read? Fashion-MNIST's 70,000 images as PNG folders, through --data.

Writes the IDX files out as `train/<class>/<n>.png` and `test/<class>/<n>.png` (once; kept in --out),
then times in one process: the built-in IDX reader (the baseline), the first `--data` read (probe,
decode, cache), and a second read (from the memory-mapped cache). Checks that the pixels and labels
are the built-in reader's. Run it on an idle machine.

    python benchmarks/own_images.py --out /tmp/fmnist-png
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from nas import data, machine, sources
from nas.config import DataConfig


def write_pngs(out: Path) -> None:
    from PIL import Image

    folder = data.data_dir_for(DataConfig())
    names = [f"{i} {n.replace('/', '-')}" for i, n in enumerate(data.CLASSES["fashion-mnist"])]
    for split in ("train", "test"):
        images, labels, _ = data.read_split(folder, split)
        for i, (image, label) in enumerate(zip(images, labels)):
            target = out / split / names[label]
            target.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, "L").save(target / f"{i:05d}.png")


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("/tmp/fmnist-png"))
    args = parser.parse_args()
    print(machine.header())
    if not (args.out / "test").is_dir():
        _, seconds = timed(lambda: write_pngs(args.out))
        print(f"wrote 70,000 PNGs to {args.out} in {seconds:.1f} s")
    shutil.rmtree(sources.cache_root(), ignore_errors=True)
    builtin, t_idx = timed(lambda: data.read_split(data.data_dir_for(DataConfig()), "train"))
    first, t_first = timed(lambda: sources.read(args.out))
    second, t_second = timed(lambda: sources.read(args.out))
    own = first.images["train"][:, 0]
    same = sorted(map(bytes, own)) == sorted(map(bytes, builtin[0])) and \
        np.array_equal(np.bincount(first.labels["train"]), np.bincount(builtin[1]))
    print(f"built-in IDX reader (60,000 train images): {t_idx:.2f} s")
    print(f"--data, first read (probe + decode + cache of 70,000 PNGs): {t_first:.1f} s = {t_first / t_idx:.0f}x")
    print(f"--data, cached read: {t_second:.2f} s = {t_second / t_idx:.2f}x the IDX reader")
    print(f"pixels and labels the same as the built-in reader's: {same}")


if __name__ == "__main__":
    main()
