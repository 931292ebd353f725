"""Shifted inputs and the metrics that tell them apart from test images."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from dpe_tutorial.method import metrics, shifts


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    # smooth images: a gradient per image plus a little noise, so shuffling changes them
    ramp = np.linspace(0, 200, 16, dtype=np.float32)
    base = ramp[None, :, None, None] + ramp[None, None, :, None] / 4
    noisy = base + rng.normal(0, 5, (20, 16, 16, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def test_every_shift_keeps_shape_and_type(images):
    sets = shifts.shifted_sets(images, 8, seed=0)
    assert set(sets) == set(shifts.SHIFTS)
    for shifted in sets.values():
        assert shifted.shape == (8, *images.shape[1:]) and shifted.dtype == np.uint8


def test_contrast_keeps_the_mean_colour_and_shrinks_the_spread(images):
    faded = shifts.shifted(images, "contrast", np.random.default_rng(0)).astype(float)
    original = images.astype(float)
    assert np.allclose(faded.mean(axis=(1, 2)), original.mean(axis=(1, 2)), atol=0.6)
    ratio = faded.std(axis=(1, 2)) / original.std(axis=(1, 2))
    assert np.allclose(ratio, shifts.KEPT_CONTRAST, atol=0.03)


def test_shuffle_permutes_each_images_pixels(images):
    shuffled = shifts.shifted(images, "shuffle", np.random.default_rng(0))
    for original, permuted in zip(images, shuffled, strict=True):
        flat = lambda a: sorted(map(tuple, a.reshape(-1, 3)))  # noqa: E731
        assert flat(original) == flat(permuted)
        assert not np.array_equal(original, permuted)


def test_noise_matches_the_channel_statistics(images):
    noise = shifts.shifted(images, "noise", np.random.default_rng(0)).astype(float)
    original = images.astype(float)
    assert np.allclose(noise.mean(axis=(0, 1, 2)), original.mean(axis=(0, 1, 2)), atol=3)


def test_shifts_are_reproducible_and_bad_input_is_refused(images):
    a = shifts.shifted_sets(images, 5, seed=3)
    b = shifts.shifted_sets(images, 5, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in shifts.SHIFTS)
    with pytest.raises(ValueError, match="unknown shift 'blur'"):
        shifts.shifted(images, "blur", np.random.default_rng(0))
    with pytest.raises(ValueError, match="uint8"):
        shifts.shifted(images.astype(np.float32), "noise", np.random.default_rng(0))


def test_auroc_agrees_with_scikit_learn_including_ties():
    rng = np.random.default_rng(0)
    positive = rng.integers(0, 5, 40).astype(float)
    negative = rng.integers(0, 4, 60).astype(float)
    expected = roc_auc_score(np.r_[np.ones(40), np.zeros(60)], np.r_[positive, negative])
    assert metrics.auroc(positive, negative) == pytest.approx(expected)
    assert np.isnan(metrics.auroc([], negative))


def test_separation_auroc_is_one_when_members_disagree_only_on_shifted_inputs():
    agree = np.tile([[0.9, 0.1]], (30, 4, 1))
    disagree = np.tile([[[0.9, 0.1], [0.1, 0.9]]], (30, 2, 1))
    assert metrics.separation_auroc(agree, disagree) == 1.0
    assert metrics.separation_auroc(disagree, agree) == 0.0


def test_evaluate_reports_brier_mutual_information_and_error_auroc():
    probs = np.array([[[1.0, 0.0], [1.0, 0.0]], [[0.6, 0.4], [0.2, 0.8]]])
    labels = np.array([0, 0])
    result = metrics.evaluate(probs, labels)
    assert result["brier"] == pytest.approx((0.0 + (0.6**2 + 0.6**2)) / 2)
    assert result["mutual_information"] > 0
    assert result["error_auroc"] == 1.0  # the one mistake has the higher entropy
