"""A reference posterior for the toy MLP: NUTS on the exact Bayesian network, in JAX.

The network is the one :func:`dpe_tutorial.running.toy.train_ensemble` trains
(:func:`dpe_tutorial.method.models.mlp`: ``depth`` dense-ReLU layers of ``width``
units, then dense logits), written here as a pure function of one flat
parameter vector. The prior is the one the DPE penalty assumes: every kernel
N(0, 2 / fan_out) (:func:`dpe_tutorial.method.kl.he_prior_variance`). The penalty
leaves biases alone, which is a flat prior; a flat prior on a ReLU unit's
bias is improper (a dead unit's bias is unconstrained by any data), so the
reference gives biases the proper but weak N(0, ``BIAS_PRIOR_VARIANCE``).
The likelihood is the categorical one of the labelled points, at
temperature 1.

Sampling is NumPyro's NUTS (:func:`sample`): a well-kept, JAX-native
sampler with multi-chain runs and the split R-hat and effective sample size
diagnostics built in; a ``potential_fn`` lets the log density be written
once, here, without a probabilistic-programming model. Chains start from
independent prior draws and run vectorised on one device.

A network's weights are symmetric under permuting hidden units, so chains
may sit in equivalent modes: weight-space R-hat can then look bad while the
predictions agree. :func:`summarise` therefore reports R-hat and effective
sample size of the predictive probabilities (function space) as well.

JAX and NumPyro are imported only when sampling or predicting.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np

from ..method import checks

BIAS_PRIOR_VARIANCE = 1.0  # weak but proper; the DPE penalty leaves biases unregularised


@dataclass(frozen=True)
class Network:
    """The toy MLP: ``features`` inputs, ``depth`` hidden layers of ``width``, then logits."""

    features: int = 2
    classes: int = 2
    width: int = 32
    depth: int = 2

    def __post_init__(self) -> None:
        checks.whole_number("features", self.features, minimum=1)
        checks.whole_number("classes", self.classes, minimum=2)
        checks.whole_number("width", self.width, minimum=1)
        checks.whole_number("depth", self.depth, minimum=0)

    def kernel_shapes(self) -> list[tuple[int, int]]:
        sizes = [self.features] + [self.width] * self.depth + [self.classes]
        return list(itertools.pairwise(sizes))

    @property
    def size(self) -> int:
        """The number of parameters (kernels and biases)."""
        return sum(n_in * n_out + n_out for n_in, n_out in self.kernel_shapes())

    def prior_variances(self) -> np.ndarray:
        """The prior variance of each parameter, in the flat order of :func:`logits`."""
        from ..method import kl  # imports Keras: not before a study's input is checked

        parts = []
        for shape in self.kernel_shapes():
            parts.append(np.full(shape[0] * shape[1], kl.he_prior_variance(shape)))
            parts.append(np.full(shape[1], BIAS_PRIOR_VARIANCE))
        return np.concatenate(parts)

    def flatten(self, kernels_and_biases) -> np.ndarray:
        """One flat vector from ``[kernel_0, bias_0, kernel_1, ...]`` (a Keras model's weights)."""
        parts = [np.asarray(w, dtype=np.float64).ravel() for w in kernels_and_biases]
        flat = np.concatenate(parts)
        if flat.size != self.size:
            raise ValueError(f"{flat.size} weights given, the network has {self.size}")
        return flat


def logits(network: Network, theta, x):
    """The logits ``(n, classes)`` at inputs ``x`` for the flat parameters ``theta`` (JAX)."""
    import jax
    import jax.numpy as jnp

    offset = 0
    h = x
    layers = network.kernel_shapes()
    for index, (n_in, n_out) in enumerate(layers):
        kernel = theta[offset : offset + n_in * n_out].reshape(n_in, n_out)
        offset += n_in * n_out
        bias = theta[offset : offset + n_out]
        offset += n_out
        h = jnp.dot(h, kernel) + bias
        if index < len(layers) - 1:
            h = jax.nn.relu(h)
    return h


def log_density(network: Network, x, y):
    """The unnormalised log posterior of the flat parameters given labelled points ``(x, y)``."""
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(x, dtype=jnp.float32)
    y = jnp.asarray(y, dtype=jnp.int32)
    precision = jnp.asarray(1.0 / network.prior_variances(), dtype=jnp.float32)

    def value(theta):
        log_probs = jax.nn.log_softmax(logits(network, theta, x))
        likelihood = jnp.take_along_axis(log_probs, y[:, None], axis=1).sum()
        return likelihood - 0.5 * jnp.sum(precision * theta**2)

    return value


@dataclass(frozen=True)
class Draws:
    """Posterior draws ``theta`` ``(chains, samples, parameters)`` and how they were drawn."""

    network: Network
    theta: np.ndarray
    leapfrog_steps: np.ndarray  # (chains, samples): NUTS tree sizes
    divergences: int
    seconds: float
    settings: dict = field(default_factory=dict)


def sample(
    x,
    y,
    network: Network,
    *,
    chains: int = 4,
    warmup: int = 1000,
    samples: int = 1000,
    seed: int = 0,
    target_accept: float = 0.8,
) -> Draws:
    """NUTS draws from the posterior of ``network`` given ``(x, y)``: ``chains`` vectorised chains.

    Each chain starts from its own prior draw, adapts its step size and a
    diagonal mass matrix over ``warmup`` iterations (discarded), then keeps
    ``samples`` draws. The same arguments give the same draws on one machine.
    """
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC, NUTS

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[1] != network.features or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x must have shape (n, {network.features}) and y shape (n,), got {x.shape}, {y.shape}"
        )
    if y.size and (y.min() < 0 or y.max() >= network.classes):
        raise ValueError(f"y must lie in [0, {network.classes})")
    for name, value in (("chains", chains), ("warmup", warmup), ("samples", samples)):
        checks.whole_number(name, value, minimum=1)
    density = log_density(network, x, y)
    key_init, key_run = jax.random.split(jax.random.PRNGKey(int(seed)))
    scale = jnp.sqrt(jnp.asarray(network.prior_variances(), dtype=jnp.float32))
    start = jax.random.normal(key_init, (chains, network.size)) * scale
    mcmc = MCMC(
        NUTS(potential_fn=lambda theta: -density(theta), target_accept_prob=target_accept),
        num_warmup=warmup,
        num_samples=samples,
        num_chains=chains,
        chain_method="vectorized",
        progress_bar=False,
    )
    began = time.perf_counter()
    mcmc.run(key_run, init_params=start, extra_fields=("num_steps", "diverging"))
    theta = np.asarray(mcmc.get_samples(group_by_chain=True))
    seconds = time.perf_counter() - began
    extra = mcmc.get_extra_fields(group_by_chain=True)
    return Draws(
        network=network,
        theta=theta,
        leapfrog_steps=np.asarray(extra["num_steps"]),
        divergences=int(np.sum(extra["diverging"])),
        seconds=seconds,
        settings={
            "chains": chains,
            "warmup": warmup,
            "samples": samples,
            "seed": seed,
            "target_accept": target_accept,
        },
    )


def predictive(draws: Draws, points, chunk: int = 250) -> np.ndarray:
    """Every draw's class probabilities at ``points``: ``(chains, samples, n, classes)``."""
    import jax
    import jax.numpy as jnp

    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != draws.network.features:
        raise ValueError(
            f"points must have shape (n, {draws.network.features}), got {points.shape}"
        )

    @jax.jit
    def probabilities(theta_block, x):
        return jax.vmap(lambda t: jax.nn.softmax(logits(draws.network, t, x)))(theta_block)

    chains, n_samples, size = draws.theta.shape
    flat = jnp.asarray(draws.theta.reshape(-1, size))
    out = np.empty((chains * n_samples, len(points), draws.network.classes), np.float32)
    for start in range(0, chains * n_samples, chunk):
        out[start : start + chunk] = probabilities(flat[start : start + chunk], points)
    return out.reshape(chains, n_samples, len(points), draws.network.classes)


def split_r_hat(values) -> np.ndarray:
    """Split R-hat of each column of ``values`` ``(chains, samples, ...)`` (NumPyro's)."""
    from numpyro.diagnostics import split_gelman_rubin

    with np.errstate(invalid="ignore", divide="ignore"):  # constant columns: NaN, not a warning
        return np.asarray(split_gelman_rubin(np.asarray(values, dtype=np.float64)))


def effective_sample_size(values) -> np.ndarray:
    """The effective sample size of each column of ``values`` ``(chains, samples, ...)``."""
    from numpyro.diagnostics import effective_sample_size as ess

    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(ess(np.asarray(values, dtype=np.float64)))


@dataclass(frozen=True)
class Reference:
    """The reference predictive at some points, from the pooled draws of every chain.

    ``probs`` ``(n, classes)`` is the posterior predictive; ``expected_entropy``
    and ``mutual_information`` ``(n,)`` are BALD's two terms under the
    posterior (:mod:`dpe_tutorial.method.acquisition`); ``diagnostics`` holds the
    sampler's figures (:func:`diagnostics`).
    """

    probs: np.ndarray
    expected_entropy: np.ndarray
    mutual_information: np.ndarray
    diagnostics: dict


def summarise(draws: Draws, points, with_diagnostics: bool = True) -> Reference:
    """The reference predictive, BALD terms and (unless told not to) diagnostics of ``draws``
    at ``points``; the draws of every chain are pooled."""
    from ..method import acquisition

    per_draw = predictive(draws, points)  # (chains, samples, n, classes)
    chains, n_samples, n, classes = per_draw.shape
    as_members = per_draw.reshape(chains * n_samples, n, classes).transpose(1, 0, 2)
    return Reference(
        probs=as_members.mean(axis=1),
        expected_entropy=acquisition.expected_entropy(as_members),
        mutual_information=acquisition.mutual_information(as_members),
        diagnostics=diagnostics(draws, per_draw) if with_diagnostics else {},
    )


def chains_part(draws: Draws, chains: slice) -> Draws:
    """The draws of some of the chains (``slice(0, 2)``: the first two), with their cost unknown."""
    return Draws(
        network=draws.network,
        theta=draws.theta[chains],
        leapfrog_steps=draws.leapfrog_steps[chains],
        divergences=0,
        seconds=float("nan"),
        settings=draws.settings,
    )


def diagnostics(draws: Draws, per_draw_probs) -> dict:
    """Convergence and cost: R-hat and ESS in weight space and of the predictive probabilities."""
    weight_r_hat = split_r_hat(draws.theta)
    weight_ess = effective_sample_size(draws.theta)
    function = np.asarray(per_draw_probs)[..., 1:]  # one column per free class probability
    function_r_hat = split_r_hat(function)
    function_ess = effective_sample_size(function)
    return {
        **draws.settings,
        "parameters": draws.network.size,
        "seconds": round(draws.seconds, 1),
        "mean_leapfrog_steps": float(np.mean(draws.leapfrog_steps)),
        "divergences": draws.divergences,
        "weight_r_hat_median": float(np.median(weight_r_hat)),
        "weight_r_hat_max": float(np.max(weight_r_hat)),
        "weight_ess_min": float(np.min(weight_ess)),
        "function_r_hat_max": _ignoring_nan(np.nanmax, function_r_hat),
        "function_ess_min": _ignoring_nan(np.nanmin, function_ess),
        "function_ess_median": _ignoring_nan(np.nanmedian, function_ess),
    }


def _ignoring_nan(statistic, values) -> float:
    """``statistic`` of the values that are not NaN (constant draws give NaN R-hat); NaN if none."""
    values = np.asarray(values, dtype=np.float64)
    return float(statistic(values)) if not np.isnan(values).all() else float("nan")
