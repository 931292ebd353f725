"""Run (or resume) the reference-posterior study of dpe_tutorial.studies.posterior_study.

    python scripts/posterior_study.py --out results/posterior-study
    python scripts/posterior_study.py --out /tmp/check --sizes 24 --seeds 0 --samples 100
    python scripts/posterior_study.py --out results/posterior-study --report   # the tables

The references are sampled with NumPyro's NUTS on JAX (whatever KERAS_BACKEND
trains the approximations); a rerun skips every reference, row and group
already in --out. The protocol is pre-registered in results/posterior-study/README.md.
"""

from __future__ import annotations

import sys

from dpe_tutorial.running import study_cli
from dpe_tutorial.studies import posterior_study as study


def main() -> int:
    parser = study_cli.study_parser(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(study.SIZES))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(study.SEEDS))
    parser.add_argument("--methods", nargs="+", help="a subset of the compared methods")
    for name in ("chains", "warmup", "samples"):
        parser.add_argument(f"--{name}", type=int, default=study.SAMPLER[name])
    args = parser.parse_args()
    sampler = {name: getattr(args, name) for name in ("chains", "warmup", "samples")}
    return study_cli.run_or_report(
        "posterior_study",
        args,
        study.report,
        lambda: study.run(args.out, args.sizes, args.seeds, args.methods, sampler),
    )


if __name__ == "__main__":
    sys.exit(main())
