"""How close the toy approximations come to the reference posterior (:mod:`.reference_posterior`).

Each approximation is trained on the same labelled points as the reference
with :func:`dpe_tutorial.running.toy.train_ensemble` (chapter 2's settings,
:data:`TOY_SETTINGS`) and read at the same points:

- ``total_variation`` and ``kl``: the mean, over points, of the distance
  from the reference's predictive distribution to the approximation's
  (KL(reference || approximation), the information lost by using it);
- ``mi_error``: the mean absolute error of the mutual information (BALD's
  score), and ``mi_bias``: its mean signed error (below 0: the
  approximation's members agree more than the posterior's draws);
- ``spearman`` and ``top_overlap``: how BALD's ranking of a pool agrees with
  the reference's (rank correlation; the share of the reference's top
  ``TOP`` points that the approximation also ranks in its top ``TOP``).

:func:`method_table` summarises a metric per method over seeds with 95 %
intervals, :func:`against` as paired differences from another method
(:mod:`dpe_tutorial.studies.intervals`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..method import acquisition, choices
from . import intervals

TOP = 10
PASSES = 64  # Monte Carlo dropout passes: as many as the largest ensemble has members, twice
# chapter 2's toy training: 8 members of a 32-unit, 2-layer MLP, 300 Adam steps at 0.01
TOY_SETTINGS = {"n_members": 8, "width": 32, "depth": 2, "steps": 300, "learning_rate": 0.01}
DEFAULT = f"DPE {choices.DEFAULT_KL_FORM}, beta={choices.DEFAULT_BETA}"
PLAIN = "plain ensemble"
BETAS = ("elbo*0.1", "elbo", "elbo*10")
DROPOUT_RATES = (0.1, 0.5)
METRICS = ("total_variation", "kl", "mi_error", "mi_bias", "spearman", "top_overlap")
# the direction of each metric: True where lower is closer to the reference
LOWER_IS_BETTER = {
    "total_variation": True,
    "kl": True,
    "mi_error": True,
    "mi_bias": None,  # signed: neither direction is better
    "spearman": False,
    "top_overlap": False,
}


def methods() -> dict[str, dict]:
    """Every approximation compared: name -> settings for
    :func:`dpe_tutorial.running.toy.train_ensemble`.

    DPE in each KL form at each of :data:`BETAS` (``elbo`` is E / N; the
    package's default is one of them), the plain ensemble (beta 0) and a
    single network with Monte Carlo dropout at each of :data:`DROPOUT_RATES`.
    """
    table = {PLAIN: {"beta": 0.0}}
    for form in choices.FORMS:
        for beta in BETAS:
            table[f"DPE {form}, beta={beta}"] = {"kl_form": form, "beta": beta}
    for rate in DROPOUT_RATES:
        table[f"MC dropout, p={rate}"] = {"n_members": 1, "beta": 0.0, "dropout": rate}
    if DEFAULT not in table:
        raise AssertionError(f"the package default {DEFAULT} must be among the methods")
    return table


def approximate(method: str, x, y, points, seed: int = 0, n_classes: int = 2, **overrides):
    """``method`` trained on ``(x, y)``: member probabilities ``(n, E, classes)`` at ``points``.

    ``overrides`` change :data:`TOY_SETTINGS` (``n_members=32``); Monte
    Carlo dropout draws :data:`PASSES` stochastic passes as its members.
    """
    from ..running import toy

    settings = {**TOY_SETTINGS, **_method_settings(method), **overrides}
    model = toy.train_ensemble(x, y, n_classes, seed=seed, **settings)
    passes = PASSES if settings.get("dropout") else 1
    return model.predict_members(np.asarray(points, np.float32), batch_size=4096, passes=passes)


def _method_settings(method: str) -> dict:
    table = methods()
    if method not in table:
        raise ValueError(f"unknown method {method!r}; one of: {', '.join(table)}")
    return table[method]


def predictive_distance(reference_probs, member_probs) -> dict[str, float]:
    """Mean total variation and mean KL(reference || approximation) over the points.

    ``reference_probs`` ``(n, classes)``; ``member_probs`` ``(n, members,
    classes)``, whose mean over members is the approximation's predictive.
    Probabilities are floored at 1e-12 in the KL's logarithms.
    """
    p = np.asarray(reference_probs, np.float64)
    q = np.asarray(member_probs, np.float64).mean(axis=1)
    if p.shape != q.shape:
        raise ValueError(f"reference {p.shape} and approximation {q.shape} differ in shape")
    floor = 1e-12
    kl = np.sum(p * (np.log(np.maximum(p, floor)) - np.log(np.maximum(q, floor))), axis=1)
    return {
        "total_variation": float(0.5 * np.abs(p - q).sum(axis=1).mean()),
        "kl": float(np.maximum(kl, 0.0).mean()),
    }


def bald_agreement(reference_information, information, top: int = TOP) -> dict[str, float]:
    """Rank correlation of two BALD scorings of a pool, and the overlap of their top ``top``."""
    from scipy import stats

    reference_information = np.asarray(reference_information, np.float64)
    information = np.asarray(information, np.float64)
    if reference_information.shape != information.shape or reference_information.ndim != 1:
        raise ValueError(
            f"two score vectors of one pool needed, got {reference_information.shape} "
            f"and {information.shape}"
        )
    if len(information) < top:
        raise ValueError(f"a pool of {len(information)} has no top {top}")
    best_reference = set(np.argsort(-reference_information, kind="stable")[:top])
    best = set(np.argsort(-information, kind="stable")[:top])
    return {
        "spearman": float(stats.spearmanr(reference_information, information).statistic),
        "top_overlap": len(best_reference & best) / top,
    }


def compare(reference_grid, reference_pool, grid_member_probs, pool_member_probs) -> dict:
    """Every metric of one approximation against the reference.

    ``reference_grid`` and ``reference_pool`` are :class:`~.reference_posterior.Reference`
    (or anything with ``probs`` and ``mutual_information``) at the grid and
    the unlabelled pool; the member probabilities are the approximation's at
    the same points. Predictive distances and the MI error are over the grid,
    the ranking over the pool.
    """
    grid_information = acquisition.mutual_information(grid_member_probs)
    pool_information = acquisition.mutual_information(pool_member_probs)
    error = grid_information - reference_grid.mutual_information
    return {
        **predictive_distance(reference_grid.probs, grid_member_probs),
        "mi_error": float(np.abs(error).mean()),
        "mi_bias": float(error.mean()),
        **bald_agreement(reference_pool.mutual_information, pool_information),
    }


def method_table(rows: pd.DataFrame, metric: str, digits: int = 3) -> pd.DataFrame:
    """``metric`` by method and labelled-set size: mean [95 % interval] over seeds."""
    _check_metric(metric)
    cells = {}
    for (size, method), group in rows.groupby(["labelled", "method"], sort=False):
        interval = intervals.mean_interval(group[metric])
        cells.setdefault(f"{size} labels", {})[method] = interval.plain_text(digits)
    return pd.DataFrame(cells).rename_axis(metric)


def against(rows: pd.DataFrame, metric: str, baseline: str = PLAIN, digits: int = 3):
    """Each method minus ``baseline`` in ``metric``, paired by seed: mean [95 % interval].

    Returns the table of texts (methods by labelled-set sizes) and the
    :class:`~dpe_tutorial.studies.intervals.Interval` of every cell, keyed
    ``(method, size)``.
    """
    _check_metric(metric)
    found = {}
    for size, at_size in rows.groupby("labelled", sort=False):
        wide = at_size.pivot(index="seed", columns="method", values=metric)
        if baseline not in wide:
            raise ValueError(f"no {baseline!r} rows at {size} labels")
        order = [m for m in dict.fromkeys(at_size["method"]) if m != baseline]
        for method in order:
            found[(method, size)] = intervals.paired_interval(wide[method], wide[baseline])
    cells = {}
    for (method, size), interval in found.items():
        cells.setdefault(f"{size} labels", {})[method] = interval.text(digits)
    return pd.DataFrame(cells).rename_axis(f"{metric}, minus {baseline}"), found


def direction_counts(found: dict, metric: str) -> pd.DataFrame:
    """How many methods each labelled-set size finds closer, farther or undecided against the
    baseline, from :func:`against`'s intervals (closer: the interval excludes zero on the side
    of the reference)."""
    _check_metric(metric)
    lower = LOWER_IS_BETTER[metric]
    if lower is None:
        raise ValueError(f"{metric} is signed; no side of it is closer")
    words = {"better": "closer", "worse": "farther", "undecided": "undecided"}
    counts = {}
    for (_, size), interval in found.items():
        word = words[intervals.direction(interval, lower_is_better=lower)]
        counts.setdefault(size, dict.fromkeys(words.values(), 0))[word] += 1
    return pd.DataFrame(counts).T.rename_axis("labels")


def size_summary(rows: pd.DataFrame, reference_information) -> pd.DataFrame:
    """The MI estimate's bias and spread by ensemble size, per method, over seeds.

    ``rows`` has columns ``method``, ``members``, ``seed`` and
    ``information`` (each seed's pool MI, an array); ``reference_information``
    is the reference's. ``bias`` is the mean over points and seeds of
    (estimate - reference), with its 95 % interval over seeds; ``spread`` the
    mean over points of the estimate's standard deviation across seeds;
    ``share`` the mean estimate as a share of the reference's mean.
    """
    reference_information = np.asarray(reference_information, np.float64)
    out = []
    for (method, members), group in rows.groupby(["method", "members"], sort=False):
        estimates = np.stack(group["information"].to_list())  # (seeds, points)
        bias = intervals.mean_interval((estimates - reference_information).mean(axis=1))
        spread = float(estimates.std(axis=0, ddof=1).mean()) if len(estimates) > 1 else np.nan
        out.append(
            {
                "method": method,
                "members": int(members),
                "seeds": len(estimates),
                "bias": bias.mean,
                "bias_low": bias.low,
                "bias_high": bias.high,
                "spread": spread,
                "share": float(estimates.mean() / reference_information.mean()),
            }
        )
    return pd.DataFrame(out)


def size_against(rows: pd.DataFrame, baseline: str = PLAIN, digits: int = 4):
    """Each method's mean pool MI minus ``baseline``'s with as many members, paired by seed.

    ``rows`` as for :func:`size_summary`. Returns the texts (ensemble sizes by
    methods) and the :class:`~dpe_tutorial.studies.intervals.Interval` of each
    cell, keyed ``(method, members)``; sizes ``baseline`` lacks are left out.
    """
    means = rows.assign(mean=[float(np.mean(x)) for x in rows["information"]])
    wide = means.pivot_table(index=["members", "seed"], columns="method", values="mean")
    if baseline not in wide:
        raise ValueError(f"no {baseline!r} rows in the ensemble-size check")
    found = {}
    for members, at_size in wide.groupby(level="members"):
        for method in at_size.columns.drop(baseline):
            if at_size[method].notna().any() and at_size[baseline].notna().any():
                found[(method, members)] = intervals.paired_interval(
                    at_size[method], at_size[baseline]
                )
    cells = {}
    for (method, members), interval in found.items():
        cells.setdefault(method, {})[members] = interval.text(digits)
    return pd.DataFrame(cells).rename_axis(f"mean MI minus {baseline}'s; members"), found


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")


def method_label(method: str) -> str:
    """The method's name with the package's default marked, for tables and legends."""
    return f"{method} (default)" if method == DEFAULT else method
