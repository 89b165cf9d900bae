"""How often does a space (and a study's sampler) propose networks like the best one known?

For random draws of a space, and for the trials of a study when one is given: the share at full
resolution (the first stage keeps the 28x28 input; dense blocks there, not depthwise), the share
near the limits (params within 20% under --max-params), and the MAC range. The best known network
(`full-res-resnet`, 696.5K params, 25.2M MACs) has dense blocks at full resolution.

    python benchmarks/space_draws.py                                   # 2,000 random draws of resnet_like
    python benchmarks/space_draws.py --study fmnist-acc                # ... and that study's trials
    python benchmarks/space_draws.py --draws 300 --latency 1ms         # ... and how many fit 1 ms here

Latency is a property of the machine: `--latency` times each draw within the params limit as deployed
(with its drawn flip TTA, onnxruntime, 1 thread, as `nas search` does) and the space's presets beside
them, so the share that fits is this machine's. Time it on an idle machine.
"""

from __future__ import annotations

import argparse

import numpy as np
import optuna

from nas import machine, measure, models, spaces, storage
from nas.config import parse_ms

DENSE = ("basic", "bottleneck", "plain")  # blocks without depthwise convolutions


def describe(arch: dict) -> dict:
    model = models.build(arch)
    first = arch["stages"][0]
    full_res = not first["downsample"]
    return {"params": measure.count_params(model), "macs": measure.count_macs(model)[0], "full_res": full_res,
            "full_res_dense": full_res and first["block"] in DENSE}


def latency_ms(arch: dict, tta_flip: bool) -> float:
    return measure.latency(models.deployable(models.build(arch), tta_flip))["median_ms"]


def latency_summary(rows: list[dict], max_ms: float) -> None:
    """Of the timed draws: the share within the latency limit, overall and at full resolution."""
    fits = lambda group: np.mean([r["ms"] <= max_ms for r in group]) if group else float("nan")  # noqa: E731
    full = [r for r in rows if r["full_res"]]
    near = np.mean([0.8 * max_ms <= r["ms"] <= max_ms for r in rows])
    print(f"  timed {len(rows)}: within {max_ms:g} ms {fits(rows):.1%}; at full resolution {len(full)}, of which "
          f"within {fits(full):.1%}, dense {fits([r for r in full if r['full_res_dense']]):.1%}; "
          f"within 20% under the limit {near:.1%}; median {np.median([r['ms'] for r in rows]):.3f} ms")


def summary(label: str, rows: list[dict], max_params: float) -> None:
    feasible = [r for r in rows if r["params"] <= max_params]
    macs = np.array([r["macs"] for r in feasible])
    share = lambda key: np.mean([r[key] for r in feasible]) if feasible else float("nan")  # noqa: E731
    near = np.mean([r["params"] >= 0.8 * max_params for r in feasible]) if feasible else float("nan")
    print(f"{label}: {len(rows)} networks, {len(feasible)} within {max_params:g} params")
    print(f"  full resolution {share('full_res'):.1%}, with dense blocks there {share('full_res_dense'):.1%}; "
          f"params within 20% of the limit {near:.1%}")
    if feasible:
        print(f"  MACs: median {np.median(macs) / 1e6:.1f}M, 90th percentile {np.percentile(macs, 90) / 1e6:.1f}M, "
              f"dense at full resolution with >= 20M MACs {np.mean([r['full_res_dense'] and r['macs'] >= 20e6 for r in feasible]):.1%}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="resnet_like")
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--max-params", type=float, default=1e6)
    parser.add_argument("--study", help="also the trained trials of this study")
    parser.add_argument("--storage", help="its storage (default sqlite:///studies/<study>.db)")
    parser.add_argument("--latency", metavar="LIMIT", help="time the draws against this limit, e.g. 1ms")
    args = parser.parse_args()
    print(machine.header())
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    space = spaces.load(args.space)
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    rows = []
    for _ in range(args.draws):
        trial = sampler.ask()
        arch, recipe = spaces.sample(trial, space), spaces.sample_recipe(trial, space)
        rows.append({**describe(arch), "arch": arch, "tta_flip": recipe.tta_flip})
    summary(f"random draws of {args.space}", rows, args.max_params)
    if args.latency:
        max_ms = parse_ms(args.latency, "--latency")
        timed = [{**r, "ms": latency_ms(r["arch"], r["tta_flip"])} for r in rows if r["params"] <= args.max_params]
        latency_summary(timed, max_ms)
        for name, preset in space.presets.items():
            tta = (preset.get("recipe") or {}).get("tta_flip", False)
            print(f"  preset {name}: {latency_ms(preset['arch'], False):.3f} ms, "
                  f"{latency_ms(preset['arch'], True):.3f} ms with flip TTA{' (its recipe)' if tta else ''}")
    if args.study:
        study = storage.load_study(args.study, args.storage or storage.default_storage(args.study))
        trained = [t for t in study.trials if t.user_attrs.get("kind") == "trained"]
        summary(f"trained trials of study {args.study}", [describe(t.user_attrs["arch"]) for t in trained],
                args.max_params)
        over = [describe(t.user_attrs["arch"]) for t in study.trials if t.user_attrs.get("kind") == "infeasible"]
        print(f"  over a limit, not trained: {len(over)}, of which at full resolution {sum(r['full_res'] for r in over)}")


if __name__ == "__main__":
    main()
