"""Closed forms of a conjugate Gaussian model, to check the ELBO identity exactly.

The model has one unknown mean theta and n observations with known noise:

    theta ~ N(m0, s0^2),        x_1, ..., x_n | theta ~ N(theta, sigma^2)  i.i.d.,

and the variational family is q(theta) = N(a, b^2). Every quantity of
variational inference is then closed form:

* the posterior p(theta | x) = N(m_n, s_n^2), with precision
  1 / s_n^2 = 1 / s0^2 + n / sigma^2 and mean
  m_n = s_n^2 (m0 / s0^2 + sum_i x_i / sigma^2) (:func:`posterior`);
* the log evidence log p(x), the log density of x ~ N(m0 1, sigma^2 I + s0^2 1 1^T)
  (:func:`log_evidence`);
* the expected log-likelihood E_q[log p(x | theta)] (:func:`expected_log_likelihood`);
* the normal log density (:func:`normal_logpdf`), for plotting q and the posterior;
* KL(q || prior) and KL(q || posterior) (:func:`kl_to_prior`,
  :func:`kl_to_posterior`, both through :func:`kl_normal`);
* the ELBO = E_q[log p(x | theta)] - KL(q || prior) (:func:`elbo`), for which
  log p(x) = ELBO(q) + KL(q || posterior) holds exactly.

Brute-force counterparts check the closed forms: the log joint on a grid of
theta (:func:`log_joint`), the evidence by the trapezoid rule on such a grid
(:func:`log_evidence_on_grid`) and a Monte Carlo ELBO (:func:`elbo_monte_carlo`).

Everything is numpy float64 and needs no Keras backend. The variational
parameters ``q_mean`` and ``q_var`` broadcast against each other, so one call
evaluates a whole grid of q. :func:`kl_normal` is the ``"exclusive"`` form of
:func:`dpe_tutorial.method.kl.kl_terms` (the KL of the ELBO) in float64 numpy: the
Keras version computes in float32 on the JAX backend, too coarse for identities
checked to 1e-10.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..method import checks

LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class GaussianModel:
    """theta ~ N(prior_mean, prior_var); x_i | theta ~ N(theta, noise_var) i.i.d.

    Args:
        prior_mean: m0, the prior mean of theta.
        prior_var: s0^2 > 0, the prior variance of theta.
        noise_var: sigma^2 > 0, the known variance of each observation.

    Raises:
        ValueError: for a non-finite mean or a non-positive or non-finite variance.
    """

    prior_mean: float = 0.0
    prior_var: float = 1.0
    noise_var: float = 1.0

    def __post_init__(self) -> None:
        for name in ("prior_mean", "prior_var", "noise_var"):
            variance = name != "prior_mean"
            value = checks.finite_number(name, getattr(self, name), 0 if variance else None, True)
            object.__setattr__(self, name, value)


def posterior(model: GaussianModel, x) -> tuple[float, float]:
    """The posterior N(m_n, s_n^2) of theta given the observations ``x``.

    Precisions add: 1 / s_n^2 = 1 / s0^2 + n / sigma^2; the mean is the
    precision-weighted average m_n = s_n^2 (m0 / s0^2 + sum(x) / sigma^2).

    Returns:
        ``(mean, var)`` as floats.
    """
    x = _check_data(x)
    var = 1.0 / (1.0 / model.prior_var + x.size / model.noise_var)
    mean = var * (model.prior_mean / model.prior_var + x.sum() / model.noise_var)
    return float(mean), float(var)


def log_evidence(model: GaussianModel, x) -> float:
    """log p(x), the log marginal likelihood with theta integrated out.

    The observations are jointly normal, x ~ N(m0 1, sigma^2 I + s0^2 1 1^T).
    Its log density, written with the sample mean xbar and the determinant
    lemma det = sigma^(2(n-1)) (sigma^2 + n s0^2), is

        -n/2 log(2 pi sigma^2) + 1/2 log(s_n^2 / s0^2)
        - sum_i (x_i - xbar)^2 / (2 sigma^2) - n (xbar - m0)^2 / (2 (sigma^2 + n s0^2)),

    where s_n^2 / s0^2 = sigma^2 / (sigma^2 + n s0^2). The centred sums avoid the
    cancellation of the textbook form sum x_i^2 / sigma^2 + m0^2 / s0^2 - m_n^2 / s_n^2.
    """
    x = _check_data(x)
    n = x.size
    noise, prior = model.noise_var, model.prior_var
    xbar = x.mean()
    scatter = np.sum(np.square(x - xbar))
    spread = noise + n * prior  # n times the variance of xbar under the evidence
    return float(
        -0.5 * n * (LOG_2PI + math.log(noise))
        + 0.5 * math.log(noise / spread)
        - 0.5 * scatter / noise
        - 0.5 * n * (xbar - model.prior_mean) ** 2 / spread
    )


def log_likelihood(model: GaussianModel, x, theta) -> np.ndarray:
    """log p(x | theta) = sum_i log N(x_i | theta, sigma^2), for every entry of ``theta``.

    Uses sum_i (x_i - theta)^2 = sum_i (x_i - xbar)^2 + n (xbar - theta)^2, so a
    large grid of theta costs no more than the data once.
    """
    x = _check_data(x)
    theta = np.asarray(theta, dtype=np.float64)
    n = x.size
    xbar = x.mean()
    squares = np.sum(np.square(x - xbar)) + n * np.square(xbar - theta)
    return -0.5 * n * (LOG_2PI + math.log(model.noise_var)) - 0.5 * squares / model.noise_var


def normal_logpdf(value, mean, var) -> np.ndarray:
    """log N(value | mean, var), elementwise; the arguments broadcast.

    Raises:
        ValueError: for a non-finite mean or a non-positive or non-finite variance.
    """
    mean, var = _check_q(mean, var, "mean", "var")
    value = np.asarray(value, dtype=np.float64)
    return -0.5 * (LOG_2PI + np.log(var) + np.square(value - mean) / var)


def log_prior(model: GaussianModel, theta) -> np.ndarray:
    """log N(theta | m0, s0^2), elementwise."""
    return normal_logpdf(theta, model.prior_mean, model.prior_var)


def log_joint(model: GaussianModel, x, theta) -> np.ndarray:
    """log p(x, theta) = log p(x | theta) + log p(theta), for every entry of ``theta``.

    The unnormalised log posterior: on a grid of theta it gives the posterior
    and the evidence by brute force.
    """
    return log_likelihood(model, x, theta) + log_prior(model, theta)


def log_evidence_on_grid(model: GaussianModel, x, theta_grid) -> float:
    """log p(x) by the trapezoid rule for the integral of p(x, theta) over ``theta_grid``.

    Works in log space: the largest log joint value is taken out before
    exponentiating, so the evidence of many observations does not underflow.
    The grid must be increasing and cover the posterior mass (a few posterior
    standard deviations either side of its mean) for the result to be accurate.

    Raises:
        ValueError: for a grid with fewer than 2 points, not strictly
            increasing, or with non-finite values.
    """
    grid = np.asarray(theta_grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size < 2:
        raise ValueError(f"theta_grid must be 1-D with at least 2 points, got shape {grid.shape}")
    if not np.all(np.isfinite(grid)):
        raise ValueError("theta_grid must contain only finite values")
    if not np.all(np.diff(grid) > 0):
        raise ValueError("theta_grid must be strictly increasing")
    values = log_joint(model, x, grid)
    top = values.max()
    weights = np.exp(values - top)
    area = np.sum(0.5 * (weights[1:] + weights[:-1]) * np.diff(grid))
    return float(top + np.log(area))


def expected_log_likelihood(model: GaussianModel, x, q_mean, q_var) -> np.ndarray:
    """E_q[log p(x | theta)] for q = N(q_mean, q_var), in closed form.

    With E_q[(x_i - theta)^2] = (x_i - a)^2 + b^2,

        E_q[log p(x | theta)] = -n/2 log(2 pi sigma^2)
                                - (sum_i (x_i - a)^2 + n b^2) / (2 sigma^2).

    ``q_mean`` and ``q_var`` broadcast against each other.
    """
    x = _check_data(x)
    q_mean, q_var = _check_q(q_mean, q_var)
    n = x.size
    xbar = x.mean()
    squares = np.sum(np.square(x - xbar)) + n * np.square(xbar - q_mean)
    return (
        -0.5 * n * (LOG_2PI + math.log(model.noise_var))
        - 0.5 * (squares + n * q_var) / model.noise_var
    )


def kl_normal(mean_q, var_q, mean_p, var_p) -> np.ndarray:
    """KL(N(mean_q, var_q) || N(mean_p, var_p)), elementwise, in float64.

        KL = 1/2 [log(var_p / var_q) + (var_q + (mean_q - mean_p)^2) / var_p - 1].

    Zero exactly when the two normals are equal, positive otherwise. This is
    the ``"exclusive"`` form of :func:`dpe_tutorial.method.kl.kl_terms` (the KL that the
    ELBO contains) in numpy, so that identities can be checked to 1e-10 on
    every Keras backend.

    Raises:
        ValueError: for non-finite arguments or non-positive variances.
    """
    mean_q, var_q = _check_q(mean_q, var_q, "mean_q", "var_q")
    mean_p, var_p = _check_q(mean_p, var_p, "mean_p", "var_p")
    return 0.5 * (np.log(var_p / var_q) + (var_q + np.square(mean_q - mean_p)) / var_p - 1.0)


def kl_to_prior(model: GaussianModel, q_mean, q_var) -> np.ndarray:
    """KL(q || p(theta)), the penalty of the ELBO, for q = N(q_mean, q_var)."""
    q_mean, q_var = _check_q(q_mean, q_var)
    return kl_normal(q_mean, q_var, model.prior_mean, model.prior_var)


def kl_to_posterior(model: GaussianModel, x, q_mean, q_var) -> np.ndarray:
    """KL(q || p(theta | x)), the divergence that maximising the ELBO minimises."""
    q_mean, q_var = _check_q(q_mean, q_var)
    post_mean, post_var = posterior(model, x)
    return kl_normal(q_mean, q_var, post_mean, post_var)


def elbo(model: GaussianModel, x, q_mean, q_var) -> np.ndarray:
    """The evidence lower bound E_q[log p(x | theta)] - KL(q || p(theta)), in closed form.

    Equals :func:`log_evidence` minus :func:`kl_to_posterior` for every q.
    ``q_mean`` and ``q_var`` broadcast against each other.
    """
    return expected_log_likelihood(model, x, q_mean, q_var) - kl_to_prior(model, q_mean, q_var)


def elbo_monte_carlo(
    model: GaussianModel, x, q_mean, q_var, n_samples: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A Monte Carlo estimate of the ELBO and its standard error.

    Draws theta_s ~ q, s = 1..S, and averages the log ratio
    log p(x, theta_s) - log q(theta_s), whose expectation under q is the ELBO.
    The standard error is the sample standard deviation (ddof=1) over sqrt(S).
    At q = posterior the log ratio is log p(x) for every sample, so the
    estimate is exact and its standard error is zero (up to rounding).

    Args:
        model: the model.
        x: the observations.
        q_mean, q_var: the parameters of q; they broadcast, and the result has
            their broadcast shape.
        n_samples: S >= 2.
        rng: a numpy ``Generator``, for reproducible draws.

    Returns:
        ``(estimate, standard_error)``, arrays of the broadcast shape of q's
        parameters (0-d for scalars).
    """
    checks.whole_number("n_samples", n_samples, minimum=2)  # 2 for a standard error
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    x = _check_data(x)
    q_mean, q_var = _check_q(q_mean, q_var)
    q_mean, q_var = np.broadcast_arrays(q_mean, q_var)
    theta = q_mean + np.sqrt(q_var) * rng.standard_normal((int(n_samples), *q_mean.shape))
    log_ratio = log_joint(model, x, theta) - normal_logpdf(theta, q_mean, q_var)
    estimate = log_ratio.mean(axis=0)
    standard_error = log_ratio.std(axis=0, ddof=1) / math.sqrt(n_samples)
    return estimate, standard_error


def _check_data(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"x must be a 1-D array of observations, got shape {x.shape}")
    if x.size == 0:
        raise ValueError("x must hold at least one observation, got an empty array")
    if not np.all(np.isfinite(x)):
        raise ValueError("x must contain only finite values (no NaN or inf)")
    return x


def _check_q(mean, var, mean_name: str = "q_mean", var_name: str = "q_var"):
    mean = np.asarray(mean, dtype=np.float64)
    var = np.asarray(var, dtype=np.float64)
    if not np.all(np.isfinite(mean)):
        raise ValueError(f"{mean_name} must be finite")
    if not np.all(np.isfinite(var)) or np.any(var <= 0):
        raise ValueError(f"{var_name} must be positive and finite")
    try:
        np.broadcast_shapes(mean.shape, var.shape)
    except ValueError:
        raise ValueError(
            f"{mean_name} of shape {mean.shape} and {var_name} of shape {var.shape} "
            "do not broadcast"
        ) from None
    return mean, var
