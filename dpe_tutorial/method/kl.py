"""The pooled Gaussian KL penalty of a deep probabilistic ensemble.

An ensemble of E members is read as E samples of the approximate posterior q.
For every weight i, the E member values give a pooled mean ``mu_i`` and a
population variance ``s_i^2``: q is the product of the Gaussians
N(mu_i, s_i^2). The prior is p = N(m, sigma_p^2) per weight, with the He
variance sigma_p^2 = 2 / fan_out for kernels.

Three penalties are offered (``form``), each summed over the weights. The
names say which distribution the divergence averages over, so they cannot be
read the wrong way round ("forward" and "reverse" mean opposite things in
different texts):

``"exclusive"``
    KL(q || p) = log(sigma_p / s) + (s^2 + (mu - m)^2) / (2 sigma_p^2) - 1/2,
    the divergence that the evidence lower bound contains (mode-seeking:
    q avoids mass where p has little).
``"inclusive"``
    KL(p || q) = log(s / sigma_p) + (sigma_p^2 + (mu - m)^2) / (2 s^2) - 1/2
    (mass-covering: q must cover wherever p has mass).
``"paper"``
    log s^2 + sigma_p^2 / s^2 + (mu - m)^2 / s^2, the penalty printed in the
    DPE papers. It equals 2 KL(p || q) + log sigma_p^2 + 1 per weight: the
    inclusive divergence, although the papers write it as KL(q || p).

The penalties are written with ``keras.ops``, so they run on every Keras
backend and can sit inside a training loss. :func:`monte_carlo_kl`, a plain
numpy estimate of a Gaussian KL by sampling, checks the closed forms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from . import checks
from .choices import FORMS, RENAMED_FORMS, check_form  # noqa: F401  (importable from here)

# Added to the pooled variance: identical members (s^2 = 0) would otherwise
# give log(0) and a division by zero. Far below any He prior variance of a
# realistic layer (2 / (3 * 3 * 512) ~ 4e-4) and still representable in float32.
# It is a guard, not a clip: members start as independent draws from the prior
# (models.py), so in training s^2 is of the order of the prior variance and the
# epsilon changes the penalty by a relative 1e-8 / sigma_p^2 at most.
DEFAULT_EPS = 1e-8


def he_prior_variance(kernel_shape: Sequence[int]) -> float:
    """The He prior variance 2 / fan_out of a kernel.

    A convolution kernel ``(kh, kw, n_in, n_out)`` (Keras layout) has
    fan_out = kh * kw * n_out; a dense kernel ``(n_in, n_out)`` is the 1 x 1
    case, fan_out = n_out. 1-D and 3-D convolution kernels follow the same rule:
    the product of the spatial sizes times the number of output channels.
    """
    shape = tuple(int(d) for d in kernel_shape)
    if len(shape) < 2:
        raise ValueError(f"kernel_shape must have at least 2 dimensions (n_in, n_out), got {shape}")
    if any(d <= 0 for d in shape):
        raise ValueError(f"kernel_shape must have positive sizes, got {shape}")
    fan_out = math.prod(shape[:-2]) * shape[-1]
    return 2.0 / fan_out


def pooled_moments(stacked):
    """Mean and population variance over axis 0, the member axis.

    ``stacked`` has shape ``(members, *weight_shape)``; both results have shape
    ``weight_shape``. The variance divides by E, not E - 1: the ensemble is
    treated as the distribution itself, as in the papers.
    """
    stacked = _as_float_tensor(stacked)
    return ops.mean(stacked, axis=0), ops.var(stacked, axis=0)


def kl_terms(mean, var, prior_var, prior_mean=0.0, form: str = "exclusive"):
    """The penalty of each weight from its pooled moments, elementwise.

    ``mean`` and ``var`` are the moments of q (``var`` must already be
    positive: :func:`gaussian_kl` adds its epsilon before calling this);
    ``prior_var`` and ``prior_mean`` broadcast against them. This is the one
    place where the three formulas are written down.
    """
    check_form(form)
    mean = _as_float_tensor(mean)
    dtype = mean.dtype
    var = ops.cast(var, dtype)
    prior_var = ops.cast(prior_var, dtype)
    squared_offset = ops.square(mean - ops.cast(prior_mean, dtype))
    log_var_ratio = ops.log(var) - ops.log(prior_var)  # log(s^2 / sigma_p^2)
    if form == "exclusive":
        return 0.5 * (-log_var_ratio + (var + squared_offset) / prior_var - 1.0)
    if form == "inclusive":
        return 0.5 * (log_var_ratio + (prior_var + squared_offset) / var - 1.0)
    return ops.log(var) + (prior_var + squared_offset) / var


def gaussian_kl(
    stacked,
    prior_var,
    prior_mean=0.0,
    form: str = "exclusive",
    eps: float = DEFAULT_EPS,
    validate: bool = True,
):
    """The penalty between the pooled Gaussian of an ensemble and its prior, summed.

    Args:
        stacked: the values of one weight tensor in every member, shape
            ``(members, *weight_shape)``, members >= 2. A numpy array or a
            backend tensor (a variable stacked with ``keras.ops.stack``).
        prior_var: the prior variance, a positive number or an array that
            broadcasts to ``weight_shape``.
        prior_mean: the prior mean (0 for kernels, 1 for batch-norm scales).
        form: ``"exclusive"``, ``"inclusive"`` or ``"paper"`` (module docstring).
        eps: added to the pooled variance so identical members stay finite.
        validate: check the values for non-finite entries and the prior
            variance for non-positive entries. Checks need concrete values, so
            they are skipped while a compiled training step traces the loss.
            Pass ``False`` in eager training loops to avoid a device-to-host
            copy of the weights every step.

    Returns:
        A scalar tensor, differentiable with respect to ``stacked``.

    Raises:
        ValueError: for fewer than two members, an unknown form, a
            non-positive prior variance or eps, or non-finite values.
    """
    check_form(form)
    if not eps > 0 or not math.isfinite(eps):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    stacked = _as_float_tensor(stacked)
    shape = tuple(stacked.shape)
    if len(shape) < 1 or shape[0] is None or shape[0] < 2:
        raise ValueError(
            "stacked needs a leading member axis with at least 2 members "
            f"(the pooled variance of one member is undefined), got shape {shape}"
        )
    if validate:
        _check_prior_variance(prior_var)
        values = _concrete(stacked)
        if values is not None and not np.all(np.isfinite(values)):
            bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
            raise ValueError(f"stacked contains {bad} non-finite value(s) (NaN or inf)")
    mean, var = pooled_moments(stacked)
    return ops.sum(kl_terms(mean, var + eps, prior_var, prior_mean, form))


def _check_prior_variance(prior_var) -> None:
    values = _concrete(prior_var)
    if values is None:
        return
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(
            f"prior_var must be positive and finite, got {np.asarray(values).ravel()[:5]}"
        )


def _as_float_tensor(x):
    """A backend tensor of x, cast to the float type Keras uses for non-float input."""
    if isinstance(x, (list, tuple, int, float)):
        x = np.asarray(x)
    x = ops.convert_to_tensor(x)
    if not keras.backend.standardize_dtype(x.dtype).startswith(("float", "bfloat")):
        x = ops.cast(x, keras.backend.floatx())
    return x


def _concrete(x):
    """The numpy values of x, or None while x is symbolic (being traced by a compiler)."""
    if isinstance(x, (np.ndarray, np.generic, int, float, list, tuple)):
        return np.asarray(x, dtype=np.float64)
    try:
        return np.asarray(ops.convert_to_numpy(x), dtype=np.float64)
    except Exception:  # tracers and graph tensors refuse conversion: nothing to check yet
        return None


def monte_carlo_kl(q_mean, q_var, p_mean, p_var, n_samples: int, rng: np.random.Generator):
    """A Monte Carlo estimate of KL(q || p) between univariate Gaussians, with its standard error.

    Draws ``n_samples`` values w ~ q = N(q_mean, q_var) and averages
    log q(w) - log p(w), where p = N(p_mean, p_var). Independent of the closed
    forms in :func:`kl_terms`, so it checks them. Plain numpy in float64; not
    for training losses.

    The inclusive divergence KL(p || q) is the same call with the two Gaussians
    swapped: ``monte_carlo_kl(p_mean, p_var, q_mean, q_var, n_samples, rng)``
    samples from p. The papers' penalty is 2 KL(p || q) + log p_var + 1 per
    weight, so its estimate is twice the inclusive estimate plus that constant,
    with twice the standard error.

    Parameters
    ----------
    q_mean, q_var : float or array_like
        Mean and variance of q, the distribution that is sampled. Variances
        must be positive and finite.
    p_mean, p_var : float or array_like
        Mean and variance of p. All four broadcast together; every element of
        the broadcast shape is one independent KL estimate.
    n_samples : int
        Number of draws per element, at least 2 (the standard error needs two).
    rng : numpy.random.Generator
        The source of randomness, e.g. ``np.random.default_rng(0)``.

    Returns
    -------
    estimate, standard_error : numpy.ndarray
        Float64 arrays of the broadcast shape (0-d for scalar inputs): the
        sample mean of log q(w) - log p(w) and its standard error, the sample
        standard deviation (ddof=1) over sqrt(n_samples). Elements are
        estimated from independent draws, so the standard error of a sum of
        estimates is the root of the sum of squared standard errors.

    Raises
    ------
    ValueError
        For a non-positive or non-finite variance, a non-finite mean,
        ``n_samples`` below 2 or not an integer, or ``rng`` that is not a
        ``numpy.random.Generator``.
    """
    checks.whole_number("n_samples", n_samples, minimum=2)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            "rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )
    arrays = {}
    for name, value in (("q_mean", q_mean), ("q_var", q_var), ("p_mean", p_mean), ("p_var", p_var)):
        array = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} must be finite, got {array.ravel()[:5]}")
        if name.endswith("var") and np.any(array <= 0):
            raise ValueError(f"{name} must be positive, got {array.ravel()[:5]}")
        arrays[name] = array
    q_mean, q_var, p_mean, p_var = np.broadcast_arrays(*arrays.values())

    w = q_mean + np.sqrt(q_var) * rng.standard_normal((n_samples, *q_mean.shape))
    # log N(w; a, v) = -0.5 log(2 pi v) - (w - a)^2 / (2 v); the 2 pi cancels in the difference
    log_ratio = 0.5 * (np.log(p_var) - np.log(q_var)) + 0.5 * (
        np.square(w - p_mean) / p_var - np.square(w - q_mean) / q_var
    )
    estimate = log_ratio.mean(axis=0)
    standard_error = log_ratio.std(axis=0, ddof=1) / math.sqrt(n_samples)
    return estimate, standard_error
