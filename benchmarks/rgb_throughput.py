"""Does the trainer keep its speed on colour images? One network, two inputs, one process.

Trains the same architecture (a space preset) for one epoch on random images shaped like Fashion-MNIST
(28x28 grey, the baseline) and like CIFAR (32x32 RGB), with the preset's recipe and augmentation, and
prints images/s and multiply-adds/s of each and their ratio. Random pixels: speed does not depend on
content. Run it on an idle machine.

    python benchmarks/rgb_throughput.py --preset full-res-resnet --images 5000
"""

from __future__ import annotations

import argparse

import torch

from nas import data, measure, models, spaces, train
from nas.config import Recipe


def fake_splits(inputs: data.Inputs, n: int) -> data.Splits:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, *inputs.shape), generator=g, dtype=torch.uint8)
    labels = torch.arange(n) % len(inputs.classes)
    return data.Splits(train=data.Split(images, labels), val=None, test=None, classes=list(inputs.classes),
                       files={}, inputs=inputs)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="resnet_like")
    parser.add_argument("--preset", default="full-res-resnet")
    parser.add_argument("--images", type=int, default=5000)
    args = parser.parse_args()
    preset = spaces.load(args.space).presets[args.preset]
    recipe = Recipe.from_dict({**(preset.get("recipe") or {}), "epochs": 1})
    grey = data.builtin_inputs()
    rgb = data.Inputs(3, 32, tuple(str(i) for i in range(10)), (125.0, 123.0, 114.0), (63.0, 62.0, 66.0))
    rows = {}
    for name, inputs in (("28x28 grey", grey), ("32x32 RGB", rgb)):
        model = models.build(preset["arch"], inputs, seed=0)
        macs = measure.count_macs(model)[0]
        _, result = train.train(model, fake_splits(inputs, args.images), recipe, "cpu")
        rows[name] = (result.images_per_second, macs)
        print(f"{name}: {result.images_per_second:.0f} images/s, {macs / 1e6:.1f}M MACs per image, "
              f"{result.images_per_second * macs / 1e9:.2f} G multiply-adds/s ({result.precision})", flush=True)
    (g_ips, g_macs), (c_ips, c_macs) = rows.values()
    print(f"RGB/grey: images/s {c_ips / g_ips:.2f}x, MACs per image {c_macs / g_macs:.2f}x, "
          f"multiply-adds/s {c_ips * c_macs / (g_ips * g_macs):.2f}x")


if __name__ == "__main__":
    main()
