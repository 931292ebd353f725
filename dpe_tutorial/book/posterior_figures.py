"""Figures of the reference-posterior chapter: maps beside the reference, and ensemble size.

================================== ===========================================
``maps(xx, yy, columns, x, y)``     the predictive and the mutual information
                                    of the reference and of approximations,
                                    one column each, on one colour scale a row
``ensemble_size(summary)``          the MI estimate's bias and spread against
                                    the number of members, per method
================================== ===========================================
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from ..figures import palette
from . import illustrations


def maps(xx, yy, columns: Mapping[str, tuple], x_labelled, y_labelled) -> Figure:
    """One column per model: ``name -> (probs (n, 2), mutual_information (n,))`` on the grid.

    Top row: the predictive probability of class 1; bottom row: the mutual
    information, with one colour scale for the row so columns compare by colour.
    """
    if len(columns) < 2:
        raise ValueError(f"give the reference and at least one approximation, got {len(columns)}")
    shape = np.shape(xx)
    for name, (probs, information) in columns.items():
        if np.shape(probs)[0] != np.prod(shape) or np.shape(information) != (np.prod(shape),):
            raise ValueError(f"{name}: values for {np.prod(shape)} grid points needed")
    aspect = float(np.ptp(yy) / np.ptp(xx))
    figure, axes = illustrations.panels(len(columns), 2, aspect=aspect, sharex=True, sharey=True)
    top = max(float(np.max(information)) for _, information in columns.values())
    information_levels = np.linspace(0.0, top if top > 0 else 1.0, 11)
    for column, (name, (probs, information)) in enumerate(columns.items()):
        predictive = axes[0, column].contourf(
            xx,
            yy,
            np.asarray(probs)[:, 1].reshape(shape),
            levels=np.linspace(0, 1, 11),
            cmap=illustrations.CLASS_MAP,
        )
        disagreement = axes[1, column].contourf(
            xx,
            yy,
            np.asarray(information).reshape(shape),
            levels=information_levels,
            cmap=illustrations.SCORE_MAP,
        )
        axes[0, column].set_title(name, fontsize="small")
        for ax in axes[:, column]:
            illustrations.labelled_scatter(ax, x_labelled, y_labelled, size=10)
    figure.colorbar(predictive, ax=axes[0], label="p(class 1)", shrink=0.9, format="%.1f")
    figure.colorbar(
        disagreement, ax=axes[1], label="mutual information (nats)", shrink=0.9, format="%.2f"
    )
    illustrations.label_plane(axes)
    return figure


def ensemble_size(summary) -> Figure:
    """Bias (with its 95 % interval) and spread of the pool MI against the number of members.

    ``summary`` is :func:`dpe_tutorial.studies.posterior_comparison.size_summary`'s table.
    """
    methods = list(dict.fromkeys(summary["method"]))
    figure, axes = illustrations.panels(2, 1, aspect=0.75)
    colours = palette.series(len(methods))
    for i, method in enumerate(methods):
        rows = summary[summary["method"] == method].sort_values("members")
        style = {**palette.line_style(i), "color": colours[i], "label": method}
        errors = np.vstack([rows["bias"] - rows["bias_low"], rows["bias_high"] - rows["bias"]])
        axes[0, 0].errorbar(rows["members"], rows["bias"], yerr=errors, capsize=3, **style)
        axes[0, 1].plot(rows["members"], rows["spread"], **style)
    axes[0, 0].axhline(0.0, color="black", linewidth=0.8)
    axes[0, 0].set_ylabel("MI bias against the reference (nats)")
    axes[0, 1].set_ylabel("MI spread across seeds (nats)")
    for ax in axes[0]:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(set(summary["members"])))
        ax.set_xticklabels([str(m) for m in sorted(set(summary["members"]))])
        ax.set_xlabel("members E")
    figure.legend(
        *axes[0, 1].get_legend_handles_labels(),
        loc="outside lower center",
        ncols=2,
        fontsize="small",
        frameon=False,
    )
    return figure
