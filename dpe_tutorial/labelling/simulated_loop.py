"""A simulated labelling loop on MNIST: the query's picks against random picks, as a user runs it.

The loop is the one the README gives a practitioner, in commands: a folder of
unlabelled digits (PNG files with anonymous names, written from the shared
MNIST copy), a ``labels.csv`` of two digits per class, then ``rounds`` times:
:func:`~dpe_tutorial.labelling.query.suggest` with a held-out CSV, the
suggestions' ``label`` column filled in from the true classes (the simulated
labeller), :func:`~dpe_tutorial.labelling.merge_labels.merge_labels` into the
labels file. The last query is measured without acquiring. An arm is a set of
``--set`` overrides on the query's config: BALD picks drawn by power sampling,
the top k BALD scores, or random picks (``acquisition=random``) with the same
ensemble.

Rows use the MNIST study's column names (``method``, ``trial``, ``n_labeled``,
``ensemble_accuracy``, ``nll``, ``ece``), so its learning-curve figure reads
them; ``n_labeled`` is counted in the labels file the query read, and
``distinct`` counts the different digits in the batch a round acquired
(empty for the last query).
"""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import query
from .merge_labels import merge_labels

# an arm: the overrides that make it, on top of the query's config
# the config fields an arm sets: a study's overrides may not set them too
ARM_FIELDS = ("selection", "acquisition", "seed")
ARMS: dict[str, tuple[str, ...]] = {
    "power sampling": ("selection=power",),  # BALD, the batch drawn by power sampling
    "top-k": ("selection=top_k",),
    "random": ("acquisition=random",),
}
IMAGE_SIZE = 28  # MNIST's own size: the query resizes nothing
COLUMNS = (
    "method",
    "trial",
    "round",
    "n_labeled",
    "ensemble_accuracy",
    "nll",
    "ece",
    "distinct",
    "seconds",
)


@dataclass(frozen=True)
class LoopSizes:
    """How big a simulated loop is: the issue's scenario by default (3,000 digits, 20 labels)."""

    pool: int = 3000  # training digits in the unlabelled folder
    held_out: int = 1000  # test digits to measure on, never queried
    first_per_class: int = 2  # labels of each digit before the first query
    k: int = 20  # suggestions labelled a round
    rounds: int = 4  # rounds of labelling; the query after the last is measured only

    def __post_init__(self) -> None:
        # refused here, before a study folder records the sizes
        for name in ("held_out", "first_per_class", "k", "rounds"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"{name.replace('_', ' ')} must be at least 1, got {getattr(self, name)}"
                )
        if self.pool < self.sizes()[-1]:
            raise ValueError(
                f"a pool of {self.pool} digits cannot supply {self.sizes()[-1]} labels "
                f"({10 * self.first_per_class} first, then {self.rounds} rounds of {self.k})"
            )

    def sizes(self) -> list[int]:
        first = 10 * self.first_per_class
        return [first + self.k * r for r in range(self.rounds + 1)]


def write_mnist_folders(archive, root, sizes: LoopSizes, seed: int) -> dict[str, dict]:
    """``root/pool`` (training digits) and ``root/held_out`` (test digits) as PNG files.

    The digits are drawn at random (``seed``) from the MNIST zip (``train/<digit>/<i>.png``,
    ``test/...``) and named ``d00000.png``, ... in a random order, so a name says nothing of
    the class. Returns the true classes, ``{"pool": {path: digit}, "held_out": {...}}``.
    """
    rng = np.random.default_rng(seed)
    truth: dict[str, dict[str, str]] = {"pool": {}, "held_out": {}}
    for part in truth:
        folder = Path(root) / part
        if folder.exists() and any(folder.iterdir()):
            raise ValueError(f"{folder} is not empty: give a new folder for the loop")
    digits = check_archive(archive, sizes)
    with zipfile.ZipFile(archive) as zipped:
        for part, split in (("pool", "train"), ("held_out", "test")):
            members = digits[split]
            size = sizes.pool if part == "pool" else sizes.held_out
            folder = Path(root) / part
            folder.mkdir(parents=True, exist_ok=True)
            for number, i in enumerate(rng.choice(len(members), size, replace=False)):
                path = f"d{number:05d}.png"
                (folder / path).write_bytes(zipped.read(members[i]))
                truth[part][path] = members[i].split("/")[1]
    return truth


def check_archive(archive, sizes: LoopSizes) -> dict[str, list[str]]:
    """The archive's PNG names by split, once it holds enough digits for ``sizes``."""
    try:
        with zipfile.ZipFile(archive) as zipped:
            names = sorted(n for n in zipped.namelist() if n.endswith(".png"))
    except (OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"MNIST archive {archive} cannot be read: {error}") from None
    digits = {split: [n for n in names if n.startswith(f"{split}/")] for split in ("train", "test")}
    for split, size in (("train", sizes.pool), ("test", sizes.held_out)):
        if len(digits[split]) < size:
            raise ValueError(
                f"MNIST archive {archive} holds {len(digits[split])} {split} digits, "
                f"fewer than the {size} asked for"
            )
    return digits


def first_labels(truth: dict, per_class: int, seed: int) -> dict[str, str]:
    """``per_class`` pool digits of each class, drawn at random: the labels before any query."""
    rng = np.random.default_rng(seed)
    chosen = {}
    for digit in sorted(set(truth["pool"].values())):
        paths = sorted(p for p, c in truth["pool"].items() if c == digit)
        if len(paths) < per_class:
            raise ValueError(f"the pool holds {len(paths)} digits {digit}, fewer than {per_class}")
        for i in rng.choice(len(paths), per_class, replace=False):
            chosen[paths[i]] = digit
    return chosen


def _write_csv(path: Path, labels: dict[str, str]) -> None:
    path.write_text("path,label\n" + "".join(f"{p},{c}\n" for p, c in labels.items()))


def run_arm(root, truth, arm: str, sizes: LoopSizes, seed: int, config=None, report=None):
    """One arm of the loop in ``root`` (made by :func:`write_mnist_folders`): one row a query.

    ``config`` is the query's (default: its ``few-labels`` preset) before the arm's
    overrides; the training seed is ``seed``, the same for every arm (paired).
    """
    root = Path(root)
    work = root / arm.replace(" ", "-")
    work.mkdir(parents=True, exist_ok=True)
    labels_csv = work / "labels.csv"
    _write_csv(labels_csv, first_labels(truth, sizes.first_per_class, seed))
    held_out_csv = root / "held_out" / "held_out.csv"
    _write_csv(held_out_csv, truth["held_out"])
    settings = query.resolve_config(config, [*ARMS[arm], f"seed={seed}"])
    out = work / "out"  # the same folder each round: a query replaces its own files
    rows = []
    for round_index in range(sizes.rounds + 1):
        start = time.perf_counter()
        n_labelled = len(pd.read_csv(labels_csv))
        table = query.suggest(
            root / "pool",
            labels_csv,
            sizes.k,
            out,
            settings,
            image_size=IMAGE_SIZE,
            eval_csv=held_out_csv,
        )
        held_out = json.loads((out / query.CONFIG).read_text())["held_out"]
        last = round_index == sizes.rounds
        if not last:  # the simulated labeller fills in the suggestions, then they are merged
            table["label"] = [truth["pool"][p] for p in table["path"]]
            table.to_csv(out / query.SUGGESTIONS, index=False)
            merge_labels(out / query.SUGGESTIONS, labels_csv, root / "pool")
        rows.append(
            {
                "method": arm,
                "trial": seed,
                "round": round_index,
                "n_labeled": n_labelled,
                "ensemble_accuracy": held_out["accuracy"],
                "nll": held_out["nll"],
                "ece": held_out["ece"],
                "distinct": np.nan if last else table["label"].nunique(),
                "seconds": round(time.perf_counter() - start, 1),
            }
        )
        if report is not None:
            report(
                f"{arm}, seed {seed}: {rows[-1]['n_labeled']} labels, held-out accuracy "
                f"{held_out['accuracy']:.3f}"
            )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def simulate(archive, work, seed: int, arms=tuple(ARMS), sizes=None, config=None, report=None):
    """Every arm of one seed, on the same folders and first labels: the rows of all."""
    sizes = sizes or LoopSizes()
    truth = write_mnist_folders(archive, work, sizes, seed)
    frames = [run_arm(work, truth, arm, sizes, seed, config, report) for arm in arms]
    return pd.concat(frames, ignore_index=True)


def sizes_record(sizes: LoopSizes) -> dict:
    return asdict(sizes)
