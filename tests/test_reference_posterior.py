"""The toy MLP's reference posterior: the Keras member's network, its prior, the sampler."""

from __future__ import annotations

import numpy as np
import pytest

from dpe_tutorial.method import kl, models
from dpe_tutorial.studies import reference_posterior
from dpe_tutorial.studies.reference_posterior import Network


def test_network_counts_and_prior_variances():
    network = Network(features=2, classes=3, width=4, depth=1)
    assert network.kernel_shapes() == [(2, 4), (4, 3)]
    assert network.size == 2 * 4 + 4 + 4 * 3 + 3
    variances = network.prior_variances()
    expected = [kl.he_prior_variance((2, 4))] * 8 + [reference_posterior.BIAS_PRIOR_VARIANCE] * 4
    expected += [kl.he_prior_variance((4, 3))] * 12 + [reference_posterior.BIAS_PRIOR_VARIANCE] * 3
    np.testing.assert_allclose(variances, expected)
    with pytest.raises(ValueError, match="classes"):
        Network(classes=1)


def test_logits_are_the_keras_mlp_members():
    # the reference samples the network the ensembles train: copy a Keras MLP's weights in
    network = Network(features=2, classes=3, width=5, depth=2)
    model = models.mlp((2,), 3, width=5, depth=2)
    x = np.random.default_rng(0).normal(size=(7, 2)).astype(np.float32)
    theta = network.flatten(model.get_weights())
    ours = np.asarray(reference_posterior.logits(network, theta.astype(np.float32), x))
    np.testing.assert_allclose(ours, np.asarray(model.predict(x, verbose=0)), atol=1e-5)
    with pytest.raises(ValueError, match="weights given"):
        network.flatten(model.get_weights()[:-1])


def test_the_kernels_prior_is_the_one_the_dpe_penalty_assumes():
    from dpe_tutorial.method.ensemble import DeepProbabilisticEnsemble

    network = Network(features=2, classes=3, width=5, depth=2)
    ensemble = DeepProbabilisticEnsemble(
        (2,),
        3,
        n_members=2,
        member="mlp",
        member_kwargs={"width": 5, "depth": 2},
        layout="grouped",
        beta="elbo",
        kl_form="exclusive",
    )
    penalised = [weight.prior_var for weight in ensemble.regularised]
    variances = network.prior_variances()
    offset, kernels = 0, []
    for n_in, n_out in network.kernel_shapes():
        kernels.append(variances[offset])  # the kernel's block comes first, then its bias
        np.testing.assert_allclose(variances[offset : offset + n_in * n_out], variances[offset])
        offset += n_in * n_out + n_out
    np.testing.assert_allclose(kernels, penalised)
    assert len(penalised) == network.depth + 1  # every kernel, no bias


def test_log_density_is_likelihood_plus_gaussian_prior():
    import jax

    network = Network(features=2, classes=2, width=3, depth=1)
    x = np.array([[0.5, -1.0], [1.0, 2.0]], np.float32)
    y = np.array([1, 0])
    theta = np.random.default_rng(1).normal(size=network.size).astype(np.float32)
    log_probs = np.asarray(jax.nn.log_softmax(reference_posterior.logits(network, theta, x)))
    expected = log_probs[[0, 1], y].sum() - 0.5 * np.sum(theta**2 / network.prior_variances())
    value = float(reference_posterior.log_density(network, x, y)(theta))
    assert value == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_without_data_the_draws_are_the_prior():
    network = Network(features=2, classes=2, width=3, depth=1)
    draws = reference_posterior.sample(
        np.zeros((0, 2)), np.zeros(0, int), network, chains=2, warmup=300, samples=1500, seed=3
    )
    assert draws.theta.shape == (2, 1500, network.size)
    variance = draws.theta.reshape(-1, network.size).var(axis=0)
    # 3,000 correlated draws: within 25 % of each prior variance, and on average within 8 %
    ratio = variance / network.prior_variances()
    assert np.all(np.abs(ratio - 1) < 0.25), ratio
    assert abs(ratio.mean() - 1) < 0.08


@pytest.mark.slow
def test_logistic_regression_predictive_matches_importance_sampling():
    # depth 0 is Bayesian logistic regression (6 parameters): importance sampling from the
    # prior with 400,000 draws gives its predictive independently of NUTS
    import jax

    network = Network(features=2, classes=2, depth=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 2)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=6) > 0).astype(int)
    points = np.array([[0.0, 0.0], [1.5, -1.0], [-2.0, 1.0]], np.float32)

    prior = rng.normal(size=(400_000, network.size)) * np.sqrt(network.prior_variances())
    prior = prior.astype(np.float32)
    density = reference_posterior.log_density(network, x, y)
    precision = 1 / network.prior_variances()
    log_weights = np.asarray(jax.vmap(density)(prior)) + 0.5 * (prior**2 * precision).sum(axis=1)
    weights = np.exp(log_weights - log_weights.max())
    weights /= weights.sum()
    per_draw = np.asarray(
        jax.vmap(lambda t: jax.nn.softmax(reference_posterior.logits(network, t, points)))(prior)
    )
    expected = (weights[:, None, None] * per_draw).sum(axis=0)

    draws = reference_posterior.sample(x, y, network, chains=2, warmup=500, samples=2000)
    reference = reference_posterior.summarise(draws, points)
    np.testing.assert_allclose(reference.probs, expected, atol=0.02)
    assert reference.diagnostics["function_r_hat_max"] < 1.05
    assert reference.diagnostics["divergences"] == 0


def test_sample_refuses_bad_input():
    network = Network()
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        reference_posterior.sample(np.zeros((3, 3)), np.zeros(3, int), network)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        reference_posterior.sample(np.zeros((3, 2)), np.array([0, 1, 2]), network)
    with pytest.raises(ValueError, match="chains"):
        reference_posterior.sample(np.zeros((3, 2)), np.zeros(3, int), network, chains=0)


def test_summary_of_identical_draws_has_no_disagreement():
    network = Network(features=2, classes=2, width=3, depth=1)
    theta = np.random.default_rng(0).normal(size=network.size).astype(np.float32)
    same = np.broadcast_to(theta, (2, 20, network.size)).copy()
    same += np.random.default_rng(1).normal(scale=1e-9, size=same.shape).astype(np.float32)
    draws = reference_posterior.Draws(network, same, np.ones((2, 20)), 0, 0.0)
    reference = reference_posterior.summarise(draws, np.zeros((4, 2), np.float32))
    assert reference.probs.shape == (4, 2)
    np.testing.assert_allclose(reference.probs.sum(axis=1), 1, atol=1e-6)
    np.testing.assert_allclose(reference.mutual_information, 0, atol=1e-6)
    # constant draws have no R-hat: NaN, said without a warning
    assert np.isnan(reference.diagnostics["function_r_hat_max"])
