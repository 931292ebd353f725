"""Figures for the book's toy problem (chapter 2), sized for its text column.

The chapters narrate; the drawing lives here, in the colours of
:mod:`dpe_tutorial.figures.palette`. Every function returns a
:class:`matplotlib.figure.Figure` (not shown, not attached to pyplot), so a
notebook displays it by leaving it as the last expression of a cell.

Two-moons toy (chapter 2), on a grid from :func:`dpe_tutorial.running.toy.plane_grid`:

================================== ===========================================
``labelled_scatter(ax, x, y)``      the labelled points, one colour per class,
                                    and optionally the pool in grey
``decision_regions(...)``           mean prediction and each member's boundary
``score_maps(...)``                 one map per acquisition score
``picks(...)``                      where each score's top-k picks lie
``loop_figure(...)``                learning curves and acquired points
``dpe_vs_plain(...)``               two ensembles' uncertainty maps side by side
================================== ===========================================

For every chapter: ``largest_deviation(a, b)``, the number a reader sees an
identity hold by, and ``new_figure`` and ``panels``, the figures all of the
book's drawing starts from. The figures of the derivations (chapters 3 and 4)
are in :mod:`dpe_tutorial.book.derivation_figures`, those of the experiments
(chapters 5 to 7) in :mod:`dpe_tutorial.book.experiment_figures`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..figures import palette

# the mean prediction of two classes: class 0 blue, undecided white, class 1 orange
CLASS_MAP = LinearSegmentedColormap.from_list(
    "classes", [palette.CLASSES[0], "#f7f7f7", palette.CLASSES[1]]
)
# maps of a score: a sequential map that is colour-blind safe and prints in grey
SCORE_MAP = "viridis"


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


def panels(columns: int, rows: int = 1, **kwargs) -> tuple[Figure, np.ndarray]:
    """A :func:`new_figure` of ``rows`` x ``columns`` axes (always 2-D), sized by
    :func:`dpe_tutorial.figures.palette.figsize` (``kwargs`` but ``sharex``, ``sharey``)."""
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
            # a dark rim: the fill matches the shading where the ensemble is sure of its class
            edgecolor="black",
            linewidths=0.8,
            s=size,
            label=f"labelled, class {c}",
            zorder=3,
        )
    if legend:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small", frameon=False)


def label_plane(axes: np.ndarray) -> None:
    """Axis labels x1 and x2 on the outer panels of a grid of plane maps, equal aspect on all."""
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
    figure, axes = panels(2, aspect=_plane_aspect(xx, yy), extra_height=1.2, sharey=True)
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
    label_plane(axes)
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
    figure, axes = panels(columns, rows, aspect=aspect, extra_height=0.5, sharex=True, sharey=True)
    for ax, (name, values) in zip(axes.flat, scores.items(), strict=False):
        filled = ax.contourf(xx, yy, _on_grid(values, xx, name), levels=12, cmap=SCORE_MAP)
        colourbar = figure.colorbar(filled, ax=ax, location="bottom", shrink=0.9, aspect=15)
        colourbar.ax.tick_params(labelsize="small")
        colourbar.ax.xaxis.set_major_locator(MaxNLocator(4))
        labelled_scatter(ax, x_labelled, y_labelled, pool=pool, size=12)
        ax.set_title(_title(name), fontsize="medium")
    for ax in axes.flat[len(scores) :]:
        ax.set_visible(False)
    label_plane(axes)
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
    figure, axes = panels(3, rows, aspect=aspect, extra_height=0.4, sharex=True, sharey=True)
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
    label_plane(axes)
    return figure


def loop_figure(runs: Mapping[str, object], points, first_labelled) -> Figure:
    """Learning curves of the loop's runs (name -> table of
    :func:`dpe_tutorial.running.toy.active_learning_curve`) and where each run's labels went."""
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
    # below the panel: inside, the legend of so narrow a panel covers the curves
    top.legend(loc="outside lower center", fontsize="small", frameon=False)
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
    from ..method import acquisition

    xx, yy = _grid(xx, yy)
    if len(grid_probs) < 2:
        raise ValueError(f"give at least two ensembles to compare, got {len(grid_probs)}")
    probs = {name: _grid_probs(p, xx, name) for name, p in grid_probs.items()}
    aspect = _plane_aspect(xx, yy)
    figure, axes = panels(len(probs), len(scores), aspect=aspect, sharex=True, sharey=True)
    for row, score in zip(axes, scores, strict=True):
        values = {n: acquisition.get(score)(p).reshape(xx.shape) for n, p in probs.items()}
        top = max(float(v.max()) for v in values.values())
        levels = np.linspace(0.0, top if top > 0 else 1.0, 11)
        for ax, (name, value) in zip(row, values.items(), strict=True):
            filled = ax.contourf(xx, yy, value, levels=levels, cmap=SCORE_MAP)
            labelled_scatter(ax, x_labelled, y_labelled, size=12)
            ax.set_title(f"{name}: {_title(score)}", fontsize="medium")
        figure.colorbar(filled, ax=row, label="nats", shrink=0.9, format="%.2f")
    label_plane(axes)
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


def uncertainty_contrast(plane_probs: Mapping[str, object], pool_probs: Mapping[str, object]):
    """How two (or more) ensembles spread their uncertainty: a column per ensemble.

    ``plane_probs`` and ``pool_probs`` map a name to member probabilities
    ``(n, members, classes)`` on the plotting grid and on the pool. Rows: the
    largest mutual information on the plane, the share of the plane whose
    predictive entropy exceeds half a nat (the width of the uncertain band),
    and the mean mutual information on the pool.
    """
    import pandas as pd

    from ..method import acquisition

    return pd.DataFrame(
        {
            name: {
                "largest MI on the plane (nats)": float(
                    acquisition.mutual_information(plane_probs[name]).max()
                ),
                "share of the plane with PE > 0.5 nats": float(
                    (acquisition.predictive_entropy(plane_probs[name]) > 0.5).mean()
                ),
                "mean MI on the pool (nats)": float(
                    acquisition.mutual_information(pool_probs[name]).mean()
                ),
            }
            for name in plane_probs
        }
    )
