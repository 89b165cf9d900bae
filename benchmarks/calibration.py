"""What `nas search` prices its trials at: training and scoring speed of seeded random draws of a space,
one worker's threads, as plan.calibrate times them; all of the draws (TPE's random start-up) and those
below the median MACs (what TPE draws once a cost is an objective). With --study, the same figures as
that study's trials measured them: its first 10 (random) and the rest. Run it on an idle machine.

    python benchmarks/calibration.py --space resnet_like --draws 40 --study resnet_like
"""

from __future__ import annotations

import argparse
import statistics

from nas import data, machine, plan, spaces


def measured(study_name: str, storage: str) -> None:
    import optuna

    from nas.storage import RANDOM_TRIALS

    study = optuna.load_study(study_name=study_name, storage=storage)
    trials = [t for t in study.trials if "train_images_per_second" in t.user_attrs]
    for label, part in (("random start-up", [t for t in trials if t.number < RANDOM_TRIALS]),
                        ("TPE", [t for t in trials if t.number >= RANDOM_TRIALS])):
        if part:
            speed = len(part) / sum(1 / t.user_attrs["train_images_per_second"] for t in part)
            macs = statistics.median(t.user_attrs["macs"] for t in part)
            print(f"study {study_name}, {label}: {len(part)} trials, median MACs {macs / 1e6:.1f}M, "
                  f"trained {speed:.0f} images/s (harmonic mean)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="resnet_like")
    p.add_argument("--draws", type=int, default=40)
    p.add_argument("--threads", type=int, default=1, help="one worker's threads (nas search: cores / workers)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--study", help="compare with this study's measured trials")
    p.add_argument("--storage", help="default: studies/<study>.db")
    args = p.parse_args()
    print(machine.header())
    draws = plan.calibrate(spaces.load(args.space), data.builtin_inputs(), args.threads, args.batch, draws=args.draws,
                           seed=args.seed)
    median = statistics.median(d.macs for d in draws)
    for label, part in (("all draws", draws), ("below the median MACs", [d for d in draws if d.macs < median])):
        speed = plan.Speed.average(part)
        print(f"{args.space}, {label}: {len(part)} draws, trained {speed.train:.0f} images/s, scored "
              f"{speed.score:.0f} (harmonic means; {args.threads} thread(s), batch {args.batch})")
    if args.study:
        from nas.storage import default_storage

        measured(args.study, args.storage or default_storage(args.study))


if __name__ == "__main__":
    main()
