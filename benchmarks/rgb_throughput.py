"""Does the trainer keep its speed on colour images? One network, two inputs, one process.

Trains the same architecture (a space preset) for one epoch on random images shaped like Fashion-MNIST
(28x28 grey, the baseline) and like CIFAR (32x32 RGB), with the preset's recipe and augmentation, then
the RGB set again with a random-resized crop added (`resized_crop=0.35`), and prints images/s and
multiply-adds/s of each and their ratios. Random pixels: speed does not depend on content. Run it on
an idle machine.

    python benchmarks/rgb_throughput.py --preset full-res-resnet --images 5000
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from nas import augment, data, machine, measure, models, spaces, train
from nas.config import Recipe


def fake_splits(inputs: data.Inputs, n: int) -> data.Splits:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, *inputs.shape), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % len(inputs.classes)
    return data.Splits(train=data.Split(images, labels), val=None, test=None, classes=list(inputs.classes),
                       files={}, inputs=inputs)


def augment_ms(policy, inputs: data.Inputs, batch: int, repeats: int = 200) -> float:
    """Median over 5 rounds of the milliseconds one batch's augmentation takes."""
    x = torch.randint(0, 256, (batch, *inputs.shape), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeats):
            augment.apply(x, policy, g)
        rounds.append((time.perf_counter() - start) / repeats * 1e3)
    return sorted(rounds)[2]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="resnet_like")
    parser.add_argument("--preset", default="full-res-resnet")
    parser.add_argument("--images", type=int, default=5000)
    args = parser.parse_args()
    print(machine.header())
    preset = spaces.load(args.space).presets[args.preset]
    recipe = Recipe.from_dict({**(preset.get("recipe") or {}), "epochs": 1})
    grey = data.builtin_inputs()
    rgb = data.Inputs(3, 32, tuple(str(i) for i in range(10)), (125.0, 123.0, 114.0), (63.0, 62.0, 66.0))
    cropped = recipe.replace(augment=dataclasses.replace(recipe.augment, resized_crop=0.35))
    rows = {}
    for name, inputs, policy in (("28x28 grey", grey, recipe), ("32x32 RGB", rgb, recipe),
                                 ("32x32 RGB + resized crop", rgb, cropped)):
        model = models.build(preset["arch"], inputs, seed=0)
        macs = measure.count_macs(model)[0]
        _, result = train.train(model, fake_splits(inputs, args.images), policy, "cpu")
        rows[name] = (result.images_per_second, macs)
        step_ms = policy.batch_size / result.images_per_second * 1e3
        print(f"{name}: {result.images_per_second:.0f} images/s, {macs / 1e6:.1f}M MACs per image, "
              f"{result.images_per_second * macs / 1e9:.2f} G multiply-adds/s ({result.precision}); "
              f"augmentation {augment_ms(policy.augment, inputs, policy.batch_size):.2f} ms of a "
              f"{step_ms:.0f} ms step", flush=True)
    (g_ips, g_macs), (c_ips, c_macs), (r_ips, _) = rows.values()
    print(f"RGB/grey: images/s {c_ips / g_ips:.2f}x, MACs per image {c_macs / g_macs:.2f}x, "
          f"multiply-adds/s {c_ips * c_macs / (g_ips * g_macs):.2f}x")
    print(f"RGB with/without the resized crop: images/s {r_ips / c_ips:.2f}x")


if __name__ == "__main__":
    main()
