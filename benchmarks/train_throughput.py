"""nas's trainer vs a plain PyTorch loop on the same architecture, recipe, data and epochs.

The plain loop is what people write first: torchvision transforms per sample in a DataLoader (with
the worker count that is fastest for it, measured here), fp32, NCHW. Both runs use the same
optimiser, schedule, batch size, label smoothing, augmentation (crop + flip) and initial weights
(the same seed), and neither uses EMA or test-time augmentation, so the accuracies compare the
learning, and the speed compares the engineering. The two loops take turns going first (arch by
arch), so neither always gets the cooler machine.

Also prints the achieved FLOP/s against a measured matmul peak and the theoretical one: cores x
FLOPs per cycle per core x clock (flops_per_cycle: AMX tiles, AVX-512 on 512- or 256-bit units, AVX2;
theoretical_peaks: the clock), and which oneDNN kernels a bf16 convolution and matmul ran.

    python benchmarks/train_throughput.py                    # both archs, 4 epochs each
    python benchmarks/train_throughput.py --archs small --epochs 2
Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from nas import data, machine, measure, models, spaces, train
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


def flops_per_cycle(flags: frozenset[str], vendor: str, family: int, dtype: str) -> tuple[int, str]:
    """(FLOP per cycle per core, the unit that gives it) for a dense dtype matmul: two FMA pipes of the
    widest vectors the core executes, bf16 dot products at twice the fp32 rate, or AMX tiles (1,024 bf16
    FLOP per cycle on Sapphire Rapids and later). Zen 4 (AMD family 25) runs AVX-512 on 256-bit units."""
    if dtype == "bf16" and "amx_bf16" in flags:
        return 1024, "AMX tiles"
    wide = "avx512f" in flags and not (vendor == "AuthenticAMD" and family <= 25)
    lanes = 16 if wide else 8 if "avx2" in flags else 4  # fp32 lanes the FMA units process per cycle
    unit = "AVX-512 on 512-bit units" if wide else "AVX-512 on 256-bit units" if "avx512f" in flags else "AVX2"
    per_cycle = 2 * lanes * 2  # two FMA pipes, 2 FLOPs per fused multiply-add
    if dtype == "bf16" and "avx512_bf16" in flags:
        return 2 * per_cycle, unit + " (bf16 dot products)"
    return per_cycle, unit


MAX_GHZ = 4.5  # no server CPU of these generations boosts higher: a clock implied above it means a wrong ISA


def theoretical_peaks(measured: dict[str, float]) -> tuple[dict[str, float], str]:
    """{dtype: FLOP/s} for the cores this process may use, and how. A VM's /proc/cpuinfo gives the nominal
    clock, and cores boost above it, so the clock is the highest of the nominal one and those the measured
    matmuls imply at the ISA's rate: the peak is then never below what ran. An implied clock over MAX_GHZ
    means the matmul ran faster than the ISA assumed can go (AMX where AVX-512 was assumed, say)."""
    info = open("/proc/cpuinfo").read()
    field = lambda name: re.search(rf"^{name}\s*:\s*(.*)$", info, re.M).group(1)
    flags, vendor, family = machine.cpu_flags(), field("vendor_id"), int(field("cpu family"))
    cores = len(os.sched_getaffinity(0))
    per_cycle = {dtype: flops_per_cycle(flags, vendor, family, dtype) for dtype in ("fp32", "bf16")}
    nominal = float(field("cpu MHz")) / 1e3
    implied = {dtype: value / (cores * per_cycle[dtype][0]) / 1e9 for dtype, value in measured.items()}
    ghz = max(nominal, *implied.values())
    peaks = {dtype: cores * flops * ghz * 1e9 for dtype, (flops, _) in per_cycle.items()}
    wrong = [dtype for dtype, clock in implied.items() if clock > MAX_GHZ]
    how = (f"{cores} cores x " + ", ".join(f"{d} {f} FLOP/cycle ({unit})" for d, (f, unit) in per_cycle.items())
           + f" x {ghz:.2f} GHz (nominal {nominal:.2f}; the matmuls imply "
           + ", ".join(f"{d} {c:.2f}" for d, c in implied.items()) + ")"
           + (f"; IMPLAUSIBLE for {', '.join(wrong)}: the ISA assumed is not the one running" if wrong else ""))
    return peaks, how


def onednn_kernels() -> list[str]:
    """The oneDNN implementations a bf16 convolution and matmul run here (ONEDNN_VERBOSE): which units work."""
    script = ("import torch; x = torch.randn(64, 32, 28, 28).to(memory_format=torch.channels_last); "
              "c = torch.nn.Conv2d(32, 32, 3, padding=1).to(memory_format=torch.channels_last); "
              "m = torch.randn(512, 512)\n"
              "with torch.autocast('cpu', dtype=torch.bfloat16):\n    c(x); m @ m")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "ONEDNN_VERBOSE": "1"}).stdout
    isa = [line.partition("isa:")[2] for line in out.splitlines() if ",cpu,isa:" in line]
    kernels = {f"{rest[0]} {rest[1]}" for line in out.splitlines() if ",exec,cpu," in line
               and (rest := line.split(",exec,cpu,")[1].split(",")) and rest[0] != "reorder"}
    return isa + sorted(kernels) or ["none reported (oneDNN not used, or its verbose mode is off in this build)"]


def nas_train(arch, splits, recipe) -> tuple[float, float, str]:
    _, result = train.train(models.build(arch, seed=recipe.seed), splits, recipe, device="cpu")
    return result.images_per_second, result.val_acc, result.precision


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="small,seed-resnet18-like")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--subset", type=float, default=1.0)
    args = parser.parse_args()
    print(machine.header())

    measured = {"fp32": matmul_peak(torch.float32)}
    if train.cpu_has_native_bf16():  # elsewhere the trainer runs in fp32 and emulated bf16 takes minutes to time
        measured["bf16"] = matmul_peak(torch.bfloat16)
    theory, how = theoretical_peaks(measured)
    print(f"{torch.get_num_threads()} torch threads on {len(os.sched_getaffinity(0))} cores (cgroup cpu.max: "
          f"{cpu_quota()}), native bf16: {train.cpu_has_native_bf16()}; theoretical peak: {how}")
    for name, value in measured.items():
        print(f"  {name} matmul: measured {value / 1e9:.0f} GFLOP/s, theoretical peak {theory[name] / 1e9:.0f} GFLOP/s "
              f"({value / theory[name]:.0%})")
    print("  oneDNN ran (bf16 convolution, matmul): " + "; ".join(onednn_kernels()))
    peaks = {name: (value, theory[name], how) for name, value in measured.items()}
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
