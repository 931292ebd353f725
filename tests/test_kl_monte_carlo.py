"""kl.monte_carlo_kl: a sampling estimate of a Gaussian KL, checked against the closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from keras import ops

from dpe_tutorial.method import kl

pytestmark = pytest.mark.keras_backend  # compares with kl.kl_terms, which runs on the backend

# (q_mean, q_var, p_mean, p_var): equal, narrower, wider, shifted, and far from each other
SETTINGS = [
    (0.0, 0.04, 0.0, 0.04),
    (0.0, 0.01, 0.0, 0.04),
    (0.3, 0.2, 0.0, 0.05),
    (-0.5, 0.5, 1.0, 0.01),
    (1.0, 0.01, 0.9, 0.01),
]


def closed_form(q_mean, q_var, p_mean, p_var, form):
    """KL(q || p) ("exclusive") or KL(p || q) ("inclusive") from the package's closed forms."""
    return np.asarray(
        ops.convert_to_numpy(kl.kl_terms(q_mean, q_var, p_var, p_mean, form)), dtype=np.float64
    )


@pytest.mark.parametrize("setting", SETTINGS)
def test_exclusive_estimate_agrees_with_the_closed_form(setting):
    q_mean, q_var, p_mean, p_var = setting
    estimate, stderr = kl.monte_carlo_kl(
        q_mean, q_var, p_mean, p_var, 20_000, np.random.default_rng(11)
    )
    expected = closed_form(q_mean, q_var, p_mean, p_var, "exclusive")
    assert estimate.shape == () and stderr.shape == ()
    # equal Gaussians: every sample of log q - log p is exactly 0
    assert abs(estimate - expected) <= 5 * stderr + 1e-6, (estimate, expected, stderr)


@pytest.mark.parametrize("setting", SETTINGS)
def test_inclusive_estimate_is_the_swapped_call(setting):
    q_mean, q_var, p_mean, p_var = setting
    # KL(p || q): sample the prior p
    estimate, stderr = kl.monte_carlo_kl(
        p_mean, p_var, q_mean, q_var, 20_000, np.random.default_rng(12)
    )
    expected = closed_form(q_mean, q_var, p_mean, p_var, "inclusive")
    assert abs(estimate - expected) <= 5 * stderr + 1e-6, (estimate, expected, stderr)


def test_vectorised_over_broadcast_parameters():
    rng = np.random.default_rng(5)
    q_mean = rng.normal(0.0, 0.3, size=(4, 6))
    q_var = rng.uniform(0.01, 0.2, size=(4, 6))
    p_var = np.array([0.02, 0.05, 0.1, 0.2, 0.05, 0.02])  # broadcasts along the last axis
    estimate, stderr = kl.monte_carlo_kl(q_mean, q_var, 0.0, p_var, 20_000, rng)
    assert estimate.shape == stderr.shape == (4, 6)
    assert estimate.dtype == np.float64
    expected = closed_form(q_mean, q_var, 0.0, p_var, "exclusive")
    z = (estimate - expected) / stderr
    assert np.all(np.abs(z) < 5), z
    # 24 independent estimates: their z-scores look standard normal, not all on one side
    assert abs(z.mean()) < 5 / math.sqrt(z.size)
    total_stderr = math.sqrt(np.sum(stderr**2))
    assert abs(estimate.sum() - expected.sum()) < 5 * total_stderr


def test_standard_error_shrinks_like_one_over_root_n():
    ns = [1_000, 4_000, 16_000, 64_000]
    errors = [
        float(kl.monte_carlo_kl(0.2, 0.05, 0.0, 0.02, n, np.random.default_rng(3))[1]) for n in ns
    ]
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    # quadrupling n halves the standard error, up to the noise of a sample standard deviation
    np.testing.assert_allclose(ratios, 2.0, rtol=0.1)
    # and the estimate itself concentrates: its error against the closed form shrinks too
    expected = float(closed_form(0.2, 0.05, 0.0, 0.02, "exclusive"))
    estimate, stderr = kl.monte_carlo_kl(0.2, 0.05, 0.0, 0.02, 256_000, np.random.default_rng(4))
    assert abs(float(estimate) - expected) < 5 * float(stderr) < 5 * errors[0] / 10


def test_same_seed_same_estimate():
    a = kl.monte_carlo_kl(0.1, 0.2, 0.0, 0.3, 100, np.random.default_rng(9))
    b = kl.monte_carlo_kl(0.1, 0.2, 0.0, 0.3, 100, np.random.default_rng(9))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"q_var": 0.0}, "q_var must be positive"),
        ({"p_var": -0.1}, "p_var must be positive"),
        ({"p_var": np.array([0.1, 0.0])}, "p_var must be positive"),
        ({"q_var": float("inf")}, "q_var must be finite"),
        ({"q_mean": float("nan")}, "q_mean must be finite"),
        ({"p_mean": np.array([0.0, np.inf])}, "p_mean must be finite"),
        ({"n_samples": 1}, "n_samples must be a whole number >= 2"),
        ({"n_samples": 10.0}, "n_samples must be a whole number"),
        ({"n_samples": True}, "n_samples must be a whole number"),
        ({"rng": 0}, "rng must be a numpy.random.Generator"),
        ({"rng": np.random.RandomState(0)}, "rng must be a numpy.random.Generator"),
    ],
)
def test_bad_input_raises_value_error(kwargs, message):
    arguments = {
        "q_mean": 0.0,
        "q_var": 0.1,
        "p_mean": 0.0,
        "p_var": 0.2,
        "n_samples": 100,
        "rng": np.random.default_rng(0),
        **kwargs,
    }
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        kl.monte_carlo_kl(**arguments)
