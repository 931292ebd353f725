"""The pooled Gaussian KL penalty against closed forms, Monte Carlo and its gradients."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from conftest import backend_compiled, backend_value_and_grad
from keras import ops

from dpe_tutorial.method import kl

pytestmark = pytest.mark.keras_backend


def reference_kl(members: np.ndarray, prior_var, prior_mean=0.0, form="exclusive"):
    """Float64 closed forms written with standard deviations, independently of the package."""
    members = members.astype(np.float64)
    mu = members.mean(axis=0)
    s = members.std(axis=0)  # population standard deviation
    sp = np.sqrt(np.broadcast_to(prior_var, mu.shape).astype(np.float64))
    d2 = (mu - prior_mean) ** 2
    if form == "exclusive":  # KL(q || p)
        terms = np.log(sp / s) + (s**2 + d2) / (2 * sp**2) - 0.5
    elif form == "inclusive":  # KL(p || q)
        terms = np.log(s / sp) + (sp**2 + d2) / (2 * s**2) - 0.5
    else:
        terms = np.log(s**2) + sp**2 / s**2 + d2 / s**2
    return float(terms.sum())


def as_float(x) -> float:
    return float(ops.convert_to_numpy(x))


@pytest.fixture
def members():
    rng = np.random.default_rng(7)
    # 6 members of a 3x3 conv kernel with 2 inputs and 4 outputs, spread around a shared mean
    shared = rng.normal(0.0, 0.2, size=(3, 3, 2, 4))
    return (shared + rng.normal(0.0, 0.15, size=(6, 3, 3, 2, 4))).astype(np.float32)


def test_he_prior_variance_uses_fan_out():
    assert kl.he_prior_variance((3, 3, 16, 32)) == pytest.approx(2 / (3 * 3 * 32))
    assert kl.he_prior_variance((100, 10)) == pytest.approx(2 / 10)
    assert kl.he_prior_variance((5, 7, 9)) == pytest.approx(2 / (5 * 9))  # a 1-D conv


@pytest.mark.parametrize("shape", [(5,), (), (3, 0, 2, 4)])
def test_he_prior_variance_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="kernel_shape"):
        kl.he_prior_variance(shape)


def test_pooled_moments_are_mean_and_population_variance(members):
    mean, var = kl.pooled_moments(members)
    np.testing.assert_allclose(ops.convert_to_numpy(mean), members.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(var), members.var(axis=0), rtol=1e-4)


@pytest.mark.parametrize("form", kl.FORMS)
def test_every_form_matches_the_float64_closed_form(members, form):
    prior_var = kl.he_prior_variance(members.shape[1:])
    expected = reference_kl(members, prior_var, form=form)
    got = as_float(kl.gaussian_kl(members, prior_var, form=form))
    assert got == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("form", kl.FORMS)
def test_prior_mean_and_array_prior_variance(members, form):
    # batch-norm scales: prior mean 1, one prior variance per channel
    prior_var = np.linspace(0.005, 0.05, members.shape[-1])
    expected = reference_kl(members, prior_var, prior_mean=1.0, form=form)
    got = as_float(kl.gaussian_kl(members, prior_var, prior_mean=1.0, form=form))
    assert got == pytest.approx(expected, rel=1e-4)


def test_paper_form_is_twice_inclusive_plus_constant(members):
    prior_var = kl.he_prior_variance(members.shape[1:])
    n_weights = math.prod(members.shape[1:])
    paper = as_float(kl.gaussian_kl(members, prior_var, form="paper"))
    inclusive = as_float(kl.gaussian_kl(members, prior_var, form="inclusive"))
    constant = n_weights * (math.log(prior_var) + 1.0)
    assert paper == pytest.approx(2 * inclusive + constant, rel=1e-5, abs=1e-3)


def monte_carlo_kl(mean_a, var_a, mean_b, var_b, n_samples, rng):
    """E_a[log a(w) - log b(w)] summed over weights, with its standard error."""
    w = rng.normal(mean_a, np.sqrt(var_a), size=(n_samples, *mean_a.shape))
    log_ratio = -0.5 * (np.log(var_a) + (w - mean_a) ** 2 / var_a) + 0.5 * (
        np.log(var_b) + (w - mean_b) ** 2 / var_b
    )
    per_sample = log_ratio.reshape(n_samples, -1).sum(axis=1)
    return per_sample.mean(), per_sample.std() / math.sqrt(n_samples)


@pytest.mark.parametrize("form", kl.FORMS)
def test_every_form_matches_a_monte_carlo_estimate(form):
    rng = np.random.default_rng(2018)
    members = rng.normal(0.3, 0.5, size=(4, 12)).astype(np.float32)
    prior_var, prior_mean = 0.2, 0.1
    mu = members.astype(np.float64).mean(axis=0)
    var = members.astype(np.float64).var(axis=0)
    prior_mu = np.full_like(mu, prior_mean)
    prior_v = np.full_like(var, prior_var)
    if form == "exclusive":  # KL(q || p): sample the ensemble's Gaussian q
        estimate, stderr = monte_carlo_kl(mu, var, prior_mu, prior_v, 200_000, rng)
    else:  # KL(p || q): sample the prior
        estimate, stderr = monte_carlo_kl(prior_mu, prior_v, mu, var, 200_000, rng)
        if form == "paper":
            estimate = 2 * estimate + members.shape[1] * (math.log(prior_var) + 1.0)
            stderr *= 2
    got = as_float(kl.gaussian_kl(members, prior_var, prior_mean=prior_mean, form=form))
    assert abs(got - estimate) < 5 * stderr, (got, estimate, stderr)


def test_exclusive_and_inclusive_are_zero_when_q_equals_the_prior():
    # members at +-sigma_p around the prior mean: pooled mean m, pooled variance sigma_p^2
    prior_var = 0.04
    members = np.array([[0.5 - 0.2] * 3, [0.5 + 0.2] * 3], dtype=np.float32)
    for form in ("exclusive", "inclusive"):
        value = as_float(kl.gaussian_kl(members, prior_var, prior_mean=0.5, form=form))
        assert abs(value) < 1e-5


def test_accepts_keras_variables_stacked_with_ops():
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.normal(size=(4, 3)).astype("float32")) for _ in range(3)]
    # `.value`: on TensorFlow a keras.Variable reports a string dtype that tf.stack rejects
    stacked = ops.stack([v.value for v in variables], axis=0)
    numbers = np.stack([ops.convert_to_numpy(v.value) for v in variables])
    got = as_float(kl.gaussian_kl(stacked, 0.5))
    assert got == pytest.approx(reference_kl(numbers, 0.5), rel=1e-4)


@pytest.mark.parametrize("form", kl.FORMS)
def test_value_is_a_scalar_that_compiles(members, form):
    prior_var = kl.he_prior_variance(members.shape[1:])
    eager = kl.gaussian_kl(members, prior_var, form=form)
    assert tuple(eager.shape) == ()
    compiled = backend_compiled(lambda w: kl.gaussian_kl(w, prior_var, form=form))
    got = as_float(compiled(ops.convert_to_tensor(members)))
    assert got == pytest.approx(as_float(eager), rel=1e-5)


@pytest.mark.parametrize("form", kl.FORMS)
def test_identical_members_give_finite_value_and_gradient(form):
    members = np.repeat(np.full((1, 3, 3, 2, 4), 0.05, dtype=np.float32), 4, axis=0)
    value, grad = backend_value_and_grad(lambda w: kl.gaussian_kl(w, 0.1, form=form), members)
    assert np.isfinite(value)
    assert np.all(np.isfinite(grad))


def spread_direction_derivative(form: str, spread: float, prior_var: float = 0.05) -> float:
    """d(penalty)/dt when every member moves away from the pooled mean by t times its offset.

    Negative: the penalty falls as members spread, so gradient descent pushes
    them apart. Positive: it pulls them together.
    """
    rng = np.random.default_rng(3)
    members = (spread * rng.normal(size=(8, 50))).astype(np.float32)
    _, grad = backend_value_and_grad(lambda w: kl.gaussian_kl(w, prior_var, form=form), members)
    offsets = members - members.mean(axis=0)
    return float((grad * offsets).sum())


@pytest.mark.parametrize("form", kl.FORMS)
def test_penalty_pushes_near_identical_members_apart(form):
    assert spread_direction_derivative(form, spread=1e-3) < 0


@pytest.mark.parametrize("form", kl.FORMS)
def test_penalty_pulls_widely_spread_members_in(form):
    assert spread_direction_derivative(form, spread=3.0) > 0


def test_penalty_gradient_pulls_the_mean_towards_the_prior_mean():
    rng = np.random.default_rng(4)
    members = (2.0 + 0.1 * rng.normal(size=(5, 20))).astype(np.float32)
    for form in kl.FORMS:
        _, grad = backend_value_and_grad(lambda w, f=form: kl.gaussian_kl(w, 0.5, form=f), members)
        # a gradient step moves every member's mean down towards the prior mean 0
        assert np.all(grad.sum(axis=0) > 0), form


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stacked": np.zeros((1, 3))}, "at least 2 members"),
        ({"stacked": np.zeros(())}, "at least 2 members"),
        ({"form": "kl"}, "KL form must be one of exclusive, inclusive, paper, got 'kl'"),
        ({"prior_var": 0.0}, "prior_var must be positive"),
        ({"prior_var": -1.0}, "prior_var must be positive"),
        ({"prior_var": np.array([0.1, 0.0, 0.1])}, "prior_var must be positive"),
        ({"prior_var": float("nan")}, "prior_var must be positive"),
        ({"stacked": np.array([[0.0, np.nan, 1.0], [1.0, 2.0, 3.0]])}, "1 non-finite"),
        ({"stacked": np.array([[0.0, np.inf, 1.0], [1.0, 2.0, -np.inf]])}, "2 non-finite"),
        ({"eps": 0.0}, "eps must be a positive"),
    ],
)
def test_bad_input_raises_value_error(kwargs, message):
    arguments = {"stacked": np.ones((3, 3)) * [[0], [1], [2]], "prior_var": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        kl.gaussian_kl(**arguments)


def test_the_forms_are_named_by_which_distribution_the_divergence_averages_over():
    assert kl.FORMS == ("exclusive", "inclusive", "paper")
    rng = np.random.default_rng(1)
    members = rng.normal(0.2, 0.3, size=(5, 7)).astype(np.float32)
    default = as_float(kl.gaussian_kl(members, 0.1))
    assert default == pytest.approx(as_float(kl.gaussian_kl(members, 0.1, form="exclusive")))
    # exclusive is KL(q || p), inclusive KL(p || q): the same closed form with q and p swapped
    mean, var = 0.3, 0.05
    exclusive = as_float(kl.kl_terms(mean, var, 0.2, 0.0, "exclusive"))
    inclusive = as_float(kl.kl_terms(0.0, 0.2, var, mean, "inclusive"))
    assert exclusive == pytest.approx(inclusive, rel=1e-5)
    assert as_float(kl.kl_terms(mean, var, 0.2)) == pytest.approx(exclusive)


@pytest.mark.parametrize(("old", "new"), [("forward", "exclusive"), ("reverse", "inclusive")])
def test_the_old_form_names_are_refused_with_the_new_name(old, new):
    assert kl.RENAMED_FORMS[old] == new
    stacked = np.ones((3, 3)) * [[0], [1], [2]]
    with pytest.raises(ValueError, match=f"'{old}' was renamed: use '{new}'"):
        kl.gaussian_kl(stacked, 0.1, form=old)
    with pytest.raises(ValueError, match=f"renamed: use '{new}'"):
        kl.kl_terms(np.zeros(2), np.ones(2), 0.1, form=old)
    with pytest.raises(ValueError, match=f"renamed: use '{new}'"):
        kl.check_form(old)


def test_validation_can_be_skipped_for_eager_training_loops():
    stacked = np.array([[0.0, np.nan], [1.0, 2.0]], dtype=np.float32)
    value = as_float(kl.gaussian_kl(stacked, 0.1, validate=False))
    assert math.isnan(value)
