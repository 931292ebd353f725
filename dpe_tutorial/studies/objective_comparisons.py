"""The objective study read as paired differences with 95 % intervals.

Within a trial every arm starts from the same labelled set and the same seed
as the plain ensemble of its width, so each arm is compared with the plain
ensemble trial by trial: the difference of a metric in each trial, its mean,
and a Student-t 95 % interval over the trials (:mod:`dpe_tutorial.studies.intervals`).
A difference is read as better or worse only when its interval excludes zero,
and a table says how many comparisons it makes, since some intervals exclude
zero by chance when many are read at once.
"""

from __future__ import annotations

from . import intervals

# the metrics the study reports, in its tables' order
METRICS = (
    "ensemble_accuracy",
    "mean_member_accuracy",
    "nll",
    "ece",
    "brier",
    "mutual_information",
    "error_auroc",
    "auroc_noise",
    "auroc_contrast",
    "auroc_shuffle",
)

# panel titles short enough for four panels side by side in the text column
SHORT_NAMES = {
    "ensemble_accuracy": "ensemble accuracy",
    "mean_member_accuracy": "member accuracy",
    "nll": "NLL (nats)",
    "ece": "ECE",
    "brier": "Brier score",
    "mutual_information": "mean MI (nats)",
    "error_auroc": "AUROC, errors",
    "auroc_noise": "AUROC, noise",
    "auroc_contrast": "AUROC, contrast",
    "auroc_shuffle": "AUROC, shuffled",
}


def paired_differences(results, metric: str = "ensemble_accuracy"):
    """Each arm minus the plain ensemble of the same width, trial by trial, with its interval.

    Columns: ``differences`` (a tuple, one per paired trial, in trial order),
    their mean and standard deviation, the 95 % t interval (``low``,
    ``high``; NaN with one pair), the number of pairs and the plain
    ensemble's own trial-to-trial standard deviation (``plain_spread``).
    """
    import pandas as pd

    plain = results[results["form"] == "plain"].set_index(["width", "trial"])[metric]
    rows = []
    arms = results[results["form"] != "plain"].groupby(["width", "form", "beta"], sort=False)
    for (width, form, beta), rows_of_arm in arms:
        ordered = rows_of_arm.sort_values("trial")
        paired = tuple(
            float(value - plain[(width, trial)])
            for trial, value in zip(ordered["trial"], ordered[metric], strict=True)
            if (width, trial) in plain.index
        )
        interval = intervals.mean_interval(paired)
        spread = (
            plain.loc[width].std() if width in plain.index.get_level_values(0) else float("nan")
        )
        rows.append(
            {
                "width": width,
                "form": form,
                "beta": beta,
                "beta_value": rows_of_arm["beta_value"].iloc[0],
                "differences": paired,
                "mean_difference": interval.mean,
                "std_difference": float(pd.Series(paired).std())
                if len(paired) > 1
                else float("nan"),
                "low": interval.low,
                "high": interval.high,
                "pairs": len(paired),
                "plain_spread": spread,
            }
        )
    columns = ["width", "form", "beta", "beta_value", "differences", "mean_difference"]
    columns += ["std_difference", "low", "high", "pairs", "plain_spread"]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(["width", "form", "beta_value"]).reset_index(drop=True)


def arm_against_plain(results, form: str, beta: str, metrics=None, width: int | None = None):
    """One arm's :func:`paired_differences` for every metric (the study's, by default)."""
    import pandas as pd

    metrics = METRICS if metrics is None else metrics
    width = int(results["width"].min()) if width is None else width
    rows = []
    for metric in metrics:
        table = paired_differences(results, metric)
        row = table[(table["width"] == width) & (table["form"] == form) & (table["beta"] == beta)]
        if row.empty:
            raise ValueError(f"no paired trials of {form}, beta={beta} at width {width}")
        rows.append(row.iloc[0].drop(["width", "form", "beta", "beta_value"]).rename(metric))
    return pd.DataFrame(rows)


def row_interval(row) -> intervals.Interval:
    """The interval of a row of :func:`paired_differences`."""
    return intervals.Interval(row["mean_difference"], row["low"], row["high"], int(row["pairs"]))


def row_direction(row, metric: str) -> str:
    """``better``, ``worse`` or ``undecided``: :func:`.intervals.direction` of a row."""
    from ..figures.plots import LOWER_IS_BETTER

    return intervals.direction(row_interval(row), metric in LOWER_IS_BETTER)


def interval_text(row, digits: int = 3) -> str:
    """A cell of a table: ``+0.012 [-0.003, +0.027]``, or the mean alone for one pair."""
    interval = row_interval(row)
    if interval.n < 2:
        return f"{interval.mean:+.{digits}f}"
    return interval.text(digits)


def difference_table(results, metrics=("ensemble_accuracy", "nll", "ece"), width=None):
    """Every arm against the plain ensemble, a column per metric, for a page of text.

    A cell reads ``+0.012 [-0.003, +0.027]``: the mean paired difference and
    its 95 % t interval (the mean alone with one pair); the last column
    counts the pairs. :func:`comparisons_note` says how many comparisons the
    table makes.
    """
    import pandas as pd

    width = int(results["width"].min()) if width is None else width
    columns = {}
    for metric in metrics:
        paired = paired_differences(results, metric)
        paired = paired[paired["width"] == width].set_index(["form", "beta"])
        columns[SHORT_NAMES.get(metric, metric)] = paired.apply(interval_text, axis=1)
        columns["pairs"] = paired["pairs"]
    table = pd.DataFrame(columns)
    return table[[c for c in table.columns if c != "pairs"] + ["pairs"]]


def comparisons_note(table) -> str:
    """The caution for a :func:`difference_table`: how many intervals it reads at once."""
    cells = table.drop(columns="pairs")
    pairs = table["pairs"][table["pairs"] > 1]
    comparisons = int(cells.size - (table["pairs"] < 2).sum() * cells.shape[1])
    return intervals.multiplicity_note(comparisons, int(pairs.min()) if len(pairs) else 1)


def intervals_excluding_zero(results, metrics, width: int | None = None):
    """The rows of :func:`paired_differences` over ``metrics`` whose interval excludes zero.

    Unrounded (a table of three decimals can hide how close an interval's end
    lies to zero), one row per (metric, form, beta), with the direction.
    """
    import pandas as pd

    width = int(results["width"].min()) if width is None else width
    paired = pd.concat(
        paired_differences(results, metric).assign(metric=metric) for metric in metrics
    )
    paired = paired[paired["width"] == width].copy()
    paired["reading"] = [row_direction(row, row["metric"]) for _, row in paired.iterrows()]
    shown = paired[paired["reading"] != "undecided"]
    columns = ["metric", "form", "beta", "mean_difference", "low", "high", "pairs", "reading"]
    return shown[columns].reset_index(drop=True)


def describe_against_plain(table) -> list[str]:
    """A plain sentence per metric of an :func:`arm_against_plain` table."""
    from ..figures.plots import LOWER_IS_BETTER, metric_name

    return [
        f"{metric_name(metric)}: "
        + intervals.describe_pairs(row["differences"], metric in LOWER_IS_BETTER)
        + "."
        for metric, row in table.iterrows()
    ]


def headline(table, name: str = "DPE") -> str:
    """The one-sentence answer of an :func:`arm_against_plain` table.

    The metrics where the 95 % interval of DPE minus plain excludes zero, in
    the better and in the worse direction; "no interval excludes zero" when
    none does. It names the number of paired trials and of comparisons.
    """
    from ..figures.plots import metric_name

    found: dict[str, list[str]] = {"better": [], "worse": []}
    for metric, row in table.iterrows():
        reading = row_direction(row, metric)
        if reading != "undecided":
            # the name without its unit: "negative log-likelihood", not "... (nats)"
            found[reading].append(metric_name(metric).split(" (")[0])
    pairs = int(table["pairs"].min())
    parts = [
        f"{name} is {reading} than the plain ensemble on {', '.join(metrics)}"
        for reading, metrics in found.items()
        if metrics
    ]
    if not parts:
        parts = [f"no 95 % interval of {name} minus the plain ensemble excludes zero"]
    return (
        f"{'; '.join(parts)} ({pairs} paired trial{'s' if pairs != 1 else ''}, "
        f"{len(table)} metric{'s' if len(table) != 1 else ''} compared)."
    )
