"""Run (or resume) the objective study (dpe_tutorial.studies.objective_study) into a results folder.

    python scripts/objective_study.py --out results/objective-study   # every arm, 2 trials
    python scripts/objective_study.py --out results/objective-study --arms plain --trials 2
    python scripts/objective_study.py --out results/objective-study --width 16 --epochs 8 \\
        --arms plain exclusive:elbo*0.1
    python scripts/objective_study.py --out results/objective-study-confirmatory \\
        --arms plain paper:elbo*0.1 --trials 3 4 --member-predictions

Arms run one trial at a time across all arms; a killed run resumes where it
stopped (finished trials are kept). The data is the CIFAR-10 JPEG copy named by
--data (default: $DPE_DATA, else ../shared/data/cifar10-jpeg.zip).
"""

from __future__ import annotations

import argparse
import os
import sys

from dpe_tutorial.studies import objective_study


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--data", default=os.environ.get("DPE_DATA", "../shared/data/cifar10-jpeg.zip")
    )
    parser.add_argument("--width", type=int, default=objective_study.BASE["width"])
    parser.add_argument("--epochs", type=int, default=objective_study.BASE["epochs"])
    parser.add_argument("--arms", nargs="+", help="plain or FORM:BETA (default: every arm)")
    parser.add_argument(
        "--trials", type=int, nargs="+", default=[0, 1], help="trial indices to run"
    )
    parser.add_argument(
        "--member-predictions",
        action="store_true",
        help="store every member's test predictions (float16) each round",
    )
    parser.add_argument("--verbose", action="store_true", help="progress bars")
    parser.add_argument(
        "--report", action="store_true", help="print the summary table (Markdown) and stop"
    )
    args = parser.parse_args()
    try:
        if args.report:
            print(objective_study.report(objective_study.load_results(args.out)))
            return 0
        chosen = [objective_study.Arm.parse(text) for text in args.arms] if args.arms else None
        objective_study.run_study(
            args.out,
            args.data,
            width=args.width,
            chosen=chosen,
            trials=args.trials,
            quiet=not args.verbose,
            epochs=args.epochs,
            member_predictions=args.member_predictions,
        )
    except ValueError as error:
        print(f"objective_study: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
