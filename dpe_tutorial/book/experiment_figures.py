"""Figures and tables of the experiments: two ensembles on the digits (chapter 5),
configurations and results (chapters 6 and 7).

Sized for the book's text column, in the colours of :mod:`dpe_tutorial.figures.palette`;
every figure function returns a :class:`matplotlib.figure.Figure`, as in
:mod:`dpe_tutorial.book.illustrations`. The results helpers read runs of
:mod:`dpe_tutorial.running.results` and draw through :mod:`dpe_tutorial.figures.plots`.

================================== ===========================================
``training_curves(histories)``      loss, penalty and accuracy per epoch
``shifted_groups(...)``             seen, unseen and shifted digit images
``image_groups(groups)``            the first image of each group
``score_histograms(...)``           per-image scores, one histogram per group
``ranked_images(...)``              the images scored highest and lowest
``group_bars(...)``, ``spread_bars`` mean scores and member spreads as bars
``config_table(configs)``           the configs of a study, side by side
``run_names(folders, root)``        results folders without the machine's path
``learning_curves_row(...)``        learning curves of several metrics
``random_target``, ``labels_needed`` labels each method needs to reach random's
================================== ===========================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..figures import palette
from .illustrations import panels

# how far above a whole number an interpolated label count may land and still count as it
WHOLE_TOLERANCE = 1e-6


# -- chapter 5: two ensembles on the digits --------------------------------------


def training_curves(histories: Mapping[str, Mapping[str, Sequence[float]]]) -> Figure:
    """Cross-entropy, KL penalty and training accuracies per epoch, one colour per model.

    ``histories`` maps a model's name (``"DPE"``, ``"plain"``) to its Keras
    ``History.history``.
    """
    if not histories:
        raise ValueError("histories is empty")
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    figure, axes = panels(3, aspect=0.95)
    figure.get_layout_engine().set(wspace=0.08)  # room for the middle panel's axis label
    cross_entropy, penalty, accuracy = axes[0]
    for index, (name, history) in enumerate(histories.items()):
        colour = palette.ROLES.get(name.lower(), palette.SERIES[index % len(palette.SERIES)])
        # each later model thinner, its markers smaller: curves that coincide both stay visible
        style = palette.line_style(index)
        line = {"color": colour, "linewidth": style["linewidth"]}
        points = {"marker": style["marker"], "markersize": style["markersize"], **line}
        epochs = np.arange(1, len(history["cross_entropy"]) + 1)
        cross_entropy.plot(epochs, history["cross_entropy"], label=name, **points)
        penalty.plot(epochs, history["kl"], label=name, **points)
        accuracy.plot(epochs, history["ensemble_accuracy"], label=f"{name}, ensemble", **line)
        accuracy.plot(epochs, history["member_accuracy"], "--", label=f"{name}, member", **line)
    cross_entropy.set(title="cross-entropy (sum)", ylabel="nats")
    penalty.set(title="KL penalty (no β)", ylabel="nats", yscale="log")
    # ticks at 1, 2 and 5 times the powers of ten, written plainly: no crowded 6x10^2 labels
    penalty.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    penalty.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    penalty.yaxis.set_minor_formatter(NullFormatter())
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
    figure, axes = panels(len(columns), aspect=0.75)
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
    from ..method import acquisition

    images, votes, scores = np.asarray(images), np.asarray(votes), np.asarray(scores)
    labels = np.asarray(labels)
    n = len(images)
    if images.ndim != 4 or votes.ndim != 2 or not (len(labels) == len(votes) == len(scores) == n):
        raise ValueError(
            f"images (n, h, w, c), labels (n,), votes (n, members) and scores (n,) must agree, "
            f"got {images.shape}, {labels.shape}, {votes.shape}, {scores.shape}"
        )
    figure, axes = panels(k, 2, aspect=1.0, extra_height=0.75)
    rows = [("most", acquisition.select(scores, k)), ("least", acquisition.select(-scores, k))]
    for row, (title, chosen) in zip(axes, rows, strict=True):
        for ax, i in zip(row, chosen, strict=True):
            ax.imshow(images[i, ..., 0], cmap="gray_r", vmin=0, vmax=255)
            ax.set_title(
                f"label {labels[i]}\nvotes {' '.join(map(str, votes[i]))}\n{scores[i]:.2f} nats",
                fontsize="small",
            )
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(f"{title} MI")
    return figure


def group_bars(mean_scores, columns: Sequence[str]) -> Figure:
    """Mean scores per group (rows) and model (the second column level), one panel per score."""
    figure, axes = panels(len(columns), aspect=0.75)
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
    figure, axes = panels(1, aspect=0.55)
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
    figure, axes = panels(len(groups), aspect=1.0, extra_height=0.3)
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


# -- chapters 6 and 7: configurations and results ---------------------------------

# significant digits of the numbers in a configuration table: enough for any
# learning rate, and no float32 noise such as 0.05000000074505806
CONFIG_DIGITS = 6


def config_table(configs) -> object:
    """One column per config (its ``method``), one row per field, as readable text.

    Floats are shown with :data:`CONFIG_DIGITS` significant digits, ``None``
    (a field left to its default source or size) as ``default``, lists joined
    by commas, and the KL form of a config without a penalty (``beta = 0``) as
    unused.
    """
    import pandas as pd

    columns = {}
    for config in configs:
        shown = {}
        for key, value in config.to_dict().items():
            if key == "kl_form" and config.beta == 0:
                shown[key] = "unused (beta = 0)"
            elif isinstance(value, float):
                shown[key] = f"{value:.{CONFIG_DIGITS}g}"
            elif value is None:
                shown[key] = "default"
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
    """Title the legend of :func:`dpe_tutorial.figures.plots.learning_curves` by what it shows.

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
    """:func:`~dpe_tutorial.figures.plots.learning_curves` of each metric side by side, one legend
    below.

    The legend sits under the panels, where it covers no curve, and its title
    says whether bands are drawn (see :func:`trials_legend`).
    """
    from ..figures import plots

    if not metrics:
        raise ValueError("metrics is empty")
    titles = list(titles) if titles is not None else [plots.metric_name(m) for m in metrics]
    if len(titles) != len(metrics):
        raise ValueError(f"{len(metrics)} metrics but {len(titles)} titles")
    figure, axes = panels(len(metrics), aspect=0.75)
    for ax, metric, title in zip(axes[0], metrics, titles, strict=True):
        plots.learning_curves(runs, metric, ax=ax)
        ax.set_title(title, fontsize="medium")
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


def accuracy_curves(runs, name: str, seed_post=None) -> Figure:
    """Ensemble and mean member accuracy of one group of runs, side by side.

    ``seed_post`` (a Series of mean member accuracy by labels) is marked on the
    member panel when the runs are the seed post's setting: CIFAR-10 with the
    linear-4 budget of 16,000 labels. Elsewhere it would compare unlike runs.
    """
    metrics = ["ensemble_accuracy", "mean_member_accuracy"]
    # the group's name once, above both panels: a long title per panel runs into its neighbour
    figure = learning_curves_row(runs, metrics, ["ensemble accuracy", "mean member accuracy"])
    figure.suptitle(name, fontsize="medium")
    first = runs[0]
    if seed_post is not None and first.dataset == "cifar10" and first.config.get("budget") == 16000:
        member_axes = figure.axes[1]
        member_axes.plot(
            seed_post.index, seed_post.values, "kx", markersize=9, label=seed_post.name
        )
        member_axes.legend(fontsize="small")
    return figure


def random_target(runs, metric: str = "ensemble_accuracy") -> tuple[float, int] | None:
    """The mean ``metric`` of the first random-acquisition run at its last labelled-set size.

    Returns ``(target, labels)`` or ``None`` when no run acquires at random.
    Runs are :class:`dpe_tutorial.figures.plots.Run`.
    """
    for run in runs:
        if run.method == "random":
            if metric not in run.results:
                raise ValueError(f"the random run has no column {metric!r}")
            curve = run.results.groupby("n_labeled")[metric].mean()
            return float(curve.iloc[-1]), int(curve.index[-1])
    return None


def labels_needed(runs, target: float, metric: str = "ensemble_accuracy"):
    """:func:`dpe_tutorial.figures.plots.labels_to_reach` in whole labels.

    The crossing is interpolated between rounds, so the label counts come out
    fractional; a run needs the next whole label, so they are rounded up, and
    ``labels_saved`` is recomputed from the rounded counts (NaN stays NaN).
    """
    from ..figures import plots

    table = plots.labels_to_reach(runs, target=target, metric=metric)
    exact = table["labels"].to_numpy(np.float64)
    baseline = exact + table["labels_saved"].to_numpy(np.float64)  # the random run's, or NaN
    # a whole label count, not one more when interpolation lands a rounding error above it
    labels = np.ceil(exact - WHOLE_TOLERANCE)
    table["labels"] = labels
    table["labels_saved"] = np.ceil(baseline - WHOLE_TOLERANCE) - labels
    return table.astype({"labels": "Int64", "labels_saved": "Int64"}, errors="ignore")
