"""Run by tests/test_distribution.py in a JAX process with 4 virtual CPU devices.

Runs the shrunk smoke experiment (grouped layout, so every mode can run it)
once per distribution mode named on the command line, each into its own
folder under the first argument, and prints, as JSON, each mode's results
rows and the environment its config.json records.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dpe_tutorial.running import experiment

SHRUNK = {
    "schedule": "linear-2",
    "budget": 96,  # rounds of 48 and 96 labels in batches of 16: each splits over 4 devices
    "batch_size": 16,
    "members": 4,
    "epochs": 3,
    "layout": "grouped",
    "shift_samples": 0,
}


def run(out_root: Path, mode: str) -> dict:
    config = experiment.configure("smoke", **SHRUNK, distribution=mode)
    table = experiment.run_experiment(config, out_root / mode, quiet=True)
    record = json.loads((out_root / mode / "config.json").read_text())
    return {"rows": table.to_dict(orient="records"), "environment": record["environment"]}


if __name__ == "__main__":
    out_root = Path(sys.argv[1])
    print(json.dumps({mode: run(out_root, mode) for mode in sys.argv[2:]}))
