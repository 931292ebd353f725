"""The rule both studies use to call a paired difference *clear*.

Within a trial, two methods share the labelled set and the seeds, so their
difference removes what the trial contributes. With two or three trials a
difference is called clear only when it is of one sign in every pair and its
mean is larger than both the baseline's own trial-to-trial standard deviation
and the standard deviation of the differences themselves; anything else is
within the noise of so few trials. (The second condition came in on
2026-11-30, before the active-learning study began, so that no difference is
called clear beside a spread larger than itself.)
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
