"""Run (or resume) the MNIST active-learning study of dpe_tutorial.studies.mnist_study.

    python scripts/mnist_study.py --out results/mnist-study            # all arms, 5 seeds
    python scripts/mnist_study.py --out results/mnist-study --trials 0
    python scripts/mnist_study.py --out results/mnist-study --report   # the tables (Markdown)
    python scripts/mnist_study.py --out results/mnist-reproduction --reproduction

Seed 0 of every arm runs first, then seed 1, ...; a killed run resumes where
it stopped (inside a round, from its last saved epoch). The data is MNIST
from --data (default: $DPE_MNIST, else ../shared/data/mnist-png.zip).
"""

from __future__ import annotations

import argparse
import os
import sys

from dpe_tutorial.studies import mnist_study as study


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument(
        "--data", default=os.environ.get("DPE_MNIST", "../shared/data/mnist-png.zip")
    )
    parser.add_argument(
        "--trials", type=int, nargs="+", default=list(range(study.TRIALS)), help="seed indices"
    )
    parser.add_argument("--arms", nargs="+", help=f"any of: {'; '.join(study.ARMS)}")
    parser.add_argument(
        "--reproduction",
        action="store_true",
        help="the reproduction follow-up's arms (MC dropout, 10 labels a round, lr 3e-3)",
    )
    parser.add_argument("--verbose", action="store_true", help="progress bars")
    parser.add_argument("--report", action="store_true", help="print the tables and stop")
    args = parser.parse_args()
    try:
        if args.report:
            print(study.report(study.load_results(args.out)))
            return 0
        study.run_study(
            args.out,
            args.data,
            trials=args.trials,
            arms=args.arms,
            quiet=not args.verbose,
            reproduction=args.reproduction,
        )
    except ValueError as error:
        print(f"mnist_study: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
