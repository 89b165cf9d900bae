"""nas's trainer vs a plain PyTorch loop on the same architecture, recipe, data and epochs.

The plain loop is what people write first: torchvision transforms per sample in a DataLoader (with
the worker count that is fastest for it, measured here), fp32, NCHW. Both runs use the same
optimiser, schedule, batch size, label smoothing and augmentation (crop + flip), and neither uses
EMA or test-time augmentation, so the accuracies compare the learning, and the speed compares
the engineering. Also prints the achieved FLOP/s against this machine's own matmul peak.

    python benchmarks/train_throughput.py                    # both archs, 4 epochs each
    python benchmarks/train_throughput.py --archs small --epochs 2
Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
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


def matmul_peak(dtype, n=2048, reps=10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n ** 3 * reps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="small,seed-resnet18-like")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--subset", type=float, default=1.0)
    args = parser.parse_args()

    peak32, peak16 = matmul_peak(torch.float32), matmul_peak(torch.bfloat16)
    print(f"machine: {torch.get_num_threads()} threads, torch {torch.__version__}, native bf16: "
          f"{train.cpu_has_native_bf16()}; matmul peak fp32 {peak32 / 1e9:.0f} GFLOP/s, bf16 {peak16 / 1e9:.0f} GFLOP/s")
    splits = data.load(DataConfig(subset=args.subset))
    recipe = Recipe(epochs=args.epochs, ema=0.0, tta_flip=False, augment=Augment(crop_pad=2, flip=True, cutout=0))
    presets = spaces.load("resnet_like").presets
    for name in args.archs.split(","):
        arch = SMALL if name == "small" else presets[name]["arch"]
        macs, _ = measure.count_macs(models.build(arch))
        workers, speeds = fastest_workers(arch, splits.train, recipe)
        print(f"\n{name}: {models.summary(arch)}, {macs / 1e6:.1f}M MACs/image, {recipe.epochs} epochs on "
              f"{len(splits.train)} images, batch {recipe.batch_size}")
        print("  plain loop training speed by DataLoader workers (img/s): "
              + ", ".join(f"{w}: {s:.0f}" for w, s in speeds.items()) + f" -> using {workers}")
        plain_speed, plain_acc = plain_train(models.build(arch), splits, recipe, workers)
        _, result = train.train(models.build(arch), splits, recipe, device="cpu")
        nas_speed, nas_acc = result.images_per_second, result.val_acc
        for label, speed, acc, peak in (("plain loop (fp32, NCHW)", plain_speed, plain_acc, peak32),
                                        (f"nas trainer ({result.precision}, channels_last)", nas_speed, nas_acc,
                                         peak16 if result.precision == "bf16" else peak32)):
            achieved = 3 * 2 * macs * speed  # forward + backward ~ 3x forward; 2 FLOPs per MAC
            print(f"  {label:34s} {speed:7.0f} img/s  val acc {acc:.4f}  "
                  f"{achieved / 1e9:6.1f} GFLOP/s = {100 * achieved / peak:.0f}% of matmul peak")
        print(f"  speed-up {nas_speed / plain_speed:.2f}x, val accuracy difference {100 * (nas_acc - plain_acc):+.2f} points")


if __name__ == "__main__":
    main()
