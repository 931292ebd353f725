"""The studies' statistics: t intervals, paired differences, AULC, labels to reach."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dpe_tutorial.studies import intervals


def test_the_interval_is_the_t_interval_of_the_mean():
    values = np.array([0.91, 0.93, 0.90, 0.95, 0.92])
    interval = intervals.mean_interval(values)
    low, high = stats.t.interval(0.95, 4, loc=values.mean(), scale=stats.sem(values))
    assert interval.n == 5
    assert interval.mean == pytest.approx(values.mean())
    assert (interval.low, interval.high) == pytest.approx((low, high))


def test_paired_differences_pair_by_seed_and_drop_missing_pairs():
    method = np.array([0.95, 0.96, np.nan, 0.97])
    baseline = np.array([0.93, 0.95, 0.90, 0.94])
    interval = intervals.paired_interval(method, baseline)
    assert interval.n == 3
    assert interval.mean == pytest.approx(np.mean([0.02, 0.01, 0.03]))
    assert not interval.excludes_zero()  # three pairs of one sign, yet t(2) is 4.3
    assert interval.text(3).startswith("+0.020 [")
    # a shift that is the same in every pair has no spread: its interval is that shift
    same = intervals.paired_interval([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])
    assert (same.low, same.high) == pytest.approx((0.5, 0.5))
    with pytest.raises(ValueError, match="same shape"):
        intervals.paired_interval([1.0], [1.0, 2.0])


def test_one_seed_has_no_interval_and_says_so():
    single = intervals.mean_interval([0.5])
    assert single.n == 1 and math.isnan(single.low)
    assert single.text() == "+0.500 (one seed: no interval)"
    assert not single.excludes_zero()
    assert intervals.mean_interval([]).n == 0


def test_the_smallest_p_of_an_exact_test_with_few_pairs():
    assert intervals.smallest_exact_p(3) == 0.25
    assert intervals.smallest_exact_p(5) == 0.0625
    assert intervals.smallest_exact_p(1) == 1.0


def test_aulc_is_the_mean_accuracy_over_the_labels():
    assert intervals.aulc([20, 40, 60], [0.5, 0.7, 0.9]) == pytest.approx(0.7)
    # uneven spacing weighs by the labels spanned; the order of points does not matter
    assert intervals.aulc([100, 20, 40], [0.9, 0.5, 0.7]) == pytest.approx(
        ((0.5 + 0.7) / 2 * 20 + (0.7 + 0.9) / 2 * 60) / 80
    )
    assert intervals.aulc([20], [0.4]) == 0.4


def test_labels_to_reach_is_the_first_size_at_or_above_the_threshold():
    sizes, accuracy = [20, 40, 60, 80], [0.6, 0.9, 0.85, 0.96]
    assert intervals.labels_to_reach(sizes, accuracy, 0.90) == 40
    assert intervals.labels_to_reach(sizes, accuracy, 0.95) == 80
    assert math.isnan(intervals.labels_to_reach(sizes, accuracy, 0.99))


def test_direction_reads_an_interval_in_the_metric_s_own_direction():
    above = intervals.mean_interval([0.02, 0.03, 0.025])
    assert intervals.direction(above) == "better"
    assert intervals.direction(above, lower_is_better=True) == "worse"
    assert intervals.direction(intervals.mean_interval([0.02, -0.01, 0.03])) == "undecided"
    assert intervals.direction(intervals.mean_interval([0.5])) == "undecided"  # one pair


def test_a_table_shows_a_reading_only_where_there_is_an_interval():
    above = intervals.mean_interval([0.02, 0.03, 0.025])
    assert intervals.shows(above) == "better"
    assert intervals.shows(above, lower_is_better=True) == "worse"
    assert intervals.shows(intervals.mean_interval([0.02, -0.01, 0.03])) == "holds zero"
    assert intervals.shows(intervals.mean_interval([0.5])) == "no interval (one pair)"


def test_pairs_are_described_with_their_interval_and_signs_never_more():
    # all three pairs above zero, but too scattered for the interval to exclude it
    text = intervals.describe_pairs([0.01, 0.03, 0.02])
    assert (
        text
        == "+0.020, 95 % interval [-0.005, +0.045]; higher in all 3 pairs: the interval holds zero"
    )
    assert intervals.describe_pairs([-0.02, -0.021, -0.019], lower_is_better=True).endswith(
        "lower in all 3 pairs: better"
    )
    assert intervals.sign_count([0.1, -0.2, 0.3]) == "higher in 2 of 3 pairs"
    assert intervals.sign_count([-0.1, -0.2]) == "lower in both pairs"
    assert intervals.describe_pairs([0.07]) == "+0.070 (one pair: no interval)"
    assert intervals.brief([0.01, 0.03, 0.02]) == "+0.020 [-0.005, +0.045], holds zero"


def test_the_multiplicity_note_counts_chance_exclusions_and_the_exact_test_floor():
    note = intervals.multiplicity_note(36, 3)
    assert note.startswith("36 comparisons: with no true difference anywhere, about 1.8 of")
    assert note.endswith("no sign or permutation test can go below p = 0.25.")
