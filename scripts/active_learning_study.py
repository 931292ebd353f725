"""Run (or resume) the active-learning study of dpe_tutorial.studies.active_learning_study.

    python scripts/active_learning_study.py --out results/active-learning   # 4 methods, 3 trials
    python scripts/active_learning_study.py --out results/active-learning --trials 0
    python scripts/active_learning_study.py --out results/active-learning --report

Trial 0 of every method runs first, then trial 1, then trial 2; a killed run
resumes where it stopped (inside a round, from its last saved epoch). The data
is the CIFAR-10 JPEG copy named by --data (default: $DPE_DATA, else
../shared/data/cifar10-jpeg.zip).
"""

from __future__ import annotations

import argparse
import os
import sys

from dpe_tutorial.studies import active_learning_study as study


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--data", default=os.environ.get("DPE_DATA", "../shared/data/cifar10-jpeg.zip")
    )
    parser.add_argument(
        "--trials", type=int, nargs="+", default=list(range(study.TRIALS)), help="trial indices"
    )
    parser.add_argument("--methods", nargs="+", help=f"any of: {'; '.join(study.METHODS)}")
    parser.add_argument("--verbose", action="store_true", help="progress bars")
    parser.add_argument(
        "--report", action="store_true", help="print the tables (Markdown) and stop"
    )
    args = parser.parse_args()
    try:
        if args.report:
            print(study.report(study.load_results(args.out)))
            return 0
        study.run_study(
            args.out,
            trials=args.trials,
            methods=args.methods,
            quiet=not args.verbose,
            data_path=args.data,
        )
    except ValueError as error:
        print(f"active_learning_study: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
