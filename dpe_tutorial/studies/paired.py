"""The objective study's pre-registered selection rule for a *clear* paired difference.

Kept only so that :func:`dpe_tutorial.studies.objective_study.default_rule` recomputes the
choice of the package's default exactly as the rule fixed before trial 1
ended made it (results/objective-study/README.md). It is not a test: with
no true effect it calls 11-17 % of differences clear with 3 trials and
23-30 % with 2. Results are read with :mod:`dpe_tutorial.studies.intervals`
(paired differences with 95 % t intervals) everywhere else.

The rule: a difference is clear when it is of one sign in every pair and
its mean is larger than both the baseline's own trial-to-trial standard
deviation and the standard deviation of the differences themselves.
"""

from __future__ import annotations

import numpy as np


def clear(differences, spread):
    """Whether paired differences are clear: one bool per row of ``differences``.

    ``differences`` has the trials on its last axis (NaN for a missing pair);
    ``spread`` is the baseline's trial-to-trial standard deviation (a number,
    or one per row). A single pair, or NaN spread, is never clear; nor is a
    mean difference smaller than the differences' own standard deviation.
    """
    d = np.asarray(differences, dtype=np.float64)
    pairs = np.sum(~np.isnan(d), axis=-1)
    positive = np.all(np.where(np.isnan(d), 1.0, d) > 0, axis=-1)
    negative = np.all(np.where(np.isnan(d), -1.0, d) < 0, axis=-1)
    with np.errstate(invalid="ignore"):  # a row of NaN has no mean: not clear
        mean = np.where(pairs > 0, np.nansum(d, axis=-1) / np.maximum(pairs, 1), np.nan)
        scatter = np.sqrt(np.nansum((d - mean[..., None]) ** 2, axis=-1) / np.maximum(pairs - 1, 1))
        beyond = (np.abs(mean) > np.asarray(spread)) & (np.abs(mean) > scatter)
        return (pairs > 1) & (positive | negative) & beyond
