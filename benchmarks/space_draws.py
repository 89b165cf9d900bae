"""How often does a space (and a study's sampler) propose networks like the best one known?

For random draws of a space, and for the trials of a study when one is given: the share at full
resolution (the first stage keeps the 28x28 input; dense blocks there, not depthwise), the share
near the limits (params within 20% under --max-params), and the MAC range. The best known network
(`full-res-resnet`, 696.5K params, 25.2M MACs) has dense blocks at full resolution.

    python benchmarks/space_draws.py                                   # 2,000 random draws of resnet_like
    python benchmarks/space_draws.py --study fmnist-acc                # ... and that study's trials
"""

from __future__ import annotations

import argparse

import numpy as np
import optuna

from nas import measure, models, search, spaces

DENSE = ("basic", "bottleneck", "plain")  # blocks without depthwise convolutions


def describe(arch: dict) -> dict:
    model = models.build(arch)
    first = arch["stages"][0]
    full_res = not first["downsample"]
    return {"params": measure.count_params(model), "macs": measure.count_macs(model)[0], "full_res": full_res,
            "full_res_dense": full_res and first["block"] in DENSE}


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
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    space = spaces.load(args.space)
    sampler = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    rows = [describe(spaces.sample(sampler.ask(), space)) for _ in range(args.draws)]
    summary(f"random draws of {args.space}", rows, args.max_params)
    if args.study:
        study = search.load_study(args.study, args.storage or search.default_storage(args.study))
        trained = [t for t in study.trials if t.user_attrs.get("kind") == "trained"]
        summary(f"trained trials of study {args.study}", [describe(t.user_attrs["arch"]) for t in trained],
                args.max_params)


if __name__ == "__main__":
    main()
