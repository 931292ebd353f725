"""Figures for the book's toy problems and derivations, sized for its text column.

The chapters narrate; the drawing lives here, in the colours of
:mod:`dpe_tutorial.palette`. Every function returns a
:class:`matplotlib.figure.Figure` (not shown, not attached to pyplot), so a
notebook displays it by leaving it as the last expression of a cell.

Two-moons toy (chapter 2), on a grid from :func:`dpe_tutorial.toy.plane_grid`:

================================== ===========================================
``labelled_scatter(ax, x, y)``      the labelled points, one colour per class,
                                    and optionally the pool in grey
``decision_regions(...)``           mean prediction and each member's boundary
``score_maps(...)``                 one map per acquisition score
``picks(...)``                      where each score's top-k picks lie
``loop_figure(...)``                learning curves and acquired points
``dpe_vs_plain(...)``               two ensembles' uncertainty maps side by side
================================== ===========================================

Derivations (chapters 3 and 4) and the Keras chapter (chapter 5):

================================== ===========================================
``kl_landscapes(...)``              per-weight penalty over mean and spread
``shifted_groups(...)``             seen, unseen and shifted digit images
``image_groups(groups)``            the first image of each group
``largest_deviation(a, b)``         the number a reader sees an identity hold by
================================== ===========================================

Results (chapter 7): ``random_target`` and ``labels_needed``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.colors import LinearSegmentedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import palette

# the mean prediction of two classes: class 0 blue, undecided white, class 1 orange
CLASS_MAP = LinearSegmentedColormap.from_list(
    "classes", [palette.CLASSES[0], "#f7f7f7", palette.CLASSES[1]]
)
# maps of a score: a sequential map that is colour-blind safe and prints in grey
SCORE_MAP = "viridis"
# how far above a whole number an interpolated label count may land and still count as it
WHOLE_TOLERANCE = 1e-6


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A constrained-layout figure that a notebook shows by returning it, once.

    It is made by pyplot (so the inline backend knows how to draw it) and
    closed at once (so pyplot does not show it a second time at the end of
    the cell); it stays fully usable.
    """
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=figsize, layout="constrained")
    plt.close(figure)
    return figure


def _figure(columns: int, rows: int = 1, **kwargs) -> tuple[Figure, np.ndarray]:
    sharex = kwargs.pop("sharex", False)
    sharey = kwargs.pop("sharey", False)
    figure = new_figure(palette.figsize(columns, rows, **kwargs))
    axes = figure.subplots(rows, columns, sharex=sharex, sharey=sharey, squeeze=False)
    return figure, axes


def _points(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2), got {x.shape}")
    return x


def _grid(xx, yy) -> tuple[np.ndarray, np.ndarray]:
    xx, yy = np.asarray(xx), np.asarray(yy)
    if xx.ndim != 2 or xx.shape != yy.shape:
        raise ValueError(f"xx and yy must be 2-D of one shape, got {xx.shape} and {yy.shape}")
    return xx, yy


def _plane_aspect(xx, yy) -> float:
    """Height over width of the plane the grid covers: panels drawn with equal axes."""
    width = float(np.ptp(xx))
    return float(np.ptp(yy)) / width if width > 0 else 1.0


def _on_grid(values, xx, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.size != xx.size:
        raise ValueError(f"{name} has {values.size} values, the grid {xx.size} points")
    return values.reshape(xx.shape)


def _grid_probs(probs, xx, name: str) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 3 or probs.shape[0] != xx.size:
        raise ValueError(
            f"{name} must have shape (grid points = {xx.size}, members, classes), got {probs.shape}"
        )
    return probs


def _title(name: str) -> str:
    return name.replace("_", " ")


def labelled_scatter(ax, x, y, pool=None, *, size: float = 22, legend: bool = False) -> None:
    """The labelled points ``x`` (``(n, 2)``) coloured by class ``y``; the pool in grey."""
    x = _points(x, "x")
    y = np.asarray(y)
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must be integers of shape ({x.shape[0]},), got {y.dtype} {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= len(palette.CLASSES)):
        raise ValueError(f"y must lie in [0, {len(palette.CLASSES)}), got {y.min()}..{y.max()}")
    if pool is not None:
        pool = _points(pool, "pool")
        ax.scatter(*pool.T, color=palette.colour("pool"), s=3, linewidths=0, label="pool")
    for c, colour in enumerate(palette.CLASSES):
        ax.scatter(
            *x[y == c].T,
            color=colour,
            edgecolor="black",
            linewidths=0.6,
            s=size,
            label=f"labelled, class {c}",
            zorder=3,
        )
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)


def _label_plane(axes: np.ndarray) -> None:
    for ax in axes[-1]:
        ax.set_xlabel("$x_1$")
    for ax in axes[:, 0]:
        ax.set_ylabel("$x_2$")
    for ax in axes.flat:
        ax.set_aspect("equal")


def decision_regions(xx, yy, grid_probs, x_labelled, y_labelled, pool) -> Figure:
    """Left: the mean prediction of class 1; right: each member's decision boundary.

    ``grid_probs`` are the members' probabilities on the grid, ``(n, members,
    classes)`` with ``n = xx.size``.
    """
    xx, yy = _grid(xx, yy)
    probs = _grid_probs(grid_probs, xx, "grid_probs")
    mean_class1 = probs.mean(axis=1)[:, 1].reshape(xx.shape)
    figure, axes = _figure(2, aspect=_plane_aspect(xx, yy), extra_height=1.2, sharey=True)
    left, right = axes[0]
    filled = left.contourf(xx, yy, mean_class1, levels=np.linspace(0, 1, 11), cmap=CLASS_MAP)
    left.contour(xx, yy, mean_class1, levels=[0.5], colors="black", linewidths=1.2)
    figure.colorbar(
        filled,
        ax=left,
        location="bottom",
        shrink=0.9,
        label=r"$\bar p(\mathrm{class\ 1} \mid x)$",
    )
    labelled_scatter(left, x_labelled, y_labelled)
    left.set_title("Ensemble mean prediction", fontsize="medium")
    members = probs.shape[1]
    labelled_scatter(right, x_labelled, y_labelled, pool=pool)
    for e in range(members):
        right.contour(
            xx,
            yy,
            probs[:, e, 1].reshape(xx.shape),
            levels=[0.5],
            colors=[palette.colour("vermillion")],
            linewidths=1.0,
        )
    right.set_title(f"Decision boundary of each of {members} members", fontsize="medium")
    _label_plane(axes)
    return figure


def score_maps(
    xx, yy, scores: Mapping[str, np.ndarray], x_labelled, y_labelled, pool, columns: int = 3
) -> Figure:
    """One map per score (name -> values on the grid), each with its own colour bar."""
    xx, yy = _grid(xx, yy)
    if not scores:
        raise ValueError("scores is empty: give at least one name -> values on the grid")
    rows = math.ceil(len(scores) / columns)
    aspect = _plane_aspect(xx, yy) * 1.15  # room for the colour bar under each panel
    figure, axes = _figure(columns, rows, aspect=aspect, extra_height=0.5, sharex=True, sharey=True)
    for ax, (name, values) in zip(axes.flat, scores.items(), strict=False):
        filled = ax.contourf(xx, yy, _on_grid(values, xx, name), levels=12, cmap=SCORE_MAP)
        colourbar = figure.colorbar(filled, ax=ax, location="bottom", shrink=0.9, aspect=15)
        colourbar.ax.tick_params(labelsize="small")
        colourbar.ax.xaxis.set_major_locator(MaxNLocator(4))
        labelled_scatter(ax, x_labelled, y_labelled, pool=pool, size=12)
        ax.set_title(_title(name), fontsize="medium")
    for ax in axes.flat[len(scores) :]:
        ax.set_visible(False)
    _label_plane(axes)
    return figure


def picks(
    xx, yy, grid_probs, points, picked: Mapping[str, np.ndarray], x_labelled, y_labelled, pool
) -> Figure:
    """Where each score's picks (name -> indices into ``points``) lie, over the boundary."""
    xx, yy = _grid(xx, yy)
    points = _points(points, "points")
    mean_class1 = _grid_probs(grid_probs, xx, "grid_probs").mean(axis=1)[:, 1].reshape(xx.shape)
    if not picked:
        raise ValueError("picked is empty: give at least one name -> indices")
    rows = math.ceil(len(picked) / 3)
    aspect = _plane_aspect(xx, yy)
    figure, axes = _figure(3, rows, aspect=aspect, extra_height=0.4, sharex=True, sharey=True)
    for ax, (name, chosen) in zip(axes.flat, picked.items(), strict=False):
        ax.contour(xx, yy, mean_class1, levels=[0.5], colors="black", linewidths=1.0)
        labelled_scatter(ax, x_labelled, y_labelled, pool=pool, size=12)
        ax.scatter(
            *points[np.asarray(chosen)].T,
            marker="*",
            s=90,
            color=palette.colour("pick"),
            edgecolor="black",
            linewidths=0.6,
            zorder=4,
        )
        ax.set_title(_title(name), fontsize="medium")
    for ax in axes.flat[len(picked) :]:
        ax.set_visible(False)
    _label_plane(axes)
    return figure


def loop_figure(runs: Mapping[str, object], points, first_labelled) -> Figure:
    """Learning curves of the loop's runs (name -> table of
    :func:`dpe_tutorial.toy.active_learning_curve`) and where each run's labels went."""
    points = _points(points, "points")
    first = _points(first_labelled, "first_labelled")
    if not runs:
        raise ValueError("runs is empty")
    figure = new_figure(palette.figsize(1, 1, aspect=0.42, extra_height=0.2))
    top, bottom = figure.subfigures(1, 2, width_ratios=[1, 2])
    curve = top.subplots()
    maps = bottom.subplots(1, len(runs), sharex=True, sharey=True, squeeze=False)[0]
    for index, (name, run) in enumerate(runs.items()):
        colour = palette.ROLES.get(name, palette.SERIES[index % len(palette.SERIES)])
        curve.plot(
            run["n_labeled"], run["ensemble_accuracy"], marker="o", color=colour, label=_title(name)
        )
    sizes = next(iter(runs.values()))["n_labeled"]
    curve.set(xlabel="labelled points", ylabel="test accuracy", xticks=list(sizes))
    curve.set_title("One trial", fontsize="medium")
    curve.legend(fontsize="small", loc="upper left")
    round_colours = palette.series(len(sizes))[1:]
    for ax, (name, run) in zip(maps, runs.items(), strict=True):
        ax.scatter(*points.T, color=palette.colour("pool"), s=3, linewidths=0)
        ax.scatter(*first.T, color="black", s=8, label=f"first {len(first)}")
        for r, acquired in enumerate(run["acquired"][:-1]):
            ax.scatter(
                *points[acquired].T,
                color=round_colours[r],
                edgecolor="black",
                linewidths=0.4,
                s=16,
                label=f"after round {r + 1}",
            )
        ax.set_title(f"acquired by {_title(name)}", fontsize="medium")
        ax.set_xlabel("$x_1$")
    maps[0].set_ylabel("$x_2$")
    handles, labels = maps[0].get_legend_handles_labels()
    bottom.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=len(labels),
        fontsize="small",
        frameon=False,
        handletextpad=0.1,
        columnspacing=0.8,
    )
    return figure


def dpe_vs_plain(
    xx,
    yy,
    grid_probs: Mapping[str, np.ndarray],
    x_labelled,
    y_labelled,
    scores: Sequence[str] = ("predictive_entropy", "mutual_information"),
) -> Figure:
    """Uncertainty maps of two or more ensembles (name -> members' probabilities on the grid).

    One row per score, one column per ensemble; the panels of a row share one
    colour scale and one colour bar, so the ensembles compare by colour.
    """
    from . import acquisition

    xx, yy = _grid(xx, yy)
    if len(grid_probs) < 2:
        raise ValueError(f"give at least two ensembles to compare, got {len(grid_probs)}")
    probs = {name: _grid_probs(p, xx, name) for name, p in grid_probs.items()}
    aspect = _plane_aspect(xx, yy)
    figure, axes = _figure(len(probs), len(scores), aspect=aspect, sharex=True, sharey=True)
    for row, score in zip(axes, scores, strict=True):
        values = {n: acquisition.get(score)(p).reshape(xx.shape) for n, p in probs.items()}
        top = max(float(v.max()) for v in values.values())
        levels = np.linspace(0.0, top if top > 0 else 1.0, 11)
        for ax, (name, value) in zip(row, values.items(), strict=True):
            filled = ax.contourf(xx, yy, value, levels=levels, cmap=SCORE_MAP)
            labelled_scatter(ax, x_labelled, y_labelled, size=12)
            ax.set_title(f"{name}: {_title(score)}", fontsize="medium")
        figure.colorbar(filled, ax=row, label="nats", shrink=0.9, format="%.2f")
    _label_plane(axes)
    return figure


def largest_deviation(actual, expected) -> float:
    """``max |actual - expected|``: the one number that shows an identity holds."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    try:
        difference = np.abs(actual - expected)
    except ValueError as error:
        raise ValueError(
            f"actual {actual.shape} and expected {expected.shape} do not broadcast"
        ) from error
    if difference.size == 0:
        raise ValueError("nothing to compare: the arrays are empty")
    return float(difference.max())


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
    figure, axes = _figure(len(landscapes), aspect=1.1, sharey=True)
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


def shifted_groups(train_images, test_images, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Seen, unseen and three kinds of unfamiliar images, as many of each as test images.

    ``seen`` are training images drawn without replacement, ``unseen`` the test
    images, ``shuffled`` the test images with their pixels permuted,
    ``inverted`` their negatives and ``noise`` uniform random pixels. All are
    ``uint8`` of the test images' shape.
    """
    train_images, test_images = np.asarray(train_images), np.asarray(test_images)
    for name, images in (("train_images", train_images), ("test_images", test_images)):
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(
                f"{name} must be uint8 (n, height, width, channels), got "
                f"{images.dtype} {images.shape}"
            )
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(
            f"image shapes differ: {train_images.shape[1:]} and {test_images.shape[1:]}"
        )
    n = len(test_images)
    if len(train_images) < n:
        raise ValueError(f"need at least {n} training images, got {len(train_images)}")
    flat = test_images.reshape(n, -1)
    return {
        "seen": train_images[rng.choice(len(train_images), size=n, replace=False)],
        "unseen": test_images,
        "shuffled": rng.permuted(flat, axis=1).reshape(test_images.shape),
        "inverted": 255 - test_images,
        "noise": rng.integers(0, 256, size=test_images.shape, dtype=np.uint8),
    }


def image_groups(groups: Mapping[str, np.ndarray], index: int = 0) -> Figure:
    """Image ``index`` of each group (name -> uint8 images), dark = high intensity."""
    if not groups:
        raise ValueError("groups is empty")
    figure, axes = _figure(len(groups), aspect=1.0, extra_height=0.3)
    for ax, (name, images) in zip(axes[0], groups.items(), strict=True):
        images = np.asarray(images)
        if images.ndim != 4:
            raise ValueError(
                f"group {name!r} must be (n, height, width, channels), got {images.shape}"
            )
        picture = images[index] if images.shape[-1] == 3 else images[index, ..., 0]
        ax.imshow(picture, cmap="gray_r", vmin=0, vmax=255)
        ax.set_title(name, fontsize="medium")
        ax.axis("off")
    return figure


def random_target(runs, metric: str = "ensemble_accuracy") -> tuple[float, int] | None:
    """The mean ``metric`` of the first random-acquisition run at its last labelled-set size.

    Returns ``(target, labels)`` or ``None`` when no run acquires at random.
    Runs are :class:`dpe_tutorial.plots.Run`.
    """
    for run in runs:
        if run.method == "random":
            if metric not in run.results:
                raise ValueError(f"the random run has no column {metric!r}")
            curve = run.results.groupby("n_labeled")[metric].mean()
            return float(curve.iloc[-1]), int(curve.index[-1])
    return None


def labels_needed(runs, target: float, metric: str = "ensemble_accuracy"):
    """:func:`dpe_tutorial.plots.labels_to_reach` in whole labels.

    The crossing is interpolated between rounds, so the label counts come out
    fractional; a run needs the next whole label, so they are rounded up, and
    ``labels_saved`` is recomputed from the rounded counts (NaN stays NaN).
    """
    from . import plots

    table = plots.labels_to_reach(runs, target=target, metric=metric)
    exact = table["labels"].to_numpy(np.float64)
    baseline = exact + table["labels_saved"].to_numpy(np.float64)  # the random run's, or NaN
    # a whole label count, not one more when interpolation lands a rounding error above it
    labels = np.ceil(exact - WHOLE_TOLERANCE)
    table["labels"] = labels
    table["labels_saved"] = np.ceil(baseline - WHOLE_TOLERANCE) - labels
    return table.astype({"labels": "Int64", "labels_saved": "Int64"}, errors="ignore")


# -- chapter 3: the conjugate Gaussian model -----------------------------------


def conjugate_densities(model, x, q: tuple[float, float]) -> Figure:
    """Prior, rescaled likelihood, posterior and a Gaussian ``q = (mean, variance)``.

    ``model`` is a :class:`dpe_tutorial.conjugate.GaussianModel`, ``x`` the
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
    figure, axes = _figure(1, aspect=0.45)
    ax = axes[0, 0]
    for role, density, style, label in curves:
        ax.plot(theta, density, style, color=palette.colour(role), lw=2, label=label)
    ax.plot(x, np.zeros_like(x), "|", color="black", ms=12, mew=1.5, label="measurements $x_i$")
    ax.set(xlabel=r"$\theta$", ylabel="density")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
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
    figure, axes = _figure(1, aspect=0.55)
    ax = axes[0, 0]
    filled = ax.contourf(a, log_b, elbo, levels=levels, cmap=SCORE_MAP)
    lines = ax.contour(a, log_b, elbo, levels=levels[1:-1], colors="white", linewidths=0.8)
    ax.clabel(
        lines,
        fmt={lv: f"gap {g:g}" for lv, g in zip(levels[1:-1], gaps[::-1], strict=True)},
        fontsize="small",
    )
    ax.plot(
        *posterior,
        marker="*",
        ms=13,
        color=palette.colour("vermillion"),
        mec="black",
        ls="none",
        label=r"posterior $(m_n, \log s_n)$",
    )
    ax.plot(
        *prior,
        marker="s",
        ms=8,
        color=palette.colour("sky blue"),
        mec="black",
        ls="none",
        label=r"prior $(m_0, \log \sigma_p)$",
    )
    colourbar = figure.colorbar(filled, ax=ax, label="ELBO (nats)")
    colourbar.set_ticks(levels[1:], labels=[f"gap {g:g}" for g in gaps[::-1]] + [r"$\log p(x)$"])
    ax.set(xlabel="mean $a$ of $q$", ylabel=r"$\log b$ (log std. of $q$)")
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=2, fontsize="small", frameon=False)
    return figure


def elbo_gap(a, elbo, kl, log_evidence, posterior_mean) -> Figure:
    """Along a slice of ``q``'s mean: the ELBO under ``log p(x)``, and the gap against the KL."""
    a, elbo, kl = (np.asarray(v, dtype=np.float64) for v in (a, elbo, kl))
    if not (a.ndim == 1 and a.shape == elbo.shape == kl.shape):
        raise ValueError(
            f"a, elbo and kl must be 1-D of one shape: {a.shape}, {elbo.shape}, {kl.shape}"
        )
    figure, axes = _figure(2, aspect=0.8)
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
    figure, axes = _figure(2, aspect=0.8)
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


def kl_slices(t, slices: Mapping[str, np.ndarray], near=(0.2, 3.0)) -> Figure:
    """The penalty minus its minimum at ``mu = m`` against the spread ``t = s / sigma_p``.

    Left: near the minimum, linear axes (``near`` bounds ``t``); right:
    log-log, with the power laws ``1/(2 t^2)`` and ``t^2 / 2`` dotted.
    """
    t = np.asarray(t, dtype=np.float64)
    if t.ndim != 1 or t.size < 2 or (t <= 0).any():
        raise ValueError("t must be a 1-D array of positive spreads")
    figure, axes = _figure(2, aspect=0.85)
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
    figure, axes = _figure(columns, aspect=1.0, width=palette.MAX_WIDTH)
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


# -- chapter 5: two ensembles on the digits --------------------------------------


def training_curves(histories: Mapping[str, Mapping[str, Sequence[float]]]) -> Figure:
    """Cross-entropy, KL penalty and training accuracies per epoch, one colour per model.

    ``histories`` maps a model's name (``"DPE"``, ``"plain"``) to its Keras
    ``History.history``.
    """
    if not histories:
        raise ValueError("histories is empty")
    figure, axes = _figure(3, aspect=0.95)
    cross_entropy, penalty, accuracy = axes[0]
    for index, (name, history) in enumerate(histories.items()):
        colour = palette.ROLES.get(name.lower(), palette.SERIES[index % len(palette.SERIES)])
        epochs = np.arange(1, len(history["cross_entropy"]) + 1)
        cross_entropy.plot(epochs, history["cross_entropy"], color=colour, marker=".", label=name)
        penalty.plot(epochs, history["kl"], color=colour, marker=".", label=name)
        accuracy.plot(epochs, history["ensemble_accuracy"], color=colour, label=f"{name}, ensemble")
        accuracy.plot(
            epochs, history["member_accuracy"], "--", color=colour, label=f"{name}, member"
        )
    cross_entropy.set(title="cross-entropy (sum)", ylabel="nats")
    penalty.set(title="KL penalty (no β)", ylabel="nats", yscale="log")
    accuracy.set(title="training accuracy", ylim=(0.5, 1.01))
    for ax in axes[0]:
        ax.set_xlabel("epoch")
        ax.title.set_fontsize("medium")
        ax.grid(alpha=0.3)
    cross_entropy.legend(fontsize="small")
    figure.legend(
        *accuracy.get_legend_handles_labels(), loc="outside lower center", ncols=4, fontsize="small"
    )
    return figure


def score_histograms(scores, model: str, groups: Sequence[str], columns: Sequence[str]) -> Figure:
    """Per-image scores of one model, a step histogram per group.

    ``scores`` is a table with the columns ``model``, ``group`` and each of
    ``columns``.
    """
    missing = {"model", "group", *columns} - set(scores.columns)
    if missing:
        raise ValueError(f"scores lacks the columns {sorted(missing)}")
    chosen = scores[scores["model"] == model]
    if chosen.empty:
        raise ValueError(f"no scores of model {model!r}")
    figure, axes = _figure(len(columns), aspect=0.75)
    colours = palette.series(len(groups))
    for ax, score in zip(axes[0], columns, strict=True):
        bins = np.linspace(0, chosen[score].max(), 30)
        for colour, group in zip(colours, groups, strict=True):
            values = chosen[chosen["group"] == group][score]
            ax.hist(values, bins=bins, histtype="step", lw=1.8, color=colour, label=group)
        ax.set(xlabel=f"{score} (nats)", ylabel="images")
        ax.set_title(f"{model}: {score}", fontsize="medium")
    axes[0, -1].legend(fontsize="small")
    return figure


def ranked_images(images, labels, votes, scores, k: int = 6) -> Figure:
    """The ``k`` images with the highest and the ``k`` with the lowest score.

    Each is titled with its label, the members' votes and its score;
    ``images`` are ``(n, height, width, 1)``, ``votes`` ``(n, members)``.
    """
    from . import acquisition

    images, votes, scores = np.asarray(images), np.asarray(votes), np.asarray(scores)
    labels = np.asarray(labels)
    n = len(images)
    if images.ndim != 4 or votes.ndim != 2 or not (len(labels) == len(votes) == len(scores) == n):
        raise ValueError(
            f"images (n, h, w, c), labels (n,), votes (n, members) and scores (n,) must agree, "
            f"got {images.shape}, {labels.shape}, {votes.shape}, {scores.shape}"
        )
    figure, axes = _figure(k, 2, aspect=1.0, extra_height=0.75)
    rows = [("most", acquisition.select(scores, k)), ("least", acquisition.select(-scores, k))]
    for row, (title, chosen) in zip(axes, rows, strict=True):
        for ax, i in zip(row, chosen, strict=True):
            ax.imshow(images[i, ..., 0], cmap="gray_r", vmin=0, vmax=255)
            ax.set_title(
                f"label {labels[i]}\nvotes {''.join(map(str, votes[i]))}\n{scores[i]:.2f} nats",
                fontsize="small",
            )
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(f"{title} MI")
    return figure


def group_bars(mean_scores, columns: Sequence[str]) -> Figure:
    """Mean scores per group (rows) and model (the second column level), one panel per score."""
    figure, axes = _figure(len(columns), aspect=0.75)
    for ax, score in zip(axes[0], columns, strict=True):
        table = mean_scores[score]
        colours = [palette.ROLES.get(str(m).lower(), "grey") for m in table.columns]
        table.plot.bar(ax=ax, color=colours, rot=30, width=0.75)
        ax.set(xlabel="", ylabel=f"{score} (nats)")
        ax.set_title(f"mean {score}", fontsize="medium")
        ax.legend(title="ensemble", fontsize="small", title_fontsize="small")
    return figure


def spread_bars(spreads) -> Figure:
    """RMS member spread over the prior standard deviation, per tensor (rows) and model."""
    figure, axes = _figure(1, aspect=0.55)
    ax = axes[0, 0]
    positions = np.arange(len(spreads))
    height = 0.8 / len(spreads.columns)
    for index, model in enumerate(spreads.columns):
        colour = palette.ROLES.get(str(model).lower(), palette.SERIES[index])
        offset = (index - (len(spreads.columns) - 1) / 2) * height
        ax.barh(positions + offset, spreads[model], height=height, color=colour, label=model)
    ax.axvline(1.0, color="black", ls="--", lw=1, label="prior std")
    ax.set_yticks(positions, spreads.index)
    ax.invert_yaxis()
    ax.set_xlabel("RMS member spread / prior standard deviation")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return figure


# -- chapters 6 and 7: configurations and results ---------------------------------

# significant digits of the numbers in a configuration table: enough for any
# learning rate, and no float32 noise such as 0.05000000074505806
CONFIG_DIGITS = 6


def config_table(configs) -> object:
    """One column per config (its ``method``), one row per field, as readable text.

    Floats are shown with :data:`CONFIG_DIGITS` significant digits, ``None``
    as an empty cell and lists joined by commas.
    """
    import pandas as pd

    columns = {}
    for config in configs:
        shown = {}
        for key, value in config.to_dict().items():
            if isinstance(value, float):
                shown[key] = f"{value:.{CONFIG_DIGITS}g}"
            elif value is None:
                shown[key] = ""
            elif isinstance(value, (list, tuple)):
                shown[key] = ", ".join(map(str, value))
            else:
                shown[key] = str(value)
        columns[config.method] = shown
    if not columns:
        raise ValueError("configs is empty")
    return pd.DataFrame(columns)


def run_names(folders, root) -> list[str]:
    """The results folders relative to ``root`` (no path of the machine that built them)."""
    from pathlib import Path

    root = Path(root).resolve()
    names = []
    for folder in folders:
        folder = Path(folder).resolve()
        try:
            names.append(folder.relative_to(root).as_posix())
        except ValueError as error:
            raise ValueError(f"{folder.name} is not under the results root") from error
    return names


def trials_legend(ax, runs) -> None:
    """Title the legend of :func:`dpe_tutorial.plots.learning_curves` by what it shows.

    With a single trial per run there is no band, so the title says
    "one trial" instead of naming a band that is not drawn.
    """
    legend = ax.get_legend()
    if legend is None:
        raise ValueError("the axes have no legend: draw the learning curves first")
    trials = {int(run.results["trial"].nunique()) for run in runs}
    if trials == {1}:
        legend.set_title("one trial per method")
    else:
        legend.set_title(f"mean over {'/'.join(map(str, sorted(trials)))} trials, band: min..max")


def learning_curves_row(
    runs, metrics: Sequence[str], titles: Sequence[str] | None = None
) -> Figure:
    """:func:`dpe_tutorial.plots.learning_curves` of each metric side by side, one legend below.

    The legend sits under the panels, where it covers no curve, and its title
    says whether bands are drawn (see :func:`trials_legend`).
    """
    from . import plots

    if not metrics:
        raise ValueError("metrics is empty")
    titles = list(titles) if titles is not None else [plots.metric_name(m) for m in metrics]
    if len(titles) != len(metrics):
        raise ValueError(f"{len(metrics)} metrics but {len(titles)} titles")
    figure, axes = _figure(len(metrics), aspect=0.75)
    for ax, metric, title in zip(axes[0], metrics, titles, strict=True):
        plots.learning_curves(runs, metric, ax=ax)
        ax.set_title(title, fontsize="medium")
        lines = ax.get_lines()
        if len(lines) <= len(palette.SERIES):  # the book's palette, in the same order
            for line, colour in zip(lines, palette.series(len(lines)), strict=True):
                line.set_color(colour)
            for band, colour in zip(ax.collections, palette.series(len(lines)), strict=False):
                band.set_facecolor(colour)
    trials_legend(axes[0, 0], runs)
    title = axes[0, 0].get_legend().get_title().get_text()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    for ax in axes[0]:
        ax.get_legend().remove()
    figure.legend(
        handles,
        labels,
        loc="outside lower center",
        title=title,
        fontsize="small",
        title_fontsize="small",
        ncols=1 if max(map(len, labels)) > 40 else 2,
    )
    return figure
