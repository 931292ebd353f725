"""Choose the small-label training recipe on a validation split of the MNIST pool.

For 20, 100 and 400 balanced labels drawn from the pool (never the test set),
trains each candidate (model x steps) and scores it on 5,000 validation digits
held out of the pool: accuracy, NLL, mean top probability of the ensemble's
mean and of the members, and logistic regression on raw pixels for reference.
Writes one CSV row per fit to results/mnist-recipe/recipe.csv (resumes: rows
already there are skipped). Usage:

    python scripts/mnist_recipe.py [--seeds 0 1] [--out results/mnist-recipe/recipe.csv]
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from dpe_tutorial.method import metrics, training
from dpe_tutorial.method.ensemble import DeepProbabilisticEnsemble
from dpe_tutorial.running import active, data, files, provenance

VALIDATION = 5000
SIZES = (20, 100, 400)
GAL = {
    "member": "gal_cnn",
    "width": 32,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "batch_size": 128,
    "mixed_precision": True,
}
# the query's defaults before this study (the smoke preset): what made its probabilities flat?
SMOKE = {
    "member": "small_cnn",
    "width": 8,
    "optimizer": "sgd",
    "learning_rate": 0.05,
    "batch_size": 32,
    "members": 4,
    "stochastic": False,
    "passes": 1,
    "mixed_precision": False,
}
MODELS = {
    "dpe-paper-elbo*0.1": {
        **GAL,
        "members": 8,
        "beta": "elbo*0.1",
        "stochastic": False,
        "passes": 1,
    },
    "dpe-paper-elbo*0.01": {
        **GAL,
        "members": 8,
        "beta": "elbo*0.01",
        "stochastic": False,
        "passes": 1,
    },
    "ensemble": {**GAL, "members": 8, "beta": 0.0, "stochastic": False, "passes": 1},
    "mc-dropout": {**GAL, "members": 1, "beta": 0.0, "stochastic": True, "passes": 20},
    # a faster rate instead of more steps?
    "dpe-paper-elbo*0.1-lr3e-3": {
        **GAL,
        "members": 8,
        "beta": "elbo*0.1",
        "stochastic": False,
        "passes": 1,
        "learning_rate": 3e-3,
    },
    "mc-dropout-lr3e-3": {
        **GAL,
        "members": 1,
        "beta": 0.0,
        "stochastic": True,
        "passes": 20,
        "learning_rate": 3e-3,
    },
    "smoke-preset": {**SMOKE, "beta": "elbo*0.1"},
    "smoke-preset-beta0": {**SMOKE, "beta": 0.0},
}
STEPS = (100, 300, 1000)
COLUMNS = (
    "model",
    "steps",
    "n_labels",
    "seed",
    "accuracy",
    "nll",
    "ece",
    "mean_top_probability",
    "member_top_probability",
    "member_accuracy",
    "train_accuracy",
    "logistic_accuracy",
    "seconds",
    "cpu",
)


def fit_once(split, pool, validation, model_name, steps, n, seed):
    spec = MODELS[model_name]
    rng = np.random.default_rng(seed)
    labelled = pool[active.balanced_draw(split.train.labels[pool], n, rng, 10)]
    x, y = split.train.images[labelled], split.train.labels[labelled]
    mean, std = data.channel_statistics(split.train.images[pool])
    model = DeepProbabilisticEnsemble(
        (28, 28, 1),
        10,
        n_members=spec["members"],
        member=spec["member"],
        member_kwargs={
            "width": spec["width"],
            **({"stochastic": True} if spec["stochastic"] else {}),
        },
        beta=spec["beta"],
        kl_form="paper",
        mixed_precision=spec["mixed_precision"],
        labeled_size=n,
        input_mean=mean,
        input_std=std,
    )
    batch = min(spec["batch_size"], n)
    training.compile_for_training(
        model,
        training.optimizer(
            spec["optimizer"], spec["learning_rate"], schedule="cosine", steps=steps
        ),
    )
    passes = spec["passes"]
    start = time.perf_counter()
    epochs = -(-steps // -(-n // batch))
    import keras

    keras.utils.set_random_seed(seed)
    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0, shuffle=True)
    seconds = time.perf_counter() - start
    probs = model.predict_members(split.train.images[validation], batch_size=1024, passes=passes)
    train_probs = model.predict_members(x, batch_size=1024, passes=passes).mean(axis=1)
    scores = metrics.evaluate(probs, split.train.labels[validation])
    from sklearn.linear_model import LogisticRegression

    logistic = LogisticRegression(max_iter=2000).fit(x.reshape(n, -1) / 255.0, y)
    logistic_accuracy = logistic.score(
        split.train.images[validation].reshape(len(validation), -1) / 255.0,
        split.train.labels[validation],
    )
    return {
        "model": model_name,
        "steps": steps,
        "n_labels": n,
        "seed": seed,
        "accuracy": scores["ensemble_accuracy"],
        "nll": scores["nll"],
        "ece": scores["ece"],
        "mean_top_probability": float(probs.mean(axis=1).max(axis=1).mean()),
        "member_top_probability": float(probs.max(axis=2).mean()),
        "member_accuracy": scores["mean_member_accuracy"],
        "train_accuracy": float((train_probs.argmax(axis=1) == y).mean()),
        "logistic_accuracy": logistic_accuracy,
        "seconds": seconds,
        "cpu": provenance.machine()["cpu"],
    }


def report(path: Path) -> str:
    """Validation accuracy / NLL / ECE / mean top probability per model, steps and size (mean
    over the seeds measured), and logistic regression on the same labels."""
    import pandas as pd

    table = pd.read_csv(path)
    columns = ["accuracy", "nll", "ece", "mean_top_probability", "logistic_accuracy", "seconds"]
    grouped = table.groupby(["model", "steps", "n_labels"])
    summary = grouped[columns].mean().round(3)
    summary.insert(0, "seeds", grouped.size())
    return summary.to_markdown()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--steps", type=int, nargs="+", default=list(STEPS))
    parser.add_argument("--models", nargs="+", default=list(MODELS)[:4])
    parser.add_argument("--data", default="../shared/data/mnist-png.zip")
    parser.add_argument("--out", default="results/mnist-recipe/recipe.csv")
    parser.add_argument("--report", action="store_true", help="print the table and stop")
    args = parser.parse_args()
    if args.report:
        print(report(Path(args.out)))
        return
    split = data.load_mnist(args.data)
    order = np.random.default_rng(12345).permutation(len(split.train.labels))
    validation, pool = np.sort(order[:VALIDATION]), np.sort(order[VALIDATION:])
    out = Path(args.out)
    done = set()
    if out.exists():
        with out.open() as f:
            done = {
                (r["model"], int(r["steps"]), int(r["n_labels"]), int(r["seed"]))
                for r in csv.DictReader(f)
            }
    for seed in args.seeds:
        for n in args.sizes:
            for steps in args.steps:
                for model_name in args.models:
                    if (model_name, steps, n, seed) in done:
                        continue
                    row = fit_once(split, pool, validation, model_name, steps, n, seed)
                    files.append_csv_row(out, COLUMNS, row)
                    print(
                        {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()},
                        flush=True,
                    )


if __name__ == "__main__":
    main()
