"""The training recipe for few labels, as the chapter "Where active learning works" shows it.

Read from ``results/mnist-recipe/recipe.csv``: the recipe was chosen on a
validation split drawn from the training digits (never the test set), and
these functions print its tables and computed prose at build time.
"""

from __future__ import annotations

from ..running.config import FEW_LABELS_RECIPE

RECIPE_MODELS = {
    "dpe-paper-elbo*0.1": "DPE",
    "ensemble": "plain ensemble",
    "mc-dropout": "MC dropout",
}
RECIPE_STEPS = (100, 300)
DIAGNOSIS_MODELS = {
    "smoke-preset": "old defaults (small CNN, SGD), beta elbo*0.1",
    "smoke-preset-beta0": "old defaults (small CNN, SGD), beta 0",
    "dpe-paper-elbo*0.1": "Gal et al.'s network, Adam, beta elbo*0.1",
}
RECIPE_METRICS = {
    "accuracy": "accuracy",
    "mean_top_probability": "mean top probability",
    "ece": "ECE",
}
LOGISTIC = "logistic regression"


def _recipe_means(path):
    import pandas as pd

    rows = pd.read_csv(path)
    keys = ["model", "steps", "n_labels"]
    means = rows.groupby(keys)[[*RECIPE_METRICS, "logistic_accuracy"]].mean()
    means["seeds"] = rows.groupby(keys).size()
    return means


def _pivot(rows, index, columns, metrics, order):
    """``rows`` with ``index`` as rows and (metric, ``columns``) as columns, in ``order``."""
    table = rows.pivot_table(index=index, columns=columns, values=list(metrics))
    table = table.reindex(columns=list(metrics), level=0).rename(columns=metrics, level=0)
    return table.reindex([name for name in order if name in set(rows[index[0]])], level=0)


def recipe_table(path):
    """The study's three models at 100 and 300 optimizer steps a round (validation split, mean
    over the seeds measured): accuracy, mean top probability and ECE per labelled-set size, and
    logistic regression on the raw pixels of the same labels."""
    means = _recipe_means(path).reset_index()
    chosen = means[means["model"].isin(RECIPE_MODELS) & means["steps"].isin(RECIPE_STEPS)]
    chosen = chosen.assign(model=chosen["model"].map(RECIPE_MODELS))
    chosen = chosen.rename(columns={"n_labels": "labels"})
    order = RECIPE_MODELS.values()
    table = _pivot(chosen, ["model", "labels"], "steps", RECIPE_METRICS, order)
    table[(LOGISTIC, "")] = chosen.groupby(["model", "labels"])["logistic_accuracy"].first()
    return table.round(3)


def diagnosis_table(path):
    """The query's old defaults (the ``smoke`` preset's small CNN and SGD, 15 or 300 steps)
    beside Gal et al.'s network with Adam, or None when recipe.csv has no such rows."""
    import pandas as pd

    means = _recipe_means(path).reset_index()
    old = means[means["model"].str.startswith("smoke-preset")]
    if old.empty:
        return None
    gal = means[(means["model"] == "dpe-paper-elbo*0.1") & (means["steps"] == 300)]
    rows = pd.concat([old, gal[gal["n_labels"].isin(set(old["n_labels"]))]])
    rows = rows.assign(model=rows["model"].map(DIAGNOSIS_MODELS))
    rows = rows.rename(columns={"n_labels": "labels", "logistic_accuracy": LOGISTIC})
    metrics = {"accuracy": "accuracy", "mean_top_probability": "mean top probability"}
    metrics[LOGISTIC] = LOGISTIC
    return _pivot(rows, ["model", "steps"], "labels", metrics, DIAGNOSIS_MODELS.values()).round(3)


def recipe_text() -> str:
    """The chosen recipe, from :data:`dpe_tutorial.running.presets.FEW_LABELS_RECIPE`."""
    recipe = FEW_LABELS_RECIPE
    optimizer = {"adam": "Adam"}.get(recipe["optimizer"], recipe["optimizer"])
    return (
        f"**The recipe every arm trains with:** {recipe['steps']} optimizer steps a round "
        f"whatever the number of labels, {optimizer} at learning rate "
        f"{recipe['learning_rate']:g} with {recipe['lr_schedule']} decay to 0 over the round, "
        f"batch {recipe['batch_size']} (the whole labelled set when smaller)."
    )


def _span(values, digits: int = 2) -> str:
    low, high = min(values), max(values)
    if round(low, digits) == round(high, digits):
        return f"{low:.{digits}f}"
    return f"{low:.{digits}f} to {high:.{digits}f}"


def recipe_reading(path) -> str:
    """What the recipe table says (Markdown): under-confidence at 100 steps, and at 300."""
    table = recipe_table(path)
    # the smallest set is left out: one draw of 20 labels moves a few points (see the README)
    labels = table.index.get_level_values("labels")
    table = table[labels > labels.min()]
    sizes = " and ".join(str(n) for n in sorted(set(table.index.get_level_values("labels"))))
    steps = [s for s in RECIPE_STEPS if ("accuracy", s) in table.columns]
    seeds = _recipe_means(path)["seeds"]
    lines = [
        "Each row is one seed (one draw of labels)."
        if (seeds == 1).all()
        else f"Each row is the mean over {_span(seeds, 0)} seeds (draws of labels)."
    ]
    for s in steps:
        accuracy = table[("accuracy", s)].dropna()
        top = table[("mean top probability", s)].dropna()
        gap = (accuracy - top).dropna()
        if gap.empty:
            continue
        lines.append(
            f"At {s} steps and {sizes} labels the three models are right (on validation) "
            f"{_span(accuracy)} of the time with a mean top probability of {_span(top)}: "
            f"accuracy minus confidence {_span(gap)}, ECE {_span(table[('ECE', s)].dropna())}."
        )
    if len(steps) == 2:
        gain = ((table[("accuracy", steps[1])] - table[("accuracy", steps[0])]) * 100).dropna()
        change = "rises" if (gain > 0).all() else "changes"
        lines.append(
            f"From {steps[0]} to {steps[1]} steps the accuracy {change} by {_span(gain, 1)} points."
        )
    diagnosis = diagnosis_table(path)
    if diagnosis is not None and (DIAGNOSIS_MODELS["smoke-preset"], 15) in diagnosis.index:
        old = diagnosis.loc[(DIAGNOSIS_MODELS["smoke-preset"], 15)]
        sizes = sorted(n for metric, n in old.index if metric == "accuracy")

        def each(metric):
            return " / ".join(f"{old[(metric, n)]:.2f}" for n in sizes)

        lines.append(
            f"The query's old defaults, 15 steps: accuracy {each('accuracy')} and mean top "
            f"probability {each('mean top probability')} at {' / '.join(map(str, sizes))} "
            f"labels, where logistic regression on the raw pixels reaches {each(LOGISTIC)}."
        )
    return " ".join(lines)
