"""The objective study's two pre-registered follow-ups, and how they are read.

Both are fixed in ``results/objective-study/README.md`` before any of their runs:

- **Confirmatory trials**: the default arm (:data:`DEFAULT_ARM`) and the plain
  ensemble on trials 3 and 4, which played no part in choosing the default.
  Primary: DPE minus plain on NLL over those two pairs; DPE is "better on
  NLL" only if that interval lies below zero. Secondary: accuracy, ECE and
  Brier score over trials 3 and 4, and every metric over trials 0 to 4, with
  the caveat that trials 0 and 1 chose the arm.
- **Training-length check**: the same two ensembles on trials 0 and 1 with
  :data:`LONG_EPOCHS` epochs instead of 10. For each ensemble, the change of
  accuracy, NLL, ECE and accuracy minus mean confidence from 10 to 30 epochs
  (paired by trial); and DPE minus plain at 30 epochs beside 10.

Each takes tables of :func:`dpe_tutorial.studies.objective_study.load_results`:
``main`` (the study), ``confirm`` (``results/objective-study-confirmatory``)
and ``long`` (``results/objective-study-long``).

    python scripts/objective_study.py --out results/objective-study-confirmatory \\
        --arms plain paper:elbo*0.1 --trials 3 4 --member-predictions
    python scripts/objective_study.py --out results/objective-study-long \\
        --arms plain paper:elbo*0.1 --trials 0 1 --epochs 30 --member-predictions
"""

from __future__ import annotations

import numpy as np

from . import intervals
from .objective_comparisons import METRICS as STUDY_METRICS
from .objective_comparisons import SHORT_NAMES, arm_against_plain

DEFAULT_ARM = ("paper", "elbo*0.1")  # the arm the study's rule chose: the package default
WIDTH = 8
CONFIRMATORY_TRIALS = (3, 4)
CHOOSING_TRIALS = (0, 1)  # the trials the rule chose the default on
CONFIRMATORY_METRICS = ("nll", "ensemble_accuracy", "ece", "brier")
LONG_EPOCHS = 30
LONG_TRIALS = (0, 1)
GAP = "accuracy_minus_confidence"
LONG_METRICS = ("ensemble_accuracy", "nll", "ece", GAP)
NAMES = {**SHORT_NAMES, GAP: "accuracy - confidence"}


def load(out_root):
    """A follow-up's results table, or None while none of its runs has finished a trial."""
    from .objective_study import load_results

    try:
        return load_results(out_root)
    except ValueError:  # no results.csv under the folder yet (or no folder)
        return None


def _lower_is_better(metric: str) -> bool:
    from ..figures.plots import LOWER_IS_BETTER

    return metric in LOWER_IS_BETTER


def _two_ensembles(results, trials=None):
    """The plain ensemble and the default arm at :data:`WIDTH` (on ``trials``, if given)."""
    form, beta = DEFAULT_ARM
    keep = (results["width"] == WIDTH) & (
        (results["form"] == "plain") | ((results["form"] == form) & (results["beta"] == beta))
    )
    if trials is not None:
        keep &= results["trial"].isin(trials)
    return results[keep]


def _row(label: str, metric: str, differences) -> dict:
    interval = intervals.mean_interval(differences)
    return {
        "trials": label,
        "metric": NAMES.get(metric, metric),
        "per pair": ", ".join(f"{d:+.3f}" for d in differences),
        "mean [95 % interval]": interval.text(),
        "shows": intervals.shows(interval, _lower_is_better(metric)),
    }


def confirmatory_table(main, confirm, metrics=CONFIRMATORY_METRICS, every_metric=None):
    """DPE minus plain, the confirmatory pairs alone and then all five, a row per metric.

    ``metrics`` are read on trials 3 and 4 (the registered primary NLL and
    the secondary accuracy, ECE and Brier score); ``every_metric`` (default:
    every metric of the study both tables have) on all five pairs.

    ``shows`` is what the interval says for DPE (:func:`intervals.shows`).
    ValueError when ``confirm`` lacks a pair of
    :data:`CONFIRMATORY_TRIALS`.
    """
    import pandas as pd

    form, beta = DEFAULT_ARM
    confirmatory = _two_ensembles(confirm, CONFIRMATORY_TRIALS)
    both = confirmatory.groupby("trial")["form"].nunique()
    missing = [t for t in CONFIRMATORY_TRIALS if both.get(t, 0) < 2]
    if missing:
        raise ValueError(
            f"the confirmatory trials lack a pair for trial(s) {missing}: "
            "both ensembles must finish them before any is read"
        )
    every = pd.concat([_two_ensembles(main), confirmatory], ignore_index=True)
    if every_metric is None:
        every_metric = [m for m in STUDY_METRICS if m in main.columns and m in confirm.columns]
    rows = []
    for label, table, read in (
        (f"{' and '.join(map(str, CONFIRMATORY_TRIALS))} (confirmatory)", confirmatory, metrics),
        ("0 to 4 (0 and 1 chose the arm)", every, every_metric),
    ):
        against = arm_against_plain(table, form, beta, read, width=WIDTH)
        for metric in read:
            rows.append(_row(label, metric, against.loc[metric, "differences"]))
    return pd.DataFrame(rows).set_index(["trials", "metric"])


def confirmatory_reading(main, confirm) -> str:
    """The pre-registered primary answer in a sentence or two; says so while not run."""
    if not confirmatory_finished(confirm):
        return (
            "The confirmatory trials (3 and 4 of the default and of the plain ensemble) "
            "have not finished yet: nothing is read from them."
        )
    table = confirmatory_table(main, confirm, ("nll",))
    primary = table.iloc[0]
    form, beta = DEFAULT_ARM
    nll = _two_ensembles(confirm, CONFIRMATORY_TRIALS)
    differences = arm_against_plain(nll, form, beta, ("nll",), width=WIDTH).loc[
        "nll", "differences"
    ]
    verdict = (
        "DPE is better on NLL by the registered criterion (the interval lies below zero)"
        if primary["shows"] == "better"
        else "the registered criterion (an interval below zero) is not met: the two "
        "confirmatory pairs do not show DPE better on NLL"
    )
    return (
        f"Primary analysis, the default DPE minus the plain ensemble on test NLL over the "
        f"confirmatory trials 3 and 4: {intervals.describe_pairs(differences, True)}. "
        f"With two pairs the t interval has one degree of freedom and is wide; {verdict}."
    )


def _complete(results, trials) -> bool:
    if results is None:
        return False
    pairs = _two_ensembles(results, trials).groupby("trial")["form"].nunique()
    return all(pairs.get(t, 0) == 2 for t in trials)


def confirmatory_finished(confirm) -> bool:
    """True once both ensembles have finished trials 3 and 4 (``confirm`` may be None)."""
    return _complete(confirm, CONFIRMATORY_TRIALS)


def training_length_finished(long) -> bool:
    """True once both ensembles have finished trials 0 and 1 at 30 epochs (``long``: or None)."""
    return _complete(long, LONG_TRIALS)


def with_confidence_gap(results):
    """``results`` with :data:`GAP`: accuracy minus the mean top probability of the ensemble.

    Positive is under-confident (right more often than it says). Read from
    each row's round file (its ``test_probs``); needs the ``folder`` column
    of :func:`~dpe_tutorial.studies.objective_study.load_results`.
    """
    from ..running.results import load_round, load_run

    runs = {folder: load_run(folder) for folder in sorted(set(results["folder"]))}
    gaps = []
    for _, row in results.iterrows():
        probs = load_round(runs[row["folder"]], int(row["trial"]), int(row["round"]))["test_probs"]
        confidence = float(np.mean(probs.astype(np.float64).max(axis=1)))
        gaps.append(float(row["ensemble_accuracy"]) - confidence)
    return results.assign(**{GAP: gaps})


def training_length_table(main, long, metrics=LONG_METRICS):
    """What three times the training changes, paired by trial, a row per comparison and metric.

    Rows: each ensemble at 30 epochs minus itself at 10 (the same labels and
    seeds), then DPE minus plain at 10 and at 30 epochs. :data:`GAP` is
    read from the round files when the tables lack it
    (:func:`with_confidence_gap`). ValueError while a run of
    :data:`LONG_TRIALS` is missing.
    """
    import pandas as pd

    if not _complete(long, LONG_TRIALS):
        raise ValueError(f"the training-length check lacks a pair for trials {LONG_TRIALS}")
    short = _two_ensembles(main, LONG_TRIALS)
    long = _two_ensembles(long, LONG_TRIALS)
    if GAP in metrics:
        short, long = (t if GAP in t.columns else with_confidence_gap(t) for t in (short, long))
    form, beta = DEFAULT_ARM
    rows = []
    for name, pick in (
        ("plain ensemble", lambda t: t[t["form"] == "plain"]),
        ("DPE", lambda t: t[(t["form"] == form) & (t["beta"] == beta)]),
    ):
        before = pick(short).set_index("trial")
        after = pick(long).set_index("trial")
        for metric in metrics:
            change = [after.loc[t, metric] - before.loc[t, metric] for t in LONG_TRIALS]
            rows.append(_row(f"{name}: {LONG_EPOCHS} minus 10 epochs", metric, change))
    for label, table in (("DPE minus plain, 10 epochs", short), ("at 30 epochs", long)):
        against = arm_against_plain(table, form, beta, metrics, width=WIDTH)
        for metric in metrics:
            rows.append(_row(label, metric, against.loc[metric, "differences"]))
    frame = pd.DataFrame(rows).rename(columns={"trials": "comparison"})
    return frame.set_index(["comparison", "metric"])


def _side(difference: float) -> str:
    return "lower than" if difference < 0 else "higher than" if difference > 0 else "level with"


def training_length_reading(main, long) -> str:
    """The registered questions in sentences: still under-confident? do DPE's NLL and ECE
    differences from the plain ensemble keep their sign? Says so while the runs have not
    finished."""
    if not training_length_finished(long):
        return (
            "The training-length check (trials 0 and 1 at 30 epochs) has not finished yet: "
            "nothing is read from it."
        )
    long = with_confidence_gap(_two_ensembles(long, LONG_TRIALS))
    short = _two_ensembles(main, LONG_TRIALS)
    sentences = []
    form, beta = DEFAULT_ARM
    for name, rows in (
        ("The plain ensemble", long[long["form"] == "plain"]),
        ("DPE", long[(long["form"] == form) & (long["beta"] == beta)]),
    ):
        gap = rows.sort_values("trial")[GAP].to_numpy()
        side = (
            "still under-confident"
            if (gap > 0).all()
            else "over-confident"
            if (gap < 0).all()
            else "on both sides of its accuracy"
        )
        shown = ", ".join(f"{g:+.3f}" for g in gap)
        sentences.append(
            f"{name} at {LONG_EPOCHS} epochs is {side} (accuracy minus confidence {shown})."
        )
    against = [arm_against_plain(t, form, beta, ("nll", "ece"), width=WIDTH) for t in (short, long)]
    for metric, name in (("nll", "NLL"), ("ece", "ECE")):
        differences = [np.asarray(a.loc[metric, "differences"], dtype=float) for a in against]
        sides = [_side(d.mean()) for d in differences]
        where = (
            f"{sides[0]} the plain ensemble's at both lengths (the difference keeps its sign)"
            if sides[0] == sides[1]
            else f"{sides[0]} the plain ensemble's at 10 epochs and {sides[1]} it at "
            f"{LONG_EPOCHS} (the difference does not keep its sign)"
        )
        sentences.append(
            f"DPE's {name} is {where}: {intervals.brief(differences[0], True)} at 10 epochs, "
            f"{intervals.brief(differences[1], True)} at {LONG_EPOCHS}."
        )
    sentences.append("Two pairs each: t with one degree of freedom, so the intervals say little.")
    return " ".join(sentences)
