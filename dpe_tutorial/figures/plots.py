"""Figures and tables from results folders: what the book shows and the papers compare.

Everything here reads, through :mod:`dpe_tutorial.running.results`, the folders that
:func:`dpe_tutorial.running.experiment.run_experiment` writes (``config.json``,
``results.csv`` and ``rounds/trial{t}_round{r}.npz``) and needs only
matplotlib, pandas and numpy, so figures can be remade on any
machine without Keras or the data the runs trained on. Here: learning curves
and tables over runs, and saving; the figures of one round (reliability,
scores, class balance, acquired images) are in :mod:`dpe_tutorial.figures.round_figures`.

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

from ..running.files import atomic_write

# The readers live with the writer in results; importable from here for notebooks.
from ..running.results import (  # noqa: F401
    Run,
    as_runs,
    find_runs,
    group_runs,
    load_round,
    load_run,
    saved_rounds,
)
from ..running.run_provenance import provenance_table, untimed_notes  # noqa: F401  (re-exported)
from . import palette

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
    figure, ax = figure_and_axes(ax, figsize=(6.4, 4.4))
    indices = palette.method_indices([run.config for run in runs])
    for i, run, label in zip(indices, runs, run_labels(runs), strict=True):
        table = _per_size(run, metric)
        style = {**palette.line_style(i), "color": palette.SERIES[i % len(palette.SERIES)]}
        (line,) = ax.plot(table.index, table["mean"], label=label, **style)
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
    for run, label in zip(runs, run_labels(runs), strict=True):
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
    run saves against the run of method ``"random"`` on the same dataset that
    trains the same model (a plain ensemble against the plain ensemble's
    random run), else the first random run there: NaN without one, or when
    either never reaches the target.
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
    baselines = {}  # (dataset, model) and (dataset, None): the random run's labels
    for run, labels in zip(runs, needed, strict=True):
        if run.method == "random":
            baselines.setdefault((run.dataset, _model(run)), labels)
            baselines.setdefault((run.dataset, None), labels)

    def baseline(run: Run) -> float:
        same_model = baselines.get((run.dataset, _model(run)))
        return baselines.get((run.dataset, None), math.nan) if same_model is None else same_model

    return pd.DataFrame(
        {
            "method": run_labels(runs),
            "dataset": [run.dataset for run in runs],
            "labels": np.asarray(needed, dtype=np.float64),
            "labels_saved": [
                baseline(run) - labels for run, labels in zip(runs, needed, strict=True)
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


def captioned(table: pd.DataFrame, caption: str, precision: int = 3):
    """``table`` for a page, with its caption on it: a pandas Styler, numbers to
    ``precision`` decimals, missing values as a dash, drawn as a plain table is.

    A notebook page gathers a cell's printed lines above all of its tables, so
    a table shown in a loop says itself which one it is.
    """
    styled = table.style.format(precision=precision, na_rep="–")
    # the class the book's theme styles plain pandas tables by
    return styled.set_table_attributes('class="dataframe"').set_caption(caption)


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


def run_labels(runs: Sequence[Run]) -> list[str]:
    """A label per run that tells them apart: the method; where methods repeat, with
    what each trains (two runs of random acquisition: ``plain ensemble (random)``,
    ``DPE paper, beta=elbo*0.1 (random)``), then the dataset and device; then the folder."""
    runs = list(runs)
    labels = [run.method for run in runs]
    if len(set(labels)) < len(labels):
        repeated = {label for label in labels if labels.count(label) > 1}
        labels = [
            _with_model(run) if label in repeated else label
            for run, label in zip(runs, labels, strict=True)
        ]
    if len(set(labels)) < len(labels):
        labels = [_run_label(run) for run in runs]
    if len(set(labels)) < len(labels):
        labels = [f"{label} [{run.path.name}]" for label, run in zip(labels, runs, strict=True)]
    return labels


def _model(run: Run) -> str | None:
    """What the run trains (``plain ensemble``, ``DPE paper, beta=elbo*0.1``), or None for a
    record this version cannot read as a config."""
    from ..running.config import ExperimentConfig, model_label

    try:
        return model_label(ExperimentConfig.from_dict(run.config))
    except (TypeError, ValueError):
        return None


def _with_model(run: Run) -> str:
    model = _model(run)
    if model is None or run.method.startswith(model):
        return run.method
    return f"{model} ({run.method})"


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


def figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """A new figure with one axes, or the figure that holds ax (here and in round_figures)."""
    if ax is None:
        figure = Figure(figsize=figsize, layout="constrained")
        return figure, figure.add_subplot()
    figure = ax.figure
    while not isinstance(figure, Figure):  # a SubFigure: its root figure holds it
        figure = figure.figure
    return figure, ax
