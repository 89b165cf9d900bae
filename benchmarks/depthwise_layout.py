"""Can the trainer make depthwise convolutions cheaper? Memory layout and precision, measured.

Depthwise (grouped) 3x3 convolutions run far slower per multiply-add than dense ones on CPUs, so
inverted-residual networks train slowly for their MACs (issue 26). The trainer keeps activations
channels_last. This times a training step (forward + backward) in the trainer's layout (the
baseline) and in NCHW, in the precisions this CPU computes natively, with one thread (a search
worker) and with all cores (an export):
- one depthwise 3x3 convolution and one dense 3x3 convolution (64 channels, 14x14, batch 128);
- a whole inverted-residual network (a search's pick) and a dense one (`full-res-resnet`), batch 256,
  28x28.

    python benchmarks/depthwise_layout.py          # on an otherwise idle machine
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nas import machine, models, spaces, train

INVERTED = {"family": "resnet_like", "stem": {"width": 32, "kernel": 3}, "activation": "silu", "dropout": 0.0,
            "stages": [{"block": "basic", "depth": 1, "width": 24, "kernel": 3, "se": True, "downsample": True},
                       {"block": "plain", "depth": 1, "width": 64, "kernel": 3, "se": True, "downsample": True},
                       {"block": "inverted", "depth": 3, "width": 64, "kernel": 3, "se": False, "expansion": 2,
                        "downsample": True}]}  # p26-s31's pick
DENSE = spaces.load("resnet_like").presets["full-res-resnet"]["arch"]


def step_ms(module: torch.nn.Module, x: torch.Tensor, precision: str, repeats: int) -> float:
    """Median milliseconds of forward + backward (a summed output as the loss)."""
    times = []
    for i in range(repeats + 3):  # 3 warm-up steps let oneDNN pick its kernels
        start = time.perf_counter()
        with train.autocast(torch.device("cpu"), precision):
            out = module(x)
        out.float().sum().backward()
        if i >= 3:
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def compare(name: str, make, shape: tuple, precision: str, repeats: int) -> None:
    """One row: the trainer's layout (channels_last) against NCHW, the same weights and input."""
    results = {}
    for layout in (torch.channels_last, torch.contiguous_format):
        torch.manual_seed(0)
        module = make().to(memory_format=layout)
        x = torch.randn(shape).contiguous(memory_format=layout)
        results[layout] = step_ms(module, x, precision, repeats)
    base, nchw = results[torch.channels_last], results[torch.contiguous_format]
    print(f"{name:38s} {precision:5s} {torch.get_num_threads()} thr  channels_last {base:8.2f} ms  "
          f"NCHW {nchw:8.2f} ms  NCHW/channels_last {nchw / base:.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(machine.header())
    precisions = ["fp32"] + (["bf16"] if train.cpu_has_native_bf16() else [])
    for threads in (1, torch.get_num_threads()):
        torch.set_num_threads(threads)
        for precision in precisions:
            compare("depthwise 3x3, 64 ch, 14x14, batch 128", lambda: torch.nn.Conv2d(64, 64, 3, padding=1, groups=64),
                    (128, 64, 14, 14), precision, args.repeats)
            compare("dense 3x3, 64 ch, 14x14, batch 128", lambda: torch.nn.Conv2d(64, 64, 3, padding=1),
                    (128, 64, 14, 14), precision, args.repeats)
            compare(f"inverted net ({models.summary(INVERTED)[:17]}..)", lambda: models.build(INVERTED),
                    (256, 1, 28, 28), precision, args.repeats // 2)
            compare("dense net (full-res-resnet)", lambda: models.build(DENSE), (256, 1, 28, 28), precision,
                    args.repeats // 2)


if __name__ == "__main__":
    main()
