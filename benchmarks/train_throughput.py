"""nas's trainer vs a plain PyTorch loop on the same architecture, recipe, data and epochs.

The plain loop is what people write first: torchvision transforms per sample in a DataLoader (with
the worker count that is fastest for it, measured here), fp32, NCHW. Both runs use the same
optimiser, schedule, batch size, label smoothing, augmentation (crop + flip) and initial weights
(the same seed), and neither uses EMA or test-time augmentation, so the accuracies compare the
learning, and the speed compares the engineering. The two loops take turns going first (arch by
arch), so neither always gets the cooler machine.

Also prints the achieved FLOP/s against a measured matmul peak and the theoretical one: cores x
FLOPs per cycle per core x clock. FLOPs per cycle come from the CPU's flags (AVX-512 or AVX2, two
FMA pipes, bf16 dot products at twice the fp32 rate where AVX512_BF16 is there) and the clock from
/proc/cpuinfo, which in a VM is the nominal one: boost clocks run higher, so the measured peak may
exceed it by up to ~1.5x. More than that means the assumption (or the timing) is wrong.

    python benchmarks/train_throughput.py                    # both archs, 4 epochs each
    python benchmarks/train_throughput.py --archs small --epochs 2
Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import re
import time

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from nas import data, measure, models, spaces, train
from nas.config import Augment, DataConfig, Recipe

SMALL = {"family": "resnet_like", "stem": {"width": 24, "kernel": 3}, "activation": "relu", "dropout": 0.0,
         "stages": [{"block": "basic", "depth": 1, "width": 32, "kernel": 3, "se": False, "downsample": False},
                    {"block": "basic", "depth": 2, "width": 64, "kernel": 3, "se": False, "downsample": True},
                    {"block": "basic", "depth": 2, "width": 128, "kernel": 3, "se": False, "downsample": True}]}


class PerSample(Dataset):
    """Each item through torchvision transforms, one at a time, as a DataLoader does it."""

    def __init__(self, split: data.Split, transform):
        self.images, self.labels, self.transform = split.images, split.labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


def plain_transform(aug: Augment):
    return v2.Compose([v2.RandomCrop(28, padding=aug.crop_pad), v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32)])


def plain_loader(split, recipe, workers):
    return DataLoader(PerSample(split, plain_transform(recipe.augment)), batch_size=recipe.batch_size, shuffle=True,
                      num_workers=workers, drop_last=True, persistent_workers=workers > 0)


def fastest_workers(arch, split, recipe, steps=12) -> tuple[int, dict]:
    """Training images/s of the plain loop with 0, 1 and 2 DataLoader workers (they share the cores)."""
    speeds = {}
    for workers in (0, 1, 2):
        model = models.build(arch).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        it = iter(plain_loader(split, recipe, workers))
        for step in range(steps + 2):
            if step == 2:  # after warm-up
                start = time.perf_counter()
            x, y = next(it)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        speeds[workers] = steps * recipe.batch_size / (time.perf_counter() - start)
        del it
    return max(speeds, key=speeds.get), speeds


def plain_train(model, splits, recipe, workers) -> tuple[float, float]:
    """The plain loop: fp32, NCHW, per-sample transforms. Returns (images/s, val accuracy)."""
    torch.manual_seed(recipe.seed)
    optimizer = train.make_optimizer(model, recipe)
    loader = plain_loader(splits.train, recipe, workers)
    total = len(loader) * recipe.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: train.lr_factor(s, total, recipe))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    seconds, images = 0.0, 0
    for _ in range(recipe.epochs):
        model.train()
        start = time.perf_counter()
        for x, y in loader:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            images += len(y)
        seconds += time.perf_counter() - start
    return images / seconds, train.accuracy(model, splits.val, tta_flip=False, precision="fp32")


def matmul_peak(dtype, n=2048, seconds=3.0) -> float:
    """Sustained n x n matmul FLOP/s (2 n^3 FLOPs each) over at least `seconds`: a CPU quota (cgroup
    cpu.max) is enforced per 100 ms period, so a burst shorter than that can borrow more cores than the
    quota allows and read several times too high."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * n ** 3 * count / (time.perf_counter() - start)


def cpu_quota() -> str:
    """The cgroup v2 CPU limit, e.g. '200000 100000' (2 cores' worth per 100 ms), or 'none'."""
    try:
        return open("/sys/fs/cgroup/cpu.max").read().strip()
    except OSError:
        return "none"


def theoretical_peak(bf16: bool) -> tuple[float, str]:
    """(FLOP/s, how it was computed) for the cores this process may use, at /proc/cpuinfo's clock."""
    info = open("/proc/cpuinfo").read()
    flags = set(re.search(r"^flags\s*:(.*)$", info, re.M).group(1).split())
    ghz = float(re.search(r"^cpu MHz\s*:\s*([\d.]+)", info, re.M).group(1)) / 1e3
    cores = len(os.sched_getaffinity(0))
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4  # fp32 lanes per vector
    per_cycle = 2 * lanes * 2  # two FMA pipes, 2 FLOPs per fused multiply-add
    if bf16 and "avx512_bf16" in flags:
        per_cycle *= 2  # a bf16 dot product does two multiply-adds per fp32 lane
    return cores * per_cycle * ghz * 1e9, f"{cores} cores x {per_cycle} FLOP/cycle x {ghz:.2f} GHz"


def nas_train(arch, splits, recipe) -> tuple[float, float, str]:
    _, result = train.train(models.build(arch, seed=recipe.seed), splits, recipe, device="cpu")
    return result.images_per_second, result.val_acc, result.precision


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="small,seed-resnet18-like")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--subset", type=float, default=1.0)
    args = parser.parse_args()

    peaks = {"fp32": (matmul_peak(torch.float32), *theoretical_peak(bf16=False))}
    if train.cpu_has_native_bf16():  # elsewhere the trainer runs in fp32 and emulated bf16 takes minutes to time
        peaks["bf16"] = (matmul_peak(torch.bfloat16), *theoretical_peak(bf16=True))
    print(f"machine: torch {torch.__version__}, {torch.get_num_threads()} torch threads on "
          f"{len(os.sched_getaffinity(0))} cores (cgroup cpu.max: {cpu_quota()}), "
          f"native bf16: {train.cpu_has_native_bf16()}")
    for name, (measured, theory, how) in peaks.items():
        print(f"  {name} matmul peak: measured {measured / 1e9:.0f} GFLOP/s, theoretical {theory / 1e9:.0f} GFLOP/s "
              f"({how}): {measured / theory:.2f}x")
    splits = data.load(DataConfig(subset=args.subset))
    recipe = Recipe(epochs=args.epochs, ema=0.0, tta_flip=False, augment=Augment(crop_pad=2, flip=True, cutout=0))
    presets = spaces.load("resnet_like").presets
    for i, name in enumerate(args.archs.split(",")):
        arch = SMALL if name == "small" else presets[name]["arch"]
        macs, _ = measure.count_macs(models.build(arch))
        workers, speeds = fastest_workers(arch, splits.train, recipe)
        print(f"\n{name}: {models.summary(arch)}, {macs / 1e6:.1f}M MACs/image, {recipe.epochs} epochs on "
              f"{len(splits.train)} images, batch {recipe.batch_size}")
        print("  plain loop training speed by DataLoader workers (img/s): "
              + ", ".join(f"{w}: {s:.0f}" for w, s in speeds.items()) + f" -> using {workers}")
        runs = {}
        for loop in (("plain", "nas") if i % 2 == 0 else ("nas", "plain")):
            if loop == "plain":
                runs[loop] = (*plain_train(models.build(arch, seed=recipe.seed), splits, recipe, workers), "fp32")
            else:
                runs[loop] = nas_train(arch, splits, recipe)
        print(f"  order: {' then '.join(runs)}")
        for loop, (speed, acc, precision) in runs.items():
            achieved = 3 * 2 * macs * speed  # forward + backward ~ 3x forward; 2 FLOPs per MAC
            measured, theory, _ = peaks[precision]
            label = "plain loop (fp32, NCHW)" if loop == "plain" else f"nas trainer ({precision}, channels_last)"
            print(f"  {label:34s} {speed:7.0f} img/s  val acc {acc:.4f}  {achieved / 1e9:6.1f} GFLOP/s = "
                  f"{achieved / measured:.0%} of the measured matmul peak, {achieved / theory:.0%} of the theoretical")
        (plain_speed, plain_acc, _), (nas_speed, nas_acc, _) = runs["plain"], runs["nas"]
        print(f"  speed-up {nas_speed / plain_speed:.2f}x, val accuracy difference {100 * (nas_acc - plain_acc):+.2f} points")

if __name__ == "__main__":
    main()
