"""Figures and tables from results folders: what the book shows and the papers compare.

Everything here reads, through :mod:`dpe_tutorial.results`, the folders that
:func:`dpe_tutorial.experiment.run_experiment` writes (``config.json``,
``results.csv`` and ``rounds/trial{t}_round{r}.npz``) and needs only
matplotlib, pandas and numpy, so figures can be remade on any
machine without Keras or the data the runs trained on. Test labels, pool labels
and pool images are not stored in a results folder: the functions that need
them take them as arguments.

Each figure function draws with matplotlib's object-oriented API: it builds a
new :class:`~matplotlib.figure.Figure` (or draws into the ``ax`` it is given)
and returns the figure. Nothing calls ``pyplot``, shows a window or changes
``rcParams``, so a notebook's own style applies and figures made in a loop are
freed with their last reference.

Choices that a reader of a figure should know:

- a learning curve is the mean over trials at each number of labels, with a
  band from the lowest to the highest trial (a standard deviation over two or
  three trials says little, a min..max band shows them all);
- :func:`summary_table` gives the sample standard deviation (ddof=1), NaN for
  a single trial;
- :func:`labels_to_reach` counts a target as reached when the mean metric is
  at or above it for accuracies, at or below it for NLL, ECE and times.

:func:`save_figure` writes through a temporary file and a rename, and leaves
out the dates matplotlib would otherwise stamp into PDF and SVG files, so the
same figure gives the same bytes every time.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import checks, metrics
from .files import atomic_write

# The readers live with the writer in results; importable from here for notebooks.
from .results import (  # noqa: F401
    Run,
    as_runs,
    find_runs,
    group_runs,
    load_round,
    load_run,
    provenance_table,
    saved_rounds,
)

# Numeric columns that say where a row is, not how well it did.
_INDEX_COLUMNS = ("trial", "round", "n_labeled")

METRIC_NAMES = {
    "ensemble_accuracy": "ensemble accuracy",
    "mean_member_accuracy": "mean member accuracy",
    "nll": "negative log-likelihood (nats)",
    "ece": "expected calibration error",
    "train_seconds": "training time (s)",
    "acquire_seconds": "acquisition time (s)",
    "brier": "Brier score",
    "mutual_information": "mean mutual information (nats)",
    "error_auroc": "AUROC, errors vs correct (entropy)",
    "auroc_noise": "AUROC, noise vs test (MI)",
    "auroc_contrast": "AUROC, low contrast vs test (MI)",
    "auroc_shuffle": "AUROC, shuffled pixels vs test (MI)",
}
# Metrics where smaller is better: a target is reached from above.
LOWER_IS_BETTER = frozenset({"nll", "ece", "brier", "train_seconds", "acquire_seconds"})

SAVE_FORMATS = ("png", "svg", "pdf")
SAVE_DPI = 150
MAX_SIZE_TICKS = 10

# -- learning curves and tables -------------------------------------------------


def learning_curves(runs: Sequence[Run], metric: str = "ensemble_accuracy", ax=None) -> Figure:
    """The metric against the number of labels: one line per run.

    Each line is the mean over trials with markers at the rounds; the band
    around it spans the lowest to the highest trial.
    """
    runs = as_runs(runs)
    _check_metric(runs, metric)
    figure, ax = _figure_and_axes(ax, figsize=(6.4, 4.4))
    for run, label in zip(runs, _labels(runs), strict=True):
        table = _per_size(run, metric)
        (line,) = ax.plot(table.index, table["mean"], marker="o", label=label)
        if (table["trials"] > 1).any():
            ax.fill_between(
                table.index,
                table["min"],
                table["max"],
                color=line.get_color(),
                alpha=0.2,
                linewidth=0,
            )
    ax.set_xlabel("labelled images")
    ax.set_ylabel(metric_name(metric))
    ax.set_title(f"{metric_name(metric)} — {', '.join(_datasets(runs))}")
    sizes = np.unique(np.concatenate([run.results["n_labeled"].to_numpy() for run in runs]))
    if sizes.size <= MAX_SIZE_TICKS:  # a tick at every round when they fit
        ax.set_xticks(sizes)
    ax.grid(True, alpha=0.3)
    ax.legend(title="mean over trials, band: min..max", fontsize="small", title_fontsize="small")
    return figure


def summary_table(runs: Sequence[Run], metric: str = "ensemble_accuracy") -> pd.DataFrame:
    """Mean and sample std (ddof=1) over trials of the metric per run and number of labels.

    Columns: method, n_labeled, mean, std, trials. ``method`` is the label
    :func:`learning_curves` uses, so the table matches the figure.
    """
    runs = as_runs(runs)
    _check_metric(runs, metric)
    parts = []
    for run, label in zip(runs, _labels(runs), strict=True):
        table = _per_size(run, metric).reset_index()
        table.insert(0, "method", label)
        parts.append(table[["method", "n_labeled", "mean", "std", "trials"]])
    return pd.concat(parts, ignore_index=True)


def labels_to_reach(
    runs: Sequence[Run], target: float, metric: str = "ensemble_accuracy"
) -> pd.DataFrame:
    """How many labels each run needs for its mean metric to reach ``target``.

    The mean curve over trials is interpolated linearly between rounds and the
    first crossing counts; a run already there at its first round needs that
    round's labels, and one never there gives NaN. Accuracies reach a target
    from below, NLL, ECE and times from above.

    Columns: method, dataset, labels, labels_saved. ``labels_saved`` is what a
    run saves against the run of method ``"random"`` on the same dataset (the
    first one when there are several): NaN without one, or when either never
    reaches the target.
    """
    runs = as_runs(runs)
    _check_metric(runs, metric)
    if isinstance(target, bool) or not isinstance(target, numbers.Real) or math.isnan(target):
        raise ValueError(f"target must be a number, got {target!r}")
    lower = metric in LOWER_IS_BETTER
    needed = []
    for run in runs:
        curve = _per_size(run, metric)["mean"]
        needed.append(_crossing(curve.index.to_numpy(float), curve.to_numpy(float), target, lower))
    baselines = {}
    for run, labels in zip(runs, needed, strict=True):
        if run.method == "random":
            baselines.setdefault(run.dataset, labels)
    return pd.DataFrame(
        {
            "method": _labels(runs),
            "dataset": [run.dataset for run in runs],
            "labels": np.asarray(needed, dtype=np.float64),
            "labels_saved": [
                baselines.get(run.dataset, math.nan) - labels
                for run, labels in zip(runs, needed, strict=True)
            ],
        }
    )


def metric_name(metric: str) -> str:
    """A readable name for a results column, for axis labels."""
    return METRIC_NAMES.get(metric, metric.replace("_", " "))


def _metric_columns(runs: Sequence[Run]) -> list[str]:
    """The numeric result columns every run has: the metrics the tables and curves accept."""
    runs = as_runs(runs)
    columns = [
        column
        for column in runs[0].results.columns
        if column not in _INDEX_COLUMNS and pd.api.types.is_numeric_dtype(runs[0].results[column])
    ]
    return [
        column
        for column in columns
        if all(
            column in run.results.columns and pd.api.types.is_numeric_dtype(run.results[column])
            for run in runs[1:]
        )
    ]


# -- figures of one round ------------------------------------------------------


def reliability_diagram(
    run: Run,
    test_labels,
    trial: int = 0,
    round: int | None = None,
    bins: int = metrics.ECE_BINS,
    ax=None,
) -> Figure:
    """Accuracy per confidence bin of the ensemble's test predictions after one round.

    Bars are the accuracy of each equal-width confidence bin (from
    :func:`dpe_tutorial.metrics.reliability`); hatched bars show the gap to the
    bin's mean confidence, and the diagonal is perfect calibration. The title
    gives the ECE over the same bins. ``round=None`` shows the last round.
    """
    checks.whole_number("bins", bins, minimum=1)
    if round is None:
        round = saved_rounds(run, trial)[-1]
    arrays = load_round(run, trial, round)
    probs = arrays["test_probs"].astype(np.float64)
    labels = _check_labels(test_labels, probs.shape[0], probs.shape[1], "test_labels", "test set")
    table = metrics.reliability(probs, labels, bins)
    ece = metrics.expected_calibration_error(probs, labels, bins)
    filled = table["count"] > 0
    accuracy = np.where(filled, table["accuracy"], 0.0)
    confidence = np.where(filled, table["confidence"], 0.0)

    figure, ax = _figure_and_axes(ax, figsize=(4.8, 4.8))
    width = table["upper"] - table["lower"]
    ax.bar(
        table["lower"],
        accuracy,
        width=width,
        align="edge",
        edgecolor="black",
        linewidth=0.5,
        label="accuracy",
    )
    ax.bar(
        table["lower"],
        confidence - accuracy,
        bottom=accuracy,
        width=width,
        align="edge",
        color="none",
        edgecolor="tab:red",
        hatch="//",
        linewidth=0.5,
        label="gap to confidence",
    )
    ax.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="grey", label="perfect calibration")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_aspect("equal")
    ax.set_xlabel("confidence (largest mean probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(
        f"{run.method}\ntrial {trial}, round {round} ({arrays['labelled'].size} labels): "
        f"ECE = {ece:.3f}",
        fontsize="medium",
    )
    ax.legend(loc="upper left", fontsize="small")
    return figure


def score_histograms(run: Run, trial: int = 0, ax=None) -> Figure:
    """Per round that acquired: the scores of the unlabelled pool, one colour per round.

    Every round's histogram uses the same bins. A dashed line of the round's
    colour marks its threshold, the lowest score it acquired: the images at or
    above it were labelled next.
    """
    acquiring = []
    for round in saved_rounds(run, trial):
        arrays = load_round(run, trial, round)
        if arrays["acquired"].size:
            acquiring.append((round, arrays))
    if not acquiring:
        raise ValueError(f"trial {trial} of {run.path} has no round that acquired images")
    scores = [arrays["pool_scores"].astype(np.float64) for _, arrays in acquiring]
    edges = np.histogram_bin_edges(np.concatenate(scores), bins=30)
    colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, len(acquiring)))

    figure, ax = _figure_and_axes(ax, figsize=(6.4, 4.4))
    for (round, arrays), pool_scores, colour in zip(acquiring, scores, colours, strict=True):
        counts, _ = np.histogram(pool_scores, bins=edges)
        ax.stairs(
            counts,
            edges,
            color=colour,
            linewidth=1.5,
            label=f"round {round}: {arrays['labelled'].size} labelled, "
            f"{arrays['acquired'].size} acquired",
        )
        ax.axvline(
            float(arrays["acquired_scores"].min()), color=colour, linestyle="--", linewidth=1.0
        )
    ax.set_xlabel(f"{_acquisition(run)} score")
    ax.set_ylabel("unlabelled pool images")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{run.method}: pool scores per round (trial {trial})", fontsize="medium")
    ax.legend(title="dashed: lowest acquired score", fontsize="small", title_fontsize="small")
    return figure


def class_balance(
    run: Run, pool_labels, class_names: Sequence[str] | None, trial: int = 0, ax=None
) -> Figure:
    """Per round, the fraction of each class in the labelled set, as stacked bars.

    ``class_names=None`` takes the names config.json recorded.
    """
    if class_names is None:
        class_names = (run.record.get("dataset") or {}).get("class_names")
        if not class_names:
            raise ValueError(f"class_names not given and {run.path}/config.json records none")
    class_names = [str(name) for name in class_names]
    n_classes = len(class_names)
    rounds = saved_rounds(run, trial)
    labelled = [load_round(run, trial, round)["labelled"] for round in rounds]
    pool_labels = _check_labels(pool_labels, _pool_size(run), n_classes, "pool_labels", "pool")
    largest = max((int(indices.max()) for indices in labelled if indices.size), default=-1)
    if largest >= pool_labels.shape[0]:
        raise ValueError(
            f"pool_labels has {pool_labels.shape[0]} labels but trial {trial} labelled pool "
            f"index {largest}"
        )
    fractions = np.stack(
        [
            np.bincount(pool_labels[indices], minlength=n_classes) / indices.size
            if indices.size
            else np.zeros(n_classes)
            for indices in labelled
        ]
    )

    figure, ax = _figure_and_axes(ax, figsize=(6.4, 4.4))
    positions = np.arange(len(rounds))
    colours = _class_colours(n_classes)
    bottom = np.zeros(len(rounds))
    for index, name in enumerate(class_names):
        ax.bar(
            positions,
            fractions[:, index],
            bottom=bottom,
            color=colours[index],
            label=name,
            width=0.8,
        )
        bottom = bottom + fractions[:, index]
    ax.set_xticks(positions, [str(indices.size) for indices in labelled])
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("labelled images")
    ax.set_ylabel("fraction of the labelled set")
    ax.set_title(f"{run.method}: classes labelled (trial {trial})", fontsize="medium")
    if n_classes <= 20:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small")
    return figure


def acquired_grid(
    run: Run,
    pool_images,
    trial: int = 0,
    round: int = 0,
    count: int = 16,
    class_names: Sequence[str] | None = None,
    pool_labels=None,
) -> Figure:
    """The first ``count`` images acquired after a round, highest score first.

    Each image is titled with its score, and with its class when
    ``pool_labels`` are given (the name from ``class_names``, else the
    number). Fewer images are shown when the round acquired fewer.
    """
    checks.whole_number("count", count, minimum=1)
    if class_names is not None and pool_labels is None:
        raise ValueError("class_names needs pool_labels: the names are looked up by label")
    images = np.asarray(pool_images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] not in (1, 3, 4):
        raise ValueError(
            "pool_images must be uint8 with shape (n, height, width, channels) and 1, 3 or 4 "
            f"channels, got dtype {images.dtype} and shape {images.shape}"
        )
    arrays = load_round(run, trial, round)
    acquired, scores = arrays["acquired"][:count], arrays["acquired_scores"][:count]
    if not acquired.size:
        raise ValueError(
            f"round {round} of trial {trial} acquired no images (the last round acquires none)"
        )
    if acquired.max() >= images.shape[0]:
        raise ValueError(
            f"pool_images has {images.shape[0]} images but round {round} acquired pool index "
            f"{int(acquired.max())}"
        )
    labels = None
    if pool_labels is not None:
        n_classes = len(class_names) if class_names is not None else None
        labels = _check_labels(pool_labels, images.shape[0], n_classes, "pool_labels", "pool")

    columns = math.ceil(math.sqrt(acquired.size))
    rows = math.ceil(acquired.size / columns)
    figure = Figure(figsize=(1.5 * columns, 1.7 * rows + 0.4), layout="constrained")
    for position, (index, score) in enumerate(zip(acquired, scores, strict=True)):
        ax = figure.add_subplot(rows, columns, position + 1)
        image = images[index]
        if image.shape[2] == 1:
            ax.imshow(image[:, :, 0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(image)
        title = f"{float(score):.3g}"
        if labels is not None:
            label = int(labels[index])
            title += f"\n{class_names[label] if class_names is not None else label}"
        ax.set_title(title, fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(
        f"{run.method}: first {acquired.size} acquired after round {round} (trial {trial})",
        fontsize="medium",
    )
    return figure


# -- saving --------------------------------------------------------------------


def save_figure(figure: Figure, path) -> None:
    """Write figure to path (png, svg or pdf, from the suffix) through a temporary file.

    Parent folders are created; a reader never sees a half-written file, and a
    failed save leaves the old file (if any) in place and no temporary behind.
    """
    path = Path(path)
    file_format = path.suffix.lower().removeprefix(".")
    if file_format not in SAVE_FORMATS:
        raise ValueError(
            f"cannot tell the format of {path}: the suffix must be one of "
            f"{', '.join('.' + name for name in SAVE_FORMATS)}"
        )
    # Leave out creation dates and random SVG ids, so the bytes depend on the figure only.
    metadata = {"png": None, "svg": {"Date": None}, "pdf": {"CreationDate": None}}[file_format]
    with matplotlib.rc_context({"svg.hashsalt": "dpe_tutorial"}):
        atomic_write(
            path,
            lambda handle: figure.savefig(
                handle, format=file_format, dpi=SAVE_DPI, bbox_inches="tight", metadata=metadata
            ),
        )


# -- helpers -------------------------------------------------------------------


def _check_metric(runs: list[Run], metric: str) -> None:
    valid = _metric_columns(runs)
    if metric not in valid:
        raise ValueError(f"unknown metric {metric!r}; valid metrics are {', '.join(valid)}")


def _per_size(run: Run, metric: str) -> pd.DataFrame:
    """Mean, sample std, min, max and number of trials of metric per n_labeled."""
    grouped = run.results.groupby("n_labeled")[metric]
    table = grouped.agg(["mean", "std", "min", "max", "count"]).rename(columns={"count": "trials"})
    return table.sort_index()


def _labels(runs: list[Run]) -> list[str]:
    """Method names; with the dataset and device when methods repeat; then the folder."""
    labels = [run.method for run in runs]
    if len(set(labels)) < len(labels):
        labels = [_run_label(run) for run in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{label} [{run.path.name}]" for label, run in zip(labels, runs, strict=True)]
    return labels


def _run_label(run: Run) -> str:
    """The method with the dataset and device, to tell apart runs of one method."""
    where = run.dataset if run.device is None else f"{run.dataset}, {run.device}"
    return f"{run.method} — {where}"


def _datasets(runs: list[Run]) -> list[str]:
    return list(dict.fromkeys(run.dataset for run in runs))


def _crossing(sizes: np.ndarray, values: np.ndarray, target: float, lower: bool) -> float:
    """The first size where the piecewise-linear curve reaches target; NaN if it never does."""
    if lower:
        values, target = -values, -target
    reached = np.flatnonzero(values >= target)
    if not reached.size:
        return math.nan
    first = int(reached[0])
    if first == 0:
        return float(sizes[0])
    x0, x1, y0, y1 = sizes[first - 1], sizes[first], values[first - 1], values[first]
    return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))


def _pool_size(run: Run) -> int | None:
    """The pool size config.json records (None when it does not)."""
    size = (run.record.get("dataset") or {}).get("pool_size")
    return int(size) if isinstance(size, int) else None


def _check_labels(labels, size: int | None, n_classes: int | None, name: str, what: str):
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{name} must be a 1-D array of integer labels, got dtype {labels.dtype} "
            f"and shape {labels.shape}"
        )
    if size is not None and labels.shape[0] != size:
        raise ValueError(
            f"{name} must hold one label per {what} image ({size}), got {labels.shape[0]}"
        )
    if labels.size and (labels.min() < 0 or (n_classes is not None and labels.max() >= n_classes)):
        bound = f"[0, {n_classes})" if n_classes is not None else ">= 0"
        raise ValueError(f"{name} must lie in {bound}, got {labels.min()}..{labels.max()}")
    return labels.astype(np.int64)


def _acquisition(run: Run) -> str:
    return str(run.config.get("acquisition") or run.results["acquisition"].iloc[0])


def _class_colours(n_classes: int) -> np.ndarray:
    if n_classes <= 10:
        return matplotlib.colormaps["tab10"](np.arange(n_classes))
    if n_classes <= 20:
        return matplotlib.colormaps["tab20"](np.arange(n_classes))
    return matplotlib.colormaps["viridis"](np.linspace(0.0, 1.0, n_classes))


def _figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """A new figure with one axes, or the figure that holds ax."""
    if ax is None:
        figure = Figure(figsize=figsize, layout="constrained")
        return figure, figure.add_subplot()
    figure = ax.figure
    while not isinstance(figure, Figure):  # a SubFigure: its root figure holds it
        figure = figure.figure
    return figure, ax
