import numpy as np
import pytest

from dpe_tutorial.studies import paired


@pytest.mark.parametrize(
    ("differences", "spread", "expected"),
    [
        ([0.05, 0.06], 0.02, True),  # one sign, beyond the spread
        ([-0.05, -0.06, -0.04], 0.02, True),
        ([0.05, -0.01], 0.001, False),  # signs differ
        ([0.01, 0.02], 0.02, False),  # within the spread
        # one sign and beyond the baseline's spread, but -0.017 +/- 0.023: the pairs scatter
        # more than their mean
        ([-0.033, -0.001], 0.002, False),
        ([-0.033, -0.001, np.nan], 0.002, False),
        ([0.05], 0.0, False),  # one pair is never clear
        ([0.05, np.nan, 0.06], 0.02, True),  # a missing pair is left out
        ([np.nan, np.nan], 0.02, False),
        ([0.05, 0.06], np.nan, False),  # no spread to judge by
    ],
)
def test_a_difference_is_clear_only_of_one_sign_and_beyond_the_spread(
    differences, spread, expected
):
    assert bool(paired.clear(differences, spread)) is expected


def test_rows_are_judged_one_by_one():
    rows = np.array([[0.05, 0.06], [0.05, -0.06]])
    assert list(paired.clear(rows, np.array([0.01, 0.01]))) == [True, False]
