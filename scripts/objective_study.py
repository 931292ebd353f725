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

from dpe_tutorial.running import study_cli
from dpe_tutorial.studies import objective_study


def main() -> int:
    parser = study_cli.study_parser(__doc__)
    study_cli.add_data(parser, "DPE_DATA", "../shared/data/cifar10-jpeg.zip")
    parser.add_argument("--width", type=int, default=objective_study.BASE["width"])
    parser.add_argument("--epochs", type=int, default=objective_study.BASE["epochs"])
    parser.add_argument("--arms", nargs="+", help="plain or FORM:BETA (default: every arm)")
    study_cli.add_trials(parser, [0, 1], "trial indices to run")
    parser.add_argument(
        "--member-predictions",
        action="store_true",
        help="store every member's test predictions (float16) each round",
    )
    study_cli.add_verbose(parser)
    args = parser.parse_args()

    def run() -> None:
        arms = args.arms
        objective_study.run_study(
            args.out,
            args.data,
            width=args.width,
            chosen=[objective_study.Arm.parse(text) for text in arms] if arms else None,
            trials=args.trials,
            quiet=not args.verbose,
            epochs=args.epochs,
            member_predictions=args.member_predictions,
        )

    return study_cli.run_or_report(
        "objective_study",
        args,
        lambda out: objective_study.report(objective_study.load_results(out)),
        run,
    )


if __name__ == "__main__":
    raise SystemExit(main())
