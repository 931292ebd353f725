"""Pool-based active learning: budget schedules, the labelled pool, and the round loop.

One trial runs a schedule of labelled-set sizes. The first set is drawn at
random (or balanced over the classes); at every size, the last one
included, a fresh model is trained on the labelled set and evaluated on the
test set; then, except after the last size, the acquisition score ranks the
unlabelled pool (or a random subset of it) and the top of it (or a power
sample) is labelled. After each round a checkpoint (labelled indices in acquisition
order, the random generator's state, the rows so far) is written atomically,
so a trial killed at any moment resumes from its last complete round and ends
exactly as an uninterrupted one would.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..method import acquisition, metrics
from .files import atomic_write, read_checked_json

# The columns of a results table, one row per trial and round, in this order
RESULT_COLUMNS = (
    "trial",
    "round",
    "n_labeled",
    "acquisition",
    "ensemble_accuracy",
    "mean_member_accuracy",
    "nll",
    "ece",
    "train_seconds",
    "acquire_seconds",
)
_SCHEDULE_PATTERN = re.compile(r"^(linear|exponential)-(\d+)$")
_CHECKPOINT_KEYS = ("sizes", "acquisition", "seed", "labelled", "rng_state", "rows")


class TrainingDiverged(ValueError):
    """Training gave a non-finite loss or non-finite predictions; its round must not be saved."""


def schedule(name_or_sizes: str | Sequence[int], budget: int | None = None, pool_size=None):
    """The labelled-set sizes of an experiment.

    ``"linear-K"`` with budget B gives B/K, 2B/K, ..., B (rounded to whole
    samples); ``"exponential-K"`` gives K sizes that double and end at B;
    a list of sizes is taken as it is. Sizes must be positive, strictly
    increasing and, when ``pool_size`` is given, no larger than the pool.
    """
    if isinstance(name_or_sizes, str):
        match = _SCHEDULE_PATTERN.match(name_or_sizes)
        if not match:
            raise ValueError(
                f"unknown schedule {name_or_sizes!r}; use 'linear-K', 'exponential-K' "
                "(K a positive whole number) or an explicit list of sizes"
            )
        kind, rounds = match.group(1), int(match.group(2))
        if rounds < 1:
            raise ValueError(f"schedule {name_or_sizes!r} needs at least one round")
        if budget is None or isinstance(budget, bool) or int(budget) != budget or budget < 1:
            raise ValueError(
                f"schedule {name_or_sizes!r} needs a positive whole budget, got {budget!r}"
            )
        budget = int(budget)
        if kind == "linear":
            sizes = [round(budget * (i + 1) / rounds) for i in range(rounds)]
        else:
            sizes = [round(budget / 2 ** (rounds - 1 - i)) for i in range(rounds)]
    else:
        sizes = list(name_or_sizes)
        if budget is not None and sizes and sizes[-1] != budget:
            raise ValueError(f"the last size {sizes[-1]} differs from the budget {budget}")
    if not sizes:
        raise ValueError("a schedule needs at least one size")
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in sizes):
        raise ValueError(f"schedule sizes must be whole numbers, got {sizes}")
    sizes = [int(s) for s in sizes]
    if sizes[0] < 1:
        raise ValueError(f"schedule sizes must be positive, got {sizes}")
    if any(b <= a for a, b in itertools.pairwise(sizes)):
        raise ValueError(f"schedule sizes must be strictly increasing, got {sizes}")
    if pool_size is not None and sizes[-1] > pool_size:
        raise ValueError(f"the budget {sizes[-1]} is larger than the pool ({pool_size} samples)")
    return sizes


@dataclass
class LabelledPool:
    """Which of n pool samples are labelled, in the order they were acquired."""

    size: int
    labelled: list[int] = field(default_factory=list)

    def __post_init__(self):
        self.labelled = [int(i) for i in self.labelled]
        if len(set(self.labelled)) != len(self.labelled):
            raise ValueError("labelled indices must be unique")
        if self.labelled and not 0 <= min(self.labelled) <= max(self.labelled) < self.size:
            raise ValueError(f"labelled indices must lie in [0, {self.size})")

    def unlabelled(self) -> np.ndarray:
        """Indices not labelled yet, ascending."""
        mask = np.ones(self.size, dtype=bool)
        mask[self.labelled] = False
        return np.flatnonzero(mask)

    def add(self, indices) -> None:
        indices = [int(i) for i in np.asarray(indices).ravel()]
        taken = set(self.labelled)
        if len(set(indices)) != len(indices) or taken.intersection(indices):
            raise ValueError("acquired indices must be new and unique")
        if indices and not 0 <= min(indices) <= max(indices) < self.size:
            raise ValueError(f"acquired indices must lie in [0, {self.size})")
        self.labelled.extend(indices)


def balanced_draw(labels, n: int, rng: np.random.Generator, n_classes: int | None = None):
    """``n`` indices into ``labels`` drawn at random with every class as equally often as can be.

    Each class gets ``n // classes`` samples; the remainder goes to classes
    drawn at random. Gal et al.'s (2017) MNIST protocol starts from 20
    balanced labels, two a digit. A class with too few samples is an error.
    """
    labels = np.asarray(labels)
    n_classes = int(labels.max()) + 1 if n_classes is None else n_classes
    counts = np.full(n_classes, n // n_classes)
    counts[rng.choice(n_classes, size=n % n_classes, replace=False)] += 1
    chosen = []
    for label, count in enumerate(counts):
        members = np.flatnonzero(labels == label)
        if members.size < count:
            raise ValueError(
                f"a balanced draw of {n} needs {count} samples of class {label}; "
                f"the pool has {members.size}"
            )
        chosen.append(rng.choice(members, size=count, replace=False))
    return rng.permutation(np.concatenate(chosen)).astype(np.int64)


class Learner:
    """What the loop needs from a model for one round (a fresh one each round)."""

    def fit(self, images: np.ndarray, labels: np.ndarray) -> None:
        raise NotImplementedError

    def predict_members(self, images: np.ndarray) -> np.ndarray:
        """Member probabilities ``(n, members, classes)``."""
        raise NotImplementedError


@dataclass
class RoundOutput:
    """What a round leaves behind besides its row: for the book's figures."""

    labelled: np.ndarray  # pool indices the round trained on, in acquisition order
    test_probs: np.ndarray  # mean prediction on the test set, (n_test, classes)
    acquired: np.ndarray  # pool indices labelled after this round (empty after the last)
    acquired_scores: np.ndarray  # their scores
    pool_scores: np.ndarray  # scores of the whole unlabelled pool, aligned with pool_indices
    pool_indices: np.ndarray
    # every member's test predictions (n_test, members, classes), when the run keeps them
    test_member_probs: np.ndarray | None = None


def run_trial(
    *,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    sizes: Sequence[int],
    make_learner: Callable[[int, int], Learner],
    acquisition_name: str,
    seed: int,
    checkpoint: Path,
    on_round: Callable[[dict, RoundOutput], None] | None = None,
    on_checkpoint: Callable[[list[dict]], None] | None = None,
    progress: Callable[[str], None] | None = None,
    evaluate_extra: Callable[[Learner], dict] | None = None,
    initial_labels: str = "random",
    pool_subset: int | None = None,
    selection: str = "top_k",
    member_predictions: bool = False,
) -> list[dict]:
    """Run (or resume) one trial and return one row per round.

    ``make_learner(round, n_labelled)`` builds the fresh model of a round; the
    caller seeds its own randomness from the round so a resumed round trains
    the same way. ``on_round(row, output)`` runs before the checkpoint is
    written, so whatever it saves exists whenever the checkpoint does;
    ``on_checkpoint(rows)`` runs after it, with every row so far.
    ``evaluate_extra(learner)`` returns more metrics for the round's row
    (the experiment's shifted-input AUROCs). ``initial_labels`` ``"balanced"``
    draws the first set with every class equally often (:func:`balanced_draw`);
    ``pool_subset`` scores only that many unlabelled samples, drawn afresh each
    round (Gal et al. score 2,000); ``selection`` is the top k or a power
    sample (:func:`acquisition.choose`); ``member_predictions`` hands every
    member's test predictions to ``on_round``, not only their mean.
    """
    score = acquisition.get(acquisition_name)
    sizes = schedule(list(sizes), pool_size=len(train_images))
    state = load_checkpoint(checkpoint, sizes, acquisition_name, seed)
    if state is None:
        rng = np.random.default_rng(seed)
        pool = LabelledPool(len(train_images))
        if initial_labels == "balanced":
            pool.add(balanced_draw(train_labels, sizes[0], rng))
        else:
            pool.add(rng.choice(len(train_images), size=sizes[0], replace=False))
        rows: list[dict] = []
    else:
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng_state"]
        pool = LabelledPool(len(train_images), state["labelled"])
        rows = state["rows"]

    for round_index in range(len(rows), len(sizes)):
        n_labelled = sizes[round_index]
        labelled = np.asarray(pool.labelled[:n_labelled])
        if progress:
            progress(f"round {round_index + 1}/{len(sizes)}: training on {n_labelled} labels")
        learner = make_learner(round_index, n_labelled)
        start = time.perf_counter()
        learner.fit(train_images[labelled], train_labels[labelled])
        train_seconds = time.perf_counter() - start
        test_member_probs = learner.predict_members(test_images)
        _check_finite(test_member_probs, f"round {round_index} ({n_labelled} labels)")
        row = {
            "round": round_index,
            "n_labeled": n_labelled,
            "acquisition": acquisition_name,
            **metrics.evaluate(test_member_probs, test_labels),
            **(evaluate_extra(learner) if evaluate_extra else {}),
            "train_seconds": train_seconds,
        }

        empty = np.empty(0)
        acquired, acquired_scores, pool_scores, pool_indices = empty, empty, empty, empty
        start = time.perf_counter()
        if round_index + 1 < len(sizes):
            pool_indices = pool.unlabelled()
            if pool_subset is not None and pool_subset < len(pool_indices):
                pool_indices = np.sort(rng.choice(pool_indices, size=pool_subset, replace=False))
            if acquisition_name == "random":  # needs no predictions: skip the pool pass
                pool_scores = acquisition.random(len(pool_indices), rng)
            else:
                if progress:
                    progress(f"round {round_index + 1}/{len(sizes)}: scoring {len(pool_indices)}")
                pool_scores = score(learner.predict_members(train_images[pool_indices]), rng=rng)
            k = sizes[round_index + 1] - n_labelled
            if acquisition_name == "random":  # random scores: top k is already a uniform draw
                chosen = acquisition.select(pool_scores, k)
            else:
                chosen = acquisition.choose(pool_scores, k, selection, rng)
            acquired, acquired_scores = pool_indices[chosen], pool_scores[chosen]
            pool.add(acquired)
        row["acquire_seconds"] = time.perf_counter() - start
        rows.append(row)
        if on_round:
            output = RoundOutput(
                labelled=labelled,
                test_probs=test_member_probs.mean(axis=1),
                test_member_probs=test_member_probs if member_predictions else None,
                acquired=acquired,
                acquired_scores=acquired_scores,
                pool_scores=pool_scores,
                pool_indices=pool_indices,
            )
            on_round(row, output)
        _write_checkpoint(checkpoint, sizes, acquisition_name, seed, pool, rng, rows)
        if on_checkpoint:
            on_checkpoint(rows)
    return rows


def _write_checkpoint(path, sizes, acquisition_name, seed, pool, rng, rows) -> None:
    state = {
        "sizes": list(sizes),
        "acquisition": acquisition_name,
        "seed": seed,
        "labelled": pool.labelled,
        "rng_state": rng.bit_generator.state,
        "rows": rows,
    }
    atomic_write(path, json.dumps(state, default=_json_default))


def _check_finite(member_probs: np.ndarray, where: str) -> None:
    if not np.isfinite(member_probs).all():
        raise TrainingDiverged(
            f"training diverged in {where}: the test predictions contain NaN or inf; "
            "no row was saved for it. Lower the learning rate and rerun"
        )


def read_checkpoint(path) -> dict | None:
    """A trial's checkpoint, checked for completeness and consistency; None when there is none.

    A damaged one raises ValueError naming the file and what to do: it holds
    the random generator's state and the rows, so it cannot be rebuilt.
    """
    return read_checked_json(
        path,
        _checkpoint_problem,
        what=f"checkpoint {path}",
        advice="restore it from a backup, or move it away to rerun its trial from the first round",
    )


def _checkpoint_problem(state) -> str | None:
    """What is wrong with a parsed checkpoint, or None."""
    if not isinstance(state, dict):
        return "not a JSON object"
    missing = [key for key in _CHECKPOINT_KEYS if key not in state]
    if missing:
        return f"no {', '.join(missing)}"
    sizes, labelled, rows = state["sizes"], state["labelled"], state["rows"]
    if not _whole_numbers(sizes) or not sizes:
        return "'sizes' is not a list of whole numbers"
    if not isinstance(rows, list) or len(rows) > len(sizes):
        return f"'rows' is not a list of at most {len(sizes)} rows"
    needed = [c for c in RESULT_COLUMNS if c != "trial"]
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or any(c not in row for c in needed):
            return f"row {index} lacks some of {', '.join(needed)}"
        if row["round"] != index or row["n_labeled"] != sizes[index]:
            return f"row {index} is not round {index} with {sizes[index]} labels"
    expected = sizes[min(len(rows), len(sizes) - 1)]
    if not _whole_numbers(labelled) or len(labelled) != expected or len(set(labelled)) != expected:
        return f"'labelled' is not {expected} distinct indices"
    try:
        np.random.default_rng().bit_generator.state = state["rng_state"]
    except (TypeError, ValueError, KeyError):
        return "'rng_state' is not a random generator's state"
    return None


def _whole_numbers(values) -> bool:
    return isinstance(values, list) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    )


def load_checkpoint(path: Path, sizes, acquisition_name, seed) -> dict | None:
    """:func:`read_checkpoint`, also checked to be of this schedule, score and seed."""
    state = read_checkpoint(path)
    if state is None:
        return None
    expected = {"sizes": list(sizes), "acquisition": acquisition_name, "seed": seed}
    found = {key: state.get(key) for key in expected}
    if found != expected:
        raise ValueError(f"checkpoint {path} belongs to another run: {found} != {expected}")
    return state


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")
