"""The MNIST reproduction follow-up: MC dropout as Gal et al. ran it, 10 labels a round.

The MNIST study (:mod:`dpe_tutorial.studies.mnist_study`) acquires 20 labels a
round with one recipe for every model; its diagnostics
(:mod:`dpe_tutorial.studies.mnist_diagnostics`) found that recipe leaves MC
dropout under-trained. The follow-up, registered in
``results/mnist-reproduction/README.md`` before its runs, runs MC dropout with
BALD and with random acquisition alone, which the budget affords at Gal et
al.'s 10 labels a round, with the learning rate MC dropout's own validation NLL prefers, and
reads the study's two reproduction criteria on them. Its seeds start from the
study's initial labels, so each arm is also paired with the study's.

    python scripts/mnist_study.py --out results/mnist-reproduction --reproduction
"""

from __future__ import annotations

from . import intervals, mnist_report
from . import mnist_study as study

ARMS = study.REPRODUCTION_ARMS


def progress(results) -> str:
    """One line: the finished seeds of each arm, of :data:`~mnist_study.TRIALS`."""
    seeds = study.per_seed(results)
    counts = seeds.groupby("method").size() if not seeds.empty else {}
    parts = [f"{arm} {int(counts.get(arm, 0))}" for arm in ARMS]
    total = int(sum(counts.get(arm, 0) for arm in ARMS))
    return (
        f"**Finished so far:** {total} of the follow-up's {len(ARMS) * study.TRIALS} runs "
        f"(seeds: {'; '.join(parts)}, of {study.TRIALS} each)."
    )


def summary_beside_gal(results):
    """The follow-up's arms: :func:`mnist_study.summary` beside Gal et al.'s labels to 90 / 95 %."""
    table = mnist_report.summary_beside_gal(results)
    return table.loc[[arm for arm in ARMS if arm in table.index]]


def reading(results) -> str:
    """The study's two reproduction criteria, read on the follow-up (Markdown)."""
    seeds = study.per_seed(results).set_index(["method", "trial"])
    methods = set(seeds.index.get_level_values(0))
    bald = seeds.loc[mnist_report.BALD] if mnist_report.BALD in methods else None
    random = seeds.loc[mnist_report.RANDOM] if mnist_report.RANDOM in methods else None
    shared = (
        sorted(set(bald.index) & set(random.index))
        if bald is not None and random is not None
        else []
    )
    final = len(shared) == study.TRIALS
    so_far = "" if final else f" so far (the verdict needs all {study.TRIALS} seeds)"
    first, met_1 = mnist_report.labels_criterion(bald, so_far)
    second, met_2 = mnist_report.random_criterion(seeds, shared, so_far)
    if not final:
        verdict = "**Not yet determinable.**"
    elif met_1 and met_2:
        verdict = "**Gal et al.'s finding is reproduced** by both registered criteria."
    elif met_2:
        verdict = (
            "**Half reproduced:** BALD needs fewer labels than random acquisition, but more "
            "than 1.5 times Gal et al.'s to reach 90 %."
        )
    elif met_1:
        verdict = (
            "**Half reproduced:** BALD reaches 90 % within 1.5 times Gal et al.'s labels, "
            "but the seeds do not show it needing fewer than random acquisition."
        )
    else:
        verdict = "**Not reproduced** by either registered criterion."
    return "\n\n".join([first, second, verdict])


def against_study(results, main):
    """Each arm of the follow-up minus the same arm of the study, paired by seed.

    Both start a seed from the same 20 labels; they differ in the learning
    rate and in acquiring 10 labels a round instead of 20. Labels to 90 %
    are read on each one's own grid (10 and 20). A row per arm: the pairs,
    and the mean difference with its 95 % t interval of the AULC and of the
    labels to 90 %.
    """
    import pandas as pd

    ours = study.per_seed(results).set_index(["method", "trial"])
    theirs = study.per_seed(main).set_index(["method", "trial"])
    rows = []
    for arm in ARMS:
        if arm not in ours.index.get_level_values(0) or arm not in theirs.index.get_level_values(0):
            continue
        shared = sorted(set(ours.loc[arm].index) & set(theirs.loc[arm].index))
        row = {"arm": arm, "pairs": len(shared)}
        for column, digits in (("aulc", 3), ("labels_to_90", 0)):
            interval = intervals.paired_interval(
                [ours.loc[(arm, t), column] for t in shared],
                [theirs.loc[(arm, t), column] for t in shared],
            )
            name = mnist_report.SUMMARY_HEADERS[column]
            row[f"{name}, follow-up minus study"] = interval.text(digits) if interval.n else "n/a"
        rows.append(row)
    return pd.DataFrame(rows).set_index("arm") if rows else pd.DataFrame()


def curves_figure(results, main=None):
    """The follow-up's learning curves (mean, 95 % t band) with Gal et al.'s labels to
    90 / 95 % marked; the study's MC dropout curves, thin and dashed, when ``main`` is given."""
    import matplotlib.pyplot as plt

    from ..figures import palette

    colors = {
        "MC dropout, BALD": palette.colour("blue"),
        "MC dropout, random": palette.colour("random"),
    }
    fig, ax = plt.subplots(figsize=palette.figsize(1, aspect=0.7))
    labels = {arm: f"{arm.split(', ')[1]}, 10 a round, lr 3e-3" for arm in ARMS}
    study.learning_curves(study.finished(results), list(ARMS), ax=ax, colors=colors, labels=labels)
    if main is not None:
        done = study.finished(main)
        for arm in ARMS:
            mine = done[done["method"] == arm]
            if mine.empty:
                continue
            means = mine.groupby("n_labeled")["ensemble_accuracy"].mean()
            ax.plot(
                means.index,
                means.to_numpy(),
                color=colors[arm],
                linestyle="--",
                linewidth=0.9,
                label=f"{arm.split(', ')[1]}, the study (20 a round, lr 1e-3)",
            )
    for arm, key in (("MC dropout, BALD", "BALD"),):
        for labels_needed, threshold in zip(
            mnist_report.GAL_2017[key], study.THRESHOLDS, strict=True
        ):
            ax.plot(labels_needed, threshold, "x", color=colors[arm], markersize=7)
    ax.plot(
        mnist_report.GAL_2017["random"][0],
        study.THRESHOLDS[0],
        "x",
        color=colors["MC dropout, random"],
        markersize=7,
        label="Gal et al. (2017), labels to 90 / 95 %",
    )
    ax.set_ylim(0.4, 1.0)
    ax.set_xlim(study.INITIAL, study.BUDGET)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    plt.close(fig)
    return fig
