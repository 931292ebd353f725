"""The active-learning study: DPE against random acquisition and a plain ensemble, on CIFAR-10.

Five methods run the ``cifar10-cpu`` preset (8 narrow ResNet-18 members, a
linear-4 schedule, CIFAR-10 (JPEG copy)):

1. DPE with the package's default KL form and beta, predictive entropy;
2. the same DPE, mutual information (BALD);
3. the same DPE, random acquisition;
4. the plain ensemble (beta = 0), predictive entropy;
5. the plain ensemble, random acquisition (added later, pre-registered in the
   study's README: with 1, 3 and 4 it completes the 2x2 of
   :mod:`dpe_tutorial.studies.two_by_two`).

Within a trial every method starts from the same random labelled set and the
same seeds (a paired comparison: the initial set and the seeds come from the
trial alone). :func:`run_study` runs trial 0 of every method, then trial 1,
..., each into ``<out>/<preset>/<method folder>``, the layout chapter 7 reads;
a stopped study resumes where it stopped, inside a round.

:func:`round_table` and :func:`paired_differences` are the two tables the
book and the closing note show.

    python scripts/active_learning_study.py --out results/active-learning
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..running.config import ExperimentConfig, preset, run_slug
from . import intervals

PRESET = "cifar10-cpu"
TRIALS = 3

# The first four methods ran before the preset stored every member's test predictions,
# so their folders hold none and their configs say so (a resumed run must match its config)
_BEFORE_MEMBER_PREDICTIONS = {"member_predictions": False}

# method name -> the fields that make it differ from the preset
METHODS: dict[str, dict] = {
    "DPE, predictive entropy": {**_BEFORE_MEMBER_PREDICTIONS},
    "DPE, mutual information": {"acquisition": "mutual_information", **_BEFORE_MEMBER_PREDICTIONS},
    "DPE, random": {"acquisition": "random", **_BEFORE_MEMBER_PREDICTIONS},
    "plain ensemble, predictive entropy": {"beta": 0.0, **_BEFORE_MEMBER_PREDICTIONS},
    "plain ensemble, random": {"beta": 0.0, "acquisition": "random"},
}


def method_configs(**overrides) -> dict[str, ExperimentConfig]:
    """The config of every method: the preset, ``overrides`` (config fields), then the method."""
    base = ExperimentConfig.from_dict({**preset(PRESET).to_dict(), "trials": TRIALS, **overrides})
    return {
        name: ExperimentConfig.from_dict({**base.to_dict(), **fields})
        for name, fields in METHODS.items()
    }


def folder_of(out_root, config: ExperimentConfig) -> Path:
    return Path(out_root) / config.name / run_slug(config)


def run_study(
    out_root,
    trials=range(TRIALS),
    methods: list[str] | None = None,
    quiet: bool = True,
    **overrides,
) -> list[Path]:
    """Trial 0 of every method, then trial 1, ...; finished trials are skipped, others resume."""
    configs = method_configs(**overrides)
    unknown = [name for name in methods or [] if name not in configs]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; the methods are {', '.join(configs)}")
    from ..running.experiment import (
        run_experiment,  # the backend starts only once the input is good
    )

    chosen = {name: configs[name] for name in methods or configs}
    folders = []
    for trial in trials:
        for name, config in chosen.items():
            folder = folder_of(out_root, config)
            print(f"trial {trial}: {name} -> {folder}", flush=True)
            run_experiment(config, folder, quiet=quiet, trials=[trial])
            folders.append(folder)
    return folders


def method_of(config: dict) -> str:
    """The study's name for the method of a run's config: ``DPE, mutual information``."""
    model = "plain ensemble" if config["beta"] == 0 else "DPE"
    return f"{model}, {config['acquisition'].replace('_', ' ')}"


def load_results(out_root, name: str = PRESET):
    """Every row of every run's ``results.csv`` under ``out_root/name``, with its method."""
    from ..running.results import tables_under

    table = tables_under(Path(out_root) / name, "*", method_of)
    table["n_labeled"] = table["n_labeled"].astype(int)
    return table


def round_table(results, metrics=("ensemble_accuracy", "nll", "ece")):
    """Mean and standard deviation (ddof=1) over trials of each metric, per method and round."""
    grouped = results.groupby(["method", "n_labeled"])[list(metrics)]
    table = grouped.agg(["mean", "std"])
    table[("trials", "n")] = grouped.size()
    return table


def compact_round_table(results, metrics=("ensemble_accuracy", "nll", "ece")):
    """:func:`round_table` for a page of text: ``mean ± std`` per metric (the mean alone for one
    trial), and the number of trials, a row per method and round."""
    import pandas as pd

    from .markdown import mean_and_spread

    table = round_table(results, metrics)
    columns = {
        metric: [
            mean_and_spread(m, s)
            for m, s in zip(table[(metric, "mean")], table[(metric, "std")], strict=True)
        ]
        for metric in metrics
    }
    columns["trials"] = list(table[("trials", "n")])
    index = table.index.set_names(["method", "labels"])
    return pd.DataFrame(columns, index=index)


def paired_differences(results, method: str, baseline: str, metric: str = "ensemble_accuracy"):
    """``method`` minus ``baseline``, trial by trial, at every round (a paired comparison).

    One row per labelled-set size (the index, ``labels``). Columns: the
    difference of each trial, their mean and standard deviation, the 95 %
    t interval of the mean (``low``, ``high``; NaN with one trial) and the
    baseline's own trial-to-trial standard deviation.
    """
    import pandas as pd

    def per_trial(name):
        rows = results[results["method"] == name]
        if rows.empty:
            raise ValueError(f"no results for method {name!r}")
        return rows.pivot_table(index="n_labeled", columns="trial", values=metric)

    ours, theirs = per_trial(method), per_trial(baseline)
    trials = sorted(set(ours.columns) & set(theirs.columns))
    difference = (ours[trials] - theirs[trials]).dropna(how="all")
    difference.columns = [f"trial {t}" for t in trials]
    table = pd.DataFrame(difference)
    table["mean"] = difference.mean(axis=1)
    table["std"] = difference.std(axis=1)
    found = [intervals.mean_interval(row) for row in difference.to_numpy()]
    table["low"] = [interval.low for interval in found]
    table["high"] = [interval.high for interval in found]
    table["baseline_spread"] = theirs.loc[difference.index, trials].std(axis=1)
    return table.rename_axis("labels")


def curve_differences(results, method: str, baseline: str, metric: str = "ensemble_accuracy"):
    """``method`` minus ``baseline`` over the whole learning curve, one number per trial.

    The metric's area under the curve divided by its width
    (:func:`dpe_tutorial.studies.intervals.aulc`) over the rounds both methods
    reached in that trial, so every round counts, not only the last. A
    Series indexed by trial; trials with one shared round are left out.
    """
    import pandas as pd

    paired = {}
    for trial in sorted(set(results["trial"])):
        curves = [
            results[(results["method"] == name) & (results["trial"] == trial)].set_index(
                "n_labeled"
            )[metric]
            for name in (method, baseline)
        ]
        shared = sorted(set(curves[0].index) & set(curves[1].index))
        if len(shared) < 2:
            continue
        area = [intervals.aulc(shared, curve.loc[shared]) for curve in curves]
        paired[int(trial)] = area[0] - area[1]
    return pd.Series(paired, name=metric, dtype=float).rename_axis("trial")


# the comparisons the issue asks for: DPE against random acquisition and against the plain
# ensemble (under both acquisitions, once the plain ensemble has random picks)
COMPARISONS = (
    ("DPE, predictive entropy", "DPE, random"),
    ("DPE, predictive entropy", "plain ensemble, predictive entropy"),
    ("DPE, mutual information", "DPE, random"),
    ("DPE, random", "plain ensemble, random"),
)
# the two the book's headline and figure answer with: DPE's choice against random, DPE against plain
MAIN_COMPARISONS = COMPARISONS[:2]


def comparisons(results, among=COMPARISONS) -> list[tuple[str, str]]:
    """The comparisons of ``among`` whose two methods both have results (a study in progress)."""
    methods = set(results["method"])
    return [(method, baseline) for method, baseline in among if {method, baseline} <= methods]


def wall_time(results) -> str:
    """One sentence: the wall time the sessions in the runs' ``config.json`` record, and where.

    ``results`` is a table of :func:`load_results` (its ``folder`` column names each run).
    """
    import json

    from ..running.results_folder import record_file
    from ..running.run_provenance import UNTIMED_REASON, untimed_sessions

    records = [
        json.loads(record_file(folder).read_text()) for folder in sorted(set(results["folder"]))
    ]
    sessions = [session for record in records for session in record.get("sessions") or []]
    if not sessions:
        return "The runs record no sessions, so no wall time."
    timed = [s for s in sessions if s.get("wall_seconds") is not None]
    hours = sum(s["wall_seconds"] for s in timed) / 3600
    # machines differ in speed, so each one's share is named
    by_machine: dict[str, float] = {}
    for session in timed:
        if session.get("machine") and session["wall_seconds"] > 0:
            machine = session["machine"]
            by_machine[machine] = by_machine.get(machine, 0.0) + session["wall_seconds"] / 3600
    if len(by_machine) > 1:
        shares = "; ".join(f"{machine}: {share:.1f} h" for machine, share in by_machine.items())
        where = f" ({shares})"
    else:
        where = f" on {next(iter(by_machine))}" if by_machine else ""
    sentence = f"Wall time recorded by {len(records)} runs: {hours:.1f} h{where}"
    untimed = sum(untimed_sessions(record) for record in records)
    if untimed:
        sentence += (
            f"; {untimed} session{'s' if untimed != 1 else ''} recorded none ({UNTIMED_REASON})"
        )
    return sentence + "."


def report(results, metrics=("ensemble_accuracy", "nll", "ece")) -> str:
    """The headlines, the round table, the paired differences of every metric and the wall
    time, as Markdown (the closing note); ``results`` is a table of :func:`load_results`."""
    from ..figures.plots import LOWER_IS_BETTER
    from .markdown import summary_table, table

    def method_and_labels(key) -> list[str]:
        return [key[0], str(key[1])]

    table_of_rounds = round_table(results, metrics)
    lines = [f"- {sentence}" for sentence in headlines(results, metrics)] + [""]
    lines += summary_table(table_of_rounds, ["method", "labels"], method_and_labels, metrics)
    for metric in metrics:
        for method, baseline in comparisons(results):
            paired = paired_differences(results, method, baseline, metric)
            direction = " (lower is better)" if metric in LOWER_IS_BETTER else ""
            name = _short_name(metric).lower()
            lines += ["", f"{method} minus {baseline}, {name}{direction}:", ""]
            rows = [
                [str(labels)]
                + [str(v) if isinstance(v, (bool, np.bool_)) else f"{v:+.3f}" for v in row]
                for labels, row in paired.iterrows()
            ]
            lines += table(["labels", *map(str, paired.columns)], rows)
    check = describe_first_round(first_round_agreement(results))
    return "\n".join([*lines, "", check, "", wall_time(results)])


def first_round_agreement(results, metric: str = "ensemble_accuracy", ensemble: str = "DPE"):
    """The first round of the methods that train the same ensemble there, trial by trial.

    At round 1 the methods of one ``ensemble`` (``DPE`` or ``plain ensemble``)
    differ only in how they will acquire, so with
    the trial's labels and seeds they train the same ensemble: their results
    agree exactly when they ran on the same machine and software, and a
    difference measures how much the machine alone moves a result (a pair
    split across machines carries it into every round). A row per trial: each
    such method's ``metric`` and their ``spread`` (largest minus smallest;
    NaN with fewer than two).
    """
    same_ensemble = [name for name in METHODS if name.startswith(f"{ensemble}, ")]
    first = results[
        (results["n_labeled"] == results["n_labeled"].min()) & results["method"].isin(same_ensemble)
    ]
    table = first.pivot_table(index="trial", columns="method", values=metric)
    table = table[[name for name in same_ensemble if name in table.columns]]
    counts = table.notna().sum(axis=1)
    table["spread"] = (table.max(axis=1) - table.min(axis=1)).where(counts >= 2)
    return table.rename_axis(columns=None)


def describe_first_round(table, ensemble: str = "DPE") -> str:
    """One sentence on a :func:`first_round_agreement` table of ``ensemble``'s methods."""
    judged = table["spread"].dropna()
    if judged.empty:
        return f"No trial has two {ensemble} methods at round 1 yet: nothing to check."
    exact = [str(t) for t, spread in judged.items() if spread == 0]
    apart = judged[judged > 0]
    if apart.empty:
        return (
            f"At round 1 the {ensemble} methods agree exactly in every trial checked "
            f"({', '.join(exact)}): no pair is split by the machine."
        )
    trials = ", ".join(str(t) for t in apart.index)
    agree = (
        f" agree exactly in trial{'s' if len(exact) > 1 else ''} {', '.join(exact)} but"
        if exact
        else ""
    )
    return (
        f"At round 1 the {ensemble} methods{agree} differ by up to {apart.max():.3f} in "
        f"trial{'s' if len(apart) > 1 else ''} {trials}: that much comes from the machine "
        "alone (runs of a trial that ran on different machines or software compute in a "
        "different order), and it is part of every difference of those pairs."
    )


def _trials(paired) -> list[str]:
    """The per-trial columns of a :func:`paired_differences` table."""
    return [c for c in paired.columns if str(c).startswith("trial ")]


def _last_round(paired):
    """The largest labelled set of a :func:`paired_differences` table, its row, and its pairs."""
    labels = int(paired.index.max())
    row = paired.loc[labels]
    return labels, row, sum(row[c] == row[c] for c in _trials(paired))


def verdict(paired, method: str, baseline: str, metric: str = "ensemble_accuracy") -> str:
    """One plain sentence on a :func:`paired_differences` table at its largest labelled-set size."""
    from ..figures.plots import LOWER_IS_BETTER

    labels, row, _ = _last_round(paired)
    values = [row[c] for c in _trials(paired) if row[c] == row[c]]
    shown = ", ".join(f"{value:+.3f}" for value in values)
    reading = intervals.describe_pairs(values, metric in LOWER_IS_BETTER)
    return f"{method} minus {baseline} at {labels} labels (per trial {shown}): {reading}."


def headline(results, metric: str = "ensemble_accuracy") -> list[str]:
    """The study's answer for one metric, a sentence per comparison.

    For each of :data:`MAIN_COMPARISONS` (DPE's acquisition against random,
    DPE against the plain ensemble) that has results: the paired difference
    at the largest labelled set both methods reached and that of the curves'
    means (:func:`curve_differences`), each with its 95 % interval and what
    it shows (better, worse, or an interval that holds zero).
    """
    from ..figures.plots import LOWER_IS_BETTER

    available = comparisons(results, MAIN_COMPARISONS)
    if not available:
        done = " and ".join(f'"{name}"' for name in sorted(set(results["method"])))
        return [f"No paired comparison yet: the study has results of {done} only."]
    lower = metric in LOWER_IS_BETTER
    sentences = []
    for method, baseline in available:
        paired = paired_differences(results, method, baseline, metric)
        labels, row, pairs = _last_round(paired)
        last = [row[c] for c in _trials(paired)]
        curve = curve_differences(results, method, baseline, metric).to_numpy()
        sentences.append(
            f"{_short_name(metric).capitalize()}, {method} minus {baseline} "
            f"({pairs} paired trial{'s' if pairs != 1 else ''}): at {labels} labels "
            f"{intervals.brief(last, lower)}; over the whole curve {intervals.brief(curve, lower)}."
        )
    return sentences


def judge(
    results, method: str, baseline: str, metric: str = "ensemble_accuracy", curve: bool = False
) -> str:
    """``better``, ``worse`` or ``undecided``: ``method`` against ``baseline`` by the 95 %
    interval of the paired difference at the last round both reached (or of the whole
    curve's mean, with ``curve``), in the metric's own direction."""
    from ..figures.plots import LOWER_IS_BETTER

    if curve:
        values = curve_differences(results, method, baseline, metric).to_numpy()
    else:
        paired = paired_differences(results, method, baseline, metric)
        _, row, _ = _last_round(paired)
        values = [row[c] for c in _trials(paired)]
    return intervals.direction(intervals.mean_interval(values), metric in LOWER_IS_BETTER)


def _short_name(metric: str) -> str:
    """The metric's readable name without its parenthesis: ``negative log-likelihood``."""
    from ..figures.plots import metric_name

    return metric_name(metric).split(" (")[0]


def headlines(results, metrics=("ensemble_accuracy", "nll", "ece")) -> list[str]:
    """:func:`headline` for each metric; one sentence when nothing can be compared yet."""
    if not comparisons(results, MAIN_COMPARISONS):
        return headline(results)
    return [sentence for metric in metrics for sentence in headline(results, metric)]


def paired_figure(results, metric: str = "ensemble_accuracy", among=MAIN_COMPARISONS):
    """A panel per comparison: ``method`` minus ``baseline`` against the labels, trial by trial.

    Each trial is a grey line (the two methods share its labelled set and
    seeds), the mean the coloured line; zero is drawn, so a reader sees at
    once whether the lines stay on one side of it, and by how much compared
    with their scatter.
    """
    from matplotlib.figure import Figure

    from ..figures import palette
    from ..figures.plots import LOWER_IS_BETTER, metric_name

    pairs = comparisons(results, among)
    if not pairs:
        raise ValueError(f"no results for both methods of any of {list(among)}")
    width = palette.row_width(len(pairs))
    figure = Figure(
        figsize=palette.figsize(len(pairs), aspect=0.8, width=width), layout="constrained"
    )
    axes = figure.subplots(1, len(pairs), squeeze=False, sharey=True)[0]
    for ax, (method, baseline) in zip(axes, pairs, strict=True):
        paired = paired_differences(results, method, baseline, metric)
        for trial in _trials(paired):
            ax.plot(paired.index, paired[trial], color="0.65", marker=".", label="one trial")
        ax.plot(paired.index, paired["mean"], color=palette.colour("dpe"), marker="o", label="mean")
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_title(f"{method}\nminus {baseline}", fontsize="small")
        ax.set_xlabel("labels")
        ax.set_xticks(paired.index)
        ax.grid(True, alpha=0.3)
    side = "below" if metric in LOWER_IS_BETTER else "above"
    better = pairs[0][0].split(",")[0]  # "DPE"
    axes[0].set_ylabel(f"difference in {metric_name(metric)}\n({side} 0: {better} better)")
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    figure.legend(unique.values(), unique.keys(), loc="outside lower center", ncols=2)
    return figure
