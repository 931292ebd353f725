"""The conjugate Gaussian model: every closed form against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dpe_tutorial.book import conjugate
from dpe_tutorial.book.conjugate import GaussianModel


def random_case(seed: int):
    """A model, data and a batch of variational parameters, all drawn at random."""
    rng = np.random.default_rng(seed)
    model = GaussianModel(
        prior_mean=rng.normal(0.0, 3.0),
        prior_var=rng.uniform(0.1, 10.0),
        noise_var=rng.uniform(0.1, 10.0),
    )
    n = int(rng.integers(1, 40))
    x = rng.normal(rng.normal(0.0, 5.0), math.sqrt(model.noise_var), size=n)
    q_mean = rng.normal(0.0, 5.0, size=7)
    q_var = rng.uniform(0.01, 10.0, size=7)
    return model, x, q_mean, q_var


def normal_logpdf(value, mean, var):
    return -0.5 * (np.log(2 * math.pi * var) + (value - mean) ** 2 / var)


def multivariate_normal_logpdf(x, mean, cov):
    sign, logdet = np.linalg.slogdet(cov)
    assert sign > 0
    r = x - mean
    return -0.5 * (x.size * math.log(2 * math.pi) + logdet + r @ np.linalg.solve(cov, r))


@pytest.mark.parametrize("seed", range(10))
def test_elbo_plus_kl_to_posterior_is_log_evidence(seed):
    model, x, q_mean, q_var = random_case(seed)
    total = conjugate.elbo(model, x, q_mean, q_var) + conjugate.kl_to_posterior(
        model, x, q_mean, q_var
    )
    evidence = conjugate.log_evidence(model, x)
    np.testing.assert_allclose(total, evidence, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("seed", range(10))
def test_log_evidence_is_the_multivariate_normal_density(seed):
    model, x, _, _ = random_case(seed)
    cov = model.noise_var * np.eye(x.size) + model.prior_var * np.ones((x.size, x.size))
    expected = multivariate_normal_logpdf(x, np.full(x.size, model.prior_mean), cov)
    np.testing.assert_allclose(conjugate.log_evidence(model, x), expected, rtol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_log_evidence_matches_the_integral_on_a_grid(seed):
    model, x, _, _ = random_case(seed)
    # a grid that knows nothing of the posterior: wide enough for prior and data alike
    low = min(model.prior_mean, x.min()) - 50.0
    high = max(model.prior_mean, x.max()) + 50.0
    grid = np.linspace(low, high, 400_001)
    np.testing.assert_allclose(
        conjugate.log_evidence_on_grid(model, x, grid), conjugate.log_evidence(model, x), atol=1e-8
    )


def test_log_evidence_on_a_grid_does_not_underflow():
    model = GaussianModel(0.0, 1.0, 0.01)
    x = np.random.default_rng(0).normal(0.3, 0.1, size=5000)  # p(x) itself is far below 1e-308
    mean, var = conjugate.posterior(model, x)
    grid = np.linspace(mean - 20 * math.sqrt(var), mean + 20 * math.sqrt(var), 20_001)
    exact = conjugate.log_evidence(model, x)
    assert exact > 1000  # a density of thousands of tight observations: huge, not tiny
    np.testing.assert_allclose(conjugate.log_evidence_on_grid(model, x, grid), exact, rtol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_posterior_matches_the_normalised_grid(seed):
    model, x, _, _ = random_case(seed)
    mean, var = conjugate.posterior(model, x)
    grid = np.linspace(mean - 15 * math.sqrt(var), mean + 15 * math.sqrt(var), 200_001)
    weights = np.exp(conjugate.log_joint(model, x, grid) - conjugate.log_evidence(model, x))
    step = grid[1] - grid[0]
    np.testing.assert_allclose(weights.sum() * step, 1.0, rtol=1e-9)  # normalised by p(x)
    grid_mean = np.sum(weights * grid) * step
    grid_var = np.sum(weights * (grid - grid_mean) ** 2) * step
    np.testing.assert_allclose(grid_mean, mean, rtol=1e-9, atol=1e-9 * math.sqrt(var))
    np.testing.assert_allclose(grid_var, var, rtol=1e-8)
    # and the shape, not only the moments: the normalised joint is N(mean, var) pointwise
    np.testing.assert_allclose(
        weights, np.exp(normal_logpdf(grid, mean, var)), rtol=1e-9, atol=1e-300
    )


def test_posterior_precisions_add_and_data_dominate():
    model = GaussianModel(prior_mean=-3.0, prior_var=2.0, noise_var=0.5)
    x = np.full(1000, 4.0)
    mean, var = conjugate.posterior(model, x)
    assert var == pytest.approx(1 / (1 / 2.0 + 1000 / 0.5))
    # the data mean, shrunk towards the prior mean by the fraction var / prior_var (< 1e-3)
    assert mean == pytest.approx(4.0 + (-3.0 - 4.0) * var / 2.0, rel=1e-14)
    one_mean, one_var = conjugate.posterior(model, [4.0])
    assert one_var == pytest.approx(0.4)  # 1 / (1/2 + 1/0.5)
    assert one_mean == pytest.approx(0.4 * (-3.0 / 2.0 + 4.0 / 0.5))


@pytest.mark.parametrize("seed", range(5))
def test_log_likelihood_is_the_sum_of_normal_log_densities(seed):
    model, x, q_mean, q_var = random_case(seed)
    expected = [sum(normal_logpdf(xi, t, model.noise_var) for xi in x) for t in q_mean]
    np.testing.assert_allclose(conjugate.log_likelihood(model, x, q_mean), expected, rtol=1e-12)
    np.testing.assert_allclose(
        conjugate.normal_logpdf(x[:, None], q_mean, q_var),
        normal_logpdf(x[:, None], q_mean, q_var),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        conjugate.log_prior(model, q_mean),
        normal_logpdf(q_mean, model.prior_mean, model.prior_var),
        rtol=1e-12,
    )


@pytest.mark.parametrize("seed", range(10))
def test_kl_to_posterior_vanishes_only_at_the_posterior(seed):
    model, x, q_mean, q_var = random_case(seed)
    mean, var = conjugate.posterior(model, x)
    assert conjugate.kl_to_posterior(model, x, mean, var) == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(
        conjugate.elbo(model, x, mean, var), conjugate.log_evidence(model, x), rtol=1e-12
    )
    assert np.all(conjugate.kl_to_posterior(model, x, q_mean, q_var) > 0)
    assert np.all(conjugate.elbo(model, x, q_mean, q_var) < conjugate.log_evidence(model, x))
    # a small step away in either parameter lowers the bound
    for da, dv in [(1e-3, 0.0), (-1e-3, 0.0), (0.0, 1e-3 * var), (0.0, -1e-3 * var)]:
        assert conjugate.elbo(model, x, mean + da, var + dv) < conjugate.elbo(model, x, mean, var)


@pytest.mark.parametrize("seed", range(5))
def test_monte_carlo_elbo_agrees_within_five_standard_errors(seed):
    model, x, q_mean, q_var = random_case(seed)
    rng = np.random.default_rng(100 + seed)
    estimate, se = conjugate.elbo_monte_carlo(model, x, q_mean, q_var, 20_000, rng)
    exact = conjugate.elbo(model, x, q_mean, q_var)
    assert estimate.shape == se.shape == q_mean.shape
    assert np.all(se > 0)
    assert np.all(np.abs(estimate - exact) < 5 * se), (estimate - exact) / se


def test_monte_carlo_elbo_is_exact_at_the_posterior():
    model, x, _, _ = random_case(3)
    mean, var = conjugate.posterior(model, x)
    estimate, se = conjugate.elbo_monte_carlo(model, x, mean, var, 100, np.random.default_rng(0))
    evidence = conjugate.log_evidence(model, x)
    assert estimate.shape == se.shape == ()
    np.testing.assert_allclose(estimate, evidence, rtol=1e-12)
    assert se < 1e-10 * abs(evidence) + 1e-12


def test_monte_carlo_elbo_is_reproducible():
    model, x, q_mean, q_var = random_case(1)
    first = conjugate.elbo_monte_carlo(model, x, q_mean, q_var, 50, np.random.default_rng(7))
    second = conjugate.elbo_monte_carlo(model, x, q_mean, q_var, 50, np.random.default_rng(7))
    np.testing.assert_array_equal(first, second)


def test_parameters_of_q_broadcast_to_a_grid():
    model, x, _, _ = random_case(2)
    means = np.linspace(-2, 2, 5)[:, None]
    variances = np.geomspace(0.1, 3, 4)[None, :]
    grid = conjugate.elbo(model, x, means, variances)
    assert grid.shape == (5, 4)
    for i, a in enumerate(means[:, 0]):
        for j, v in enumerate(variances[0]):
            assert grid[i, j] == pytest.approx(float(conjugate.elbo(model, x, a, v)), rel=1e-14)


def test_expected_log_likelihood_matches_quadrature_over_q():
    model, x, _, _ = random_case(4)
    a, v = 0.7, 0.3
    theta = np.linspace(a - 15 * math.sqrt(v), a + 15 * math.sqrt(v), 100_001)
    density = np.exp(normal_logpdf(theta, a, v))
    integral = np.sum(density * conjugate.log_likelihood(model, x, theta)) * (theta[1] - theta[0])
    np.testing.assert_allclose(
        conjugate.expected_log_likelihood(model, x, a, v), integral, rtol=1e-9
    )


def test_kl_normal_against_monte_carlo_and_its_special_cases():
    rng = np.random.default_rng(0)
    mq, vq, mp, vp = 0.4, 0.5, -0.3, 2.0
    samples = mq + math.sqrt(vq) * rng.standard_normal(200_000)
    log_ratio = normal_logpdf(samples, mq, vq) - normal_logpdf(samples, mp, vp)
    se = log_ratio.std(ddof=1) / math.sqrt(samples.size)
    assert abs(conjugate.kl_normal(mq, vq, mp, vp) - log_ratio.mean()) < 5 * se
    assert conjugate.kl_normal(1.5, 2.0, 1.5, 2.0) == 0.0
    # equal variances: half the squared offset over the variance
    assert conjugate.kl_normal(1.0, 2.0, 0.0, 2.0) == pytest.approx(0.25)


@pytest.mark.keras_backend
def test_kl_normal_is_the_exclusive_form_of_the_package_penalty():
    from keras import ops

    from dpe_tutorial.method import kl

    rng = np.random.default_rng(1)
    mean, var = rng.normal(size=20), rng.uniform(0.05, 2.0, size=20)
    prior_var, prior_mean = 0.3, 0.5
    expected = ops.convert_to_numpy(kl.kl_terms(mean, var, prior_var, prior_mean, "exclusive"))
    np.testing.assert_allclose(
        conjugate.kl_normal(mean, var, prior_mean, prior_var), expected, rtol=1e-5
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"prior_var": 0.0},
        {"prior_var": -1.0},
        {"noise_var": 0.0},
        {"noise_var": math.inf},
        {"prior_mean": math.nan},
        {"prior_mean": "0"},
        {"prior_var": True},
    ],
)
def test_model_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        GaussianModel(**kwargs)


def test_model_is_frozen_and_stores_floats():
    model = GaussianModel(1, 2, 3)
    assert (model.prior_mean, model.prior_var, model.noise_var) == (1.0, 2.0, 3.0)
    assert all(isinstance(v, float) for v in (model.prior_mean, model.prior_var, model.noise_var))
    with pytest.raises(AttributeError):
        model.prior_var = 5.0


@pytest.mark.parametrize(
    "x, match",
    [
        ([], "at least one observation"),
        ([1.0, math.nan], "finite"),
        ([1.0, math.inf], "finite"),
        ([[1.0, 2.0]], "1-D"),
        (3.0, "1-D"),
    ],
)
def test_bad_data_is_rejected_everywhere(x, match):
    model = GaussianModel()
    calls = [
        lambda: conjugate.posterior(model, x),
        lambda: conjugate.log_evidence(model, x),
        lambda: conjugate.log_likelihood(model, x, 0.0),
        lambda: conjugate.expected_log_likelihood(model, x, 0.0, 1.0),
        lambda: conjugate.elbo(model, x, 0.0, 1.0),
        lambda: conjugate.kl_to_posterior(model, x, 0.0, 1.0),
        lambda: conjugate.elbo_monte_carlo(model, x, 0.0, 1.0, 10, np.random.default_rng(0)),
        lambda: conjugate.log_evidence_on_grid(model, x, np.linspace(-1, 1, 5)),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize(
    "q_mean, q_var, match",
    [
        (0.0, 0.0, "q_var"),
        (0.0, -1.0, "q_var"),
        (0.0, [1.0, math.nan], "q_var"),
        (math.inf, 1.0, "q_mean"),
        ([0.0, 1.0, 2.0], [1.0, 2.0], "broadcast"),
    ],
)
def test_bad_variational_parameters_are_rejected(q_mean, q_var, match):
    model, x = GaussianModel(), [0.5, 1.5]
    for fn in (conjugate.elbo, conjugate.kl_to_posterior, conjugate.expected_log_likelihood):
        with pytest.raises(ValueError, match=match):
            fn(model, x, q_mean, q_var)
    with pytest.raises(ValueError, match=match):
        conjugate.elbo_monte_carlo(model, x, q_mean, q_var, 10, np.random.default_rng(0))


def test_normal_logpdf_rejects_bad_variances():
    with pytest.raises(ValueError, match="var"):
        conjugate.normal_logpdf(0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="mean"):
        conjugate.normal_logpdf(0.0, math.inf, 1.0)


def test_kl_normal_rejects_bad_variances():
    with pytest.raises(ValueError, match="var_q"):
        conjugate.kl_normal(0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="var_p"):
        conjugate.kl_normal(0.0, 1.0, 0.0, -2.0)
    with pytest.raises(ValueError, match="mean_p"):
        conjugate.kl_normal(0.0, 1.0, math.nan, 1.0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_samples": 1}, "n_samples"),
        ({"n_samples": 2.5}, "n_samples"),
        ({"n_samples": True}, "n_samples"),
        ({"rng": 0}, "rng"),
    ],
)
def test_monte_carlo_rejects_bad_arguments(kwargs, match):
    arguments = {"n_samples": 10, "rng": np.random.default_rng(0), **kwargs}
    with pytest.raises(ValueError, match=match):
        conjugate.elbo_monte_carlo(GaussianModel(), [1.0], 0.0, 1.0, **arguments)


@pytest.mark.parametrize(
    "grid, match",
    [
        ([0.0], "at least 2"),
        ([[0.0, 1.0]], "1-D"),
        ([0.0, 0.0, 1.0], "increasing"),
        ([1.0, 0.0], "increasing"),
        ([0.0, math.nan], "finite"),
    ],
)
def test_grid_integral_rejects_bad_grids(grid, match):
    with pytest.raises(ValueError, match=match):
        conjugate.log_evidence_on_grid(GaussianModel(), [1.0], grid)
