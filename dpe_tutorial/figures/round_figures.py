"""Figures of one round of a run: calibration, scores, class balance, acquired images.

Each reads one round's file (``rounds/trial{t}_round{r}.npz``) through
:func:`dpe_tutorial.running.results.load_round` and draws as :mod:`dpe_tutorial.figures.plots`
does: into a new :class:`~matplotlib.figure.Figure`, or into the ``ax`` it is
given, without pyplot. Test and pool labels and pool images are not stored in
a results folder: the functions that need them take them as arguments.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..method import checks, metrics
from ..running.results import Run, load_round, saved_rounds
from ..running.results_folder import record_file
from . import palette
from .plots import figure_and_axes, run_labels


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
    :func:`dpe_tutorial.method.metrics.reliability`); hatched bars show the gap to the
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

    figure, ax = figure_and_axes(ax, figsize=(4.8, 4.8))
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
    # the method wrapped, so that diagrams side by side keep a readable title
    ax.set_title(
        f"{textwrap.fill(run.method, 32)}\ntrial {trial}, {_round_name(round)} "
        f"({arrays['labelled'].size} labels)\nECE = {ece:.3f}",
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

    figure, ax = figure_and_axes(ax, figsize=(6.4, 4.4))
    for (round, arrays), pool_scores, colour in zip(acquiring, scores, colours, strict=True):
        counts, _ = np.histogram(pool_scores, bins=edges)
        ax.stairs(
            counts,
            edges,
            color=colour,
            linewidth=1.5,
            label=f"{_round_name(round)}: {arrays['labelled'].size} labelled, "
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
            raise ValueError(f"class_names not given and {record_file(run.path)} records none")
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

    figure, ax = figure_and_axes(ax, figsize=(6.4, 4.4))
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
    columns: int | None = None,
) -> Figure:
    """The first ``count`` images acquired after a round, highest score first.

    Each image is titled with its score, and with its class when
    ``pool_labels`` are given (the name from ``class_names``, else the
    number). Fewer images are shown when the round acquired fewer. The grid
    is about square unless ``columns`` is given.
    """
    checks.whole_number("count", count, minimum=1)
    if columns is not None:
        checks.whole_number("columns", columns, minimum=1)
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

    if columns is None:
        columns = math.ceil(math.sqrt(acquired.size))
    columns = min(columns, acquired.size)
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
        f"{run.method}: first {acquired.size} acquired after {_round_name(round)} (trial {trial})",
        fontsize="medium",
    )
    return figure


# -- one panel per run, side by side -------------------------------------------


def class_balance_row(runs: Sequence[Run], pool_labels, class_names, trial: int = 0) -> Figure:
    """:func:`class_balance` of every run side by side, titled by method, one legend beside."""
    figure, axes = _row(runs, aspect=1.0)
    for ax, run in zip(axes, runs, strict=True):
        class_balance(run, pool_labels, class_names, trial=trial, ax=ax)
        ax.set_title(textwrap.fill(run.method, 28), fontsize="small")
        ax.get_legend().remove()
    for ax in axes[1:]:
        ax.set_ylabel("")
    axes[-1].legend(
        *axes[0].get_legend_handles_labels(),
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        fontsize="small",
    )
    return figure


def reliability_row(runs: Sequence[Run], test_labels, trial: int = 0) -> Figure:
    """:func:`reliability_diagram` of every run's last round side by side, one legend below;
    the panels share the y axis and a short x label."""
    figure, axes = _row(runs, aspect=1.15)
    for ax, run in zip(axes, runs, strict=True):
        reliability_diagram(run, test_labels, trial=trial, ax=ax)
        ax.get_legend().remove()  # one legend below, where it covers no bar
        ax.set_xlabel("confidence")  # the long label would run into the next panel's
        ax.set_xticks([0.0, 0.5, 1.0])  # nor may the end ticks of neighbours touch
    for ax in axes[1:]:
        ax.set_ylabel("")  # the axes share it
    figure.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=3)
    return figure


def confidence_gaps(runs: Sequence[Run], test_labels):
    """Accuracy against mean confidence of each run's ensemble on the test set, last round.

    A table (pandas) indexed by method and trial, with a row for every trial
    that has finished its last round (a trial still running is left out): the
    labels, the accuracy, the mean of the top predicted probability and their
    difference. A positive ``accuracy_minus_confidence`` is an under-confident
    ensemble (it is right more often than it says), a negative one an
    over-confident ensemble; the ECE bins the same gap by confidence.
    """
    import pandas as pd

    if not runs:
        raise ValueError("runs is empty: nothing to compare")
    rows = []
    for run, label in zip(runs, run_labels(runs), strict=True):
        rounds = len(run.record["schedule_sizes"])
        for trial in sorted(set(run.results["trial"])):
            saved = saved_rounds(run, trial)
            if len(saved) < rounds:
                continue
            arrays = load_round(run, trial, saved[-1])
            probs = arrays["test_probs"].astype(np.float64)
            labels = _check_labels(
                test_labels, probs.shape[0], probs.shape[1], "test_labels", "test set"
            )
            accuracy = float(np.mean(probs.argmax(axis=1) == labels))
            confidence = float(np.mean(probs.max(axis=1)))
            rows.append(
                {
                    "method": label,
                    "trial": int(trial),
                    "labels": len(arrays["labelled"]),
                    "accuracy": accuracy,
                    "mean_confidence": confidence,
                    "accuracy_minus_confidence": accuracy - confidence,
                }
            )
    columns = ["method", "trial", "labels", "accuracy", "mean_confidence"]
    table = pd.DataFrame(rows, columns=[*columns, "accuracy_minus_confidence"])
    return table.set_index(["method", "trial"])


def describe_confidence_gaps(gaps) -> list[str]:
    """A sentence per method of :func:`confidence_gaps`: on which side of its
    accuracy its confidence lies, in how many trials, and by how much."""
    sentences = []
    for method, rows in gaps.groupby(level="method", sort=False):
        gap = rows["accuracy_minus_confidence"]
        accuracy, confidence = rows["accuracy"].mean(), rows["mean_confidence"].mean()
        if len(rows) == 1:
            trial = rows.index.get_level_values("trial")[0]
            side = "under" if gap.iloc[0] > 0 else "over"
            sentences.append(
                f"{method}: accuracy {accuracy:.3f}, confidence {confidence:.3f}: "
                f"{side}-confident by {abs(gap.iloc[0]):.3f} (trial {trial} only)"
            )
            continue
        under, trials = int((gap > 0).sum()), len(rows)
        if under in (0, trials):
            every = "both trials" if trials == 2 else f"all {trials} trials"
            side = f"{'under' if under else 'over'}-confident in {every}"
        else:
            side = f"under-confident in {under} of {trials} trials, over in the rest"
        sentences.append(
            f"{method}: {side}; accuracy minus confidence {gap.mean():+.3f} on "
            f"average ({gap.min():+.3f} to {gap.max():+.3f}); mean accuracy "
            f"{accuracy:.3f}, mean confidence {confidence:.3f}"
        )
    return sentences


def _row(runs: Sequence[Run], aspect: float) -> tuple[Figure, list]:
    if not runs:
        raise ValueError("runs is empty: nothing to draw")
    width = palette.row_width(len(runs), limit=palette.MAX_WIDTH)
    size = palette.figsize(len(runs), aspect=aspect, width=width)
    figure = Figure(figsize=size, layout="constrained")
    return figure, list(figure.subplots(1, len(runs), sharey=True, squeeze=False)[0])


# -- helpers -------------------------------------------------------------------


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


def _round_name(round: int) -> str:
    """How a figure names a round: counted from 1, as the book counts them (files count from 0)."""
    return f"round {round + 1}"


def _class_colours(n_classes: int) -> np.ndarray:
    if n_classes <= 10:
        return np.array([to_rgba(c) for c in palette.categories(n_classes)])
    if n_classes <= 20:
        return matplotlib.colormaps["tab20"](np.arange(n_classes))
    return matplotlib.colormaps["viridis"](np.linspace(0.0, 1.0, n_classes))
