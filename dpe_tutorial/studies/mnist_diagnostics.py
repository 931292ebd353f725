"""Diagnostics of the MNIST study: is a gap to Gal et al. the training or the acquisition?

``scripts/mnist_retrain.py`` retrains the labelled sets of finished study runs
with other recipes and scores them on the test digits, one CSV row per run,
seed, recipe and size (``results/mnist-study-diagnostics/retrain.csv``; its
README gives the protocol). Nothing in the study is chosen from it. This
module reads that file:

- :func:`retrain_table`: one run's retrained accuracies beside the study's own;
- :func:`sets_comparison` and :func:`sets_reading`: BALD's labelled sets
  against random sets, each retrained with the same recipe and seed, paired
  by the study's seed.
"""

from __future__ import annotations

from pathlib import Path

from . import intervals

# the study's folder of each arm the diagnostics retrain -> the arm's name
RUNS = {
    "mc-dropout-mutual_information": "MC dropout, BALD",
    "mc-dropout-random": "MC dropout, random",
}
RECIPE_NAMES = {"study": "study recipe, retrained"}
THRESHOLD = 0.90
# the sizes the extension retrains: every second round of the study, 40 to 400 labels
RETRAIN_SIZES = tuple(range(40, 401, 40))
GAL_LABELS_TO_90 = {"MC dropout, BALD": 145, "MC dropout, random": 255}


def load_retrain(path):
    """The rows of ``retrain.csv``; ValueError naming the file when it is absent or unreadable."""
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"{path}: not a readable retrain table ({error})") from None
    missing = {"run", "trial", "recipe", "n_labeled", "ensemble_accuracy"} - set(table.columns)
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(sorted(missing))}")
    return table


def retrain_table(path, results, run: str = "mc-dropout-mutual_information", trial: int = 0):
    """Test accuracy of one study run's labelled sets, retrained with each recipe.

    A row per labelled-set size; the first column is the study's own run
    (``results``: :func:`dpe_tutorial.studies.mnist_report.load`), then a column
    per recipe in the order the file first names them.
    """
    table = load_retrain(path)
    rows = table[(table["run"] == run) & (table["trial"] == trial)]
    if rows.empty:
        raise ValueError(f"{path} has no retrain of {run}, seed {trial}")
    order = list(dict.fromkeys(rows["recipe"]))
    pivot = rows.pivot_table(index="n_labeled", columns="recipe", values="ensemble_accuracy")
    pivot = pivot[order].rename(columns=RECIPE_NAMES)
    own = results[
        (results["folder"].map(lambda folder: Path(folder).name) == run)
        & (results["trial"] == trial)
    ].set_index("n_labeled")["ensemble_accuracy"]
    pivot.insert(0, "the study's own run", own.reindex(pivot.index))
    return pivot.rename_axis(index="labels", columns=None)


def sets_comparison(path, recipe: str = "lr 3e-3"):
    """Per study seed, BALD's retrained sets against random's with ``recipe``.

    Columns per arm: the mean accuracy over the shared sizes (area under the
    retrained curve divided by its width) and the labels to reach 90 % on
    the retrain grid (NaN if never); then BALD minus random of each. Only
    seeds with both arms retrained at every size of :data:`RETRAIN_SIZES`
    are kept.
    """
    import pandas as pd

    table = load_retrain(path)
    table = table[(table["recipe"] == recipe) & table["run"].isin(RUNS)]
    rows = []
    for trial, of_seed in table.groupby("trial"):
        curves = {
            RUNS[run]: rows_of_run.set_index("n_labeled")["ensemble_accuracy"].sort_index()
            for run, rows_of_run in of_seed.groupby("run")
        }
        if len(curves) < 2:
            continue
        bald, random = curves["MC dropout, BALD"], curves["MC dropout, random"]
        shared = list(RETRAIN_SIZES)
        if not (set(shared) <= set(bald.index) and set(shared) <= set(random.index)):
            continue  # a seed part-way through its retrains would read a shorter curve
        row = {"seed": int(trial), "sizes": f"{shared[0]}-{shared[-1]}"}
        for name, curve in (("BALD", bald), ("random", random)):
            row[f"{name} mean accuracy"] = intervals.aulc(shared, curve.loc[shared])
            row[f"{name} labels to 90 %"] = intervals.labels_to_reach(
                shared, curve.loc[shared], THRESHOLD
            )
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["BALD minus random, mean accuracy"] = (
        frame["BALD mean accuracy"] - frame["random mean accuracy"]
    )
    frame["BALD minus random, labels to 90 %"] = (
        frame["BALD labels to 90 %"] - frame["random labels to 90 %"]
    )
    return frame.set_index("seed")


def sets_reading(path, recipes=("study", "lr 3e-3")) -> str:
    """The extension's registered reading, a paragraph per recipe (Markdown)."""
    paragraphs = []
    for recipe in recipes:
        seeds = sets_comparison(path, recipe)
        name = RECIPE_NAMES.get(recipe, recipe)
        if seeds.empty:
            paragraphs.append(f"**{name}**: no seed has both arms retrained yet.")
            continue
        area = seeds["BALD minus random, mean accuracy"].to_numpy()
        reach = seeds["BALD minus random, labels to 90 %"].to_numpy()
        means = []
        for arm in ("BALD", "random"):
            labels = seeds[f"{arm} labels to 90 %"]
            reached = labels.dropna()
            text = f"{reached.mean():.0f}" if len(reached) else "never"
            if len(reached) < len(labels):
                text += f" ({len(labels) - len(reached)} of {len(labels)} seeds never reached it)"
            means.append(f"{arm} {text} (Gal et al.: {GAL_LABELS_TO_90[f'MC dropout, {arm}']})")
        paragraphs.append(
            f"**{name}** ({len(seeds)} seed{'s' if len(seeds) != 1 else ''}): BALD's sets minus "
            f"random sets, mean accuracy over the curve {intervals.brief(area)}; labels to reach "
            f"90 % {intervals.brief(reach, lower_is_better=True, digits=0)} (seeds where both "
            f"reached it). Mean labels to 90 %: {'; '.join(means)}."
        )
    return "\n\n".join(paragraphs)


def retrain_reading(path, results, run: str = "mc-dropout-mutual_information", trial: int = 0):
    """One sentence: the labels each column of :func:`retrain_table` needs to reach 90 %."""
    table = retrain_table(path, results, run, trial)
    reached = []
    for column in table.columns:
        curve = table[column].dropna()
        labels = intervals.labels_to_reach(curve.index, curve.to_numpy(), THRESHOLD)
        reached.append(f"{column} {'never' if labels != labels else f'{labels:.0f}'}")
    arm = RUNS.get(run, run)
    return (
        f"Labels to reach 90 % test accuracy, {arm}, seed {trial} (on the grid of the retrains): "
        f"{'; '.join(reached)}; Gal et al. report {GAL_LABELS_TO_90.get(arm, 'no number')}."
    )
