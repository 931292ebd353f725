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

from dpe_tutorial.running import study_cli
from dpe_tutorial.studies import mnist_study as study


def main() -> int:
    parser = study_cli.study_parser(__doc__)
    study_cli.add_data(parser, "DPE_MNIST", "../shared/data/mnist-png.zip")
    study_cli.add_trials(parser, list(range(study.TRIALS)), "seed indices")
    parser.add_argument("--arms", nargs="+", help=f"any of: {'; '.join(study.ARMS)}")
    parser.add_argument(
        "--reproduction",
        action="store_true",
        help="the reproduction follow-up's arms (MC dropout, 10 labels a round, lr 3e-3)",
    )
    study_cli.add_verbose(parser)
    args = parser.parse_args()
    return study_cli.run_or_report(
        "mnist_study",
        args,
        lambda out: study.report(study.load_results(out)),
        lambda: study.run_study(
            args.out,
            args.data,
            trials=args.trials,
            arms=args.arms,
            quiet=not args.verbose,
            reproduction=args.reproduction,
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
