"""What the chapter "Where active learning works" shows of the MNIST study.

The tables, the figure and the computed prose of the chapter, read from the
committed results (``results/mnist-study/``) and never typed in: the study is
pre-registered and still running, so every number the chapter prints comes
from these functions at build time. The statistics are those of
:mod:`dpe_tutorial.studies.mnist_study` (per seed, then a mean or a paired difference
over seeds with its 95 % t interval). The recipe's tables are
:mod:`dpe_tutorial.studies.mnist_recipe_report`'s.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..figures import palette
from ..running.results_folder import RESULTS
from . import intervals
from . import mnist_study as study
from .mnist_study import ACQUISITION_COMPARISONS, MODEL_COMPARISONS  # noqa: F401  (the chapter reads both)

# Gal, Islam and Ghahramani (2017), Table 1: MC dropout, labels acquired to reach 10 % / 5 %
# test error on MNIST (their "max entropy" is this package's predictive entropy)
GAL_2017 = {
    "BALD": (145, 335),
    "variation ratios": (120, 295),
    "max entropy": (165, 355),
    "mean STD": (230, 695),
    "random": (255, 835),
}
# the pre-registered criterion (1): MC dropout with BALD reaches 90 % within 1.5 x Gal's 145
LABELS_LIMIT = math.floor(1.5 * study.GAL_TABLE["BALD"][0])
BALD, RANDOM = "MC dropout, BALD", "MC dropout, random"

RESULT_COLUMNS = ("method", "trial", "round", "n_labeled", "ensemble_accuracy", "nll", "ece")


def load(out_root):
    """Every row of the study under ``out_root``; an empty table when nothing is there yet."""
    import pandas as pd

    if not any(Path(out_root).glob(f"*/{RESULTS}")):
        return pd.DataFrame(columns=[*RESULT_COLUMNS, "folder"])
    return study.load_results(out_root)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def progress(results) -> str:
    """A Markdown line: how many of the study's runs (arm x seed) have finished, and per arm."""
    counts = study.per_seed(results).groupby("method").size()
    total = sum(study.planned_trials(arm) for arm in study.ARMS)
    done = [f"{arm} ({_plural(int(counts[arm]), 'seed')})" for arm in study.ARMS if arm in counts]
    waiting = len(study.ARMS) - len(done)
    text = (
        f"**Finished so far:** {int(counts.sum())} of the study's {total} runs "
        f"({len(study.ARMS)} arms: {study.TRIALS} seeds of each MC dropout arm and "
        f"{study.ENSEMBLE_TRIALS} of each ensemble arm, deviation 1 of the README)"
    )
    text += f": {'; '.join(done)}" if done else ""
    if waiting:
        text += f"; {_plural(waiting, 'arm')} without a finished seed yet"
    running = _running(results)
    if running:
        text += f". Unfinished, left out of every table and figure: {'; '.join(running)}"
    return text + "."


def _running(results) -> list[str]:
    if results.empty:
        return []
    last = results.groupby(["method", "trial"])["n_labeled"].max()
    return [
        f"{method}, seed {int(trial)} (at {int(size)} labels)"
        for (method, trial), size in last.items()
        if size < study.BUDGET
    ]


def gal_table():
    """Gal et al. (2017), Table 1 (MC dropout): labels to reach 90 % and 95 % test accuracy."""
    import pandas as pd

    table = pd.DataFrame.from_dict(
        GAL_2017, orient="index", columns=["labels to 90 %", "labels to 95 %"]
    )
    table.index.name = "acquisition (Gal et al. 2017)"
    return table


SUMMARY_HEADERS = {
    "seeds": "seeds",
    "labels_to_90": "labels to 90 %",
    "labels_to_95": "labels to 95 %",
    "aulc": "AULC",
    "final_ensemble_accuracy": "accuracy at 400",
    "final_nll": "NLL at 400",
    "final_ece": "ECE at 400",
}


def summary_beside_gal(results):
    """Every arm (those without a finished seed too): :func:`mnist_study.summary` and, for the
    MC dropout arms, Gal et al.'s labels to 90 % / 95 %."""
    import pandas as pd

    summary = study.summary(results)
    rows = {}
    for arm in study.ARMS:
        row = {column: "-" for column in SUMMARY_HEADERS}
        row["seeds"] = 0
        if arm in summary.index:
            row.update(summary.loc[arm].to_dict())
        model, acquisition = arm.split(", ")[:2]
        gal = study.GAL_TABLE.get(acquisition) if model == "MC dropout" else None
        row["Gal et al."] = f"{gal[0]} / {gal[1]}" if gal else ""
        rows[arm] = row
    table = pd.DataFrame.from_dict(rows, orient="index").rename(columns=SUMMARY_HEADERS)
    table["seeds"] = table["seeds"].astype(int)
    return table.rename(columns={"Gal et al.": "Gal et al., labels to 90 / 95 %"})


def paired(results):
    """:func:`mnist_study.paired_table` with the chapter's column names, one row a comparison."""
    table = study.paired_table(results)
    if table.empty:
        return table
    return table.set_index("comparison").rename(columns=SUMMARY_HEADERS)


def pairs_note(results) -> str:
    """What the finished pairs allow: the smallest p an exact test can give with them."""
    seeds = study.per_seed(results)
    pairs = [
        len(
            set(seeds[seeds["method"] == method]["trial"])
            & set(seeds[seeds["method"] == baseline]["trial"])
        )
        for method, baseline in study.COMPARISONS
    ]
    most = max(pairs)
    full = intervals.smallest_exact_p(study.TRIALS)
    short = intervals.smallest_exact_p(study.ENSEMBLE_TRIALS)
    text = (
        f"A comparison of two MC dropout arms has {study.TRIALS} pairs of seeds, where no "
        f"exact sign or permutation test can give a two-sided p below {full:.4g}; one with an "
        f"ensemble has {study.ENSEMBLE_TRIALS} (deviation 1), where the bound is {short:.4g} and "
        f"the t interval has {study.ENSEMBLE_TRIALS - 1} degrees of freedom, so it is wide. The "
        f"text reads the intervals, and each column of the table makes "
        f"{len(study.COMPARISONS)} comparisons."
    )
    if most == 0:
        return text + " No comparison has a finished pair of seeds yet."
    if not _all_planned_pairs(pairs):
        now = intervals.smallest_exact_p(most)
        return text + (
            f" So far a comparison has at most {_plural(most, 'pair')}, where that bound is "
            f"{now:.4g}" + (": an interval needs two pairs." if most < 2 else ".")
        )
    return text


def pairs_reading(results, comparisons=MODEL_COMPARISONS) -> str:
    """Each of ``comparisons`` (method, baseline) read from its paired intervals (Markdown
    bullets): the whole curve (AULC) and the last round's NLL, each with the word its interval
    allows and no more."""
    seeds = study.per_seed(results).set_index(["method", "trial"])
    methods = set(seeds.index.get_level_values(0))
    lines = []
    for method, baseline in comparisons:
        if method not in methods or baseline not in methods:
            continue
        aulc = study.paired_differences(seeds, method, baseline, "aulc")
        if not aulc:
            continue
        nll = study.paired_differences(seeds, method, baseline, "final_nll")
        lines.append(
            f"- **{method}** minus **{baseline}** ({_plural(len(aulc), 'pair')}): AULC "
            f"{intervals.brief(aulc)}; last round's NLL "
            f"{intervals.brief(nll, lower_is_better=True)}."
        )
    if not lines:
        return "None of these comparisons has a finished pair of seeds yet."
    return "\n".join(lines)


def _all_planned_pairs(pairs: list[int]) -> bool:
    """Whether every comparison has all the pairs deviation 1 plans for it."""
    planned = [
        min(study.planned_trials(method), study.planned_trials(baseline))
        for method, baseline in study.COMPARISONS
    ]
    return all(have >= want for have, want in zip(pairs, planned, strict=True))


def curves_figure(results):
    """Learning curves of the finished seeds, mean and 95 % t band: one panel per model with its
    three acquisitions (Gal et al.'s labels to 90 / 95 % marked on MC dropout's), and DPE with
    BALD by top k against power sampling. A panel without a finished seed says so."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    done = study.finished(results)
    colors = {
        "BALD": palette.colour("blue"),
        "predictive entropy": palette.colour("predictive_entropy"),
        "random": palette.colour("random"),
    }
    fig, axes = plt.subplots(
        2, 2, figsize=palette.figsize(2, 2, aspect=0.75), sharex=True, sharey=True
    )
    panels = [
        (model, {f"{model}, {a}": (a, c) for a, c in colors.items()}) for model in study.MODELS
    ]
    panels.append(
        (
            "DPE, BALD: top 20 or power sampling",
            {
                "DPE, BALD": ("top 20", colors["BALD"]),
                "DPE, BALD, power": ("power sampling", palette.colour("pick")),
            },
        )
    )
    for ax, (title, arms) in zip(axes.flat, panels, strict=True):
        study.learning_curves(
            done,
            list(arms),
            ax=ax,
            colors={arm: color for arm, (_, color) in arms.items()},
        )
        if ax.get_legend() is not None:  # learning_curves draws one when a curve is there
            ax.get_legend().remove()
        else:
            ax.text(0.5, 0.5, "no finished seed yet", transform=ax.transAxes, ha="center")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0.4, 1.0)
        ax.set_xlim(study.INITIAL, study.BUDGET)
        ax.label_outer()
    gal = axes.flat[0]
    for acquisition, key in (("BALD", "BALD"), ("predictive entropy", "max entropy")):
        for labels, threshold in zip(GAL_2017[key], study.THRESHOLDS, strict=True):
            gal.plot(labels, threshold, "x", color=colors[acquisition], markersize=7)
    gal.plot(GAL_2017["random"][0], study.THRESHOLDS[0], "x", color=colors["random"], markersize=7)
    handles = [Line2D([], [], color=c, label=a) for a, c in colors.items()]
    handles.append(Line2D([], [], color="0.3", marker="x", linestyle="", label="Gal et al. (2017)"))
    gal.legend(handles=handles, fontsize=8, loc="lower right")
    power = axes.flat[3]
    handles = [Line2D([], [], color=c, label=name) for name, c in panels[3][1].values()]
    power.legend(handles=handles, fontsize=8, loc="lower right")
    fig.tight_layout()
    plt.close(fig)
    return fig


def balance_table(results, pool_labels):
    """:func:`mnist_study.class_balance` in percent, under the pool's own shares; None while
    no seed has finished."""
    import numpy as np

    table = study.class_balance(results, pool_labels)
    if table.empty:
        return None
    digits = [str(d) for d in range(10)]
    pool = np.bincount(pool_labels, minlength=10) / len(pool_labels)
    table.loc["the pool (60,000 digits)", digits] = pool
    batch = f"digits in a batch of {study.STEP}"
    table = table.rename(columns={"digits_per_batch": batch})
    styled = table.style.format("{:.0%}", subset=digits)
    return styled.format("{:.1f}", subset=[batch], na_rep="")


def reading(results) -> str:
    """The pre-registered reproduction criteria, read from the finished seeds (Markdown), and
    what they mean for the CIFAR-10 chapter."""
    seeds = study.per_seed(results).set_index(["method", "trial"])
    methods = set(seeds.index.get_level_values(0))
    bald = seeds.loc[BALD] if BALD in methods else None
    shared = sorted(set(bald.index) & set(seeds.loc[RANDOM].index)) if RANDOM in methods else []
    final = bald is not None and len(bald) == study.TRIALS and len(shared) == study.TRIALS
    so_far = "" if final else f" so far (the verdict needs all {study.TRIALS} seeds)"
    first, met_1 = labels_criterion(bald, so_far)
    second, met_2 = random_criterion(seeds, shared, so_far)
    lines = [first, "", second, ""]
    if not final:
        lines.append(
            f"**Not yet determinable:** {_plural(0 if bald is None else len(bald), 'seed')} of "
            f"MC dropout with BALD and {_plural(len(shared), 'pair')} with random acquisition "
            f"are finished, of {study.TRIALS}. Until they are, this chapter cannot say whether "
            "a null result on CIFAR-10 is about the scale and training there or about the "
            "pipeline."
        )
    elif met_2:
        verdict = "reproduced" if met_1 else "half reproduced: criterion (2) is met, (1) is not"
        lines.append(
            f"**The finding is {verdict}.** BALD beats random acquisition here, with the same "
            "loop, scores and training code as the CIFAR-10 chapter: the pipeline can do active "
            "learning. So where BALD does not beat random acquisition in the CIFAR-10 study at "
            "CPU scale, the likely reason is that study's scale and training (a few thousand "
            "labels, short training: the cold start), not a fault of the pipeline."
            + (
                ""
                if met_1
                else " It needs more labels than Gal et al. to reach 90 %: this recipe (20 "
                "labels a round, 300 steps) is less label-efficient than theirs."
            )
        )
    else:
        lines.append(
            "**The finding is not reproduced.** BALD does not beat random acquisition here, "
            "where the literature says it does: a null result on CIFAR-10 cannot then be put "
            "down to its scale, and the pipeline (training recipe, scores, selection) is the "
            "first suspect."
        )
    return "\n".join(lines)


def labels_criterion(bald, so_far: str) -> tuple[str, bool]:
    """Criterion (1) on the per-seed rows of MC dropout with BALD: the sentence, and if met."""
    head = f"(1) MC dropout with BALD reaches 90 % test accuracy within {LABELS_LIMIT} labels"
    if bald is None or bald.empty:
        return f"{head}: **not yet determinable**, no finished seed.", False
    reached = bald["labels_to_90"].dropna()
    if reached.empty:
        return (
            f"{head}: **not met**{so_far}: none of {_plural(len(bald), 'seed')} reached 90 % "
            f"by {study.BUDGET} labels.",
            False,
        )
    interval = intervals.mean_interval(reached)
    met = len(reached) == len(bald) and interval.mean <= LABELS_LIMIT
    mean = f"{interval.mean:.0f}" + (
        f" [{interval.low:.0f}, {interval.high:.0f}]" if interval.n > 1 else ""
    )
    missed = len(bald) - len(reached)
    over = f"mean {mean} labels over {len(reached)} seeds" if len(reached) > 1 else f"{mean} labels"
    text = (
        f"{head}: {over}"
        + (f" ({missed} more never reached it by {study.BUDGET})" if missed else "")
        + f" (Gal et al.: {study.GAL_TABLE['BALD'][0]}): **{'met' if met else 'not met'}**"
        + f"{so_far}."
    )
    return text, met


def random_criterion(seeds, shared, so_far: str) -> tuple[str, bool]:
    """Criterion (2) on the per-seed table and the seeds both arms finished: sentence, if met."""
    head = "(2) random acquisition needs more labels than BALD (both paired intervals above 0)"
    if len(shared) < 2:
        return (
            f"{head}: **not yet determinable**, {_plural(len(shared), 'finished pair')} of "
            "seeds; an interval needs two.",
            False,
        )
    labels = intervals.paired_interval(
        [seeds.loc[(RANDOM, t), "labels_to_90"] for t in shared],
        [seeds.loc[(BALD, t), "labels_to_90"] for t in shared],
    )
    aulc = intervals.paired_interval(
        [seeds.loc[(BALD, t), "aulc"] for t in shared],
        [seeds.loc[(RANDOM, t), "aulc"] for t in shared],
    )
    met = labels.n >= 2 and labels.excludes_zero() and labels.low > 0
    met = met and aulc.excludes_zero() and aulc.low > 0
    dropped = len(shared) - labels.n
    text = (
        f"{head}: labels to 90 %, random minus BALD, {labels.text(0)} over "
        f"{_plural(labels.n, 'pair')}"
        + (f" ({dropped} left out: an arm never reached 90 %)" if dropped else "")
        + f"; AULC, BALD minus random, {aulc.text(3)}: **{'met' if met else 'not met'}**"
        + f"{so_far}."
    )
    return text, met
