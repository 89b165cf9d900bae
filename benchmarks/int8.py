"""fp32 against int8 for the shipped presets, the seed's networks and random draws of resnet_like.

Each network gets a short final training (train + validation images, its preset's or the space's recipe),
then both files are made as `nas export --int8` makes them (model.onnx; model.int8.onnx quantised
statically, per channel, QDQ, calibrated on 256 training images) and compared on the test split:
accuracy, how often the two agree, batch-1 latency (onnxruntime, 1 thread, median of 5 runs of 200
calls) and file size. The networks where int8 loses or is slower are printed like the others.

Results are appended to a JSON-lines file as each network finishes; a second run skips what is there.

    python benchmarks/int8.py --epochs 2 --subset 0.1 --draws 10 --out benchmarks/logs/int8.jsonl
Time it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import torch

from nas import data, export, machine, measure, models, quantize, spaces, train
from nas.config import DataConfig, Recipe

SEED_NETWORKS = [("simple_cnn", "seed-structure-1"), ("simple_cnn", "seed-structure-2"),
                 ("resnet_like", "seed-resnet18-like"), ("resnet_like", "seed-resnet18"),
                 ("resnet_like", "full-res-resnet")]


def networks(draws: int, seed: int):
    """(name, arch, recipe) for the presets and `draws` seeded random draws of resnet_like."""
    for space_name, preset in SEED_NETWORKS:
        found = spaces.load(space_name).presets[preset]
        yield preset, found["arch"], found.get("recipe") or {}
    space = spaces.load("resnet_like")
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for i in range(draws):
        trial = sampler.ask()
        arch = spaces.sample(trial, space)
        yield f"draw {i}", arch, spaces.sample_recipe(trial, space, Recipe()).to_dict()


def compare(name: str, arch: dict, recipe: dict, splits, test, epochs: int) -> dict:
    recipe = Recipe.from_dict({**recipe, "epochs": epochs, "seed": 0})
    started = time.perf_counter()
    trained, _ = train.train(models.build(arch, seed=0), splits, recipe, device="cpu")
    trained = trained.float().cpu().to(memory_format=torch.contiguous_format).eval()  # as built, as nas export does
    deployed = models.deployable(trained, recipe.tta_flip)
    with tempfile.TemporaryDirectory() as folder:
        fp32, int8 = Path(folder) / "model.onnx", Path(folder) / quantize.INT8_FILE
        measure.export_onnx(deployed, str(fp32))
        quantize.quantize(fp32, int8, quantize.calibration_images(splits.train.images.numpy()))
        images, labels = test.images.float().numpy(), test.labels.numpy()
        predicted = {path.name: export.onnx_predictions(path, images) for path in (fp32, int8)}
        latency = {path.name: export.repeated(lambda: measure.onnx_latency(str(path)))["median_ms"]
                   for path in (fp32, int8)}
        sizes = {path.name: path.stat().st_size for path in (fp32, int8)}
        kinds = quantize.layer_types(fp32)
    a, b = predicted["model.onnx"], predicted[quantize.INT8_FILE]
    return {"network": name, "summary": models.summary(arch), "params": measure.count_params(trained),
            "depthwise_convs": kinds.get("Conv (depthwise)", 0), "tta_flip": recipe.tta_flip, "epochs": epochs,
            "fp32_acc": float((a == labels).mean()), "int8_acc": float((b == labels).mean()),
            "agreement": float((a == b).mean()), "fp32_ms": latency["model.onnx"],
            "int8_ms": latency[quantize.INT8_FILE], "fp32_bytes": sizes["model.onnx"],
            "int8_bytes": sizes[quantize.INT8_FILE], "seconds": round(time.perf_counter() - started, 1),
            "machine": machine.describe(), "reduce_range": not quantize.has_vnni()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="final training epochs per network")
    parser.add_argument("--subset", type=float, default=0.1, help="fraction of train + validation to train on")
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", default="", help="networks to leave out, comma-separated (e.g. seed-resnet18)")
    parser.add_argument("--out", default="benchmarks/logs/int8.jsonl")
    args = parser.parse_args()
    print(machine.header())
    out = Path(args.out)
    done = {json.loads(line)["network"] for line in out.read_text().splitlines()} if out.exists() else set()
    splits = data.load(DataConfig(subset=args.subset), final=True)
    test, _ = data.load_test(DataConfig())
    print(f"{'network':20s} {'params':>8s} {'dw':>3s} {'fp32 acc':>8s} {'int8 acc':>8s} {'agree':>6s} "
          f"{'fp32 ms':>8s} {'int8 ms':>8s} {'speed-up':>8s} {'size':>6s}")
    for name, arch, recipe in networks(args.draws, args.seed):
        if name in done or name in args.skip.split(","):
            continue
        r = compare(name, arch, recipe, splits, test, args.epochs)
        with out.open("a") as f:
            f.write(json.dumps(r) + "\n")
        print(f"{name:20s} {r['params'] / 1e3:7.1f}K {r['depthwise_convs']:3d} {r['fp32_acc']:8.4f} {r['int8_acc']:8.4f} "
              f"{r['agreement']:6.2%} {r['fp32_ms']:8.3f} {r['int8_ms']:8.3f} {r['fp32_ms'] / r['int8_ms']:7.2f}x "
              f"{r['int8_bytes'] / r['fp32_bytes']:6.2f}", flush=True)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    speedups = np.array([r["fp32_ms"] / r["int8_ms"] for r in rows])
    print(f"\n{len(rows)} networks: int8 faster for {int((speedups > 1).sum())}, median speed-up {np.median(speedups):.2f}x; "
          f"accuracy lost > 0.5 points for {sum(r['fp32_acc'] - r['int8_acc'] > 0.005 for r in rows)}")


if __name__ == "__main__":
    main()
