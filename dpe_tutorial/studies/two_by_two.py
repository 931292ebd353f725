"""The active-learning study's 2x2: ensemble (DPE, plain) by acquisition (entropy, random).

Without the plain ensemble on random labels, DPE's lead over the plain
ensemble under entropy acquisition could mean "the penalty helps" or
"entropy acquisition hurt the plain ensemble". The fourth cell separates the
two. The contrasts and their signs are those pre-registered in
``results/active-learning/README.md`` ("The plain ensemble with random
acquisition"), each per trial, at the last round and over the whole curve:

(a) plain random minus DPE random: does the penalty help under random picks?
(b) plain entropy minus plain random: does entropy acquisition hurt the plain
    ensemble?
(c) the interaction, (DPE entropy - plain entropy) - (DPE random - plain
    random): is DPE's lead under entropy larger than under random acquisition?

Read as better, worse or an interval that holds zero, nothing more. The
tables take a results table of
:func:`dpe_tutorial.studies.active_learning_study.load_results`.
"""

from __future__ import annotations

import numpy as np

from . import intervals
from .active_learning_study import (
    curve_differences,
    describe_first_round,
    first_round_agreement,
    paired_differences,
)

# (ensemble, acquisition) -> the study's method name
CELLS = {
    ("DPE", "entropy"): "DPE, predictive entropy",
    ("DPE", "random"): "DPE, random",
    ("plain", "entropy"): "plain ensemble, predictive entropy",
    ("plain", "random"): "plain ensemble, random",
}
# the registered contrasts: name -> (method, baseline), a difference of two cells
CONTRASTS = {
    "(a) plain random minus DPE random": (CELLS["plain", "random"], CELLS["DPE", "random"]),
    "(b) plain entropy minus plain random": (CELLS["plain", "entropy"], CELLS["plain", "random"]),
}
INTERACTION = "(c) interaction: DPE's lead under entropy minus its lead under random"
METRICS = ("ensemble_accuracy", "nll", "ece")


def finished(results):
    """The rows of the four cells in the trials where every cell reached the last round.

    A trial still running in one cell is left out of all four, so every
    contrast compares the same labelled-set sizes and the same curves.
    """
    cells = results[results["method"].isin(CELLS.values())]
    if cells.empty:
        return cells
    last = int(results["n_labeled"].max())
    reached = cells[cells["n_labeled"] == last].groupby("trial")["method"].nunique()
    trials = reached[reached == len(CELLS)].index
    return cells[cells["trial"].isin(trials)]


def complete(results) -> bool:
    """True when at least one trial has every cell of the 2x2 finished."""
    return not finished(results).empty


def missing_cells(results) -> list[str]:
    """The methods of the 2x2 without a finished trial yet, in :data:`CELLS` order."""
    last = int(results["n_labeled"].max()) if len(results) else 0
    done = set(results.loc[results["n_labeled"] == last, "method"])
    return [name for name in CELLS.values() if name not in done]


def _last_round_per_trial(results, method, baseline, metric):
    """``method - baseline`` per trial at the largest labelled set both reached (a Series)."""
    paired = paired_differences(results, method, baseline, metric)
    trials = [c for c in paired.columns if str(c).startswith("trial ")]
    last = paired.loc[paired.index.max(), trials]
    last.index = [int(str(c).split()[1]) for c in trials]
    return last.astype(float).dropna()


def contrast_values(results, name: str, metric: str, curve: bool):
    """One contrast per trial (a Series by trial): a difference of two cells, or the interaction.

    ``curve`` reads the whole learning curve (the mean of the metric over
    the labels, :func:`dpe_tutorial.studies.intervals.aulc`) instead of the
    last round. Only the trials every cell finished (:func:`finished`) count.
    """
    results = finished(results)

    def difference(method, baseline):
        if curve:
            return curve_differences(results, method, baseline, metric)
        return _last_round_per_trial(results, method, baseline, metric)

    if name in CONTRASTS:
        return difference(*CONTRASTS[name])
    if name != INTERACTION:
        raise ValueError(
            f"unknown contrast {name!r}; the contrasts are {[*CONTRASTS, INTERACTION]}"
        )
    under_entropy = difference(CELLS["DPE", "entropy"], CELLS["plain", "entropy"])
    under_random = difference(CELLS["DPE", "random"], CELLS["plain", "random"])
    return (under_entropy - under_random).dropna()


def contrast_table(results, metrics=METRICS):
    """Every registered contrast, metric and reading (last round, whole curve), one row each.

    Columns: the value of each trial, the mean with its 95 % t interval and
    what the interval shows for the *first-named* cell (``better``,
    ``worse``, ``holds zero``, or ``no interval (one pair)``); for the
    interaction, ``better`` means DPE's lead is larger under entropy
    acquisition. ValueError while a cell of the
    2x2 has no result.
    """
    import pandas as pd

    from ..figures.plots import LOWER_IS_BETTER
    from .objective_comparisons import SHORT_NAMES

    if not complete(results):
        raise ValueError(f"the 2x2 lacks a finished trial of {', '.join(missing_cells(results))}")
    rows = []
    for name in [*CONTRASTS, INTERACTION]:
        for metric in metrics:
            for curve in (False, True):
                values = contrast_values(results, name, metric, curve)
                interval = intervals.mean_interval(values.to_numpy())
                rows.append(
                    {
                        "contrast": name,
                        "metric": SHORT_NAMES.get(metric, metric),
                        "read at": "whole curve" if curve else "last round",
                        "per trial": ", ".join(f"{v:+.3f}" for v in values),
                        "mean [95 % interval]": interval.text(),
                        "shows": intervals.shows(interval, metric in LOWER_IS_BETTER),
                    }
                )
    return pd.DataFrame(rows).set_index(["contrast", "metric", "read at"])


def cell_table(results, metric: str = "ensemble_accuracy"):
    """The four cells side by side: ``metric`` at the last round and over the curve.

    Rows DPE and plain, columns entropy and random; each cell the mean over
    the trials it finished, with its 95 % t interval (of the level, not a
    difference).
    """
    import pandas as pd

    last = int(results["n_labeled"].max())
    table = {}
    for (ensemble, acquisition), method in CELLS.items():
        rows = results[results["method"] == method]
        # a trial still running is left out: its curve would be shorter
        ended = rows.loc[rows["n_labeled"] == last, "trial"]
        rows = rows[rows["trial"].isin(ended)]
        if rows.empty:
            continue
        at_last = rows.loc[rows["n_labeled"] == last, metric].to_numpy()
        curves = [
            intervals.aulc(trial_rows["n_labeled"], trial_rows[metric])
            for _, trial_rows in rows.groupby("trial")
        ]
        table[f"at {last} labels", acquisition, ensemble] = intervals.mean_interval(
            at_last
        ).plain_text()
        table["whole curve", acquisition, ensemble] = intervals.mean_interval(
            np.asarray(curves)
        ).plain_text()
    if not table:
        return pd.DataFrame()
    frame = pd.Series(table).unstack(level=[0, 1])
    order = [
        (read, a) for read in (f"at {last} labels", "whole curve") for a in ("entropy", "random")
    ]
    frame = frame[[column for column in order if column in frame.columns]].fillna("not run yet")
    return frame.rename_axis(index="ensemble")


def reading(results, metrics=METRICS) -> str:
    """The 2x2 in sentences: each registered contrast by what its intervals show.

    While the plain ensemble with random acquisition has not run, says so.
    """
    from ..figures.plots import LOWER_IS_BETTER
    from .objective_comparisons import SHORT_NAMES

    if not complete(results):
        return (
            f"The 2x2 is not complete: {', '.join(missing_cells(results))} "
            "has no finished trial yet, so no contrast is read."
        )
    sentences = []
    trials = None
    for name in [*CONTRASTS, INTERACTION]:
        parts = []
        for metric in metrics:
            read = []
            for curve in (False, True):
                values = contrast_values(results, name, metric, curve)
                trials = len(values) if trials is None else min(trials, len(values))
                where = "over the curve" if curve else "at the last round"
                read.append(
                    f"{where} {intervals.brief(values.to_numpy(), metric in LOWER_IS_BETTER)}"
                )
            parts.append(f"{SHORT_NAMES.get(metric, metric)}: {', '.join(read)}")
        sentences.append(f"**{name}.** " + "; ".join(parts) + ".")
    count = len(CONTRASTS) + 1
    readings = count * len(metrics) * 2
    note = intervals.multiplicity_note(readings, trials or 0)
    return "\n\n".join([*sentences, note])


def report(results) -> str:
    """The 2x2 in Markdown for the study's ``--report``: the cells, the contrasts, their
    reading and the machine noise of the plain ensemble's pairs; a line saying which cells
    are missing until a trial of each is in."""
    if not complete(results):
        return f"The 2x2 lacks a finished trial of {', '.join(missing_cells(results))}."
    plain = first_round_agreement(results, ensemble="plain ensemble")
    parts = [
        "The 2x2 (ensemble x acquisition):",
        cell_table(results).to_markdown(),
        contrast_table(results).to_markdown(),
        reading(results),
        describe_first_round(plain, "plain ensemble"),
    ]
    return "\n\n".join(parts)
