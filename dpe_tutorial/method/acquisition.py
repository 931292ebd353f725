"""Acquisition scores: which unlabelled samples to label next.

Every score takes member probabilities ``probs`` of shape
``(n, members, classes)`` (each row a softmax output) and returns a float64
array of n scores, higher meaning "label this first". With p̄ the mean over
members and H the entropy in nats:

==================== ==========================================================
``predictive_entropy`` H(p̄): total uncertainty of the ensemble's prediction
``expected_entropy``   mean over members of H(p_e): the members' own uncertainty
``mutual_information`` H(p̄) - mean_e H(p_e) (BALD): the members' disagreement
``variation_ratio``    1 - (members voting for the modal class) / members
``margin``             1 - (largest - second largest) of p̄
``least_confidence``   1 - largest of p̄
``random``             uniform noise: the random-acquisition baseline
==================== ==========================================================

The scores are computed in float64 over chunks of rows, so a pool of any size
needs only a few megabytes of temporaries, and 0 log 0 is taken as 0.
Pick a score by name with :func:`get`, and the top k with :func:`select` (or a
power sample, spread over the pool, with :func:`select_power`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import checks

# Elements (rows x members x classes) per chunk: 2^18 float64 values are 2 MiB,
# small enough to stay in cache, large enough that the Python loop is cheap.
CHUNK_ELEMENTS = 1 << 18

# softmax outputs in float32 sum to 1 within ~1e-6; bfloat16 ones within ~1e-2.
SUM_TOLERANCE = 2e-2

_TINY = np.finfo(np.float64).tiny


def predictive_entropy(probs) -> np.ndarray:
    """Entropy of the mean prediction (the seed post's "H_cat")."""
    return _chunked(probs, lambda p: _entropy(p.mean(axis=1)))


def expected_entropy(probs) -> np.ndarray:
    """Mean of the members' entropies."""
    return _chunked(probs, lambda p: _entropy(p).mean(axis=1))


def mutual_information(probs) -> np.ndarray:
    """BALD: predictive entropy minus expected entropy, the members' disagreement.

    Mathematically non-negative (Jensen); rounding can make it a hair below
    zero, so it is clipped at 0.
    """

    def score(p):
        return np.maximum(_entropy(p.mean(axis=1)) - _entropy(p).mean(axis=1), 0.0)

    return _chunked(probs, score)


def variation_ratio(probs) -> np.ndarray:
    """1 minus the fraction of members that vote for the modal class.

    A member votes for its most probable class (the first one on a tie).
    """

    def score(p):
        n_members, n_classes = p.shape[1], p.shape[2]
        votes = p.argmax(axis=2)  # (rows, members)
        counts = (votes[:, :, None] == np.arange(n_classes)).sum(axis=1)
        return 1.0 - counts.max(axis=1) / n_members

    return _chunked(probs, score)


def margin(probs) -> np.ndarray:
    """1 minus the gap between the two largest mean probabilities."""

    def score(p):
        top_two = np.partition(p.mean(axis=1), -2, axis=1)[:, -2:]
        return 1.0 - (top_two[:, 1] - top_two[:, 0])

    return _chunked(probs, score)


def least_confidence(probs) -> np.ndarray:
    """1 minus the largest mean probability."""
    return _chunked(probs, lambda p: 1.0 - p.mean(axis=1).max(axis=1))


def random(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform random scores for ``n`` candidates: selecting the top k is a uniform random draw.

    Random acquisition reads no predictions, so it needs none: only how many
    candidates there are and the generator (seeded, for reproducible runs).
    """
    return rng.random(checks.whole_number("n", n, minimum=0))


ScoreFunction = Callable[..., np.ndarray]

_DETERMINISTIC = {
    f.__name__: f
    for f in (
        predictive_entropy,
        expected_entropy,
        mutual_information,
        variation_ratio,
        margin,
        least_confidence,
    )
}


def names() -> tuple[str, ...]:
    """The names :func:`get` accepts."""
    return (*_DETERMINISTIC, "random")


def get(name: str) -> ScoreFunction:
    """The score called ``name``, as ``score(probs, rng=None) -> scores``.

    Every score gets the same signature so that a config can name any of
    them; only ``random`` uses ``rng``, and reads of ``probs`` only how many
    rows it has (the round loop calls :func:`random` directly, with no
    predictions at all).
    """
    if name == "random":

        def score(probs, rng: np.random.Generator | None = None) -> np.ndarray:
            return random(_validated_rows(probs), np.random.default_rng() if rng is None else rng)

        function = random
    else:
        try:
            function = _DETERMINISTIC[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown acquisition score {name!r}; valid names are {', '.join(names())}"
            ) from None

        def score(probs, rng: np.random.Generator | None = None) -> np.ndarray:
            return function(probs)

    score.__name__ = name
    score.__doc__ = function.__doc__
    return score


def select(scores, k: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices of the k highest scores, highest first.

    Equal scores are ordered by index (lowest first), so the result depends on
    nothing but the scores; with ``rng`` ties are broken at random through
    that generator instead.
    """
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {scores.shape}")
    if not (np.issubdtype(scores.dtype, np.integer) or np.issubdtype(scores.dtype, np.floating)):
        raise ValueError(f"scores must be real numbers, got dtype {scores.dtype}")
    k = checks.whole_number("k", k)
    n = scores.shape[0]
    if not 0 <= k <= n:
        raise ValueError(f"k must be between 0 and the number of scores ({n}), got {k}")
    if np.isnan(scores).any():
        raise ValueError(f"scores contain {int(np.isnan(scores).sum())} NaN value(s)")
    if k == 0:
        return np.empty(0, dtype=np.int64)
    # Only candidates at or above the k-th largest score can be selected:
    # partitioning first keeps this O(n) for a large pool and a small k.
    kth_largest = np.partition(scores, n - k)[n - k]
    candidates = np.flatnonzero(scores >= kth_largest)
    tiebreak = candidates if rng is None else rng.random(candidates.size)
    order = np.lexsort((tiebreak, -scores[candidates].astype(np.float64)))
    return candidates[order[:k]].astype(np.int64)


SELECTIONS = ("top_k", "power")


def select_power(scores, k: int, rng: np.random.Generator, power: float = 1.0) -> np.ndarray:
    """k indices drawn without replacement with probability proportional to ``score ** power``.

    Stochastic power acquisition (Kirsch et al. 2023, "Stochastic batch
    acquisition"): a batch of the top k scores holds near-duplicates, since
    similar images score alike; sampling spreads the batch while still
    favouring high scores. Drawn by the Gumbel-top-k trick: the top k of
    ``power * log(score) + Gumbel noise``. Scores must be non-negative; a zero
    score is drawn only after every positive one.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be one-dimensional, got shape {scores.shape}")
    if np.isnan(scores).any() or (scores < 0).any():
        raise ValueError("power sampling needs non-negative scores, without NaN")
    k = checks.whole_number("k", k)
    if not 0 <= k <= scores.size:
        raise ValueError(f"k must be between 0 and the number of scores ({scores.size}), got {k}")
    with np.errstate(divide="ignore"):
        keys = power * np.log(scores) + rng.gumbel(size=scores.size)
    return np.argsort(-keys, kind="stable")[:k].astype(np.int64)


def choose(scores, k: int, selection: str, rng: np.random.Generator) -> np.ndarray:
    """A round's k picks: the top k (:func:`select`) or a power sample (:func:`select_power`)."""
    if selection == "top_k":
        return select(scores, k)
    if selection == "power":
        return select_power(scores, k, rng)
    raise ValueError(f"unknown selection {selection!r}; valid names are {', '.join(SELECTIONS)}")


def _entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats over the last axis, with 0 log 0 = 0."""
    return -(p * np.log(np.maximum(p, _TINY))).sum(axis=-1)


def _validated_rows(probs) -> int:
    """Check the shape of probs and return n (values are checked chunk by chunk)."""
    shape = np.shape(probs)
    if len(shape) != 3:
        raise ValueError(
            f"probs must have shape (n, members, classes), got {len(shape)} dimension(s) "
            f"with shape {shape}"
        )
    n, n_members, n_classes = shape
    if n_members < 1:
        raise ValueError("probs must have at least one member")
    if n_classes < 2:
        raise ValueError(f"probs must have at least 2 classes, got {n_classes}")
    return n


def _check_chunk(chunk: np.ndarray, start: int) -> None:
    if not np.isfinite(chunk).all():
        row = start + int(np.flatnonzero(~np.isfinite(chunk).all(axis=(1, 2)))[0])
        raise ValueError(f"probs contains NaN or inf (first in row {row})")
    if (chunk < 0).any():
        row = start + int(np.flatnonzero((chunk < 0).any(axis=(1, 2)))[0])
        raise ValueError(f"probs contains negative probabilities (first in row {row})")
    deviation = np.abs(chunk.sum(axis=2) - 1.0)
    if (deviation > SUM_TOLERANCE).any():
        row = start + int(np.flatnonzero((deviation > SUM_TOLERANCE).any(axis=1))[0])
        raise ValueError(
            f"probs rows must sum to 1 over classes (within {SUM_TOLERANCE}); "
            f"row {row} sums to {chunk[row - start].sum(axis=1).tolist()}"
        )


def _chunked(probs, score_chunk: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Validate probs and apply score_chunk to float64 chunks of rows."""
    n = _validated_rows(probs)
    probs = np.asarray(probs)
    if not np.issubdtype(probs.dtype, np.number):
        raise ValueError(f"probs must be numeric, got dtype {probs.dtype}")
    rows_per_chunk = max(1, CHUNK_ELEMENTS // (probs.shape[1] * probs.shape[2]))
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, rows_per_chunk):
        chunk = probs[start : start + rows_per_chunk].astype(np.float64)
        _check_chunk(chunk, start)
        out[start : start + chunk.shape[0]] = score_chunk(chunk)
    return out
