"""How far acquisition tilts the labelled set away from the pool's class mix.

Random acquisition keeps the labelled set a sample of the pool; an uncertainty
score can favour the classes the ensemble finds hard. :func:`last_round_shares`
counts each class in every trial's last labelled set, and :func:`describe`
says, for a group of classes, their share of the pool and of each method's
labelled sets, with a chi-square test of the labelled counts against the
pool's class proportions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..figures.plots import run_labels
from ..running.results import Run, load_round, saved_rounds

# CIFAR-10's four vehicle classes, the group BALD's picks favour in the CPU study
VEHICLES = ("airplane", "automobile", "ship", "truck")


def last_round_shares(runs: Sequence[Run], pool_labels, class_names: Sequence[str]):
    """Each class's share of the labelled set at every trial's last saved round.

    A table (pandas) indexed by method and trial, a column per class plus
    ``labels`` (the set's size) and ``chi2_p``: the p-value of a chi-square
    goodness-of-fit test of the labelled counts against the pool's class
    proportions (a small value says the set is not a random sample of the pool).
    A first row, ``pool``, holds the pool's own shares.
    """
    import pandas as pd
    from scipy import stats

    pool_labels = np.asarray(pool_labels)
    n_classes = len(class_names)
    pool_counts = np.bincount(pool_labels, minlength=n_classes)
    pool_share = pool_counts / pool_counts.sum()
    rows = [{"method": "pool", "trial": -1, **dict(zip(class_names, pool_share, strict=True))}]
    rows[0].update(labels=int(pool_counts.sum()), chi2_p=float("nan"))
    for run, label in zip(runs, run_labels(runs), strict=True):
        for trial in sorted(set(run.results["trial"])):
            labelled = load_round(run, trial, saved_rounds(run, trial)[-1])["labelled"]
            counts = np.bincount(pool_labels[labelled], minlength=n_classes)
            test = stats.chisquare(counts, pool_share * counts.sum())
            rows.append(
                {
                    "method": label,
                    "trial": int(trial),
                    **dict(zip(class_names, counts / counts.sum(), strict=True)),
                    "labels": int(counts.sum()),
                    "chi2_p": float(test.pvalue),
                }
            )
    return pd.DataFrame(rows).set_index(["method", "trial"])


def describe(shares, group: Sequence[str] = VEHICLES) -> list[str]:
    """A sentence for the pool and one per method: the share of ``group`` in the labelled
    sets (lowest to highest over the trials) and the largest chi-square p-value."""
    missing = [name for name in group if name not in shares.columns]
    if missing:
        raise ValueError(f"classes {missing} are not among {list(shares.columns)}")
    named = ", ".join(group[:-1]) + f" and {group[-1]}" if len(group) > 1 else group[0]
    total = shares[list(group)].sum(axis=1)
    sentences = [f"{named}: {total.loc['pool'].iloc[0]:.0%} of the pool."]
    for method, rows in total.drop(index="pool", level="method").groupby(
        level="method", sort=False
    ):
        p = shares.loc[method, "chi2_p"]
        labels = int(shares.loc[method, "labels"].iloc[0])
        low, high = f"{rows.min():.0%}", f"{rows.max():.0%}"
        spread = low if low == high else f"{low} to {high}"
        sentences.append(
            f"{method}: {spread} of its {labels:,} labels over {len(rows)} trial(s); "
            f"chi-square against the pool's class mix, largest p = {p.max():.2g}."
        )
    return sentences
