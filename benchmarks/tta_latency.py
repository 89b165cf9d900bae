"""What the flip test-time augmentation costs at batch 1: no TTA, TTA as two passes, TTA as one batch of two.

For each arch file (an arch dict, or any JSON with an "arch" key such as an export's arch.json) it
prints params, MACs per pass and the onnxruntime latency (1 thread, batch 1, median of 200 runs)
of the model alone, of the old two-pass TTA (the baseline) and of `models.FlipTTA` (the image and
its mirror as one batch), with the ratio of the last two.

    python benchmarks/tta_latency.py studies/fmnist-acc/exports/trial-78/arch.json benchmarks/archs/*.json
Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json

from torch import nn

from nas import machine, measure, models


class TwoPassTTA(nn.Module):
    """The baseline: the model run twice, on the image and on its mirror."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return (self.model(x) + self.model(x.flip(3))) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("archs", nargs="+", help="arch JSON files")
    args = parser.parse_args()
    print(machine.header())
    print(f"{'arch':40s} {'params':>8s} {'MACs':>7s} {'no TTA':>8s} {'2 passes':>9s} {'1 batch':>8s} {'ratio':>6s}")
    for path in args.archs:
        arch = json.load(open(path))
        model = models.build(arch.get("arch", arch)).eval()
        alone, two_pass, batched = (measure.latency(m)["median_ms"]
                                    for m in (model, TwoPassTTA(model), models.FlipTTA(model)))
        print(f"{path[-40:]:40s} {measure.count_params(model) / 1e3:7.1f}K {measure.count_macs(model)[0] / 1e6:6.1f}M "
              f"{alone:7.3f}ms {two_pass:8.3f}ms {batched:7.3f}ms {batched / two_pass:6.2f}", flush=True)


if __name__ == "__main__":
    main()
