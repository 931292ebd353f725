"""Does `dpe-tutorial query`, with its default settings, beat logistic regression from 20 labels?

The scenario of issue [1/6], as a new user meets it: a folder of 3,000 MNIST
training digits with 20 labels (two a digit) and 1,000 held-out test digits.
For each seed, `query.suggest` trains its default ensemble on the 20 labelled
images; its mean prediction is scored on the held-out digits, beside
logistic regression (scikit-learn, default L2) fitted to the raw pixels of
the same 20 digits. Prints one line per seed, the mean of each and the
paired difference with its 95 % t interval, and the CPU.

    python scripts/few_labels_check.py [--seeds 0 1 2 3 4] [--data ../shared/data/mnist-png.zip]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from PIL import Image

from dpe_tutorial.labelling import query
from dpe_tutorial.running import active, data, provenance, tracing
from dpe_tutorial.studies import intervals

POOL, HELD_OUT, LABELS = 3000, 1000, 20


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray) -> list[str]:
    """``root/<digit>/<i>.png`` for each image; the paths relative to ``root``."""
    paths = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        path = Path(str(label)) / f"{i}.png"
        (root / path.parent).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0]).save(root / path)
        paths.append(path.as_posix())
    return paths


def check_seed(split: data.Split, seed: int, work: Path) -> tuple[float, float]:
    """Held-out accuracy of the default query's ensemble and of logistic regression."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    pool_index = rng.choice(len(split.train.labels), POOL, replace=False)
    test_index = rng.choice(len(split.test.labels), HELD_OUT, replace=False)
    pool_images, pool_labels = split.train.images[pool_index], split.train.labels[pool_index]
    root, held_out = work / f"pool{seed}", work / f"held_out{seed}"
    paths = write_folder(root, pool_images, pool_labels)
    write_folder(held_out, split.test.images[test_index], split.test.labels[test_index])
    labelled = active.balanced_draw(pool_labels, LABELS, rng)
    labels_csv = work / f"labels{seed}.csv"
    labels_csv.write_text(
        "path,label\n" + "".join(f"{paths[i]},{pool_labels[i]}\n" for i in labelled)
    )
    out = work / f"query{seed}"
    query.suggest(root, labels_csv, 10, out)  # the defaults: no config, no settings
    model, class_names = query.load_model(out)
    test = query.read_pool(held_out)
    truth = np.array([int(Path(p).parent.name) for p in test.paths])
    predicted = np.array(class_names)[model.predict_members(test.images).mean(axis=1).argmax(1)]
    ensemble = float((predicted.astype(int) == truth).mean())
    flat = pool_images[labelled].reshape(LABELS, -1) / 255.0
    logistic = LogisticRegression(max_iter=2000).fit(flat, pool_labels[labelled])
    held = split.test.images[test_index].reshape(HELD_OUT, -1) / 255.0
    return ensemble, float(logistic.score(held, split.test.labels[test_index]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--data", default="../shared/data/mnist-png.zip")
    args = parser.parse_args()
    split = data.load_mnist(args.data)
    tracing.silence_retracing_warning()  # each seed loads a model: TensorFlow traces anew
    ensembles, logistics = [], []
    with tempfile.TemporaryDirectory() as work:
        for seed in args.seeds:
            ensemble, logistic = check_seed(split, seed, Path(work))
            ensembles.append(ensemble)
            logistics.append(logistic)
            print(f"seed {seed}: default query {ensemble:.3f}, logistic regression {logistic:.3f}")
    difference = intervals.paired_interval(ensembles, logistics)
    print(
        f"mean over {len(args.seeds)} seeds: default query {np.mean(ensembles):.3f}, logistic "
        f"regression {np.mean(logistics):.3f}; query - logistic {difference.text()} (95 % t)"
    )
    print(f"CPU: {provenance.machine()['cpu']}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
