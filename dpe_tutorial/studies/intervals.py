"""The statistics of the studies: paired differences over seeds with t-based 95 % intervals.

A study runs every method on the same seeds (same initial labels, same
training seeds), so methods are compared seed by seed: the difference of
a metric within each seed, then its mean over seeds with a Student-t
interval (n - 1 degrees of freedom). Learning curves are summarised per
seed by the area under the learning curve (:func:`aulc`) and the labels
needed to reach an accuracy (:func:`labels_to_reach`).

With n pairs no sign or permutation test can reach a p-value below
``2 / 2**n`` (two-sided): 0.25 for 3 pairs, 0.0625 for 5.
:func:`smallest_exact_p` says it, so a report never claims more than its
seeds allow. The readers need numpy and scipy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean over n seeds and its two-sided t interval; ``low``/``high`` are NaN for n < 2."""

    mean: float
    low: float
    high: float
    n: int

    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)

    def plain_text(self, digits: int = 3) -> str:
        """``0.812 [0.790, 0.834]``: a level and its interval, unsigned; for n < 2 the mean."""
        if self.n < 2:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def text(self, digits: int = 3) -> str:
        """``+0.012 [-0.003, +0.027]``: the mean and its interval, signed."""
        if self.n < 2:
            return f"{self.mean:+.{digits}f} (one seed: no interval)"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def mean_interval(values, level: float = LEVEL) -> Interval:
    """The mean of ``values`` (one per seed; NaN dropped) with its t interval."""
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    n = values.size
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    mean = float(values.mean())
    if n < 2:
        return Interval(mean, float("nan"), float("nan"), n)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / np.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)


def paired_interval(method, baseline, level: float = LEVEL) -> Interval:
    """Mean of ``method - baseline`` over paired seeds, with its t interval.

    Both are sequences aligned by seed; a seed missing in either (NaN) is
    left out of the pairs.
    """
    method = np.asarray(method, dtype=np.float64)
    baseline = np.asarray(baseline, dtype=np.float64)
    if method.shape != baseline.shape:
        raise ValueError(f"paired values need the same shape, got {method.shape}, {baseline.shape}")
    return mean_interval(method - baseline, level)


def smallest_exact_p(pairs: int) -> float:
    """The smallest two-sided p-value a sign or permutation test can give with ``pairs`` pairs."""
    return min(1.0, 2.0 / 2**pairs)


def aulc(n_labels, accuracy) -> float:
    """Area under the learning curve, divided by its width: the mean accuracy over the labels.

    Trapezoids between the measured sizes, so unevenly spaced rounds weigh
    by the labels they span. One point gives that point's accuracy.
    """
    n_labels = np.asarray(n_labels, dtype=np.float64)
    accuracy = np.asarray(accuracy, dtype=np.float64)
    order = np.argsort(n_labels)
    n_labels, accuracy = n_labels[order], accuracy[order]
    if n_labels.size == 1:
        return float(accuracy[0])
    width = n_labels[-1] - n_labels[0]
    return float(np.sum((accuracy[1:] + accuracy[:-1]) / 2 * np.diff(n_labels)) / width)


def labels_to_reach(n_labels, accuracy, threshold: float) -> float:
    """The first labelled-set size whose accuracy is at least ``threshold``; NaN if none is.

    Gal et al. (2017) report the labels a method needs to reach 10 % and 5 %
    test error this way (Table 1).
    """
    n_labels = np.asarray(n_labels, dtype=np.float64)
    accuracy = np.asarray(accuracy, dtype=np.float64)
    order = np.argsort(n_labels)
    reached = np.flatnonzero(accuracy[order] >= threshold)
    return float(n_labels[order][reached[0]]) if reached.size else float("nan")


def direction(interval: Interval, lower_is_better: bool = False) -> str:
    """``better``, ``worse`` or ``undecided``: what ``interval`` (method minus baseline) shows.

    Better or worse only when the interval excludes zero, in the metric's own
    direction; one pair, or an interval that holds zero, is ``undecided``.
    """
    if interval.n < 2 or not interval.excludes_zero():
        return "undecided"
    return "better" if (interval.mean < 0) == lower_is_better else "worse"


def shows(interval: Interval, lower_is_better: bool = False) -> str:
    """What a table's "shows" column says of ``interval``: ``better``, ``worse``,
    ``holds zero``, or ``no interval (one pair)`` (one pair holds nothing either)."""
    if interval.n < 2:
        return "no interval (one pair)"
    found = direction(interval, lower_is_better)
    return "holds zero" if found == "undecided" else found


def sign_count(differences) -> str:
    """How often the method was above the baseline: ``higher in all 3 pairs``, ``lower in 2 of 3``.

    (Pairs that tie count for neither side.)
    """
    d = np.asarray(differences, dtype=np.float64)
    d = d[~np.isnan(d)]
    n, above, below = d.size, int(np.sum(d > 0)), int(np.sum(d < 0))
    if n == 0:
        return "no pairs"
    if above == n or below == n:
        side = "higher" if above == n else "lower"
        return {1: f"{side} in the one pair", 2: f"{side} in both pairs"}.get(
            n, f"{side} in all {n} pairs"
        )
    if above >= below:
        return f"higher in {above} of {n} pairs"
    return f"lower in {below} of {n} pairs"


def describe_pairs(differences, lower_is_better: bool = False, digits: int = 3) -> str:
    """What paired differences say, in words a reviewer accepts, never more.

    ``+0.024, 95 % interval [+0.003, +0.045]; higher in all 3 pairs: better``.
    The last word is :func:`direction`'s, and ``undecided`` spells out that
    the interval holds zero.
    """
    interval = mean_interval(differences)
    if interval.n < 2:
        return f"{interval.mean:+.{digits}f} (one pair: no interval)"
    verdict = direction(interval, lower_is_better)
    if verdict == "undecided":
        verdict = "the interval holds zero"
    return (
        f"{interval.mean:+.{digits}f}, 95 % interval [{interval.low:+.{digits}f}, "
        f"{interval.high:+.{digits}f}]; {sign_count(differences)}: {verdict}"
    )


def multiplicity_note(comparisons: int, pairs: int, level: float = LEVEL) -> str:
    """The caution a table of many paired intervals needs, in one sentence."""
    expected = comparisons * (1 - level)
    return (
        f"{comparisons} comparison{'s' if comparisons != 1 else ''}: with no true difference "
        f"anywhere, about {expected:.1f} of their {level * 100:.0f} % intervals would exclude "
        f"zero by chance; with {pairs} pair{'s' if pairs != 1 else ''} no sign or permutation test "
        f"can go below p = {smallest_exact_p(pairs):.3g}."
    )


def brief(differences, lower_is_better: bool = False, digits: int = 3) -> str:
    """:func:`describe_pairs` in a few words: ``+0.024 [+0.003, +0.045], better``."""
    interval = mean_interval(differences)
    if interval.n < 2:
        return interval.text(digits)
    verdict = direction(interval, lower_is_better)
    return f"{interval.text(digits)}, {'holds zero' if verdict == 'undecided' else verdict}"
