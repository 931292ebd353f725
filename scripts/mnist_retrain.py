"""Retrain a finished MNIST-study run's labelled sets with other training recipes: is a gap
to Gal et al. the training or the acquisition?

For a run folder of results/mnist-study (one seed), takes the labelled set of
every ``--every``-th round (the same images in the same order the run
trained on), trains a fresh model of the run's config with each recipe, and
scores it on the 10,000 test digits. A diagnostic, not a choice: nothing in
the study is chosen from it. Writes one CSV row per (recipe, size), resuming.

    python scripts/mnist_retrain.py results/mnist-study/mc-dropout-mutual_information \
        --out results/mnist-study-diagnostics/retrain.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from dpe_tutorial.method import metrics
from dpe_tutorial.running import data, files, provenance, results
from dpe_tutorial.running.config import ExperimentConfig
from dpe_tutorial.running.experiment import EnsembleLearner, load_data

# name -> config fields that differ from the run's own
RECIPES = {
    "study": {},
    "lr 3e-3": {"learning_rate": 3e-3},
    "1000 steps": {"steps": 1000},
    # Gal et al.'s schedule: 50 epochs of batch 128 at a constant rate (no weight decay here)
    "gal: 50 epochs, constant": {"steps": None, "epochs": 50, "lr_schedule": "constant"},
}
COLUMNS = (
    "run",
    "trial",
    "recipe",
    "n_labeled",
    "ensemble_accuracy",
    "nll",
    "ece",
    "seconds",
    "cpu",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--trial", type=int, default=0)
    parser.add_argument("--every", type=int, default=2, help="every k-th round")
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES))
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    run = results.load_run(args.run)
    config = ExperimentConfig.from_dict(
        json.loads((Path(args.run) / "config.json").read_text())["config"]
    )
    split = load_data(config)
    mean, std = data.channel_statistics(split.train.images)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        with out.open() as f:
            done = {
                (r["run"], int(r["trial"]), r["recipe"], int(r["n_labeled"]))
                for r in csv.DictReader(f)
            }
    name = Path(args.run).name
    for round_index in results.saved_rounds(run, args.trial)[args.every - 1 :: args.every]:
        labelled = results.load_round(run, args.trial, round_index)["labelled"]
        for recipe in args.recipes:
            if (name, args.trial, recipe, len(labelled)) in done:
                continue
            changed = ExperimentConfig.from_dict({**config.to_dict(), **RECIPES[recipe]})
            seed = 10_000 + round_index
            keras.utils.set_random_seed(seed)
            learner = EnsembleLearner(
                changed, split.train.image_shape, 10, mean, std, True, seed=seed
            )
            start = time.perf_counter()
            learner.fit(split.train.images[labelled], split.train.labels[labelled])
            seconds = time.perf_counter() - start
            scores = metrics.evaluate(learner.predict_members(split.test.images), split.test.labels)
            row = {
                "run": name,
                "trial": args.trial,
                "recipe": recipe,
                "n_labeled": len(labelled),
                "ensemble_accuracy": scores["ensemble_accuracy"],
                "nll": scores["nll"],
                "ece": scores["ece"],
                "seconds": round(seconds, 1),
                "cpu": provenance.machine()["cpu"],
            }
            files.append_csv_row(out, COLUMNS, row)
            print(row, flush=True)


if __name__ == "__main__":
    main()
