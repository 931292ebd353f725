"""The MNIST study: where active learning is known to work (Gal, Islam and Ghahramani, 2017).

Ten arms, each a config of the package's own loop, on MNIST (the official
pixels): three models (MC dropout, a plain ensemble, DPE with the package's
default KL form and beta) times three acquisitions (BALD, predictive entropy,
random), and DPE with BALD drawn by stochastic power sampling. Every arm
starts each seed from the same 20 balanced labels and acquires up to 400.
The protocol, its cuts and the analysis are pre-registered in
``results/mnist-study/README.md``; :func:`run_study` runs (or resumes) it and
:func:`report` writes its tables.

    python scripts/mnist_study.py --out results/mnist-study            # run or resume
    python scripts/mnist_study.py --out results/mnist-study --report   # the tables
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..method.choices import DEFAULT_BETA, DEFAULT_KL_FORM
from ..running.config import ExperimentConfig, preset, run_slug
from . import intervals

NAME = "mnist-gal"
TRIALS = 5  # pre-registered; deviation 1 keeps five seeds for the MC dropout arms only
# deviation 1 (results/mnist-study/README.md): the ensembles' seeds, cut to fit the budget
ENSEMBLE_TRIALS = 3
INITIAL = 20
STEP = 20  # labels acquired a round (Gal et al. take 10: the budget forces 20, see the README)
BUDGET = 400
SIZES = tuple(range(INITIAL, BUDGET + 1, STEP))
THRESHOLDS = (0.90, 0.95)
# Gal et al. (2017), Table 1, MC dropout: labels to reach 10 % / 5 % test error
GAL_TABLE = {
    "BALD": (145, 335),
    "predictive entropy": (165, 355),
    "random": (255, 835),
}

# The training recipe (results/mnist-recipe/README.md): Gal et al.'s network, Adam, a fixed
# number of optimizer steps a round whatever the labelled-set size.
BASE = {
    **preset("mnist").to_dict(),
    "name": NAME,
    "schedule": list(SIZES),
    "budget": BUDGET,
    "layout": "branches",
    "epochs": 1,  # unused: steps decide
    "member_predictions": False,  # 2.1 GB for the study: see its README
    "trials": TRIALS,
    "seed": 0,
}
MODELS = {
    "MC dropout": {"members": 1, "beta": 0.0, "passes": 20},
    "plain ensemble": {"members": 8, "beta": 0.0},
    "DPE": {"members": 8, "beta": DEFAULT_BETA, "kl_form": DEFAULT_KL_FORM},
}
ACQUISITIONS = {
    "BALD": "mutual_information",
    "predictive entropy": "predictive_entropy",
    "random": "random",
}
# in the order a seed runs them: the arms the done-when needs first
ARMS: dict[str, dict] = {
    "MC dropout, BALD": {**MODELS["MC dropout"], "acquisition": "mutual_information"},
    "MC dropout, random": {**MODELS["MC dropout"], "acquisition": "random"},
    "DPE, BALD": {**MODELS["DPE"], "acquisition": "mutual_information"},
    "DPE, random": {**MODELS["DPE"], "acquisition": "random"},
    "plain ensemble, BALD": {**MODELS["plain ensemble"], "acquisition": "mutual_information"},
    "plain ensemble, random": {**MODELS["plain ensemble"], "acquisition": "random"},
    "DPE, BALD, power": {
        **MODELS["DPE"],
        "acquisition": "mutual_information",
        "selection": "power",
    },
    "MC dropout, predictive entropy": {
        **MODELS["MC dropout"],
        "acquisition": "predictive_entropy",
    },
    "plain ensemble, predictive entropy": {
        **MODELS["plain ensemble"],
        "acquisition": "predictive_entropy",
    },
    "DPE, predictive entropy": {**MODELS["DPE"], "acquisition": "predictive_entropy"},
}
# (method, baseline) pairs the report compares, seed by seed: each model's scores against its
# own random acquisition, then the models under one acquisition and power sampling against top-k
ACQUISITION_COMPARISONS = (
    *((f"{model}, BALD", f"{model}, random") for model in MODELS),
    *((f"{model}, predictive entropy", f"{model}, random") for model in MODELS),
)
MODEL_COMPARISONS = (
    ("DPE, BALD", "plain ensemble, BALD"),
    ("DPE, BALD", "MC dropout, BALD"),
    ("plain ensemble, BALD", "MC dropout, BALD"),
    ("DPE, random", "plain ensemble, random"),
    ("DPE, random", "MC dropout, random"),
    ("DPE, BALD, power", "DPE, BALD"),
)
COMPARISONS = ACQUISITION_COMPARISONS + MODEL_COMPARISONS


# The reproduction follow-up (results/mnist-reproduction/README.md, registered before its runs):
# MC dropout alone, so the budget affords Gal et al.'s 10 labels a round, trained with the
# rate its own validation NLL prefers (results/mnist-recipe/README.md); arms keep their names
REPRODUCTION_STEP = 10
REPRODUCTION = {
    "learning_rate": 3e-3,
    "schedule": list(range(INITIAL, BUDGET + 1, REPRODUCTION_STEP)),
}
# the two arms the reproduction criteria read (predictive entropy left out for the budget)
REPRODUCTION_ARMS = ("MC dropout, BALD", "MC dropout, random")


def planned_trials(arm: str) -> int:
    """The seeds an arm runs: five for MC dropout, three for an ensemble (deviation 1)."""
    return TRIALS if arm.startswith("MC dropout") else ENSEMBLE_TRIALS


def configs(data_path: str, reproduction: bool = False) -> dict[str, ExperimentConfig]:
    """The config of every arm (of the reproduction follow-up's, with ``reproduction``)."""
    if reproduction:
        return {
            arm: ExperimentConfig.from_dict(
                {**BASE, "data_path": data_path, **ARMS[arm], **REPRODUCTION}
            )
            for arm in REPRODUCTION_ARMS
        }
    return {
        arm: ExperimentConfig.from_dict({**BASE, "data_path": data_path, **fields})
        for arm, fields in ARMS.items()
    }


def run_study(
    out_root, data_path: str, trials=range(TRIALS), arms=None, quiet=True, reproduction=False
) -> None:
    """Seed 0 of every arm, then seed 1, ...; finished trials are skipped, others resume.

    An arm runs only the seeds it plans (:func:`planned_trials`), whatever ``trials`` asks.
    ``reproduction`` runs the follow-up's arms (:data:`REPRODUCTION_ARMS`) instead.
    """
    chosen = configs(data_path, reproduction)
    unknown = [arm for arm in arms or [] if arm not in chosen]
    if unknown:
        raise ValueError(f"unknown arm {unknown[0]!r}; the arms are: {'; '.join(chosen)}")
    from ..running.experiment import (
        run_experiment,  # the backend starts only once the input is good
    )

    for trial in trials:
        for arm in arms or chosen:
            if trial >= planned_trials(arm):
                continue
            folder = Path(out_root) / run_slug(chosen[arm])
            print(f"trial {trial}: {arm} -> {folder}", flush=True)
            run_experiment(chosen[arm], folder, quiet=quiet, trials=[trial])


def arm_of(config: dict) -> str:
    """The study's name for the arm a run's config (a dict, as in ``config.json``) is."""
    defaults = ExperimentConfig().to_dict()
    for arm, fields in ARMS.items():
        expected = {**defaults, **BASE, **fields}
        keys = ("members", "beta", "passes", "acquisition", "selection")
        if all(config.get(key, defaults[key]) == expected[key] for key in keys):
            return arm
    raise ValueError(f"a config that is no arm of the MNIST study: {config}")


def load_results(out_root):
    """Every row of every arm under ``out_root``, with its arm and folder."""
    from ..running.results import tables_under

    return tables_under(out_root, "*", arm_of)


def per_seed(results):
    """Per arm and finished seed: labels to reach 90 / 95 %, AULC, the final round's metrics."""
    import pandas as pd

    rows = []
    for (method, trial), curve in results.groupby(["method", "trial"]):
        curve = curve.sort_values("n_labeled")
        if curve["n_labeled"].max() < BUDGET:
            continue  # an unfinished seed is not summarised
        final = curve.iloc[-1]
        row = {"method": method, "trial": int(trial)}
        for threshold in THRESHOLDS:
            row[f"labels_to_{round(threshold * 100)}"] = intervals.labels_to_reach(
                curve["n_labeled"], curve["ensemble_accuracy"], threshold
            )
        row["aulc"] = intervals.aulc(curve["n_labeled"], curve["ensemble_accuracy"])
        for metric in ("ensemble_accuracy", "nll", "ece"):
            row[f"final_{metric}"] = float(final[metric])
        rows.append(row)
    # the columns are there even when no seed has finished yet
    return pd.DataFrame(rows, columns=["method", "trial", *SUMMARY_COLUMNS])


def finished(results):
    """The rows of the seeds that reached the budget: a seed still running is left out."""
    if results.empty:
        return results
    reached = results.groupby(["method", "trial"])["n_labeled"].transform("max")
    return results[reached >= BUDGET]


SUMMARY_COLUMNS = (
    "labels_to_90",
    "labels_to_95",
    "aulc",
    "final_ensemble_accuracy",
    "final_nll",
    "final_ece",
)


def summary(results):
    """Per arm: each column of :func:`per_seed` as its mean [95 % t interval] over seeds.

    Labels to reach a threshold are averaged over the seeds that reached it;
    the cell says how many did when not all.
    """
    import pandas as pd

    seeds = per_seed(results)
    table = {}
    for method in [arm for arm in ARMS if arm in set(seeds["method"])]:
        mine = seeds[seeds["method"] == method]
        cells = {"seeds": len(mine)}
        for column in SUMMARY_COLUMNS:
            interval = intervals.mean_interval(mine[column])
            digits = 0 if column.startswith("labels") else 3
            text = _unsigned(interval, digits)
            if interval.n == 0:
                text = f"not reached in {len(mine)} seed{'s' if len(mine) != 1 else ''}"
            elif interval.n < len(mine):
                text += f" ({interval.n} of {len(mine)} reached it)"
            cells[column] = text
        table[method] = cells
    return pd.DataFrame.from_dict(table, orient="index")


def _unsigned(interval: intervals.Interval, digits: int) -> str:
    return "not reached" if interval.n == 0 else interval.plain_text(digits)


def paired_differences(seeds, method: str, baseline: str, column: str) -> list[float]:
    """``method`` minus ``baseline`` in ``column``, one per seed both finished (``seeds``:
    :func:`per_seed` indexed by method and trial)."""
    shared = sorted(set(seeds.loc[method].index) & set(seeds.loc[baseline].index))
    return [seeds.loc[(method, t), column] - seeds.loc[(baseline, t), column] for t in shared]


def paired_table(results, columns=("aulc", "labels_to_90", "final_ensemble_accuracy", "final_nll")):
    """Each comparison of :data:`COMPARISONS`: the paired difference over seeds and its interval."""
    import pandas as pd

    seeds = per_seed(results).set_index(["method", "trial"])
    methods = set(seeds.index.get_level_values(0))
    rows = []
    for method, baseline in COMPARISONS:
        if method not in methods or baseline not in methods:
            continue
        row = {"comparison": f"{method} - {baseline}"}
        for column in columns:
            differences = paired_differences(seeds, method, baseline, column)
            row["pairs"] = len(differences)
            interval = intervals.mean_interval(differences)
            digits = 0 if column.startswith("labels") else 3
            row[column] = interval.text(digits) if interval.n else "n/a"
        rows.append(row)
    return pd.DataFrame(rows, columns=["comparison", "pairs", *columns])


def class_balance(results, pool_labels, step: int = STEP):
    """Per arm: the share of each digit among the acquired labels (the first 20 left out), and
    the mean number of different digits in an acquired batch of ``step``, over the finished
    seeds.

    ``pool_labels`` are the labels of the pool (MNIST's 60,000 training digits).
    """
    import pandas as pd

    from ..running.results import load_round, load_run

    rows = {}
    for method, group in results.groupby("method"):
        run = load_run(group["folder"].iloc[0])
        shares, distinct = [], []
        for trial in sorted(group["trial"].unique()):
            finished = group[group["trial"] == trial]["round"].max()
            if group[group["trial"] == trial]["n_labeled"].max() < BUDGET:
                continue
            labelled = load_round(run, int(trial), int(finished))["labelled"]
            acquired = pool_labels[labelled[INITIAL:]]
            shares.append(np.bincount(acquired, minlength=10) / len(acquired))
            distinct.extend(len(set(acquired[i : i + step])) for i in range(0, len(acquired), step))
        if shares:
            rows[method] = {
                **{str(d): share for d, share in enumerate(np.mean(shares, axis=0))},
                "digits_per_batch": float(np.mean(distinct)),
            }
    order = [arm for arm in ARMS if arm in rows]
    return pd.DataFrame.from_dict(rows, orient="index").loc[order]


def learning_curves(
    results,
    methods=None,
    ax=None,
    colors=None,
    labels=None,
    thresholds=THRESHOLDS,
    ylabel="test accuracy (10,000 digits)",
):
    """Mean test accuracy against labels per arm, with the 95 % t band over seeds.

    ``colors`` and ``labels`` (dicts by arm) set an arm's colour and legend
    entry; an arm with no rows in ``results`` is left out. ``thresholds`` are
    drawn as dotted lines.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    for method in methods or [arm for arm in ARMS if arm in set(results["method"])]:
        mine = results[results["method"] == method]
        if mine.empty:
            continue
        sizes, means, lows, highs = [], [], [], []
        for size, group in mine.groupby("n_labeled"):
            interval = intervals.mean_interval(group["ensemble_accuracy"])
            sizes.append(size)
            means.append(interval.mean)
            lows.append(interval.low)
            highs.append(interval.high)
        label, color = (labels or {}).get(method, method), (colors or {}).get(method)
        (line,) = ax.plot(sizes, means, label=label, color=color)
        ax.fill_between(sizes, lows, highs, color=line.get_color(), alpha=0.15, linewidth=0)
    for threshold in thresholds:
        ax.axhline(threshold, color="0.6", linewidth=0.8, linestyle=":")
    ax.set_xlabel("labelled digits")
    ax.set_ylabel(ylabel)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return ax


def report(results) -> str:
    """The tables of the study's README, in Markdown."""
    lines = ["## Per arm (mean [95 % t interval] over seeds)", ""]
    lines += [summary(results).to_markdown(), ""]
    lines += ["## Paired differences (method - baseline, same seeds)", ""]
    paired = paired_table(results)
    if paired.empty:
        lines += ["No comparison has a finished pair of seeds yet.", ""]
    else:
        pairs = int(paired["pairs"].max())
        smallest = intervals.smallest_exact_p(pairs)
        lines += [
            paired.to_markdown(index=False),
            "",
            f"With {pairs} pair{'s' if pairs != 1 else ''} no sign or permutation test can give "
            f"p below {smallest:.3g}; the table makes {len(paired)} comparisons of each column.",
            "",
        ]
    gal = ", ".join(f"{name} {a} / {b}" for name, (a, b) in GAL_TABLE.items())
    lines += [f"Gal et al. (2017), MC dropout, labels to 90 % / 95 %: {gal}.", ""]
    return "\n".join(lines)
