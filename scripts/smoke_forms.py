"""Each KL form at a few betas on the smoke preset (digits), against the plain ensemble.

    KERAS_BACKEND=tensorflow python scripts/smoke_forms.py [--betas elbo elbo*0.1]

Prints the ensemble accuracy at every round and the final NLL of each run, and
the machine. One trial each, seed 0: a quick look at how a beta carries to the
smoke scale (N = 100 to 400 labels, a small CNN), not a study.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from dpe_tutorial.method import kl
from dpe_tutorial.running import experiment, provenance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--betas", nargs="+", default=["elbo", "elbo*0.1"])
    args = parser.parse_args(argv)
    host = provenance.machine()
    print(f"machine: {host['cpu']}, {host['cores']} cores; preset smoke, seed 0")
    arms = [(None, 0.0)] + [(form, beta) for beta in args.betas for form in kl.FORMS]
    with tempfile.TemporaryDirectory() as folder:
        for form, beta in arms:
            overrides = {"beta": beta} if form is None else {"beta": beta, "kl_form": form}
            config = experiment.configure("smoke", **overrides)
            started = time.perf_counter()
            table = experiment.run_experiment(
                config, Path(folder) / experiment.run_slug(config), quiet=True
            )
            accuracy = ", ".join(f"{a:.3f}" for a in table["ensemble_accuracy"])
            print(
                f"{form or 'plain':>9} beta={beta!s:<9} accuracy by round {accuracy}; "
                f"final NLL {table['nll'].iloc[-1]:.3f} ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
