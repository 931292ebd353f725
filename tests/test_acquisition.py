"""Acquisition scores and top-k selection: hand-computed cases, bounds, invariances, errors."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from dpe_tutorial.method import acquisition

DETERMINISTIC = [name for name in acquisition.names() if name != "random"]
LOG2 = math.log(2)


def score(name, probs, rng=None):
    return acquisition.get(name)(np.asarray(probs, dtype=np.float32), rng=rng)


def dirichlet_pool(n=200, members=5, classes=4, seed=0, concentration=0.7):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(classes, concentration), size=(n, members)).astype(np.float32)


# Two members, two classes: each row is one hand-computed case.
HAND_CASES = {
    # members disagree completely
    "disagree": [[1.0, 0.0], [0.0, 1.0]],
    # members agree and are certain
    "certain": [[1.0, 0.0], [1.0, 0.0]],
    # members agree and are both unsure
    "unsure": [[0.5, 0.5], [0.5, 0.5]],
}
HAND_EXPECTED = {
    "predictive_entropy": {"disagree": LOG2, "certain": 0.0, "unsure": LOG2},
    "expected_entropy": {"disagree": 0.0, "certain": 0.0, "unsure": LOG2},
    "mutual_information": {"disagree": LOG2, "certain": 0.0, "unsure": 0.0},
    "variation_ratio": {"disagree": 0.5, "certain": 0.0, "unsure": 0.0},
    "margin": {"disagree": 1.0, "certain": 0.0, "unsure": 1.0},
    "least_confidence": {"disagree": 0.5, "certain": 0.0, "unsure": 0.5},
}


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_hand_computed_two_member_cases(name):
    probs = np.array(list(HAND_CASES.values()))
    expected = [HAND_EXPECTED[name][case] for case in HAND_CASES]
    np.testing.assert_allclose(score(name, probs), expected, atol=1e-7)


def test_hand_computed_three_member_case():
    members = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]
    mean = [0.3, 1.1 / 3, 1.0 / 3]

    def entropy(p):
        return -sum(x * math.log(x) for x in p)

    predictive = entropy(mean)
    expected = sum(entropy(m) for m in members) / 3
    second, first = sorted(mean)[-2:]
    want = {
        "predictive_entropy": predictive,
        "expected_entropy": expected,
        "mutual_information": predictive - expected,
        "variation_ratio": 1 - 1 / 3,  # three members, three different votes
        "margin": 1 - (first - second),
        "least_confidence": 1 - first,
    }
    for name, value in want.items():
        assert score(name, [members])[0] == pytest.approx(value, abs=1e-6), name


def test_bounds_hold_on_random_pools():
    probs = dirichlet_pool(n=2000, members=6, classes=5)
    pe = score("predictive_entropy", probs)
    ee = score("expected_entropy", probs)
    mi = score("mutual_information", probs)
    assert np.all(mi >= 0)
    assert np.all(mi <= pe + 1e-12)
    assert np.all(pe <= math.log(5) + 1e-9)
    assert np.all(ee >= 0)
    np.testing.assert_allclose(pe - ee, mi, atol=1e-9)
    vr = score("variation_ratio", probs)
    assert np.all((vr >= 0) & (vr <= 1 - 1 / 6 + 1e-12))
    for name in ("margin", "least_confidence"):
        s = score(name, probs)
        assert np.all((s >= 0) & (s <= 1)), name
    assert np.all(score("least_confidence", probs) <= 1 - 1 / 5 + 1e-7)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_invariant_under_member_and_class_permutations(name):
    probs = dirichlet_pool(n=300, members=5, classes=6, seed=1)
    rng = np.random.default_rng(2)
    base = score(name, probs)
    np.testing.assert_allclose(score(name, probs[:, rng.permutation(5), :]), base, atol=1e-9)
    np.testing.assert_allclose(score(name, probs[:, :, rng.permutation(6)]), base, atol=1e-9)


def test_identical_members_have_zero_disagreement():
    one_member = dirichlet_pool(n=500, members=1, classes=10, seed=3)
    probs = np.repeat(one_member, 8, axis=1)
    np.testing.assert_allclose(score("mutual_information", probs), 0.0, atol=1e-12)
    np.testing.assert_array_equal(score("variation_ratio", probs), 0.0)
    np.testing.assert_allclose(
        score("predictive_entropy", probs), score("expected_entropy", probs), atol=1e-12
    )


@pytest.mark.parametrize("name", acquisition.names())
def test_zero_probabilities_give_no_nan(name):
    probs = np.zeros((4, 3, 5), dtype=np.float32)
    probs[np.arange(4), :, np.arange(4)] = 1.0  # one-hot members
    values = score(name, probs, rng=np.random.default_rng(0))
    assert np.all(np.isfinite(values))


def test_chunked_computation_matches_a_single_chunk(monkeypatch):
    probs = dirichlet_pool(n=1001, members=4, classes=3, seed=5)
    whole = {name: score(name, probs) for name in DETERMINISTIC}
    monkeypatch.setattr(acquisition, "CHUNK_ELEMENTS", 7 * 4 * 3)  # 7 rows per chunk
    for name in DETERMINISTIC:
        np.testing.assert_array_equal(score(name, probs), whole[name])


def test_memory_stays_bounded_on_a_large_pool():
    rng = np.random.default_rng(6)
    probs = rng.random((100_000, 8, 10), dtype=np.float32)
    probs /= probs.sum(axis=2, keepdims=True)
    tracemalloc.start()
    try:
        for name in DETERMINISTIC:
            score(name, probs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # a single pool-sized float64 temporary would be twice the pool's size
    assert peak < probs.nbytes / 2, f"peak {peak / 2**20:.1f} MiB"


def test_random_scores_are_reproducible_through_the_generator():
    probs = dirichlet_pool(n=50)
    a = score("random", probs, rng=np.random.default_rng(11))
    b = score("random", probs, rng=np.random.default_rng(11))
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(a)) == 50


def test_registry_lists_every_score_and_rejects_unknown_names():
    assert set(acquisition.names()) == {*HAND_EXPECTED, "random"}
    with pytest.raises(ValueError, match="unknown acquisition score 'bald'") as error:
        acquisition.get("bald")
    for name in acquisition.names():
        assert name in str(error.value)


@pytest.mark.parametrize(
    ("probs", "message"),
    [
        (np.full((4, 10), 0.1), "shape \\(n, members, classes\\)"),
        (np.full((2, 3, 4, 5), 0.2), "shape \\(n, members, classes\\)"),
        (np.full((3, 2, 1), 1.0), "at least 2 classes"),
        (np.full((3, 2, 4), 0.3), "sum to 1"),
        (np.array([[[0.5, np.nan]], [[0.5, 0.5]]]), "NaN or inf \\(first in row 0\\)"),
        (np.array([[[0.5, 0.5]], [[1.5, -0.5]]]), "negative probabilities \\(first in row 1\\)"),
    ],
)
@pytest.mark.parametrize("name", acquisition.names())
def test_bad_probabilities_raise_value_error(name, probs, message):
    if name == "random" and "shape" not in message and "classes" not in message:
        pytest.skip("random checks the shape only: it never reads the values")
    with pytest.raises(ValueError, match=message):
        acquisition.get(name)(probs, rng=np.random.default_rng(0))


def test_select_returns_the_top_k_highest_first():
    rng = np.random.default_rng(8)
    scores = rng.normal(size=10_000)
    for k in (0, 1, 17, 10_000):
        np.testing.assert_array_equal(acquisition.select(scores, k), np.argsort(-scores)[:k])


def test_select_breaks_ties_by_index_without_a_generator():
    scores = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
    np.testing.assert_array_equal(acquisition.select(scores, 2), [1, 2])
    np.testing.assert_array_equal(acquisition.select(scores, 4), [1, 2, 4, 3])


def test_select_breaks_ties_at_random_only_through_the_generator():
    scores = np.zeros(20)
    first = acquisition.select(scores, 5, rng=np.random.default_rng(1))
    again = acquisition.select(scores, 5, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(first, again)
    chosen = {
        int(i)
        for seed in range(30)
        for i in acquisition.select(scores, 5, np.random.default_rng(seed))
    }
    assert len(chosen) > 15  # every tied index can be picked
    # strictly higher scores always win, whatever the tie-breaking
    scores[[3, 9]] = 1.0
    for seed in range(10):
        picked = acquisition.select(scores, 4, rng=np.random.default_rng(seed))
        assert set(picked[:2].tolist()) == {3, 9}


@pytest.mark.parametrize(
    ("scores", "k", "message"),
    [
        (np.ones(5), 6, "between 0 and the number of scores \\(5\\)"),
        (np.ones(5), -1, "between 0"),
        (np.ones(5), 2.0, "k must be a whole number"),
        (np.ones(5), True, "k must be a whole number"),
        (np.ones((2, 3)), 1, "one-dimensional"),
        (np.array([1.0, np.nan, 0.5]), 1, "1 NaN"),
        (np.array(["a", "b"]), 1, "real numbers"),
    ],
)
def test_select_rejects_bad_input(scores, k, message):
    with pytest.raises(ValueError, match=message):
        acquisition.select(scores, k)


def test_power_sampling_draws_in_proportion_to_the_score():
    scores = np.array([0.0, 1.0, 2.0, 4.0, 8.0])
    rng = np.random.default_rng(0)
    draws = 20000
    firsts = np.bincount(
        [acquisition.select_power(scores, 1, rng)[0] for _ in range(draws)], minlength=5
    )
    assert firsts[0] == 0  # a zero score is never drawn while a positive one is left
    np.testing.assert_allclose(firsts[1:] / draws, scores[1:] / scores.sum(), atol=0.015)
    batch = acquisition.select_power(scores, 5, rng)
    assert sorted(batch.tolist()) == [0, 1, 2, 3, 4] and batch[-1] == 0


def test_power_sampling_rejects_what_it_cannot_sample():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="non-negative scores"):
        acquisition.select_power(np.array([1.0, -0.5]), 1, rng)
    with pytest.raises(ValueError, match="k must be between 0 and the number of scores"):
        acquisition.select_power(np.array([1.0]), 2, rng)
    with pytest.raises(ValueError, match="unknown selection 'best'"):
        acquisition.choose(np.array([1.0]), 1, "best", rng)
    np.testing.assert_array_equal(acquisition.choose(np.array([1.0, 3.0]), 1, "top_k", rng), [1])
