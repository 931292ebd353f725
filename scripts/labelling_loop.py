"""Run (or resume) the labelling-loop study of dpe_tutorial.labelling.loop_study.

    python scripts/labelling_loop.py --out results/labelling-loop
    python scripts/labelling_loop.py --out /tmp/loop --seeds 0 --pool 1000 --set members=4
    python scripts/labelling_loop.py --out results/labelling-loop --report   # the tables

Each seed writes MNIST digits from --data (default: $DPE_MNIST, else
../shared/data/mnist-png.zip) into a temporary pool and held-out folder and
runs every arm's loop of queries on them; a rerun skips the loops already in
--out. The protocol is pre-registered in results/labelling-loop/README.md.
"""

from __future__ import annotations

import sys

from dpe_tutorial.labelling import loop_study as study
from dpe_tutorial.labelling import simulated_loop as loop
from dpe_tutorial.running import study_cli


def main() -> int:
    parser = study_cli.study_parser(__doc__)
    study_cli.add_data(parser, "DPE_MNIST", "../shared/data/mnist-png.zip")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(study.SEEDS))
    parser.add_argument("--arms", nargs="+", default=list(loop.ARMS), help=", ".join(loop.ARMS))
    defaults = loop.LoopSizes()
    parser.add_argument("--pool", type=int, default=defaults.pool, help="pool digits")
    parser.add_argument("--held-out", type=int, default=defaults.held_out, help="held-out digits")
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help="rounds of labelling")
    parser.add_argument("--k", type=int, default=defaults.k, help="labels acquired a round")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a query config field"
    )
    args = parser.parse_args()

    def run() -> None:  # the sizes are checked inside, so a bad one is a one-line error
        sizes = loop.LoopSizes(pool=args.pool, held_out=args.held_out, rounds=args.rounds, k=args.k)
        study.run(args.out, args.data, args.seeds, args.arms, sizes, args.set)

    return study_cli.run_or_report("labelling_loop", args, study.report, run)


if __name__ == "__main__":
    sys.exit(main())
