"""Figures of the derivations: the conjugate Gaussian (chapter 3), the pooled penalty (chapter 4).

Sized for the book's text column, in the colours of :mod:`dpe_tutorial.figures.palette`;
every function returns a :class:`matplotlib.figure.Figure`, as in
:mod:`dpe_tutorial.book.illustrations`.

================================== ===========================================
``conjugate_densities(...)``        prior, likelihood, posterior and a ``q``
``elbo_landscape(...)``             the ELBO over ``q``'s mean and spread
``elbo_gap(...)``                   the gap under the log evidence is the KL
``pooled_weights(...)``             member values and their pooled Gaussian
``kl_landscapes(...)``              per-weight penalty over mean and spread
``kl_slices(...)``                  the penalty against the spread at the mean
``gradient_flow(...)``              where each penalty pulls mean and spread
================================== ===========================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from matplotlib import patheffects
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..figures import palette
from .illustrations import SCORE_MAP, panels

# -- chapter 3: the conjugate Gaussian model -----------------------------------


def conjugate_densities(model, x, q: tuple[float, float]) -> Figure:
    """Prior, rescaled likelihood, posterior and a Gaussian ``q = (mean, variance)``.

    ``model`` is a :class:`dpe_tutorial.book.conjugate.GaussianModel`, ``x`` the
    measurements (1-D).
    """
    from . import conjugate

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size < 1:
        raise ValueError(f"x must be a non-empty 1-D array, got shape {x.shape}")
    if len(q) != 2 or not q[1] > 0:
        raise ValueError(f"q must be (mean, variance > 0), got {q!r}")
    low, high = min(x.min(), model.prior_mean - 3, q[0] - 3 * math.sqrt(q[1])), x.max() + 1.5
    theta = np.linspace(low, high, 801)
    likelihood = np.exp(
        conjugate.log_likelihood(model, x, theta) - conjugate.log_likelihood(model, x, x.mean())
    )
    likelihood /= likelihood.sum() * (theta[1] - theta[0])
    posterior = np.exp(conjugate.log_joint(model, x, theta) - conjugate.log_evidence(model, x))
    curves = [
        ("prior", np.exp(conjugate.log_prior(model, theta)), "--", r"prior $p(\theta)$"),
        ("likelihood", likelihood, ":", r"likelihood $p(x \mid \theta)$, rescaled"),
        ("posterior", posterior, "-", r"posterior $p(\theta \mid x)$"),
        (
            "q",
            np.exp(conjugate.normal_logpdf(theta, *q)),
            "-.",
            rf"$q = \mathcal{{N}}({q[0]:g}, {q[1]:g})$",
        ),
    ]
    figure, axes = panels(1, aspect=0.45)
    ax = axes[0, 0]
    for role, density, style, label in curves:
        ax.plot(theta, density, style, color=palette.colour(role), lw=2, label=label)
    ax.plot(x, np.zeros_like(x), "|", color="black", ms=12, mew=1.5, label="measurements $x_i$")
    ax.set(xlabel=r"$\theta$", ylabel="density")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return figure


def elbo_landscape(
    a, log_b, elbo, log_evidence, posterior, prior, gaps=(0.05, 0.25, 1, 3, 10, 30)
) -> Figure:
    """The ELBO over ``q = N(a, b^2)`` (``elbo`` of shape ``(len(log_b), len(a))``).

    Filled bands between the contours ``log p(x) - gap``, labelled by their
    gap; ``posterior`` and ``prior`` are ``(mean, log standard deviation)``.
    """
    a, log_b, elbo = (np.asarray(v, dtype=np.float64) for v in (a, log_b, elbo))
    if elbo.shape != (log_b.size, a.size):
        raise ValueError(f"elbo must have shape {(log_b.size, a.size)}, got {elbo.shape}")
    gaps = np.sort(np.asarray(gaps, dtype=np.float64))
    levels = np.concatenate(
        [
            [min(elbo.min(), log_evidence - gaps[-1]) - 1e-9],
            log_evidence - gaps[::-1],
            [log_evidence],
        ]
    )
    figure, axes = panels(1, aspect=0.55)
    ax = axes[0, 0]
    filled = ax.contourf(a, log_b, elbo, levels=levels, cmap=SCORE_MAP)
    lines = ax.contour(a, log_b, elbo, levels=levels[1:-1], colors="white", linewidths=0.8)
    labels = ax.clabel(
        lines,
        fmt={lv: f"gap {g:g}" for lv, g in zip(levels[1:-1], gaps[::-1], strict=True)},
        fontsize="small",
    )
    for label in labels:  # white with a dark rim: readable on the dark and the light bands
        label.set_path_effects([patheffects.withStroke(linewidth=2.5, foreground="black")])
    for point, marker, size, colour, label in (
        (posterior, "*", 13, "vermillion", r"posterior $(m_n, \log s_n)$"),
        (prior, "s", 8, "sky blue", r"prior $(m_0, \log \sigma_p)$"),
    ):
        ax.plot(
            *point,
            marker=marker,
            ms=size,
            color=palette.colour(colour),
            mec="black",
            ls="none",
            label=label,
        )
    colourbar = figure.colorbar(filled, ax=ax, label="ELBO (nats)")
    colourbar.set_ticks(levels[1:], labels=[f"gap {g:g}" for g in gaps[::-1]] + [r"$\log p(x)$"])
    ax.set(xlabel="mean $a$ of $q$", ylabel=r"$\log b$ (log std. of $q$)")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2, frameon=False)
    return figure


def elbo_gap(a, elbo, kl, log_evidence, posterior_mean) -> Figure:
    """Along a slice of ``q``'s mean: the ELBO under ``log p(x)``, and the gap against the KL."""
    a, elbo, kl = (np.asarray(v, dtype=np.float64) for v in (a, elbo, kl))
    if not (a.ndim == 1 and a.shape == elbo.shape == kl.shape):
        raise ValueError(
            f"a, elbo and kl must be 1-D of one shape: {a.shape}, {elbo.shape}, {kl.shape}"
        )
    figure, axes = panels(2, aspect=0.8)
    left, right = axes[0]
    left.axhline(log_evidence, color="black", ls="--", label=r"$\log p(x)$")
    left.plot(a, elbo, color=palette.colour("blue"), lw=2, label="ELBO$(q)$")
    left.fill_between(
        a, elbo, log_evidence, color=palette.colour("sky blue"), alpha=0.35, label="gap"
    )
    left.axvline(posterior_mean, color=palette.colour("bluish green"), ls=":", label="$m_n$")
    left.set(xlabel="mean $a$ of $q$ ($b = s_n$)", ylabel="nats")
    left.set_title("ELBO below the log evidence", fontsize="medium")
    figure.legend(
        *left.get_legend_handles_labels(), loc="outside lower left", ncols=4, fontsize="small"
    )
    right.plot(
        a, log_evidence - elbo, color=palette.colour("blue"), lw=2, label=r"$\log p(x) - $ ELBO"
    )
    right.plot(
        a[::6],
        kl[::6],
        "o",
        color=palette.colour("vermillion"),
        ms=5,
        mfc="none",
        label=r"KL$(q \,\|\, p(\theta \mid x))$",
    )
    right.set(xlabel="mean $a$ of $q$ ($b = s_n$)", ylabel="nats")
    right.set_title("The gap is the KL", fontsize="medium")
    right.legend(fontsize="small", loc="upper center")
    return figure


# -- chapter 4: the pooled Gaussian and its penalty ----------------------------


def pooled_weights(stacked, prior_var: float, shown: int = 12) -> Figure:
    """Left: the member values of the first ``shown`` weights and their pooled Gaussian;
    right: the pooled spread of every weight over the prior standard deviation.

    ``stacked`` holds one tensor's values per member, ``(members, ...)``.
    """
    stacked = np.asarray(stacked, dtype=np.float64)
    if stacked.ndim < 2 or stacked.shape[0] < 2:
        raise ValueError(f"stacked must be (members >= 2, ...), got {stacked.shape}")
    if not prior_var > 0:
        raise ValueError(f"prior_var must be positive, got {prior_var!r}")
    flat = stacked.reshape(stacked.shape[0], -1)
    index = np.arange(min(shown, flat.shape[1]))
    figure, axes = panels(2, aspect=0.8)
    members, spread = axes[0]
    for e in range(flat.shape[0]):
        members.scatter(
            index,
            flat[e, index],
            s=10,
            color=palette.colour("pool"),
            zorder=2,
            label=f"the {flat.shape[0]} member values" if e == 0 else None,
        )
    members.errorbar(
        index,
        flat[:, index].mean(axis=0),
        yerr=flat[:, index].std(axis=0),
        fmt="o",
        ms=4,
        color=palette.colour("blue"),
        capsize=3,
        zorder=3,
        label=r"pooled $\mu_i \pm s_i$",
    )
    members.axhline(0.0, color="black", linewidth=0.6)
    members.set(xlabel=f"weight index $i$ (first {index.size})", ylabel="weight value")
    members.xaxis.set_major_locator(MaxNLocator(integer=True))
    members.set_title("Member values, one Gaussian each", fontsize="medium")
    members.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize="small", ncols=2, frameon=False
    )
    ratio = flat.std(axis=0) / math.sqrt(prior_var)
    spread.hist(ratio, bins=30, color=palette.colour("blue"), alpha=0.8)
    spread.axvline(1.0, color="black", linestyle="--", label=r"$s_i = \sigma_p$")
    spread.set(xlabel=r"pooled spread $s_i / \sigma_p$", ylabel="number of weights")
    spread.set_title(f"Spread of all {ratio.size} weights", fontsize="medium")
    spread.legend(loc="upper left", fontsize="small")
    return figure


def kl_landscapes(
    u, t, landscapes: Mapping[str, np.ndarray], minimum: Mapping[str, float], decades=(-3, 3)
) -> Figure:
    """Per-weight penalty minus its minimum over the pooled mean ``u`` and spread ``t``.

    ``u`` (``(n_u,)``, in prior standard deviations from the prior mean) and
    ``t`` (``(n_t,)``, spread over the prior standard deviation) span the
    plane; ``landscapes`` maps a form to its values ``(n_t, n_u)``. One colour
    per decade from ``10**decades[0]`` to ``10**decades[1]`` nats, on a
    logarithmic colour bar, with the minimum marked by a star.
    """
    u, t = np.asarray(u, dtype=np.float64), np.asarray(t, dtype=np.float64)
    if u.ndim != 1 or t.ndim != 1:
        raise ValueError(f"u and t must be 1-D, got {u.shape} and {t.shape}")
    if not landscapes:
        raise ValueError("landscapes is empty")
    levels = np.logspace(decades[0], decades[1], decades[1] - decades[0] + 1)
    figure, axes = panels(len(landscapes), aspect=1.1, sharey=True)
    for ax, (form, values) in zip(axes[0], landscapes.items(), strict=True):
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (t.size, u.size):
            raise ValueError(
                f"landscape {form!r} must have shape {(t.size, u.size)}, got {values.shape}"
            )
        excess = np.clip(values - minimum[form], levels[0], levels[-1])
        filled = ax.contourf(u, t, excess, levels=levels, norm=LogNorm(), cmap=SCORE_MAP)
        row, col = np.unravel_index(np.argmin(values), values.shape)
        ax.plot(u[col], t[row], marker="*", ms=12, color="white", mec="black", ls="none")
        ax.set_yscale("log")
        ax.set_xlabel(r"$(\mu - m) / \sigma_p$")
        ax.set_title(f'"{form}"', fontsize="medium")
    axes[0, 0].set_ylabel(r"spread $s / \sigma_p$")
    figure.colorbar(filled, ax=axes[0], label="penalty − minimum (nats)", shrink=0.9)
    return figure


def kl_slices(t, slices: Mapping[str, np.ndarray], near=(0.2, 3.0)) -> Figure:
    """The penalty minus its minimum at ``mu = m`` against the spread ``t = s / sigma_p``.

    Left: near the minimum, linear axes (``near`` bounds ``t``); right:
    log-log, with the power laws ``1/(2 t^2)`` and ``t^2 / 2`` dotted.
    """
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1 or t.size < 2 or (t <= 0).any():
        raise ValueError("t must be a 1-D array of positive spreads")
    figure, axes = panels(2, aspect=0.85)
    linear, loglog = axes[0]
    inside = (t > near[0]) & (t < near[1])
    for form, values in slices.items():
        values = np.asarray(values, dtype=np.float64)
        if values.shape != t.shape:
            raise ValueError(f"slice {form!r} must have shape {t.shape}, got {values.shape}")
        style = "--" if form == "paper" else "-"
        linear.plot(t[inside], values[inside], style, color=palette.colour(form), label=form)
        loglog.loglog(t, np.maximum(values, 1e-6), style, color=palette.colour(form), label=form)
    loglog.loglog(t, 0.5 / t**2, ":", color="grey", label=r"$1/(2t^2)$, $t^2/2$")
    loglog.loglog(t, 0.5 * t**2, ":", color="grey")
    loglog.set_ylim(1e-4, 1e5)
    linear.axvline(1.0, color="black", linewidth=0.6)
    for ax, title in ((linear, "near the minimum"), (loglog, "log-log")):
        ax.set(xlabel=r"spread $t = s / \sigma_p$", ylabel="penalty − minimum (nats)")
        ax.set_title(f"Slice at $\\mu = m$, {title}", fontsize="medium")
        ax.legend(fontsize="small", loc="upper center")
    return figure


def gradient_flow(u, t, fields: Mapping[str, np.ndarray], u_held, best_spread) -> Figure:
    """Streamlines of minus the gradient of each penalty in ``fields`` (form -> values
    ``(len(t), len(u))`` on the linear grid ``u``, ``t``), and the best spread per held mean.

    ``best_spread`` maps a form to the best ``s / sigma_p`` at each mean in ``u_held``.
    """
    u, t = np.asarray(u, dtype=np.float64), np.asarray(t, dtype=np.float64)
    columns = len(fields) + 1
    figure, axes = panels(columns, aspect=1.0, width=palette.MAX_WIDTH)
    uu, tt = np.meshgrid(u, t)
    for ax, (form, values) in zip(axes[0], fields.items(), strict=False):
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (t.size, u.size):
            raise ValueError(
                f"field {form!r} must have shape {(t.size, u.size)}, got {values.shape}"
            )
        d_dt, d_du = np.gradient(values, t, u)  # rows vary t, columns vary u
        ax.streamplot(uu, tt, -d_du, -d_dt, color=palette.colour(form), density=0.9, linewidth=0.8)
        ax.plot(0.0, 1.0, marker="*", ms=13, color="black", mec="white", ls="none")
        ax.set(xlabel=r"$(\mu - m) / \sigma_p$", ylabel=r"$s / \sigma_p$")
        ax.set_title(f'flow, "{form}"', fontsize="medium")
    best = axes[0, -1]
    for form, values in best_spread.items():
        best.plot(
            u_held, values, "--" if form == "paper" else "-", color=palette.colour(form), label=form
        )
    best.set(xlabel=r"held mean $(\mu - m) / \sigma_p$", ylabel=r"best $s / \sigma_p$")
    best.set_title("The spread each form pulls to", fontsize="medium")
    best.legend(fontsize="small", loc="upper center")
    return figure
