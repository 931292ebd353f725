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

from dpe_tutorial.running import study_cli
from dpe_tutorial.studies import active_learning_study as study
from dpe_tutorial.studies import two_by_two


def report(out: str) -> str:
    """The study's tables, then its 2x2 (a module of its own, which reads this study's)."""
    results = study.load_results(out)
    return f"{study.report(results)}\n\n{two_by_two.report(results)}"


def main() -> int:
    parser = study_cli.study_parser(__doc__)
    study_cli.add_data(parser, "DPE_DATA", "../shared/data/cifar10-jpeg.zip")
    study_cli.add_trials(parser, list(range(study.TRIALS)), "trial indices")
    parser.add_argument("--methods", nargs="+", help=f"any of: {'; '.join(study.METHODS)}")
    study_cli.add_verbose(parser)
    args = parser.parse_args()
    return study_cli.run_or_report(
        "active_learning_study",
        args,
        report,
        lambda: study.run_study(
            args.out,
            trials=args.trials,
            methods=args.methods,
            quiet=not args.verbose,
            data_path=args.data,
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
